"""The app factory: :func:`create_app` builds everything the service runs on.

Nothing is built at import time.  ``create_app(settings)`` opens the billing
engine and the audit store, generates the contract (WSDL and request schema)
once for the configured public address, wires the gateway around the
operation and the public verification page around the registry of issued
statements, and returns a :class:`ServiceApp` -- the WSGI callable that
gunicorn serves -- which routes ``/soap`` to the gateway, ``/verify``,
``/verify.json`` and ``/verify.css`` to :mod:`service.verification`, and
answers the health, readiness and metrics paths itself.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine

from service.audit import AuditStore
from service.billing.deadline import DEADLINE_MARGIN_S, BillingDeadline
from service.billing.engine import create_read_only_engine
from service.billing.statement_query import BillingQueries
from service.billing.tables import BillingTables, build_billing_tables
from service.client_address import forwarded_client
from service.cooperative import driver_blocks_in_c
from service.handlers.billing_statement import StatementContext, StatementOperation
from service.metrics import Metrics
from service.replay_store import create_replay_cache
from service.settings import Settings, load_settings
from service.signing.keys import SigningIdentity
from service.signing.material import TrustMaterial, read_trust_material
from service.signing.statement_signature import StatementSigner, StatementVerifier
from service.signing.trust import TrustStore
from service.signing.wsse import WsseSigner, WsseVerifier
from service.soap_gateway import SoapGateway
from service.verification import endpoint as verification
from service.verification.rate_limit import NotFoundLimit, create_rate_counter
from service.wsdl.spyne_service import Contract, build_contract
from service.xroad import XRoadMode, XRoadPolicy, parse_client_allowlist

log = logging.getLogger("service.app")

SOAP_PATH = "/soap"
StartResponse = Any  # the WSGI start_response callable


class ServiceApp:
    """The service: a WSGI callable plus the resources it owns."""

    def __init__(
        self,
        settings: Settings,
        billing_engine: Engine,
        context: StatementContext,
        contract: Contract,
        identity: SigningIdentity,
        trust: TrustStore,
        audit: AuditStore,
        queries: BillingQueries,
    ) -> None:
        self.settings = settings
        self.billing_engine = billing_engine
        self.context = context
        self.contract = contract
        self.identity = identity
        self.trust = trust
        self.audit = audit
        self.queries = queries
        self.metrics = Metrics()
        audit.on_commit = self.metrics.observe_audit_commit
        # Every worker's gauge holds a real value from the start: the scrape
        # reports the live minimum over the workers, whichever one answers it.
        self.metrics.certificate_days_left.set(round(identity.days_left(), 2))
        self.replay_cache = create_replay_cache(settings)
        # WS-Security off (behind an X-Road security server) is allowed only
        # with TLS client certificates: Settings.validate() enforces it.
        self.verifier = (
            WsseVerifier(
                trust,
                self.replay_cache,
                clock_skew_s=settings.wsse_clock_skew_s,
                max_age_s=settings.wsse_max_age_s,
            )
            if settings.wsse_mode == "require"
            else None
        )
        self.soap = SoapGateway(
            StatementOperation(context, contract.schema),
            self.verifier,
            WsseSigner(identity, lifetime_s=settings.response_lifetime_s),
            StatementSigner(identity),
            audit,
            self.metrics,
            xroad=XRoadPolicy(
                XRoadMode(settings.xroad_mode), parse_client_allowlist(settings.xroad_clients)
            ),
            transport_trust=trust,
            max_body_bytes=settings.max_body_bytes,
            wsdl=contract.wsdl,
        )
        self.trusted_proxies = settings.trusted_proxy_networks
        self.rate_counter = create_rate_counter(settings)
        self.verification = verification.PublicVerification(
            audit.registry,
            audit,
            NotFoundLimit(self.rate_counter, settings.verify_rate_per_min),
            self.metrics,
            # An uploaded statement is checked as `verify` checks it: signed
            # under a CA of AZERSU_TRUST_CA by a certificate naming the service.
            StatementVerifier(trust.statement_signers()),
            max_body_bytes=settings.max_body_bytes,
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Route a request: ``/soap`` (and its WSDL), ``/verify`` (and its JSON and CSS),
        ``/healthz``, ``/readyz``, ``/metrics``."""
        if self.trusted_proxies:  # the client behind a trusted reverse proxy
            environ["REMOTE_ADDR"] = forwarded_client(
                str(environ.get("REMOTE_ADDR", "")),
                str(environ.get("HTTP_X_FORWARDED_FOR", "")),
                self.trusted_proxies,
            )
        path = environ.get("PATH_INFO", "")
        if path == SOAP_PATH:
            return self.soap(environ, start_response)
        if path in verification.PATHS:
            return self.verification(environ, start_response)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", b"GET only\n")
        if path == "/healthz":
            return _plain(start_response, "200 OK", b"ok\n")
        if path == "/readyz":
            report = self.readiness()
            status = "200 OK" if report["ready"] else "503 Service Unavailable"
            body = (json.dumps(report, ensure_ascii=False, indent=1) + "\n").encode()
            return _plain(start_response, status, body, "application/json")
        if path == "/metrics":
            days = self.identity.days_left()
            self.metrics.certificate_days_left.set(round(days, 2))
            return _plain(start_response, "200 OK", self.metrics.render(), Metrics.content_type)
        return _plain(start_response, "404 Not Found", b"not found\n")

    def http_refused(self, status: int, detail: str, remote_addr: str, path: str) -> None:
        """Audit, count and log a request the HTTP server refused before routing it.

        The request line may not have been readable, so the path is often
        unknown: every such refusal is kept, as one on ``/soap`` would be.
        """
        self.soap.refused(status, f"{detail} (path {path!r})", remote_addr)

    def readiness(self) -> dict[str, Any]:
        """Check billing, audit and replay stores and the keys; return a report."""
        checks: dict[str, str] = {}
        for name, check in (
            ("billing", self._check_billing),
            ("audit", self.audit.check),
            ("replay", self.replay_cache.check),
            ("verify_rate", self.rate_counter.check),
        ):
            try:
                check()
                checks[name] = "ok"
            except Exception as exc:
                log.warning("not ready: %s: %s", name, exc)
                checks[name] = f"unavailable: {type(exc).__name__}"
        days = self.identity.days_left()
        checks["keys"] = "ok" if days > 0 else "expired"
        warnings = []
        if days < CERTIFICATE_WARNING_DAYS:
            warnings.append(f"the signing certificate expires in {days:.0f} days")
        return {
            "ready": all(v == "ok" for v in checks.values()),
            "checks": checks,
            "warnings": warnings,
            "signing_certificate_days_left": round(days, 1),
        }

    def _check_billing(self) -> None:
        # A real, indexed lookup: it proves the relations are there, not just a socket.
        if self.context.deadline is not None:
            self.context.deadline.run(lambda: self.queries.find_subscriber(""))
        else:
            self.queries.find_subscriber("")

    def close(self) -> None:
        """Release the database connections."""
        if self.context.deadline is not None:
            self.context.deadline.close()
        self.billing_engine.dispose()
        self.audit.close()
        self.replay_cache.close()
        self.rate_counter.close()


CERTIFICATE_WARNING_DAYS = 30


def _plain(
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def create_billing_engine(settings: Settings) -> Engine:
    """Create the read-only billing engine (see :mod:`service.billing.engine`)."""
    return create_read_only_engine(
        settings.resolved_billing_url,
        "AZERSU_BILLING_URL",
        timeout_s=settings.db_timeout_s,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


def billing_tables(settings: Settings) -> BillingTables:
    """Return the billing relations under the configured schema and names."""
    return build_billing_tables(
        settings.billing_schema or None,
        settings.billing_subscriber_table,
        settings.billing_invoice_table,
        settings.billing_payment_table,
    )


def build_statement_context(
    settings: Settings, engine: Engine, *, deadline: bool = True
) -> StatementContext:
    """Return what GetBillingStatement needs: the billing queries and the rules.

    ``deadline`` bounds each request's billing reads (see
    :mod:`service.billing.deadline`) on a network database.  SQLite gets none:
    every wait on a local file is already bounded by the engine (the busy
    timeout, a progress handler on long statements), and the deadline's
    thread hop would cost two context switches per request for nothing.
    """
    queries = BillingQueries(
        engine,
        billing_tables(settings),
        period_pin=settings.report_period_pin,
        period_cache_s=settings.report_period_cache_s,
    )
    return StatementContext(
        queries=queries,
        code_pattern=re.compile(settings.subscriber_code_pattern),
        issuer=settings.issuer,
        deadline=BillingDeadline(
            settings.db_timeout_s + DEADLINE_MARGIN_S,
            workers=settings.db_pool_size + settings.db_max_overflow,
            driver_blocks_in_c=driver_blocks_in_c(engine.dialect.name, engine.dialect.driver),
        )
        if deadline and engine.dialect.name != "sqlite"
        else None,
    )


def create_app(
    settings: Settings | None = None, material: TrustMaterial | None = None
) -> ServiceApp:
    """Build the service from settings (by default, loaded from the environment).

    ``material`` is the already-read key, certificate and trust bundle (the
    gunicorn master hands it to its workers); by default the files are read.
    """
    settings = (settings or load_settings()).validate()
    logging.getLogger("service").setLevel(settings.log_level.upper())
    identity, trust = (material or read_trust_material(settings)).build()
    engine = create_billing_engine(settings)
    audit = AuditStore.from_url(settings.resolved_audit_url, settings.db_timeout_s)
    context = build_statement_context(settings, engine)
    contract = build_contract(settings.resolved_public_url)
    return ServiceApp(settings, engine, context, contract, identity, trust, audit, context.queries)
