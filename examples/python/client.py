"""A minimal zeep client of the Azərsu billing-statement service.

zeep signs the request with its own ``BinarySignature`` (the certificate as a
BinarySecurityToken, exclusive C14N) set to RSA-SHA256 and SHA-256: zeep's
defaults, RSA-SHA1 and SHA-1, are refused by the service.  zeep signs a
``wsu:Timestamp`` when there is one but never adds it, and the service
requires a signed Timestamp, so a small step adds it first.

zeep's own check of the answer would use the caller's certificate, so the
answer is checked here with the service's certificate, and it must cover the
Body and the Timestamp (zeep checks a signature, not what it covers).  The
Statement inside carries a signature of its own: ``azersu-statement verify``
checks a saved copy against the CA.

    python client.py --url http://127.0.0.1:8080/soap --code 100000000 --fin X9SCKS7 \\
        [--key var/pki/portal.key --cert var/pki/portal.pem --service-cert var/pki/service.pem]

Needs ``zeep`` and ``xmlsec`` (``pip install zeep xmlsec``).  Exit status: 0
for OK, 1 another Status, 3 a SOAP Fault.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

import xmlsec
from lxml import etree
from zeep import Client
from zeep.exceptions import Fault, SignatureVerificationFailed
from zeep.wsse.signature import BinarySignature, verify_envelope
from zeep.wsse.utils import WSU, get_security_header

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"


class TimestampedBinarySignature:
    """zeep's ``wsse`` hook: a fresh Timestamp, then zeep's BinarySignature over it and the Body."""

    def __init__(self, key: str, cert: str, service_cert: str, lifetime_s: int = 300) -> None:
        self.signature = BinarySignature(
            key,
            cert,
            signature_method=xmlsec.Transform.RSA_SHA256,
            digest_method=xmlsec.Transform.SHA256,
        )
        self.service_cert = service_cert
        self.lifetime = dt.timedelta(seconds=lifetime_s)

    def apply(self, envelope: etree._Element, headers: dict) -> tuple[etree._Element, dict]:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        get_security_header(envelope).append(
            WSU.Timestamp(
                WSU.Created(now.strftime("%Y-%m-%dT%H:%M:%SZ")),
                WSU.Expires((now + self.lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")),
            )
        )
        return self.signature.apply(envelope, headers)

    def verify(self, envelope: etree._Element) -> etree._Element:
        """Check the answer: the service's signature, over its Body and its Timestamp."""
        verify_envelope(envelope, self.service_cert)
        body = envelope.find(f"{{{SOAP_ENV}}}Body")
        timestamp = envelope.find(f"{{{SOAP_ENV}}}Header/{{{WSSE}}}Security/{{{WSU_NS}}}Timestamp")
        references = envelope.findall(
            f"{{{SOAP_ENV}}}Header/{{{WSSE}}}Security/{{{DS}}}Signature"
            f"/{{{DS}}}SignedInfo/{{{DS}}}Reference"
        )
        signed = {reference.get("URI") for reference in references}
        ids = list(envelope.xpath("//@wsu:Id", namespaces={"wsu": WSU_NS}))
        for part in (body, timestamp):
            if part is None or f"#{part.get(f'{{{WSU_NS}}}Id')}" not in signed:
                raise SignatureVerificationFailed("the answer's Body or Timestamp is not signed")
        if len(ids) != len(set(ids)):
            raise SignatureVerificationFailed("the answer repeats a wsu:Id")
        return envelope


def print_answer(answer: Any) -> None:
    print(f"Status: {answer.Status}")
    print(f"Message: {answer.Message}")
    statement = answer.Statement
    if statement is None:
        return
    person = statement.Subscriber
    names = " ".join(n for n in (person.LastName, person.FirstName, person.Patronymic) if n)
    print(f"Statement: {statement.StatementNumber} ({statement.IssuedAt.isoformat()})")
    print(f"Subscriber: {person.Code} {names}")
    print(f"Address: {person.Address}")
    for period in statement.Periods.Period:
        print(
            f"{period.Year}-{period.Month:02d}  {period.ConsumptionM3} m3"
            f"  invoiced {period.InvoicedAmount}  paid {period.PaidAmount}"
        )
    totals = statement.Totals
    print(
        f"Totals: {totals.ConsumptionM3} m3  invoiced {totals.InvoicedAmount}"
        f"  paid {totals.PaidAmount} {statement.Currency}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080/soap", help="the /soap endpoint")
    parser.add_argument("--code", required=True, help="subscriber code (abonent kodu)")
    parser.add_argument("--fin", help="the citizen's FIN")
    parser.add_argument("--lang", choices=("az", "en", "ru"), help="language of the message")
    parser.add_argument("--key", default="var/pki/portal.key", help="the caller's key (PEM)")
    parser.add_argument("--cert", default="var/pki/portal.pem", help="the caller's certificate")
    parser.add_argument(
        "--service-cert", default="var/pki/service.pem", help="the service's certificate (PEM)"
    )
    args = parser.parse_args()

    client = Client(
        f"{args.url}?wsdl", wsse=TimestampedBinarySignature(args.key, args.cert, args.service_cert)
    )
    # Post to the address given, not to the one the WSDL names.
    (binding,) = client.wsdl.bindings
    service = client.create_service(binding, args.url)
    request = {"SubscriberCode": args.code, "CitizenFin": args.fin, "Language": args.lang}
    try:
        answer = service.GetBillingStatement(**{k: v for k, v in request.items() if v})
    except Fault as fault:
        print(f"SOAP Fault {fault.code}: {fault.message}", file=sys.stderr)
        return 3
    except SignatureVerificationFailed as failure:
        print(
            f"the answer is NOT trusted: {str(failure) or 'its signature does not verify'}",
            file=sys.stderr,
        )
        return 5
    # The WSDL declares X-Road headers on the output: zeep returns {header, body}.
    answer = getattr(answer, "body", answer)
    print_answer(answer)
    return 0 if answer.Status == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
