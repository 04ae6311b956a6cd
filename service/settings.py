"""The service's settings: one frozen, typed object, loaded once.

Values come from ``AZERSU_*`` environment variables and, optionally, from a
settings file named by ``AZERSU_SETTINGS_FILE`` (``KEY=VALUE`` lines, ``#``
comments; the environment wins over the file).  Defaults are the secure and
embedded ones: the demo SQLite billing database under ``var/`` and loopback
only.  Tests derive variants with :func:`dataclasses.replace`.

Every field is documented below and in docs/configuration.md (a test keeps the two in step).
"""

from __future__ import annotations

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
: Default: ``http://<host>:<port>/soap`` of ``serve``."""Everything the service can be configured with.

: Default: ``http://<host>:<port>/soap`` of ``serve``.The field name in upper case, prefixed with ``AZERSU_``, is its variable.
: Default: ``http://<host>:<port>/soap`` of ``serve``."""

: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Folder for the service's own files (demo database, keys in development).
: Default: ``http://<host>:<port>/soap`` of ``serve``.var_dir: str = DEFAULT_VAR_DIR
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: SQLAlchemy URL of the billing database (read only).  Default: the demo
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: SQLite file ``<var_dir>/billing-demo.sqlite``.
: Default: ``http://<host>:<port>/soap`` of ``serve``.billing_url: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Schema (owner) that holds the billing relations; empty for the default.
: Default: ``http://<host>:<port>/soap`` of ``serve``.billing_schema: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Names of the three billing relations (views in production).
: Default: ``http://<host>:<port>/soap`` of ``serve``.billing_subscriber_table: str = "SUBSCRIBER"
: Default: ``http://<host>:<port>/soap`` of ``serve``.billing_invoice_table: str = "INVOICE"
: Default: ``http://<host>:<port>/soap`` of ``serve``.billing_payment_table: str = "PAYMENT"
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Regular expression a trimmed subscriber code must match in full.
: Default: ``http://<host>:<port>/soap`` of ``serve``.subscriber_code_pattern: str = DEFAULT_SUBSCRIBER_CODE_PATTERN
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Pin the latest closed billing period (``YYYY-MM``); empty means the newest
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: month for which invoices were issued across the billing system.
: Default: ``http://<host>:<port>/soap`` of ``serve``.report_period: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Seconds the discovered latest closed period is cached.
: Default: ``http://<host>:<port>/soap`` of ``serve``.report_period_cache_s: int = 300
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Bound on every database wait: connecting, getting a pooled connection
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: and running one statement (seconds, decimals allowed).
: Default: ``http://<host>:<port>/soap`` of ``serve``.db_timeout_s: float = 3.0
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: SQLAlchemy URL of the access audit store (writable, separate from billing).
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Default: the SQLite file ``<var_dir>/audit.sqlite``.
: Default: ``http://<host>:<port>/soap`` of ``serve``.audit_url: str = field(default="", repr=False)
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Connections each worker keeps open to billing, and how many more it may
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: open under load.
: Default: ``http://<host>:<port>/soap`` of ``serve``.db_pool_size: int = 5
: Default: ``http://<host>:<port>/soap`` of ``serve``.db_max_overflow: int = 5
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: The issuer named in every statement.
: Default: ``http://<host>:<port>/soap`` of ``serve``.issuer: str = "“Azərsu” Açıq Səhmdar Cəmiyyəti"
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Address and port that ``serve`` listens on.
: Default: ``http://<host>:<port>/soap`` of ``serve``.host: str = "127.0.0.1"
: Default: ``http://<host>:<port>/soap`` of ``serve``.port: int = 8080
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: The address the WSDL publishes for the service (``soap:address``), and
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: the only one it ever names: it never comes from a request's ``Host``.
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Default: ``http://<host>:<port>/soap`` of ``serve``.
: Default: ``http://<host>:<port>/soap`` of ``serve``.public_url: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: gunicorn worker processes (gevent: each serves many connections).
: Default: ``http://<host>:<port>/soap`` of ``serve``.workers: int = 2
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Seconds an idle connection is kept open for its next request; a
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: request's head must also arrive within this time.
: Default: ``http://<host>:<port>/soap`` of ``serve``.keepalive_s: int = 5
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Seconds a request's body may take to arrive in full.
: Default: ``http://<host>:<port>/soap`` of ``serve``.request_timeout_s: float = 15.0
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Open connections one worker serves at once; near the limit, the
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: connections that have waited longest for a request are closed.
: Default: ``http://<host>:<port>/soap`` of ``serve``.worker_connections: int = 1000
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Open connections one client address may hold per worker (further ones
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: are closed unread).  Behind a load balancer every request comes from
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: its address: raise this to its connection limit per server.
: Default: ``http://<host>:<port>/soap`` of ``serve``.max_connections_per_client: int = 64
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Log level of the service's own loggers.
: Default: ``http://<host>:<port>/soap`` of ``serve``.log_level: str = "INFO"

: Default: ``http://<host>:<port>/soap`` of ``serve``.# --- Trust (WS-Security and the statement signature) ---
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: The service's signing key: a PEM private key, or a PKCS#12 file holding
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: key and certificate.  Required: the service never answers unsigned.
: Default: ``http://<host>:<port>/soap`` of ``serve``.sign_key: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: The service's certificate (PEM); not needed with PKCS#12.
: Default: ``http://<host>:<port>/soap`` of ``serve``.sign_cert: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Password of the key, or a file whose first line is the password.
: Default: ``http://<host>:<port>/soap`` of ``serve``.sign_key_password: str = field(default="", repr=False)
: Default: ``http://<host>:<port>/soap`` of ``serve``.sign_key_password_file: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: PEM bundle of the CA certificates that callers' certificates must chain to.
: Default: ``http://<host>:<port>/soap`` of ``serve``.trust_ca: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: The registered callers: SHA-256 fingerprints (hex, colons allowed) of
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: their certificates, separated by commas or spaces.  Only they may call
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: (each must also chain to ``trust_ca`` and be fit to sign).  Required: an
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: empty list stops the start, unless ``accept_any_caller_of_ca``.
: Default: ``http://<host>:<port>/soap`` of ``serve``.trusted_clients: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: "true" lets any certificate issued by a CA of ``trust_ca`` call (with an
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: empty ``trusted_clients``; a warning is logged at every start).  Never
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: with a CA that issues certificates to others than the callers, such as
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: a national CA.  Default false.
: Default: ``http://<host>:<port>/soap`` of ``serve``.accept_any_caller_of_ca: bool = False
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Allowed difference between the caller's clock and ours, in seconds.
: Default: ``http://<host>:<port>/soap`` of ``serve``.wsse_clock_skew_s: int = 300
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Oldest accepted request Timestamp (Created), in seconds.
: Default: ``http://<host>:<port>/soap`` of ``serve``.wsse_max_age_s: int = 300
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Lifetime of the Timestamp the service puts on its responses, in seconds.
: Default: ``http://<host>:<port>/soap`` of ``serve``.response_lifetime_s: int = 300
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Largest request body accepted, in bytes (refused with HTTP 413 unread).
: Default: ``http://<host>:<port>/soap`` of ``serve``.max_body_bytes: int = 256 * 1024
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Most chunks a chunked request body may arrive in (each costs the same
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: to decode whatever its size: a body of one-byte chunks is refused).
: Default: ``http://<host>:<port>/soap`` of ``serve``.max_body_chunks: int = 1024
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: X-Road headers: "off" (ignored), "accept" (used and echoed when present)
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: or "require" (a request without valid X-Road headers is a Fault).
: Default: ``http://<host>:<port>/soap`` of ``serve``.xroad_mode: str = "accept"
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Optional allowlist of X-Road clients: INSTANCE/CLASS/CODE[/SUBSYSTEM],
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: separated by commas or spaces.  Empty: any client.
: Default: ``http://<host>:<port>/soap`` of ``serve``.xroad_clients: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: WS-Security on requests: "require" (default) or "off".  "off" is for an
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: adapter behind an X-Road security server, which signs the messages; it
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: is accepted only when the service itself is served over TLS with
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: client-certificate authentication (the three tls_* settings).
: Default: ``http://<host>:<port>/soap`` of ``serve``.wsse_mode: str = "require"
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: TLS for ``serve``: the server's certificate and key (PEM) and the CA
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: bundle that client certificates must chain to.
: Default: ``http://<host>:<port>/soap`` of ``serve``.tls_cert: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.tls_key: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.tls_client_ca: str = ""
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: Replay store shared by hosts that each have an audit database of their own
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: (``redis://host:6379/0``); empty (default): the audit database, shared by
: Default: ``http://<host>:<port>/soap`` of ``serve``.#: every worker of the host and every host that writes to it.
: Default: ``http://<host>:<port>/soap`` of ``serve``.replay_url: str = field(default="", repr=False)

: Default: ``http://<host>:<port>/soap`` of ``serve``.@property
: Default: ``http://<host>:<port>/soap`` of ``serve``.def tls_enabled(self) -> bool:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    """Return whether ``serve`` uses TLS with client certificates."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.    return bool(self.tls_cert and self.tls_key and self.tls_client_ca)

: Default: ``http://<host>:<port>/soap`` of ``serve``.@property
: Default: ``http://<host>:<port>/soap`` of ``serve``.def trusted_client_fingerprints(self) -> tuple[str, ...]:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    """Return the pinned client fingerprints as listed."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.    return tuple(part for part in re.split(r"[,\s]+", self.trusted_clients) if part)

: Default: ``http://<host>:<port>/soap`` of ``serve``.@property
: Default: ``http://<host>:<port>/soap`` of ``serve``.def resolved_public_url(self) -> str:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    """Return the address the WSDL publishes (default: ``serve``'s own)."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.    scheme = "https" if self.tls_enabled else "http"
: Default: ``http://<host>:<port>/soap`` of ``serve``.    return self.public_url or f"{scheme}://{self.host}:{self.port}/soap"

: Default: ``http://<host>:<port>/soap`` of ``serve``.@property
: Default: ``http://<host>:<port>/soap`` of ``serve``.def resolved_billing_url(self) -> str:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    """Return the billing URL, defaulting to the demo SQLite database."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if self.billing_url:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        return self.billing_url
: Default: ``http://<host>:<port>/soap`` of ``serve``.    return f"sqlite:///{Path(self.var_dir) / DEFAULT_DEMO_DB}"

: Default: ``http://<host>:<port>/soap`` of ``serve``.@property
: Default: ``http://<host>:<port>/soap`` of ``serve``.def resolved_audit_url(self) -> str:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    """Return the audit store URL, defaulting to SQLite under ``var_dir``."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if self.audit_url:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        return self.audit_url
: Default: ``http://<host>:<port>/soap`` of ``serve``.    return f"sqlite:///{Path(self.var_dir) / DEFAULT_AUDIT_DB}"

: Default: ``http://<host>:<port>/soap`` of ``serve``.@property
: Default: ``http://<host>:<port>/soap`` of ``serve``.def report_period_pin(self) -> tuple[int, int] | None:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    """Return the pinned latest closed period as (year, month), if any."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if not self.report_period:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        return None
: Default: ``http://<host>:<port>/soap`` of ``serve``.    return parse_period(self.report_period, "AZERSU_REPORT_PERIOD")

: Default: ``http://<host>:<port>/soap`` of ``serve``.def validate(self) -> Settings:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    """Check values that a type alone does not; return self."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.    try:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        re.compile(self.subscriber_code_pattern)
: Default: ``http://<host>:<port>/soap`` of ``serve``.    except re.error as exc:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError(
: Default: ``http://<host>:<port>/soap`` of ``serve``.            "AZERSU_SUBSCRIBER_CODE_PATTERN", f"not a regular expression: {exc}"
: Default: ``http://<host>:<port>/soap`` of ``serve``.        ) from exc
: Default: ``http://<host>:<port>/soap`` of ``serve``.    _ = self.report_period_pin
: Default: ``http://<host>:<port>/soap`` of ``serve``.    for name in (
: Default: ``http://<host>:<port>/soap`` of ``serve``.        "port",
: Default: ``http://<host>:<port>/soap`` of ``serve``.        "db_pool_size",
: Default: ``http://<host>:<port>/soap`` of ``serve``.        "workers",
: Default: ``http://<host>:<port>/soap`` of ``serve``.        "keepalive_s",
: Default: ``http://<host>:<port>/soap`` of ``serve``.        "worker_connections",
: Default: ``http://<host>:<port>/soap`` of ``serve``.        "max_connections_per_client",
: Default: ``http://<host>:<port>/soap`` of ``serve``.        "max_body_chunks",
: Default: ``http://<host>:<port>/soap`` of ``serve``.        "wsse_max_age_s",
: Default: ``http://<host>:<port>/soap`` of ``serve``.        "response_lifetime_s",
: Default: ``http://<host>:<port>/soap`` of ``serve``.        "max_body_bytes",
: Default: ``http://<host>:<port>/soap`` of ``serve``.    ):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        if getattr(self, name) < 1:
: Default: ``http://<host>:<port>/soap`` of ``serve``.            raise ConfigurationError(env_name(name), "must be at least 1")
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if self.xroad_mode not in ("off", "accept", "require"):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError("AZERSU_XROAD_MODE", "must be off, accept or require")
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if not 0 < self.request_timeout_s <= 600:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError("AZERSU_REQUEST_TIMEOUT_S", "must be above 0 and at most 600")
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if self.public_url and not re.fullmatch(r"https?://[^/?#\s]+/[^?#\s]*", self.public_url):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError(
: Default: ``http://<host>:<port>/soap`` of ``serve``.            "AZERSU_PUBLIC_URL", "must be an absolute http:// or https:// URL with a path"
: Default: ``http://<host>:<port>/soap`` of ``serve``.        )
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if self.wsse_mode not in ("off", "require"):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError("AZERSU_WSSE_MODE", "must be require or off")
: Default: ``http://<host>:<port>/soap`` of ``serve``.    tls = (self.tls_cert, self.tls_key, self.tls_client_ca)
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if any(tls) and not all(tls):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError(
: Default: ``http://<host>:<port>/soap`` of ``serve``.            "AZERSU_TLS_CERT", "TLS needs the certificate, the key and the client CA together"
: Default: ``http://<host>:<port>/soap`` of ``serve``.        )
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if self.wsse_mode == "off" and not all(tls):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError(
: Default: ``http://<host>:<port>/soap`` of ``serve``.            "AZERSU_WSSE_MODE",
: Default: ``http://<host>:<port>/soap`` of ``serve``.            "off is accepted only with TLS client-certificate authentication "
: Default: ``http://<host>:<port>/soap`` of ``serve``.            "(serve --tls-cert --tls-key --tls-client-ca)",
: Default: ``http://<host>:<port>/soap`` of ``serve``.        )
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if not 0 < self.db_timeout_s <= 600:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError("AZERSU_DB_TIMEOUT_S", "must be above 0 and at most 600")
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if self.db_max_overflow < 0:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError("AZERSU_DB_MAX_OVERFLOW", "must not be negative")
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if self.wsse_clock_skew_s < 0:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError("AZERSU_WSSE_CLOCK_SKEW_S", "must not be negative")
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if self.port > 65535:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError("AZERSU_PORT", "must be at most 65535")
: Default: ``http://<host>:<port>/soap`` of ``serve``.    return self


def env_name(field_name: str) -> str:
: Default: ``http://<host>:<port>/soap`` of ``serve``."""Return the environment variable of a settings field."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.return ENV_PREFIX + field_name.upper()


def parse_period(text: str, setting: str) -> tuple[int, int]:
: Default: ``http://<host>:<port>/soap`` of ``serve``."""Parse ``YYYY-MM`` into (year, month)."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
: Default: ``http://<host>:<port>/soap`` of ``serve``.if not match or not 1 <= int(match.group(2)) <= 12:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    raise ConfigurationError(setting, f"expected YYYY-MM, got {text!r}")
: Default: ``http://<host>:<port>/soap`` of ``serve``.return int(match.group(1)), int(match.group(2))


_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})


def parse_bool(text: str, setting: str) -> bool:
: Default: ``http://<host>:<port>/soap`` of ``serve``."""Parse true/false, 1/0 or yes/no (any case); anything else is a ConfigurationError."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.word = text.strip().lower()
: Default: ``http://<host>:<port>/soap`` of ``serve``.if word in _TRUE_WORDS:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    return True
: Default: ``http://<host>:<port>/soap`` of ``serve``.if word in _FALSE_WORDS:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    return False
: Default: ``http://<host>:<port>/soap`` of ``serve``.raise ConfigurationError(setting, f"expected true or false, got {text!r}")


def read_settings_file(path: str) -> dict[str, str]:
: Default: ``http://<host>:<port>/soap`` of ``serve``."""Read ``KEY=VALUE`` lines (``#`` comments, optional quotes) from a file."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.try:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    text = Path(path).read_text(encoding="utf-8")
: Default: ``http://<host>:<port>/soap`` of ``serve``.except OSError as exc:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    raise ConfigurationError(SETTINGS_FILE_VARIABLE, f"cannot read {path}: {exc}") from exc
: Default: ``http://<host>:<port>/soap`` of ``serve``.values: dict[str, str] = {}
: Default: ``http://<host>:<port>/soap`` of ``serve``.for number, raw in enumerate(text.splitlines(), start=1):
: Default: ``http://<host>:<port>/soap`` of ``serve``.    line = raw.strip()
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if not line or line.startswith("#"):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        continue
: Default: ``http://<host>:<port>/soap`` of ``serve``.    key, sep, value = line.partition("=")
: Default: ``http://<host>:<port>/soap`` of ``serve``.    key = key.strip()
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if not sep or not key.startswith(ENV_PREFIX):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError(
: Default: ``http://<host>:<port>/soap`` of ``serve``.            SETTINGS_FILE_VARIABLE, f"{path}:{number}: expected AZERSU_NAME=value"
: Default: ``http://<host>:<port>/soap`` of ``serve``.        )
: Default: ``http://<host>:<port>/soap`` of ``serve``.    value = value.strip()
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
: Default: ``http://<host>:<port>/soap`` of ``serve``.        value = value[1:-1]
: Default: ``http://<host>:<port>/soap`` of ``serve``.    values[key] = value
: Default: ``http://<host>:<port>/soap`` of ``serve``.return values


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
: Default: ``http://<host>:<port>/soap`` of ``serve``."""Load settings from the environment and the optional settings file."""
: Default: ``http://<host>:<port>/soap`` of ``serve``.environ = os.environ if environ is None else environ
: Default: ``http://<host>:<port>/soap`` of ``serve``.values: dict[str, str] = {}
: Default: ``http://<host>:<port>/soap`` of ``serve``.settings_file = environ.get(SETTINGS_FILE_VARIABLE)
: Default: ``http://<host>:<port>/soap`` of ``serve``.if settings_file:
: Default: ``http://<host>:<port>/soap`` of ``serve``.    values.update(read_settings_file(settings_file))
: Default: ``http://<host>:<port>/soap`` of ``serve``.values.update({k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)})

: Default: ``http://<host>:<port>/soap`` of ``serve``.known = {env_name(f.name): f for f in fields(Settings)}
: Default: ``http://<host>:<port>/soap`` of ``serve``.kwargs: dict[str, object] = {}
: Default: ``http://<host>:<port>/soap`` of ``serve``.for key, raw in values.items():
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if key == SETTINGS_FILE_VARIABLE:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        continue
: Default: ``http://<host>:<port>/soap`` of ``serve``.    field = known.get(key)
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if field is None:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        # A misspelt variable would silently fall back to a default: refuse it.
: Default: ``http://<host>:<port>/soap`` of ``serve``.        raise ConfigurationError(key, "unknown setting")
: Default: ``http://<host>:<port>/soap`` of ``serve``.    if field.type in ("int", int):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        try:
: Default: ``http://<host>:<port>/soap`` of ``serve``.            kwargs[field.name] = int(raw)
: Default: ``http://<host>:<port>/soap`` of ``serve``.        except ValueError as exc:
: Default: ``http://<host>:<port>/soap`` of ``serve``.            raise ConfigurationError(key, f"expected an integer, got {raw!r}") from exc
: Default: ``http://<host>:<port>/soap`` of ``serve``.    elif field.type in ("float", float):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        try:
: Default: ``http://<host>:<port>/soap`` of ``serve``.            kwargs[field.name] = float(raw)
: Default: ``http://<host>:<port>/soap`` of ``serve``.        except ValueError as exc:
: Default: ``http://<host>:<port>/soap`` of ``serve``.            raise ConfigurationError(key, f"expected a number, got {raw!r}") from exc
: Default: ``http://<host>:<port>/soap`` of ``serve``.    elif field.type in ("bool", bool):
: Default: ``http://<host>:<port>/soap`` of ``serve``.        kwargs[field.name] = parse_bool(raw, key)
: Default: ``http://<host>:<port>/soap`` of ``serve``.    else:
: Default: ``http://<host>:<port>/soap`` of ``serve``.        kwargs[field.name] = raw
: Default: ``http://<host>:<port>/soap`` of ``serve``.return Settings(**kwargs).validate()  # type: ignore[arg-type]
