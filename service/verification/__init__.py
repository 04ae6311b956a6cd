"""Public verification of issued statements: is this printed arayış one Azərsu issued?

:mod:`~service.verification.endpoint` answers ``/verify`` (HTML),
``/verify.json`` and the file upload; :mod:`~service.verification.lookup`
decides VALID, REVOKED or NOT_FOUND from the registry of issued statements
(:mod:`service.registry`); :mod:`~service.verification.rate_limit` bounds the
answers that find nothing per client; :mod:`~service.verification.pages` and
:mod:`~service.verification.texts` write the page.  The package reaches down
to the registry, the audit and the statement verifier, never up to the SOAP
gateway.
"""
