"""node-soap (npm ``soap``, pinned in tests/interop/node/) calls the real server.

The client is ``examples/node/client.js`` itself, run against ``azersu-statement
serve``: it reads the WSDL, signs with node-soap's ``WSSecurityCert`` and prints
the answer.  With node-soap's defaults it gets in (a signed Timestamp and Body,
RSA-SHA256, SHA-256, each Reference's transforms the enveloped-signature one
then exclusive C14N); with the usual explicit ``signatureAlgorithm`` too.  The
settings the policy refuses are refused, each for its reason in the log.
"""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from service import namespaces as ns
from service.client import StatementClient
from service.signing.policy import ENVELOPED_CHAIN, EXCLUSIVE_C14N_CHAIN
from service.signing.trust import TrustStore
from tests import billing_fixtures as bf
from tests.conftest import ROOT, NodeSoap
from tests.gunicorn_process import (  # noqa: F401 (a fixture: pytest injects it by name)
    ServedProcess,
    gunicorn_service,
)

pytestmark = pytest.mark.slow

CLIENT = ROOT / "examples" / "node" / "client.js"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"


def run_client(
    node_soap: NodeSoap,
    server: ServedProcess,
    pki: dict[str, Path],
    folder: Path,
    options: dict[str, Any] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the example client; it saves the request it sent and the answer in ``folder``."""
    return subprocess.run(
        [
            node_soap.node, str(CLIENT),
            "--url", server.url,
            "--key", str(pki["portal.key"]),
            "--cert", str(pki["portal.pem"]),
            "--code", bf.FULL,
            "--fin", bf.FIN,
            "--save-request", str(folder / "request.xml"),
            "--save-response", str(folder / "response.xml"),
            "--wssecurity-options", json.dumps(options or {}),
        ],
        capture_output=True, text=True, encoding="utf-8", env=node_soap.env(),
        timeout=60, check=False,
    )  # fmt: skip


def references(request: bytes) -> dict[str, tuple[tuple[str | None, ...], str | None]]:
    """Return, by the local name of what each Reference points at, its transforms and digest."""
    root = etree.fromstring(request)
    by_id = {
        value: element
        for element in root.iter()
        for name, value in element.attrib.items()
        if etree.QName(name).localname == "Id"
    }
    found = {}
    for reference in root.iter(f"{{{ns.DS}}}Reference"):
        target = by_id[(reference.get("URI") or "").lstrip("#")]
        transforms = tuple(t.get("Algorithm") for t in reference.iter(f"{{{ns.DS}}}Transform"))
        digest = reference.find(f"{{{ns.DS}}}DigestMethod")
        found[etree.QName(target).localname] = (
            transforms,
            digest.get("Algorithm") if digest is not None else None,
        )
    return found


def signature_method(request: bytes) -> str | None:
    method = etree.fromstring(request).find(f".//{{{ns.DS}}}SignatureMethod")
    return method.get("Algorithm") if method is not None else None


def logged(server: ServedProcess, start: str) -> list[str]:
    return [
        str(r["message"]) for r in server.log_records() if str(r.get("message")).startswith(start)
    ]


@pytest.fixture
def verifier(
    gunicorn_service: ServedProcess, portal_identity, trust: TrustStore
) -> StatementClient:
    """Our strict client, to check the answers node-soap received."""
    return StatementClient(gunicorn_service.url, portal_identity, trust)


def test_node_soap_defaults_get_in(
    node_soap: NodeSoap,
    gunicorn_service: ServedProcess,
    pki: dict[str, Path],
    verifier: StatementClient,
    tmp_path: Path,
) -> None:
    result = run_client(node_soap, gunicorn_service, pki, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer["Status"] == "OK"
    statement = answer["Statement"]
    subscriber = statement["Subscriber"]
    assert subscriber["Code"] == bf.FULL
    assert (subscriber["LastName"], subscriber["FirstName"], subscriber["Patronymic"]) == (
        bf.AZ_LAST,
        bf.AZ_FIRST,
        bf.AZ_PATRONYMIC,
    )
    assert subscriber["Address"] == bf.AZ_ADDRESS
    assert len(statement["Periods"]["Period"]) == len(bf.WINDOW)
    totals = {name: Decimal(value) for name, value in statement["Totals"].items()}
    assert totals == {
        "ConsumptionM3": Decimal("288"),
        "InvoicedAmount": Decimal("144.00"),
        "PaidAmount": Decimal("144.00"),
    }

    # What node-soap printed is what the service signed: the saved answer verifies.
    _envelope, verified = verifier.verify_response((tmp_path / "response.xml").read_bytes())
    assert verified is not None
    assert verified.statement_number == statement["StatementNumber"]
    signed_totals = verified.statement.find(f"{{{ns.TNS}}}Totals")
    assert {etree.QName(e).localname: Decimal(e.text or "") for e in signed_totals} == totals

    # node-soap's defaults, as it sent them: RSA-SHA256; the Timestamp and the Body signed,
    # each with the enveloped-signature transform then exclusive C14N, and SHA-256.
    request = (tmp_path / "request.xml").read_bytes()
    assert signature_method(request) == ns.RSA_SHA256
    assert references(request) == {
        "Body": (ENVELOPED_CHAIN, ns.SHA256),
        "Timestamp": (ENVELOPED_CHAIN, ns.SHA256),
    }
    outcome = [r for r in gunicorn_service.log_records() if r.get("message") == "request"]
    assert outcome[-1]["outcome"] == "OK"
    assert outcome[-1]["statement_number"] == verified.statement_number


#: Options from node-soap's README that get in: (options, what each Reference then carries).
ACCEPTED = [
    pytest.param(
        # node-soap then signs the Body with exclusive C14N alone.
        {"signatureAlgorithm": ns.RSA_SHA256},
        {"Body": (EXCLUSIVE_C14N_CHAIN, ns.SHA256), "Timestamp": (ENVELOPED_CHAIN, ns.SHA256)},
        id="explicit-rsa-sha256",
    ),
    pytest.param(
        # wsu:Id (declared on the Body) instead of a plain Id.
        {"signerOptions": {"idMode": "wssecurity"}},
        {"Body": (ENVELOPED_CHAIN, ns.SHA256), "Timestamp": (ENVELOPED_CHAIN, ns.SHA256)},
        id="wssecurity-ids",
    ),
    pytest.param(
        # The README's example: a ds: prefix and an Id on the Signature.
        {"hasTimeStamp": True, "signerOptions": {"prefix": "ds", "attrs": {"Id": "Signature"}}},
        {"Body": (ENVELOPED_CHAIN, ns.SHA256), "Timestamp": (ENVELOPED_CHAIN, ns.SHA256)},
        id="readme-signer-options",
    ),
]


@pytest.mark.parametrize(("options", "signed"), ACCEPTED)
def test_node_soap_with_the_usual_settings_gets_in(
    node_soap: NodeSoap,
    gunicorn_service: ServedProcess,
    pki: dict[str, Path],
    tmp_path: Path,
    options: dict[str, Any],
    signed: dict[str, tuple[tuple[str, ...], str]],
) -> None:
    result = run_client(node_soap, gunicorn_service, pki, tmp_path, options)
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer["Status"] == "OK"
    assert answer["Statement"]["Subscriber"]["LastName"] == bf.AZ_LAST
    request = (tmp_path / "request.xml").read_bytes()
    assert signature_method(request) == ns.RSA_SHA256
    assert references(request) == signed


#: node-soap settings the policy refuses: (options, fault code, logged reason and detail).
REFUSED = [
    pytest.param(
        {"signatureAlgorithm": RSA_SHA1},
        "UnsupportedAlgorithm",
        f"(signature_method): signature method '{RSA_SHA1}' is not allowed",
        id="rsa-sha1",
    ),
    pytest.param(
        {"digestAlgorithm": SHA1},
        "UnsupportedAlgorithm",
        f"(digest_method): digest method '{SHA1}' is not allowed",
        id="sha1-digests",
    ),
    pytest.param(
        {"hasTimeStamp": False},
        "InvalidSecurity",
        "(structure): expected exactly one wsu:Timestamp, found 0",
        id="no-timestamp",
    ),
    pytest.param(
        {"excludeReferencesFromSigning": ["Timestamp"]},
        "InvalidSecurity",
        f"(required_reference): {{{ns.WSU}}}Timestamp is not signed",
        id="timestamp-not-signed",
    ),
]


@pytest.mark.parametrize(("options", "faultcode", "reason"), REFUSED)
def test_node_soap_settings_the_policy_refuses(
    node_soap: NodeSoap,
    gunicorn_service: ServedProcess,
    pki: dict[str, Path],
    verifier: StatementClient,
    tmp_path: Path,
    options: dict[str, Any],
    faultcode: str,
    reason: str,
) -> None:
    result = run_client(node_soap, gunicorn_service, pki, tmp_path, options)
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"SOAP Fault wsse:{faultcode}:" in result.stderr
    answer = (tmp_path / "response.xml").read_bytes()
    assert bf.AZ_LAST.encode() not in answer
    _envelope, statement = verifier.verify_response(answer)  # the refusal is signed too
    assert statement is None
    assert logged(gunicorn_service, f"security fault {faultcode} {reason}"), (
        gunicorn_service.log_text()
    )
