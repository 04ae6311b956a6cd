"""One exception hierarchy for the service, and its mapping to the wire.

Two kinds of failure reach a caller, and they are kept apart on purpose:

* :class:`BusinessRejection` -- the citizen's input can't give a statement
  (empty, malformed or unknown subscriber code, non-residential subscriber,
  bad FIN).  It becomes an ordinary response with a ``Status`` and a
  ``Message`` in the citizen's language.
* :class:`ServiceFault` -- a technical or security failure (malformed
  request, schema violation, billing database unavailable, internal error).
  It becomes a SOAP Fault with a stable ``faultcode`` and a plain
  ``faultstring``; the details go to the server log only.

:func:`fault_for` is the single place that turns any exception into the
Fault the caller sees.  On the wire a SOAP 1.1 faultcode is a QName, such as
``soap11env:Server.BillingUnavailable``; the local part is the stable code
that callers match.
"""

from __future__ import annotations

import enum
import logging

from service.namespaces import WSSE


class Status(enum.StrEnum):
    """Business outcome of ``GetBillingStatement`` (the ``Status`` element)."""

    OK = "OK"
    SUBSCRIBER_CODE_EMPTY = "SUBSCRIBER_CODE_EMPTY"
    SUBSCRIBER_CODE_INVALID = "SUBSCRIBER_CODE_INVALID"
    SUBSCRIBER_NOT_FOUND = "SUBSCRIBER_NOT_FOUND"
    NOT_RESIDENTIAL = "NOT_RESIDENTIAL"
    FIN_INVALID = "FIN_INVALID"
    FIN_MISMATCH = "FIN_MISMATCH"


class AzersuError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigurationError(AzersuError):
    """A setting is missing or wrong; start-up stops with one clear line."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class BusinessRejection(AzersuError):
    """The request is well-formed but gives no statement; answered with a Status."""

    status: Status = Status.OK

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.status.value)
        self.detail = detail


class SubscriberCodeEmpty(BusinessRejection):
    status = Status.SUBSCRIBER_CODE_EMPTY


class SubscriberCodeInvalid(BusinessRejection):
    status = Status.SUBSCRIBER_CODE_INVALID


class FinInvalid(BusinessRejection):
    status = Status.FIN_INVALID


class FinMismatch(BusinessRejection):
    """CitizenFin and the X-Road userId name different citizens."""

    status = Status.FIN_MISMATCH


class SubscriberNotFound(BusinessRejection):
    status = Status.SUBSCRIBER_NOT_FOUND


class NotResidential(BusinessRejection):
    status = Status.NOT_RESIDENTIAL


class ServiceFault(AzersuError):
    """A technical or security failure, answered with a SOAP Fault.

    ``faultcode`` and ``faultstring`` are what the caller sees and never
    change with the cause; ``detail`` (the cause) is for the server log.
    """

    faultcode = "Server.InternalError"
    faultstring = "Internal error"
    #: Namespace of the faultcode QName: None for the SOAP envelope's own
    #: (``Client``/``Server``), the wsse namespace for WS-Security faults.
    fault_namespace: str | None = None
    #: HTTP status of the fault response (SOAP 1.1 over HTTP: 500).
    http_status = "500 Internal Server Error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.faultstring)
        self.detail = detail


class InternalError(ServiceFault):
    """Anything unexpected: a bug, never shown to the caller beyond its code."""


class BillingUnavailable(ServiceFault):
    faultcode = "Server.BillingUnavailable"
    faultstring = "The billing database is unavailable; try again later"


class ClientFault(ServiceFault):
    """The request itself is wrong (the caller's fault, not the citizen's)."""

    faultcode = "Client"
    faultstring = "Bad request"


class MalformedRequest(ClientFault):
    faultcode = "Client.MalformedRequest"
    faultstring = "The request is not a well-formed SOAP 1.1 message"


class SchemaViolation(ClientFault):
    faultcode = "Client.SchemaValidation"
    faultstring = "The request does not match the service's schema"


class MustUnderstand(ServiceFault):
    """A header block the service must understand (``mustUnderstand="1"``) but does not process."""

    faultcode = "MustUnderstand"
    faultstring = "A mandatory header block was not understood"


class OneOperation(ClientFault):
    faultcode = "Client.OneOperation"
    faultstring = "The Body must hold exactly one operation element"


class UnknownOperation(ClientFault):
    faultcode = "Client.UnknownOperation"
    faultstring = "Unknown operation"


class ForbiddenXml(ClientFault):
    """A DOCTYPE, an entity, a comment or processing instruction in the Body, or absurd nesting."""

    faultcode = "Client.ForbiddenXml"
    faultstring = "The request uses XML constructs that the service does not accept"


class SigningFailed(ServiceFault):
    """The response could not be signed: the answer is this Fault, never an unsigned reply."""

    faultcode = "Server.SigningFailed"
    faultstring = "The response could not be signed"


class AuditUnavailable(ServiceFault):
    """The audit record can't be committed, so nothing is answered (fail closed)."""

    faultcode = "Server.AuditUnavailable"
    faultstring = "The service cannot record this access; try again later"


class ReplayStoreUnavailable(ServiceFault):
    """The replay cache can't record the message, so it is refused (fail closed)."""

    faultcode = "Server.ReplayStoreUnavailable"
    faultstring = "The service cannot check for replayed messages; try again later"


class HttpRejection(AzersuError):
    """The request is refused at the HTTP level, before its body is read."""

    status = "400 Bad Request"
    message = "bad request"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.message)
        self.detail = detail


class BodyTooLarge(HttpRejection):
    status = "413 Content Too Large"
    message = "the request body is too large"


class UnsupportedMediaType(HttpRejection):
    status = "415 Unsupported Media Type"
    message = "a SOAP 1.1 request is text/xml in UTF-8"


class SecurityFault(ServiceFault):
    """A WS-Security failure (OASIS WSS 1.1, section 12): a wsse fault code.

    The caller learns only the code; the reason (``detail``) goes to the log
    and to the signature-failure metrics.
    """

    fault_namespace = WSSE
    faultcode = "InvalidSecurity"
    faultstring = "An error was discovered processing the <wsse:Security> header"

    def __init__(self, detail: str = "", reason: str = "invalid") -> None:
        super().__init__(detail)
        #: A short, stable label of the cause, for logs and metrics.
        self.reason = reason


class InvalidSecurity(SecurityFault):
    """Missing, duplicated or malformed security elements; signature wrapping; replay."""


class UnsupportedAlgorithm(SecurityFault):
    faultcode = "UnsupportedAlgorithm"
    faultstring = "An unsupported signature or encryption algorithm was used"


class FailedCheck(SecurityFault):
    faultcode = "FailedCheck"
    faultstring = "The signature or decryption was invalid"


class FailedAuthentication(SecurityFault):
    faultcode = "FailedAuthentication"
    faultstring = "The security token could not be authenticated or authorized"


class MessageExpired(SecurityFault):
    faultcode = "MessageExpired"
    faultstring = "The message has expired"



def fault_classes() -> dict[str, type[ServiceFault]]:
    """Return every ServiceFault class by its faultcode (a Fault already mapped)."""
    found: dict[str, type[ServiceFault]] = {}
    pending: list[type[ServiceFault]] = [ServiceFault]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.faultcode, cls)
        pending.extend(cls.__subclasses__())
    return found


def fault_for(exc: BaseException) -> ServiceFault:
    """Return the :class:`ServiceFault` that stands for any exception."""
    if isinstance(exc, ServiceFault):
        return exc
    return InternalError(f"{type(exc).__name__}: {exc}")


def logged_fault(exc: BaseException, logger: logging.Logger) -> ServiceFault:
    """Return the fault for ``exc``, logged: a Server fault as an error with its trace."""
    fault = fault_for(exc)
    level = logging.ERROR if fault.faultcode.startswith("Server") else logging.INFO
    logger.log(level, "fault %s: %s", fault.faultcode, exc, exc_info=level >= logging.ERROR)
    return fault
