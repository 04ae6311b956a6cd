"""The service's settings: one frozen, typed object, loaded once.

Values come from ``AZERSU_*`` environment variables and, optionally, from a
settings file named by ``AZERSU_SETTINGS_FILE`` (``KEY=VALUE`` lines, ``#``
comments; the environment wins over the file).  Defaults are the secure and
embedded ones: the demo SQLite billing database under ``var/`` and loopback
only.  Tests derive variants with :func:`dataclasses.replace`.

Every field is documented below and in docs/configuration.md (a test keeps the two in step).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from service.errors import ConfigurationError

ENV_PREFIX = "AZERSU_"
SETTINGS_FILE_VARIABLE = "AZERSU_SETTINGS_FILE"
DEFAULT_VAR_DIR = "var"
DEFAULT_DEMO_DB = "billing-demo.sqlite"
DEFAULT_AUDIT_DB = "audit.sqlite"
DEFAULT_SUBSCRIBER_CODE_PATTERN = r"\d{6,12}"


@dataclass(frozen=True)
class Settings:
    """Everything the service can be configured with.

    The field name in upper case, prefixed with ``AZERSU_``, is its variable.
    """

    #: Folder for the service's own files (demo database, keys in development).
    var_dir: str = DEFAULT_VAR_DIR
    #: SQLAlchemy URL of the billing database (read only).  Default: the demo
    #: SQLite file ``<var_dir>/billing-demo.sqlite``.
    billing_url: str = ""
    #: Schema (owner) that holds the billing relations; empty for the default.
    billing_schema: str = ""
    #: Names of the three billing relations (views in production).
    billing_subscriber_table: str = "SUBSCRIBER"
    billing_invoice_table: str = "INVOICE"
    billing_payment_table: str = "PAYMENT"
    #: Regular expression a trimmed subscriber code must match in full.
    subscriber_code_pattern: str = DEFAULT_SUBSCRIBER_CODE_PATTERN
    #: Pin the latest closed billing period (``YYYY-MM``); empty means the newest
    #: month for which invoices were issued across the billing system.
    report_period: str = ""
    #: Seconds the discovered latest closed period is cached.
    report_period_cache_s: int = 300
    #: Bound on every database wait: connecting, getting a pooled connection
    #: and running one statement (seconds, decimals allowed).
    db_timeout_s: float = 3.0
    #: SQLAlchemy URL of the access audit store (writable, separate from billing).
    #: Default: the SQLite file ``<var_dir>/audit.sqlite``.
    audit_url: str = field(default="", repr=False)
    #: Connections each worker keeps open to billing, and how many more it may
    #: open under load.  A worker's requests overlap their reads, so the pool
    #: is sized for them and opens no extra connections by default: each
    #: one opened and closed under load costs the database a new session.
    db_pool_size: int = 10
    db_max_overflow: int = 0
    #: The issuer named in every statement.
    issuer: str = "“Azərsu” Açıq Səhmdar Cəmiyyəti"
    #: Address and port that ``serve`` listens on.
    host: str = "127.0.0.1"
    port: int = 8080
    #: The address the WSDL publishes for the service (``soap:address``), and
    #: the only one it ever names: it never comes from a request's ``Host``.
    #: Default: ``http://<host>:<port>/soap`` of ``serve`` (``https://`` with TLS).
    public_url: str = ""
    #: gunicorn worker processes (gevent: each serves many connections).
    workers: int = 2
    #: Seconds an idle connection is kept open for its next request; a
    #: request's head must also arrive within this time.
    keepalive_s: int = 5
    #: Seconds a request's body may take to arrive in full.
    request_timeout_s: float = 15.0
    #: Open connections one worker serves at once; near the limit, the
    #: connections that have waited longest for a request are closed.
    worker_connections: int = 1000
    #: Open connections one client address may hold per worker (further ones
    #: are closed unread).  Behind a load balancer every request comes from
    #: its address: raise this to its connection limit per server.
    max_connections_per_client: int = 64
    #: Log level of the service's own loggers.
    log_level: str = "INFO"

    # --- Trust (WS-Security and the statement signature) ---
    #: The service's signing key: a PEM private key, or a PKCS#12 file holding
    #: key and certificate.  Required: the service never answers unsigned.
    sign_key: str = ""
    #: The service's certificate (PEM); not needed with PKCS#12.
    sign_cert: str = ""
    #: Password of the key, or a file whose first line is the password.
    sign_key_password: str = field(default="", repr=False)
    sign_key_password_file: str = ""
    #: PEM bundle of the CA certificates that callers' certificates must chain to.
    trust_ca: str = ""
    #: The registered callers: SHA-256 fingerprints (hex, colons allowed) of
    #: their certificates, separated by commas or spaces.  Only they may call
    #: (each must also chain to ``trust_ca`` and be fit to sign).  Required: an
    #: empty list stops the start, unless ``accept_any_caller_of_ca``.
    trusted_clients: str = ""
    #: "true" lets any certificate issued by a CA of ``trust_ca`` call (with an
    #: empty ``trusted_clients``; a warning is logged at every start).  Never
    #: with a CA that issues certificates to others than the callers, such as
    #: a national CA.  Default false.
    accept_any_caller_of_ca: bool = False
    #: The registered callers' certificates: a PEM bundle file, or a folder of
    #: ``*.pem`` files.  Each registers its caller as a fingerprint in
    #: ``trusted_clients`` does, and lets the caller name its certificate by
    #: IssuerSerial, SubjectKeyIdentifier or SHA-1 thumbprint instead of
    #: sending it.  Each must chain to ``trust_ca`` and be fit to sign, or the
    #: start is refused.  Default empty (none).
    client_certs: str = ""
    #: Allowed difference between the caller's clock and ours, in seconds.
    wsse_clock_skew_s: int = 300
    #: Oldest accepted request Timestamp (Created), in seconds.
    wsse_max_age_s: int = 300
    #: Lifetime of the Timestamp the service puts on its responses, in seconds.
    response_lifetime_s: int = 300
    #: Largest request body accepted, in bytes (refused with HTTP 413 unread).
    max_body_bytes: int = 256 * 1024
    #: Most chunks a chunked request body may arrive in (each costs the same
    #: to decode whatever its size: a body of one-byte chunks is refused).
    max_body_chunks: int = 1024
    #: X-Road headers: "off" (ignored), "accept" (used and echoed when present)
    #: or "require" (a request without valid X-Road headers is a Fault).
    xroad_mode: str = "accept"
    #: Optional allowlist of X-Road clients: INSTANCE/CLASS/CODE[/SUBSYSTEM],
    #: separated by commas or spaces.  Empty: any client.
    xroad_clients: str = ""
    #: WS-Security on requests: "require" (default) or "off".  "off" is for an
    #: adapter behind an X-Road security server, which signs the messages; it
    #: is accepted only when the service itself is served over TLS with
    #: client-certificate authentication (the three tls_* settings).
    wsse_mode: str = "require"
    #: TLS for ``serve``: the server's certificate and key (PEM) and the CA
    #: bundle that client certificates must chain to.
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    #: Replay store shared by hosts that each have an audit database of their own
    #: (``redis://host:6379/0``); empty (default): the audit database, shared by
    #: every worker of the host and every host that writes to it.
    replay_url: str = field(default="", repr=False)

    # --- Public verification of issued statements ---
    #: Days a row of the registry of issued statements is kept (from its issue
    #: time); ``azersu-statement registry purge`` deletes older rows.
    registry_retention_days: int = 1825
    #: The public verification page that a printed statement's QR code leads
    #: to, followed by ``?n=<number>&d=<digest>``: an absolute http(s) URL with
    #: a path, no query.  Default: ``http://<host>:<port>/verify`` of ``serve``
    #: (``https://`` with TLS).
    verify_url: str = ""
    #: NOT_FOUND answers of ``/verify`` and ``/verify.json`` that one client
    #: address (IPv4, or IPv6 /64) may get per minute, over all workers and
    #: hosts sharing the replay store; beyond it every lookup from it is 429.
    verify_rate_per_min: int = 30
    #: The reverse proxies (addresses or networks, separated by commas or
    #: spaces) whose ``X-Forwarded-For`` names the client: the audit records
    #: and the verification page's limit then count the client, not the
    #: proxy.  A request from any other address is taken at its peer
    #: address, whatever it sends.  Default empty (no proxy trusted).
    trusted_proxies: str = ""

    @property
    def tls_enabled(self) -> bool:
        """Return whether ``serve`` uses TLS with client certificates."""
        return bool(self.tls_cert and self.tls_key and self.tls_client_ca)

    @property
    def trusted_client_fingerprints(self) -> tuple[str, ...]:
        """Return the pinned client fingerprints as listed."""
        return tuple(part for part in re.split(r"[,\s]+", self.trusted_clients) if part)

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Return the trusted reverse proxies as networks (one address is a /32 or /128)."""
        networks = []
        for part in re.split(r"[,\s]+", self.trusted_proxies):
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise ConfigurationError(
                    "AZERSU_TRUSTED_PROXIES", f"not an address or network: {part!r}"
                ) from exc
        return tuple(networks)

    @property
    def resolved_public_url(self) -> str:
        """Return the address the WSDL publishes (default: ``serve``'s own)."""
        scheme = "https" if self.tls_enabled else "http"
        return self.public_url or f"{scheme}://{self.host}:{self.port}/soap"

    @property
    def resolved_verify_url(self) -> str:
        """Return the verification page printed statements lead to (default: ``serve``'s own)."""
        scheme = "https" if self.tls_enabled else "http"
        return self.verify_url or f"{scheme}://{self.host}:{self.port}/verify"

    @property
    def resolved_billing_url(self) -> str:
        """Return the billing URL, defaulting to the demo SQLite database."""
        if self.billing_url:
            return self.billing_url
        return f"sqlite:///{Path(self.var_dir) / DEFAULT_DEMO_DB}"

    @property
    def resolved_audit_url(self) -> str:
        """Return the audit store URL, defaulting to SQLite under ``var_dir``."""
        if self.audit_url:
            return self.audit_url
        return f"sqlite:///{Path(self.var_dir) / DEFAULT_AUDIT_DB}"

    @property
    def report_period_pin(self) -> tuple[int, int] | None:
        """Return the pinned latest closed period as (year, month), if any."""
        if not self.report_period:
            return None
        return parse_period(self.report_period, "AZERSU_REPORT_PERIOD")

    def validate(self) -> Settings:
        """Check values that a type alone does not; return self."""
        try:
            re.compile(self.subscriber_code_pattern)
        except re.error as exc:
            raise ConfigurationError(
                "AZERSU_SUBSCRIBER_CODE_PATTERN", f"not a regular expression: {exc}"
            ) from exc
        _ = self.report_period_pin
        _ = self.trusted_proxy_networks
        for name in (
            "port",
            "db_pool_size",
            "workers",
            "keepalive_s",
            "worker_connections",
            "max_connections_per_client",
            "max_body_chunks",
            "wsse_max_age_s",
            "response_lifetime_s",
            "max_body_bytes",
            "registry_retention_days",
            "verify_rate_per_min",
        ):
            if getattr(self, name) < 1:
                raise ConfigurationError(env_name(name), "must be at least 1")
        if self.xroad_mode not in ("off", "accept", "require"):
            raise ConfigurationError("AZERSU_XROAD_MODE", "must be off, accept or require")
        if not 0 < self.request_timeout_s <= 600:
            raise ConfigurationError("AZERSU_REQUEST_TIMEOUT_S", "must be above 0 and at most 600")
        if self.public_url and not re.fullmatch(r"https?://[^/?#\s]+/[^?#\s]*", self.public_url):
            raise ConfigurationError(
                "AZERSU_PUBLIC_URL", "must be an absolute http:// or https:// URL with a path"
            )
        if self.verify_url and not re.fullmatch(r"https?://[^/?#\s]+/[^?#\s]*", self.verify_url):
            raise ConfigurationError(
                "AZERSU_VERIFY_URL", "must be an absolute http:// or https:// URL with a path"
            )
        if self.wsse_mode not in ("off", "require"):
            raise ConfigurationError("AZERSU_WSSE_MODE", "must be require or off")
        tls = (self.tls_cert, self.tls_key, self.tls_client_ca)
        if any(tls) and not all(tls):
            raise ConfigurationError(
                "AZERSU_TLS_CERT", "TLS needs the certificate, the key and the client CA together"
            )
        if self.wsse_mode == "off" and not all(tls):
            raise ConfigurationError(
                "AZERSU_WSSE_MODE",
                "off is accepted only with TLS client-certificate authentication "
                "(serve --tls-cert --tls-key --tls-client-ca)",
            )
        if not 0 < self.db_timeout_s <= 600:
            raise ConfigurationError("AZERSU_DB_TIMEOUT_S", "must be above 0 and at most 600")
        if self.db_max_overflow < 0:
            raise ConfigurationError("AZERSU_DB_MAX_OVERFLOW", "must not be negative")
        if self.wsse_clock_skew_s < 0:
            raise ConfigurationError("AZERSU_WSSE_CLOCK_SKEW_S", "must not be negative")
        if self.port > 65535:
            raise ConfigurationError("AZERSU_PORT", "must be at most 65535")
        return self


def env_name(field_name: str) -> str:
    """Return the environment variable of a settings field."""
    return ENV_PREFIX + field_name.upper()


def parse_period(text: str, setting: str) -> tuple[int, int]:
    """Parse ``YYYY-MM`` into (year, month)."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ConfigurationError(setting, f"expected YYYY-MM, got {text!r}")
    return int(match.group(1)), int(match.group(2))


_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})


def parse_bool(text: str, setting: str) -> bool:
    """Parse true/false, 1/0 or yes/no (any case); anything else is a ConfigurationError."""
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ConfigurationError(setting, f"expected true or false, got {text!r}")


def read_settings_file(path: str) -> dict[str, str]:
    """Read ``KEY=VALUE`` lines (``#`` comments, optional quotes) from a file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(SETTINGS_FILE_VARIABLE, f"cannot read {path}: {exc}") from exc
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.startswith(ENV_PREFIX):
            raise ConfigurationError(
                SETTINGS_FILE_VARIABLE, f"{path}:{number}: expected AZERSU_NAME=value"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Load settings from the environment and the optional settings file."""
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    settings_file = environ.get(SETTINGS_FILE_VARIABLE)
    if settings_file:
        values.update(read_settings_file(settings_file))
    values.update({k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)})

    known = {env_name(f.name): f for f in fields(Settings)}
    kwargs: dict[str, object] = {}
    for key, raw in values.items():
        if key == SETTINGS_FILE_VARIABLE:
            continue
        field = known.get(key)
        if field is None:
            # A misspelt variable would silently fall back to a default: refuse it.
            raise ConfigurationError(key, "unknown setting")
        if field.type in ("int", int):
            try:
                kwargs[field.name] = int(raw)
            except ValueError as exc:
                raise ConfigurationError(key, f"expected an integer, got {raw!r}") from exc
        elif field.type in ("float", float):
            try:
                kwargs[field.name] = float(raw)
            except ValueError as exc:
                raise ConfigurationError(key, f"expected a number, got {raw!r}") from exc
        elif field.type in ("bool", bool):
            kwargs[field.name] = parse_bool(raw, key)
        else:
            kwargs[field.name] = raw
    return Settings(**kwargs).validate()  # type: ignore[arg-type]
