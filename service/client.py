"""A zeep client for the service, as the e-gov.az portal calls it.

The request is signed with WS-Security (the portal's key and certificate).
The response is verified strictly before zeep reads it: the envelope's
signature over Body and Timestamp, and the Statement's own signature, both
chaining to the trust anchor.  zeep's built-in ``verify`` is not used: it
accepts a message whose Body was never signed, and a signature-wrapped one.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import requests
from lxml import etree
from zeep import Client, Plugin, Settings
from zeep.transports import Transport
from zeep.wsdl.utils import etree_to_string

from service.errors import InvalidSecurity
from service.namespaces import OPERATION
from service.signing.hardened_xml import parse_request
from service.signing.keys import SigningIdentity
from service.signing.statement_signature import STATEMENT_TAG, StatementVerifier, VerifiedStatement
from service.signing.trust import DEFAULT_SERVICE_SIGNER, TrustStore
from service.signing.wsse import VerifiedEnvelope, WsseSigner, WsseVerifier
from service.xroad import echo_matches


@dataclass(frozen=True)
class CallResult:
    """What the service answered: the parsed response, the raw XML and the verified parts."""

    response: Any
    raw_xml: bytes
    envelope: VerifiedEnvelope
    statement: VerifiedStatement | None
    xroad_echo: tuple[etree._Element, ...] = ()


@dataclass(frozen=True)
class SignedRequest:
    """A signed request as it would be posted: the envelope's bytes and the HTTP headers."""

    body: bytes
    headers: dict[str, str]


class XRoadEchoMismatch(Exception):
    """The answer's X-Road headers are not the request's."""


class _SigningPlugin(Plugin):
    """Sign each outgoing envelope as the last step before it is sent.

    A zeep plugin rather than zeep's ``wsse`` hook, because zeep would then also
    run that hook's ``verify`` on the parsed reply; the reply is verified here
    instead, strictly and on the raw bytes, before zeep parses it.
    """

    def __init__(self, signer: WsseSigner) -> None:
        self.signer = signer

    def egress(
        self,
        envelope: etree._Element,
        http_headers: dict[str, str],
        operation: Any,
        binding_options: Any,
    ) -> tuple[etree._Element, dict[str, str]]:
        """Sign the envelope's Body and a fresh Timestamp."""
        self.signer.sign(envelope)
        return envelope, http_headers


class StatementClient:
    """Call GetBillingStatement with a signed request; verify the signed answer."""

    def __init__(
        self,
        url: str,
        identity: SigningIdentity,
        trust: TrustStore,
        *,
        timeout_s: float = 10.0,
        session: requests.Session | None = None,
        service_signers: frozenset[str] = frozenset({DEFAULT_SERVICE_SIGNER}),
    ) -> None:
        """Sign as ``identity``; accept answers signed by ``service_signers`` under ``trust``."""
        self.url = url
        transport = Transport(
            session=session or requests.Session(), timeout=timeout_s, operation_timeout=timeout_s
        )
        settings = Settings(strict=True, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True)
        self.zeep = Client(
            f"{url}?wsdl",
            transport=transport,
            settings=settings,
            plugins=[_SigningPlugin(WsseSigner(identity))],
        )
        # Post to ``url`` itself, never to the address the WSDL names: a WSDL
        # is only a description, and its address could have been tampered with.
        (binding_name,) = self.zeep.wsdl.bindings
        self.service = self.zeep.create_service(binding_name, url)
        self.envelope_verifier = WsseVerifier(
            trust, None, allow_body_signatures=True, signers=service_signers
        )
        self.statement_verifier = StatementVerifier(trust, service_signers)

    def call(
        self,
        code: str,
        fin: str | None,
        language: str | None = None,
        xroad: Sequence[etree._Element] = (),
    ) -> CallResult:
        """Call the service; raise zeep's Fault for a (verified) SOAP Fault.

        ``xroad`` are X-Road header blocks to send (see
        :func:`service.xroad.build_request_headers`); the answer must echo them
        exactly, or :class:`XRoadEchoMismatch` is raised.
        """
        kwargs = _operation_arguments(code, fin, language, xroad)
        with self.zeep.settings(raw_response=True):
            http_response = getattr(self.service, OPERATION)(**kwargs)
        raw = http_response.content
        envelope, statement = self.verify_response(raw)
        echo = tuple(envelope.signed_headers)
        if xroad and not echo_matches(xroad, echo):
            raise XRoadEchoMismatch("the answer does not echo the X-Road headers exactly")
        operation = self.service._binding._operations[OPERATION]
        reply = self.service._binding.process_reply(self.zeep, operation, http_response)
        # The WSDL declares the X-Road headers on the output, so zeep returns
        # {header, body}; the body is the GetBillingStatementResponse.
        response = reply.body if hasattr(reply, "body") and hasattr(reply, "header") else reply
        return CallResult(response, raw, envelope, statement, echo)

    def signed_request(
        self,
        code: str,
        fin: str | None,
        language: str | None = None,
        xroad: Sequence[etree._Element] = (),
    ) -> SignedRequest:
        """Return the request :meth:`call` would send, signed now, without sending it.

        For another HTTP client to post (``call --dump-request``): the same
        envelope, signature and HTTP headers as zeep's, serialized as zeep
        serializes it.  It can be posted once, before its Timestamp expires.
        """
        # zeep's own first step of a call: the envelope, with the plugins
        # applied (the signing one last), and the HTTP headers.
        envelope, headers = self.service._binding._create(
            OPERATION, (), _operation_arguments(code, fin, language, xroad), client=self.zeep
        )
        return SignedRequest(etree_to_string(envelope), dict(headers))

    def verify_response(self, raw: bytes) -> tuple[VerifiedEnvelope, VerifiedStatement | None]:
        """Verify the response envelope, then the Statement inside its verified Body."""
        verified = self.envelope_verifier.verify(parse_request(raw))
        statements = list(verified.body.iter(STATEMENT_TAG))
        if len(statements) > 1:
            raise InvalidSecurity("more than one Statement", "structure")
        statement = self.statement_verifier.verify(statements[0]) if statements else None
        return verified, statement


def _operation_arguments(
    code: str, fin: str | None, language: str | None, xroad: Sequence[etree._Element]
) -> dict[str, Any]:
    """Return zeep's keyword arguments for GetBillingStatement."""
    kwargs: dict[str, Any] = {"SubscriberCode": code}
    if fin is not None:
        kwargs["CitizenFin"] = fin
    if language:
        kwargs["Language"] = language
    if xroad:
        kwargs["_soapheaders"] = [deepcopy(block) for block in xroad]
    return kwargs


def pretty_xml(raw: bytes) -> str:
    """Return XML indented for reading."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    root = etree.fromstring(raw, parser)
    return etree.tostring(root, pretty_print=True, encoding="unicode")
