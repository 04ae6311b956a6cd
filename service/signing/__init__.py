"""Trust: WS-Security on requests and responses, and the statement's own signature.

Built on lxml and ``cryptography`` after OASIS Web Services Security 1.1 (SOAP
Message Security and the X.509 Token Profile) and W3C XML Signature (XMLDSig);
python-xmlsec, libxmlsec1's ``xmlsec1`` and signxml check it in the tests:

* :mod:`.keys` -- the service's signing key and certificate, loaded once;
* :mod:`.trust` -- trust anchors, registered callers, and which certificates may sign;
* :mod:`.policy` -- the verification policy (one frozen dataclass) and the reasons of refusal;
* :mod:`.wsse` -- :class:`~.wsse.WsseVerifier` and :class:`~.wsse.WsseSigner`
  for the SOAP envelope (Body and Timestamp);
* :mod:`.statement_signature` -- the enveloped signature of the Statement, which
  stays valid when the Statement is saved as a file of its own;
* :mod:`.xmldsig` -- XML signatures made and verified with exclusive C14N;
* :mod:`.replay` -- the replay store;
* :mod:`.hardened_xml` -- the parser every request goes through first.

It is used from above (:mod:`service.soap_gateway`, the client, the command
line) and imports nothing of the service but :mod:`service.namespaces`,
:mod:`service.errors` and :mod:`service.settings`.
"""
