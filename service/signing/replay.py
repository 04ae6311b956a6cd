"""The replay cache: a signed message is accepted at most once inside its window.

:class:`ReplayCache` is the interface the verifier uses: ``first_seen``
records a message's fingerprint, ``check`` tells a readiness probe whether
new messages can be recorded.  Every implementation is shared by all the
processes that serve the service -- gunicorn runs several workers and
replaces them on SIGHUP or after ``max_requests``, so a fingerprint kept in
one process's memory would let each worker, and each new worker, answer the
same message once more.  The default keeps the fingerprints in the audit
database (:mod:`service.replay_store`, which also chooses the store);
:class:`RedisReplayCache` keeps them in Redis (``AZERSU_REPLAY_URL``) for
hosts that each have an audit database of their own.

**Why one ``SET key 1 NX PX ttl`` is enough.**  Redis executes each command
on its single command thread, one after another, so ``SET ... NX`` is an
atomic test-and-set: of any number of clients that send the same key at the
same moment, from any process or host, exactly one gets ``OK`` and all the
others get nil.  The expiry (``PX``) is set by that same command, so there is
no moment in which the key exists without its TTL (as there would be with
``SETNX`` followed by ``EXPIRE``, where a crash in between leaves a key that
never expires) and no window in which two workers both see "absent" (as with
``GET`` followed by ``SET``).  Redis expires the key itself; nothing has to
sweep it.

**Why failing closed.**  If the store can't be asked (down, unreachable,
timing out, full, or refusing the login), the service can't tell a fresh
message from a replayed one.  Accepting it would let an attacker who
captured one signed request replay it for as long as they can keep the store
away (or just wait for an outage), so the request is refused with the
``Server.ReplayStoreUnavailable`` fault, which tells the caller to try again
later.  The Redis client has short connect and read timeouts so a dead Redis
costs a request about a second, never a hung worker.  For the same reason
the Redis must not evict keys before they expire: run it with
``maxmemory-policy noeviction`` (then a full Redis answers ``OOM`` and the
request is refused), never an ``allkeys-*`` or ``volatile-*`` policy, which
would silently drop fingerprints and reopen their replay window.
"""

from __future__ import annotations

import math
import re
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.errors import ConfigurationError, ReplayStoreUnavailable

#: The setting that chooses the replay store (named in configuration errors).
REPLAY_URL_SETTING = "AZERSU_REPLAY_URL"
#: Prefix of every replay key in Redis, so the database can be shared.
REDIS_KEY_PREFIX = "azersu:replay:"
#: Seconds to connect to Redis and to wait for one answer.
REDIS_TIMEOUT_S = 1.0
REDIS_SCHEMES = ("redis", "rediss")
#: A URL scheme (RFC 3986 section 3.1): only such a prefix is named in an error.
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def redis_url(url: str) -> str | None:
    """Return ``AZERSU_REPLAY_URL`` as redis-py takes it, or None when it is empty.

    Empty means the shared tables of the audit database.  Schemes are
    case-insensitive (RFC 3986) and redis-py wants them in lower case; any
    other scheme is a ConfigurationError that names only the scheme, because
    the URL may carry a password.
    """
    if not url:
        return None
    prefix = url.split("://", 1)[0] if "://" in url else ""
    scheme = prefix.lower() if _URL_SCHEME.fullmatch(prefix) else ""
    if scheme in REDIS_SCHEMES:
        return scheme + url[len(scheme) :]
    raise ConfigurationError(
        REPLAY_URL_SETTING,
        f"unsupported replay store {scheme + '://' if scheme else 'URL'}: "
        "use redis:// or rediss://, or leave it empty for the audit database",
    )


def redis_client(url: str, timeout_s: float = REDIS_TIMEOUT_S) -> redis.Redis:
    """Return a client of ``AZERSU_REPLAY_URL``'s Redis, connecting lazily.

    The connect and read timeouts are ``timeout_s``; a refused or reset
    connection is retried once at once, a timeout never (see
    :meth:`RedisReplayCache.from_url`).  Every store the service keeps in
    that Redis uses a client made here.
    """
    try:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            health_check_interval=30,
        )
    except ValueError as exc:  # the message names a part, never the password
        raise ConfigurationError(REPLAY_URL_SETTING, f"not a valid Redis URL: {exc}") from exc


class ReplayCache(Protocol):
    """Remembers message fingerprints for a while."""

    def first_seen(self, key: str, ttl_s: float) -> bool:
        """Record ``key`` for ``ttl_s`` seconds; return False if it was already there.

        Raises :class:`ReplayStoreUnavailable` when the key can't be recorded.
        """

    def check(self) -> None:
        """Return if new keys can be recorded now; raise :class:`ReplayStoreUnavailable` if not."""

    def close(self) -> None:
        """Release connections, if any."""


class RedisReplayCache:
    """Fingerprints in Redis, shared by all workers and hosts: one atomic ``SET NX PX``.

    Every Redis error becomes :class:`ReplayStoreUnavailable` (fail closed).
    The client is thread-safe (a connection pool) and fork-safe (the pool
    notices a new process id and opens its own connections).
    """

    def __init__(self, client: redis.Redis, prefix: str = REDIS_KEY_PREFIX) -> None:
        self._client = client
        self.prefix = prefix

    @classmethod
    def from_url(
        cls, url: str, *, timeout_s: float = REDIS_TIMEOUT_S, prefix: str = REDIS_KEY_PREFIX
    ) -> RedisReplayCache:
        """Connect lazily to ``redis://`` or ``rediss://`` (TLS) ``url``.

        The connect and read timeouts are ``timeout_s``.  A refused or reset
        connection is retried once at once (a pooled connection may have been
        closed by a Redis restart or failover); a timeout is never retried, so
        an unresponsive Redis costs a request about ``timeout_s``.  (Should a
        connection drop after Redis ran the SET but before it answered, the
        retry finds the key and the message is refused as a replay: a wrong
        refusal, never a wrong acceptance.)
        """
        return cls(redis_client(url, timeout_s), prefix)

    def first_seen(self, key: str, ttl_s: float) -> bool:
        """Record ``key`` with ``SET NX PX``; return False if it was already there."""
        ttl_ms = max(1, math.ceil(ttl_s * 1000))
        try:
            created = self._client.set(self.prefix + key, b"1", nx=True, px=ttl_ms)
        except (redis.RedisError, OSError) as exc:
            raise ReplayStoreUnavailable(f"redis SET failed: {type(exc).__name__}: {exc}") from exc
        return bool(created)

    def check(self) -> None:
        """PING Redis: return if it answers, raise :class:`ReplayStoreUnavailable` if not."""
        try:
            answered = self._client.ping()
        except (redis.RedisError, OSError) as exc:
            raise ReplayStoreUnavailable(f"redis PING failed: {type(exc).__name__}: {exc}") from exc
        if not answered:
            raise ReplayStoreUnavailable("redis PING was not answered")

    ping = check

    def close(self) -> None:
        """Close the pooled connections (the client reconnects if used again)."""
        self._client.close()
