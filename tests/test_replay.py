"""The replay caches: in memory and in Redis, and a replay caught across processes.

The Redis tests run a real redis-server (see :mod:`tests.redis_server`); the
cross-process tests run the service under gunicorn, two servers (or two
workers) sharing one Redis, and a Redis outage that must fail closed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from service import namespaces as ns
from service.errors import ConfigurationError, ReplayStoreUnavailable
from service.pki import IssuedPair
from service.signing.replay import (
    REDIS_KEY_PREFIX,
    InMemoryReplayCache,
    RedisReplayCache,
    create_replay_cache,
)
from service.signing.trust import TrustStore
from service.signing.wsse import WsseVerifier
from tests import billing_fixtures as bf
from tests.gunicorn_process import registered_portal
from tests.redis_server import RedisServer, free_port
from tests.wsse_forge import SOAP, forge, q

HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetBillingStatement"'}
TNS_STATUS = "{http://azersu.az/egov/billing-statement/v1}Status"
#: Generous: a guard against hangs, not a performance target.
HANG_GUARD_S = 5.0
PERSONAL = (bf.AZ_LAST, bf.AZ_FIRST, bf.AZ_ADDRESS)


def _key() -> str:
    return uuid.uuid4().hex


# --- Redis fixtures -------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the module (tests use keys of their own)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for one test, which may stop and start it."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_cache(shared_redis: RedisServer) -> Iterator[RedisReplayCache]:
    cache = RedisReplayCache.from_url(shared_redis.url)
    yield cache
    cache.close()


# --- RedisReplayCache -------------------------------------------------------------


def test_redis_first_seen_then_replay(redis_cache: RedisReplayCache) -> None:
    key = _key()
    assert redis_cache.first_seen(key, 60) is True
    assert redis_cache.first_seen(key, 60) is False
    assert redis_cache.first_seen(key, 60) is False


def test_redis_key_is_prefixed_and_expires_by_itself(
    redis_cache: RedisReplayCache, shared_redis: RedisServer
) -> None:
    key = _key()
    assert redis_cache.first_seen(key, 0.2) is True
    raw = redis.Redis.from_url(shared_redis.url, socket_timeout=2)
    try:
        assert raw.get(REDIS_KEY_PREFIX + key) == b"1"
        assert 0 < raw.pttl(REDIS_KEY_PREFIX + key) <= 200
        assert raw.exists(key) == 0  # never unprefixed
    finally:
        raw.close()
    assert redis_cache.first_seen(key, 0.2) is False
    time.sleep(0.4)
    assert redis_cache.first_seen(key, 0.2) is True


def test_redis_keys_are_independent(redis_cache: RedisReplayCache) -> None:
    a, b = _key(), _key()
    assert redis_cache.first_seen(a, 60) is True
    assert redis_cache.first_seen(b, 60) is True
    assert redis_cache.first_seen(a, 60) is False
    assert redis_cache.first_seen(b, 60) is False


def test_redis_caches_sharing_a_server_share_the_keys(shared_redis: RedisServer) -> None:
    one, other = (RedisReplayCache.from_url(shared_redis.url) for _ in range(2))
    try:
        key = _key()
        assert one.first_seen(key, 60) is True
        assert other.first_seen(key, 60) is False
    finally:
        one.close()
        other.close()


def test_redis_same_key_from_many_threads_is_first_once(redis_cache: RedisReplayCache) -> None:
    key = _key()
    assert _race(lambda: redis_cache.first_seen(key, 60), threads=32) == [True]


def test_redis_check_answers_when_up(redis_cache: RedisReplayCache) -> None:
    redis_cache.check()  # returns None, raises if Redis doesn't answer
    redis_cache.ping()


def test_redis_down_fails_closed_at_once() -> None:
    cache = RedisReplayCache.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nobody listens
    started = time.monotonic()
    with pytest.raises(ReplayStoreUnavailable) as raised:
        cache.first_seen(_key(), 60)
    with pytest.raises(ReplayStoreUnavailable):
        cache.check()
    assert time.monotonic() - started < HANG_GUARD_S
    assert raised.value.faultcode == "Server.ReplayStoreUnavailable"
    assert "Connection" in raised.value.detail


def test_redis_that_never_answers_times_out() -> None:
    # A socket that accepts connections but never replies: the read timeout,
    # not the kernel, ends the wait.
    with _silent_listener() as port:
        cache = RedisReplayCache.from_url(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(ReplayStoreUnavailable) as raised:
            cache.first_seen(_key(), 60)
        assert time.monotonic() - started < HANG_GUARD_S
        assert "Timeout" in raised.value.detail


def test_redis_stopped_then_started_again(own_redis: RedisServer) -> None:
    cache = RedisReplayCache.from_url(own_redis.url)
    try:
        assert cache.first_seen(_key(), 60) is True
        own_redis.stop()
        started = time.monotonic()
        with pytest.raises(ReplayStoreUnavailable):
            cache.first_seen(_key(), 60)
        with pytest.raises(ReplayStoreUnavailable):
            cache.check()
        assert time.monotonic() - started < HANG_GUARD_S
        own_redis.start()
        # The pooled connections died with the server: the cache reconnects.
        cache.check()
        assert cache.first_seen(_key(), 60) is True
    finally:
        cache.close()


def test_redis_refused_login_fails_closed(shared_redis: RedisServer) -> None:
    url = f"redis://nobody:wrong@127.0.0.1:{shared_redis.port}/0"
    cache = RedisReplayCache.from_url(url)
    with pytest.raises(ReplayStoreUnavailable) as raised:
        cache.first_seen(_key(), 60)
    assert "wrong" not in raised.value.detail


# --- InMemoryReplayCache ----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_first_seen_then_replay_then_expiry() -> None:
    clock = FakeClock()
    cache = InMemoryReplayCache(10, clock=clock)
    assert cache.first_seen("a", 0.2) is True
    assert cache.first_seen("a", 0.2) is False
    assert cache.first_seen("b", 0.2) is True
    clock.now += 0.19
    assert cache.first_seen("a", 0.2) is False
    clock.now += 0.02
    assert cache.first_seen("a", 0.2) is True
    assert len(cache) == 1  # "b" expired too


def test_memory_expiry_with_the_real_clock() -> None:
    cache = InMemoryReplayCache(10)
    assert cache.first_seen("a", 0.2) is True
    assert cache.first_seen("a", 0.2) is False
    time.sleep(0.3)
    assert cache.first_seen("a", 0.2) is True


def test_memory_full_refuses_new_messages_until_entries_expire() -> None:
    clock = FakeClock()
    cache = InMemoryReplayCache(3, clock=clock)
    cache.check()
    for key in "abc":
        assert cache.first_seen(key, 10) is True
    with pytest.raises(ReplayStoreUnavailable, match="full"):
        cache.first_seen("d", 10)
    with pytest.raises(ReplayStoreUnavailable, match="full"):
        cache.check()
    # A known message is still recognized as a replay, not evicted.
    assert cache.first_seen("a", 10) is False
    clock.now += 10
    cache.check()
    assert cache.first_seen("d", 10) is True


def test_memory_same_key_from_many_threads_is_first_once() -> None:
    cache = InMemoryReplayCache(1000)
    assert _race(lambda: cache.first_seen("same", 60), threads=64) == [True]


def test_memory_bound_holds_under_concurrency() -> None:
    cache = InMemoryReplayCache(50)
    counter = iter(range(1000))
    lock = threading.Lock()

    def record() -> bool | str:
        with lock:
            key = f"k{next(counter)}"
        try:
            return cache.first_seen(key, 60)
        except ReplayStoreUnavailable:
            return "full"

    outcomes = _race(record, threads=100, keep_all=True)
    assert outcomes.count(True) == 50
    assert outcomes.count("full") == 50
    assert len(cache) == 50


# --- create_replay_cache ----------------------------------------------------------


def test_create_empty_url_is_in_memory() -> None:
    cache = create_replay_cache("", 7)
    assert isinstance(cache, InMemoryReplayCache)
    assert cache.max_entries == 7


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://user:pw@redis.example:6380/2", "REDIS://h"]
)
def test_create_redis_url_is_redis(url: str) -> None:
    cache = create_replay_cache(url, 7)  # connects lazily: nothing needs to listen
    assert isinstance(cache, RedisReplayCache)
    cache.close()


@pytest.mark.parametrize(
    "url", ["memcached://x", "memcached://user:s3cret@x:11211", "unix:///run/redis.sock", "x"]
)
def test_create_other_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_replay_cache(url, 7)
    assert raised.value.setting == "AZERSU_REPLAY_URL"
    assert "s3cret" not in str(raised.value)


def test_create_malformed_redis_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_replay_cache("redis://h:port/0", 7)
    assert raised.value.setting == "AZERSU_REPLAY_URL"


# --- across processes: gunicorn servers sharing one Redis -----------------------------


def _load_pair(key_path: Path, cert_path: Path) -> IssuedPair:
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    return IssuedPair(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def portal_pair(pki: dict[str, Path]) -> IssuedPair:
    return _load_pair(pki["portal.key"], pki["portal.pem"])


@pytest.fixture(scope="module")
def response_verifier(trust: TrustStore) -> WsseVerifier:
    # An OK answer also carries the Statement's own (enveloped) signature.
    return WsseVerifier(trust, None, allow_body_signatures=True)


@dataclass
class Service:
    """A running ``azersu-statement serve`` (gunicorn) process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/soap"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def post(self, payload: bytes) -> requests.Response:
        return requests.post(self.url, data=payload, headers=HEADERS, timeout=(5, 20))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


StartService = Callable[..., Service]


@pytest.fixture
def start_service(billing_db: str, pki: dict[str, Path], tmp_path: Path) -> Iterator[StartService]:
    """Return a starter of gunicorn servers; every one is stopped after the test."""
    started: list[Service] = []

    def _start(replay_url: str, workers: int = 1) -> Service:
        port = free_port()
        run_dir = tmp_path / f"run-{port}"
        run_dir.mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
        env.update(
            # gunicorn (25.1+) opens a control socket in $XDG_RUNTIME_DIR, else in
            # ~/.gunicorn: one of its own for each server, none in the home folder.
            XDG_RUNTIME_DIR=str(run_dir),
            AZERSU_BILLING_URL=billing_db,
            AZERSU_REPORT_PERIOD=bf.REPORT_PERIOD,
            AZERSU_SIGN_KEY=str(pki["service.key"]),
            AZERSU_SIGN_CERT=str(pki["service.pem"]),
            AZERSU_TRUST_CA=str(pki["ca.pem"]),
            AZERSU_TRUSTED_CLIENTS=registered_portal(pki),
            AZERSU_REPLAY_URL=replay_url,
            AZERSU_WORKERS=str(workers),
        )
        log_path = tmp_path / f"gunicorn-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        service = Service(process, port, log_path)
        started.append(service)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                if health.status_code == 200:
                    return service
            except requests.RequestException:
                pass
            time.sleep(0.1)
        pytest.fail(f"serve did not start: {service.log()}")

    yield _start
    for service in started:
        service.stop()


def _fault_code(content: bytes) -> tuple[str | None, str]:
    """Return the Fault's faultcode as (namespace, local part)."""
    root = etree.fromstring(content)
    fault = root.find(f"{q(SOAP, 'Body')}/{q(SOAP, 'Fault')}")
    assert fault is not None, content
    prefix, _, local = (fault.findtext("faultcode") or "").partition(":")
    return fault.nsmap.get(prefix), local


def _assert_ok(response: requests.Response, verifier: WsseVerifier) -> None:
    assert response.status_code == 200, response.text
    root = etree.fromstring(response.content)
    verifier.verify(root)
    assert root.findtext(f".//{TNS_STATUS}") == "OK"
    assert bf.AZ_LAST in response.content.decode()


def _assert_fault(
    response: requests.Response, verifier: WsseVerifier, namespace: str, local: str
) -> None:
    assert response.status_code == 500, response.text
    verifier.verify(etree.fromstring(response.content))  # faults are signed too
    assert _fault_code(response.content) == (namespace, local)
    text = response.content.decode("utf-8", "replace")
    assert "Statement" not in text
    assert TNS_STATUS not in text
    for personal in PERSONAL:
        assert personal not in text


@pytest.mark.slow
def test_replay_is_caught_across_two_servers(
    shared_redis: RedisServer,
    start_service: StartService,
    portal_pair: IssuedPair,
    response_verifier: WsseVerifier,
) -> None:
    server_a = start_service(shared_redis.url)
    server_b = start_service(shared_redis.url)
    payload = forge(portal_pair).bytes()

    _assert_ok(server_a.post(payload), response_verifier)
    replayed = server_b.post(payload)
    _assert_fault(replayed, response_verifier, ns.WSSE, "InvalidSecurity")
    assert ns.WSSE == (
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    )
    # ... and back on the first server too.
    _assert_fault(server_a.post(payload), response_verifier, ns.WSSE, "InvalidSecurity")
    # A fresh message is still welcome on either.
    _assert_ok(server_b.post(forge(portal_pair).bytes()), response_verifier)


@pytest.mark.slow
def test_replay_is_caught_across_two_workers(
    shared_redis: RedisServer,
    start_service: StartService,
    portal_pair: IssuedPair,
    response_verifier: WsseVerifier,
) -> None:
    server = start_service(shared_redis.url, workers=2)
    payload = forge(portal_pair).bytes()
    # Sent all at once, on separate connections, so both workers take some.
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: server.post(payload), range(10)))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(ok) == 1, [r.status_code for r in responses]
    _assert_ok(ok[0], response_verifier)
    for response in refused:
        _assert_fault(response, response_verifier, ns.WSSE, "InvalidSecurity")


@pytest.mark.slow
def test_redis_down_fails_closed_then_recovers(
    own_redis: RedisServer,
    start_service: StartService,
    portal_pair: IssuedPair,
    response_verifier: WsseVerifier,
) -> None:
    server = start_service(own_redis.url)
    _assert_ok(server.post(forge(portal_pair).bytes()), response_verifier)

    own_redis.stop()
    started = time.monotonic()
    refused = server.post(forge(portal_pair).bytes())
    assert time.monotonic() - started < HANG_GUARD_S
    _assert_fault(refused, response_verifier, ns.SOAP11_ENV, "Server.ReplayStoreUnavailable")

    own_redis.start()
    _assert_ok(server.post(forge(portal_pair).bytes()), response_verifier)


# --- helpers ----------------------------------------------------------------------


def _race(fn: Callable[[], object], threads: int, keep_all: bool = False) -> list:
    """Run ``fn`` in ``threads`` threads released at once; return the True results.

    With ``keep_all``, return every result instead.
    """
    barrier = threading.Barrier(threads)

    def run() -> object:
        barrier.wait(timeout=10)
        return fn()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = [f.result(timeout=30) for f in [pool.submit(run) for _ in range(threads)]]
    return results if keep_all else [r for r in results if r is True]


@contextmanager
def _silent_listener() -> Iterator[int]:
    """Yield the port of a loopback socket that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])
