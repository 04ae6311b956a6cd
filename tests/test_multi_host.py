"""Several hosts behind HAProxy, under failure: the production shape, built on this machine.

Three ``azersu-statement serve`` processes (each its own gunicorn master with
one worker, :data:`WORKERS_PER_HOST`, on ports of their own) stand for three
hosts.  Billing is on one PostgreSQL server, the audit on another that all
three share (so that the audit database can be stopped while billing goes
on), and the replay store on one shared Redis.  HAProxy runs the
configuration shipped in ``deploy/haproxy/haproxy.cfg`` (the addresses come
from the environment), checking each host on ``GET /readyz``.

The tests prove what a second host is for: a message answered by one host is
a replay on any other; ``kill -9`` of a host (its master and its worker) in
the middle of a load loses only the requests it had in flight, HAProxy takes
it out within its check interval and back after a restart, and every answer
has exactly one audit record; a Redis or audit outage makes every host refuse
with its signed Fault, and service comes back with the store.  The figures
each run saw are written to ``test-artifacts/multi_host/figures.json``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import queue
import re
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from service import namespaces as ns
from service.signing.keys import SigningIdentity
from service.signing.trust import TrustStore
from service.signing.wsse import WsseSigner, WsseVerifier
from service.verification.pages import form_page, stylesheet
from service.verification.texts import language
from service.xroad import build_request_headers
from tests import billing_fixtures as bf
from tests.gunicorn_process import ServedProcess, fixture_service_env, free_port
from tests.haproxy_server import BACKEND, HAPROXY_CFG, HaproxyProcess, haproxy_environment
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "multi_host"
SOAP = ns.SOAP11_ENV
TNS = ns.TNS
WSDL = ns.WSDL
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetBillingStatement"'}
XROAD_CLIENT = "AZ/GOV/1400057421/portal"
XROAD_SERVICE = "AZ/COM/9900015741/billing"
HOSTS = ("host1", "host2", "host3")
#: gunicorn workers per host (three hosts share this machine's two cores);
#: killing a host kills its master and its worker.
WORKERS_PER_HOST = 1
#: Connections of the load, each sending its next request when the answer came.
CONCURRENCY = 12
#: Most signed requests the kill test may send: enough for the whole scenario
#: on a slow machine; the load stops once the restarted host has served again.
LOAD_MESSAGES = 4000
#: Requests signed ahead of the load (a thread signs the rest as they are sent).
SIGNED_AHEAD = 400
#: Answers before the kill.
KILL_AFTER = 600
#: Answers the restarted host must give before the load stops.
REJOINED_ANSWERS = 20
#: Seconds a real machine may add to HAProxy's own timing (scheduling, a busy CPU).
SLACK_S = 1.5
REPLAY_LOG = "security fault InvalidSecurity (replay)"


def _check_timing() -> tuple[float, int, int]:
    """Return HAProxy's check interval (s), fall and rise, as haproxy.cfg sets them."""
    text = HAPROXY_CFG.read_text(encoding="utf-8")
    line = re.search(r"^\s*default-server\s+(.*)$", text, re.MULTILINE)
    assert line, "haproxy.cfg has no default-server line"
    words = line.group(1).split()
    options = dict(itertools.pairwise(words))
    inter = options["inter"]
    assert inter.endswith("s") and not inter.endswith("ms"), inter
    return float(inter[:-1]), int(options["fall"]), int(options["rise"])


INTER_S, FALL, RISE = _check_timing()


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    """Three hosts, their stores and HAProxy."""

    folder: Path
    envs: list[dict[str, str]]
    hosts: list[ServedProcess]
    haproxy: HaproxyProcess
    redis: RedisServer
    audit_server: PostgresServer
    restarts: Counter[int] = field(default_factory=Counter)

    def wait_all(self, status: str, timeout_s: float = 30) -> float:
        return self.haproxy.wait_for_states({name: status for name in HOSTS}, timeout_s)

    def start_host(self, index: int, port: int | None = None) -> ServedProcess:
        self.restarts[index] += 1
        log = self.folder / f"{HOSTS[index]}-{self.restarts[index]}.log"
        return ServedProcess(self.envs[index], log, port=port)

    def restore(self) -> None:
        """Bring back what a test may have left down: the stores, a dead host, a drained one.

        Called in ``finally``, so that a test that fails half-way does not leave
        the next tests a cluster short of a store or a host.  It does not wait
        for HAProxy's checks: each test starts with :meth:`wait_all`.
        """
        self.redis.start()  # a no-op when it runs
        if not self.audit_server.running:
            self.audit_server.start()
        for index, host in enumerate(self.hosts):
            if host.process.poll() is not None:
                host.stop()  # closes its log
                self.hosts[index] = self.start_host(index, port=host.port)
            self.haproxy.admin(f"set server {BACKEND}/{HOSTS[index]} state ready")

    def audit_rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.audit_server.connect("audit") as conn:
            return list(conn.execute(sql, params).fetchall())


@pytest.fixture(scope="module")
def cluster(
    pki: dict[str, Path],
    pg_billing_url: str,
    module_postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("multi_host")
    audit_url = module_postgres_server.create_database("audit")
    redis = RedisServer(folder / "redis")
    redis.start()
    hosts: list[ServedProcess] = []
    haproxy: HaproxyProcess | None = None
    envs = [
        fixture_service_env(
            pki,
            pg_billing_url,
            folder / f"{name}-var",
            AZERSU_AUDIT_URL=audit_url,
            AZERSU_REPLAY_URL=redis.url,
            AZERSU_WORKERS=str(WORKERS_PER_HOST),
        )
        for name in HOSTS
    ]
    cluster: Cluster | None = None
    try:
        # Started side by side, as hosts would be.
        with ThreadPoolExecutor(max_workers=len(HOSTS)) as pool:
            starting = [
                pool.submit(ServedProcess, env, folder / f"{name}-0.log")
                for name, env in zip(HOSTS, envs, strict=True)
            ]
            for future in starting:
                hosts.append(future.result())
        binds = {
            "AZERSU_SOAP_BIND": f"127.0.0.1:{free_port()}",
            "AZERSU_VERIFY_BIND": f"127.0.0.1:{free_port()}",
            "AZERSU_HAPROXY_STATS_BIND": f"127.0.0.1:{free_port()}",
            "AZERSU_HAPROXY_ADMIN_SOCKET": str(folder / "haproxy-admin.sock"),
        }
        haproxy = HaproxyProcess(
            haproxy_environment([f"127.0.0.1:{h.port}" for h in hosts], **binds),
            folder / "haproxy.log",
        )
        cluster = Cluster(folder, envs, hosts, haproxy, redis, module_postgres_server)
        cluster.wait_all("UP")
        yield cluster
    finally:
        if haproxy is not None:
            haproxy.stop()
        running = cluster.hosts if cluster else hosts
        for host in running:  # all drain at once, then each is waited for
            if host.process.poll() is None:
                host.signal(signal.SIGTERM)
        for host in running:
            host.stop()
        redis.stop()


# --------------------------------------------------------------------------- messages


@pytest.fixture(scope="module")
def signer(portal_identity: SigningIdentity) -> WsseSigner:
    return WsseSigner(portal_identity)


@pytest.fixture(scope="module")
def response_verifier(trust: TrustStore) -> WsseVerifier:
    # An OK answer also carries the Statement's own (enveloped) signature.
    return WsseVerifier(trust, None, allow_body_signatures=True)


def signed_request(signer: WsseSigner, message_id: str) -> bytes:
    """Return a GetBillingStatement signed as the portal signs it, X-Road id ``message_id``."""
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soapenv": SOAP})
    header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
    for block in build_request_headers(XROAD_CLIENT, XROAD_SERVICE, message_id, "AZ" + bf.FIN):
        header.append(block)
    body = etree.SubElement(envelope, f"{{{SOAP}}}Body")
    request = etree.SubElement(body, f"{{{TNS}}}GetBillingStatement", nsmap={"b": TNS})
    etree.SubElement(request, f"{{{TNS}}}SubscriberCode").text = bf.FULL
    etree.SubElement(request, f"{{{TNS}}}CitizenFin").text = bf.FIN
    etree.SubElement(request, f"{{{TNS}}}Language").text = "az"
    signer.sign(envelope)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def post(url: str, payload: bytes, request_id: str = "") -> requests.Response:
    headers = {**HEADERS, "X-Request-ID": request_id or str(uuid.uuid4())}
    return requests.post(url, data=payload, headers=headers, timeout=(5, 30))


def statement_number(content: bytes) -> str:
    """Return the answer's StatementNumber; fail unless it is a Status OK answer."""
    root = etree.fromstring(content)
    assert root.findtext(f".//{{{TNS}}}Status") == "OK", content[:2000]
    number = root.findtext(f".//{{{TNS}}}StatementNumber")
    assert number, content[:2000]
    return number


def assert_signed_ok(response: requests.Response, verifier: WsseVerifier) -> str:
    assert response.status_code == 200, response.text[:2000]
    verifier.verify(etree.fromstring(response.content))
    return statement_number(response.content)


def assert_signed_fault(response: requests.Response, verifier: WsseVerifier, code: str) -> None:
    """Assert a signed SOAP Fault with ``code`` (a QName's namespace and local part)."""
    assert response.status_code == 500, response.text[:2000]
    root = etree.fromstring(response.content)
    verifier.verify(root)  # Faults are signed too
    fault = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None, response.text[:2000]
    prefix, _, local = (fault.findtext("faultcode") or "").partition(":")
    namespace, _, expected_local = code.rpartition(" ")
    assert (fault.nsmap.get(prefix), local) == (namespace, expected_local)
    text = response.content.decode("utf-8", "replace")
    assert "Statement" not in text
    for personal in (bf.AZ_LAST, bf.AZ_FIRST, bf.AZ_ADDRESS):
        assert personal not in text


REPLAY_FAULT = f"{ns.WSSE} InvalidSecurity"
REPLAY_STORE_FAULT = f"{SOAP} Server.ReplayStoreUnavailable"
AUDIT_FAULT = f"{SOAP} Server.AuditUnavailable"


def logged(host: ServedProcess, prefix: str) -> list[dict[str, Any]]:
    return [r for r in host.log_records() if str(r.get("message", "")).startswith(prefix)]


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Keep the figures a run saw (the closing notes quote them)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "figures.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = figures
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(name, json.dumps(figures, sort_keys=True))  # shown with -s


# --------------------------------------------------------------------------- the front doors


def _raw_request(address: str, head: bytes, then_wait_s: float) -> tuple[bytes, float]:
    """Send ``head`` (never completed), return what came back and when the socket closed."""
    host, port = address.rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=then_wait_s) as sock:
        sock.sendall(head)
        received = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    return received, time.monotonic() - started


def test_soap_and_verify_are_separate_doors_and_slow_clients_are_cut_off(
    cluster: Cluster, signer: WsseSigner, response_verifier: WsseVerifier
) -> None:
    haproxy = cluster.haproxy
    soap_bind = haproxy.env["AZERSU_SOAP_BIND"]
    verify_base = haproxy.verify_base
    soap_base = f"http://{soap_bind}"
    # Slowloris (a head that never ends) and a slow body, both on the SOAP door,
    # started first: HAProxy must close them after `timeout http-request`.
    slow: dict[str, tuple[bytes, float]] = {}
    probes = {
        "head": b"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n",
        "body": b"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
        b"X-Request-ID: slow-body\r\nContent-Length: 4000\r\n\r\n<soapenv:Envelope",
    }
    threads = [
        threading.Thread(
            target=lambda k=k, h=h: slow.__setitem__(k, _raw_request(soap_bind, h, 30))
        )
        for k, h in probes.items()
    ]
    for thread in threads:
        thread.start()

    def signed_ok(answer: requests.Response) -> None:
        assert_signed_ok(answer, response_verifier)

    def wsdl(answer: requests.Response) -> None:
        assert answer.status_code == 200, answer.text[:500]
        assert etree.fromstring(answer.content).tag == f"{{{WSDL}}}definitions"

    def form_page_html(answer: requests.Response) -> None:
        # The page without a lookup, in the default language, exactly as the service makes it.
        assert answer.status_code == 200, answer.text[:500]
        assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
        assert answer.content == form_page(language(None))

    def json_not_found(answer: requests.Response) -> None:
        # No number and no digest: a lookup of nothing, which finds nothing.
        assert answer.status_code == 200, answer.text[:500]
        assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
        assert answer.json() == {"result": "NOT_FOUND"}

    def css(answer: requests.Response) -> None:
        assert answer.status_code == 200, answer.text[:500]
        assert answer.headers["Content-Type"] == "text/css; charset=utf-8"
        assert answer.content == stylesheet()

    def denied(answer: requests.Response) -> None:
        assert answer.status_code == 404, answer.text[:500]

    cases: list[tuple[str, str, str, bool, Callable[[requests.Response], None]]] = [
        # (base, method, path, forwarded to a host?, what the answer must be)
        (soap_base, "POST", "/soap", True, signed_ok),
        (soap_base, "GET", "/soap?wsdl", True, wsdl),
        (soap_base, "GET", "/verify", False, denied),
        (soap_base, "GET", "/verify.json", False, denied),
        (soap_base, "GET", "/metrics", False, denied),
        (soap_base, "GET", "/readyz", False, denied),
        (soap_base, "GET", "/", False, denied),
        (verify_base, "GET", "/verify", True, form_page_html),
        (verify_base, "GET", "/verify.json", True, json_not_found),
        (verify_base, "GET", "/verify.css", True, css),  # the page's own stylesheet
        (verify_base, "POST", "/soap", False, denied),
        (verify_base, "GET", "/soap?wsdl", False, denied),
        (verify_base, "GET", "/metrics", False, denied),
        (verify_base, "GET", "/healthz", False, denied),
    ]
    answers: list[tuple[str, requests.Response]] = []
    for base, method, path, _, _ in cases:
        request_id = str(uuid.uuid4())
        data = signed_request(signer, request_id) if method == "POST" else None
        response = requests.request(
            method,
            base + path,
            data=data,
            headers={**HEADERS, "X-Request-ID": request_id},
            timeout=(5, 30),
        )
        answers.append((request_id, response))
    for thread in threads:
        thread.join(timeout=60)

    by_id = haproxy.wait_for_log_records([*(i for i, _ in answers), "slow-body"])
    for (base, method, path, forwarded, check), (request_id, answer) in zip(
        cases, answers, strict=True
    ):
        line = by_id[request_id]
        where = f"{method} {base}{path}: {line}"
        assert line["status"] == answer.status_code, where
        if forwarded:
            assert line["server"] in HOSTS, where
        else:
            assert line["server"] == "<NOSRV>", where
            assert line["termination"].startswith("PR"), where  # denied by the proxy
        try:
            check(answer)
        except AssertionError as failure:
            raise AssertionError(f"{where}: {failure}") from failure

    timeout_s = _haproxy_timeout_s("http-request")
    for kind, (received, closed_after) in slow.items():
        assert received.startswith(b"HTTP/1.1 408"), (kind, received[:200])
        assert timeout_s - 0.5 <= closed_after <= timeout_s + SLACK_S, (kind, closed_after)
    assert by_id["slow-body"]["server"] == "<NOSRV>"  # the host never saw the slow body
    record_figures(
        "front_doors",
        {f"slow_{kind}_closed_after_s": round(s, 2) for kind, (_, s) in slow.items()},
    )


def _haproxy_timeout_s(name: str) -> float:
    text = HAPROXY_CFG.read_text(encoding="utf-8")
    match = re.search(rf"^\s*timeout {re.escape(name)} (\d+)s\s*$", text, re.MULTILINE)
    assert match, f"haproxy.cfg has no timeout {name} in seconds"
    return float(match.group(1))


# --------------------------------------------------------------------------- replay


def test_a_message_answered_by_one_host_is_a_replay_on_every_other(
    cluster: Cluster, signer: WsseSigner, response_verifier: WsseVerifier
) -> None:
    cluster.wait_all("UP")
    first, *others = cluster.hosts
    message_id = str(uuid.uuid4())
    payload = signed_request(signer, message_id)
    assert_signed_ok(post(first.url, payload), response_verifier)
    for host in others:
        before = len(logged(host, REPLAY_LOG))
        assert_signed_fault(post(host.url, payload), response_verifier, REPLAY_FAULT)
        assert len(logged(host, REPLAY_LOG)) == before + 1, host.log_text()[-3000:]
    # ... and through HAProxy, whichever host takes it.
    assert_signed_fault(post(cluster.haproxy.soap_url, payload), response_verifier, REPLAY_FAULT)
    # One answer, so one OK record for that message; the refusals are audited
    # too (before the X-Road headers were read, so without its id).
    rows = cluster.audit_rows(
        "SELECT outcome FROM audit_record WHERE xroad_message_id = %s", message_id
    )
    assert rows == [("OK",)]


# --------------------------------------------------------------------------- kill -9


@dataclass
class Sent:
    """One request of the load and what became of it."""

    message_id: str
    started: float
    ended: float = 0.0
    status: int | None = None  # None: no HTTP answer at all
    content: bytes = b""
    error: str = ""


class Load:
    """Closed-loop load through HAProxy: each connection sends its next request on an answer.

    A thread signs the requests (as the portal would, each with a fresh
    Timestamp and X-Road message id), :data:`SIGNED_AHEAD` of them before the
    load starts, the rest while it runs, at most ``limit`` in all.
    """

    def __init__(
        self, url: str, sign: Callable[[str], bytes], concurrency: int, limit: int
    ) -> None:
        address = url.split("//", 1)[1].split("/", 1)[0]
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.sign = sign
        self.limit = limit
        self.sent: list[Sent] = []
        self.exhausted = False
        self._signed: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=SIGNED_AHEAD)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._signer = threading.Thread(target=self._sign_all)
        self._threads = [threading.Thread(target=self._run) for _ in range(concurrency)]

    @property
    def answered(self) -> int:
        return sum(1 for s in self.sent if s.ended)

    def start(self) -> None:
        self._signer.start()
        _wait_until(self._signed.full, 120, f"{SIGNED_AHEAD} requests signed")
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self._signer.join(timeout=60)

    def _sign_all(self) -> None:
        for _ in range(self.limit):
            message_id = str(uuid.uuid4())
            item = (message_id, self.sign(message_id))
            while not self._stop.is_set():
                try:
                    self._signed.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set():
                return
        self._signed.put(None)

    def _take(self) -> tuple[str, bytes, Sent] | None:
        while not self._stop.is_set():
            try:
                item = self._signed.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                self.exhausted = True
                self._signed.put(None)  # for the other connections
                return None
            sent = Sent(item[0], time.monotonic())
            with self._lock:
                self.sent.append(sent)
            return item[0], item[1], sent
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            taken = self._take()
            if taken is None:
                break
            message_id, payload, sent = taken
            # A connection per request: each is the first of its client connection,
            # so that HAProxy answers (and logs) any failure of a host itself.  On
            # a kept-alive connection it closes the client's connection instead,
            # without an answer or a log line, when a host breaks off a request.
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                conn.request(
                    "POST",
                    "/soap",
                    payload,
                    {**HEADERS, "X-Request-ID": message_id, "Connection": "close"},
                )
                response = conn.getresponse()
                sent.content = response.read()
                sent.status = response.status
            except (OSError, http.client.HTTPException) as exc:
                sent.error = f"{type(exc).__name__}: {exc}"
            finally:
                conn.close()
            sent.ended = time.monotonic()


def _gone(pid: int) -> bool:
    """Return whether a process has ended (a zombie that no one reaped counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


def test_kill_9_of_a_host_mid_load(
    cluster: Cluster, signer: WsseSigner, response_verifier: WsseVerifier
) -> None:
    cluster.wait_all("UP")
    replays_before = cluster.audit_rows(
        "SELECT count(*) FROM audit_record WHERE outcome = 'wsse:InvalidSecurity'"
    )[0][0]
    index = 1
    victim = cluster.hosts[index]
    name = HOSTS[index]
    load = Load(
        cluster.haproxy.soap_url,
        lambda message_id: signed_request(signer, message_id),
        CONCURRENCY,
        LOAD_MESSAGES,
    )
    load.start()
    try:
        _wait_until(lambda: load.answered >= KILL_AFTER, 120, f"{KILL_AFTER} answers")
        pids = [victim.process.pid, *victim.worker_pids()]
        assert len(pids) == 1 + WORKERS_PER_HOST
        killed_at = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        victim.process.wait(timeout=10)
        _wait_until(lambda: all(_gone(pid) for pid in pids), 10, "the killed workers to end")
        dead_at = time.monotonic()
        answered_at_kill = load.answered
        down_after = cluster.haproxy.wait_for_states({name: "DOWN"}, 30) + (dead_at - killed_at)
        victim.stop()
        # Two hosts carry the load for a while, then the third comes back on its port.
        answered_down = load.answered
        _wait_until(lambda: load.answered >= answered_down + 100, 120, "100 answers by two hosts")
        restarted_at = time.monotonic()
        victim = cluster.hosts[index] = cluster.start_host(index, port=victim.port)
        serving_after = time.monotonic() - restarted_at
        up_after = cluster.haproxy.wait_for_states({name: "UP"}, 30) + serving_after

        def rejoined() -> bool:
            return len([r for r in logged(victim, "request") if r["outcome"] == "OK"]) >= (
                REJOINED_ANSWERS
            )

        _wait_until(rejoined, 60, f"{REJOINED_ANSWERS} answers of the restarted host")
        assert not load.exhausted, "the load ran out of messages before the host rejoined"
    finally:
        load.stop()
        cluster.restore()

    answers = [s for s in load.sent if s.status is not None]
    errors = [s for s in load.sent if s.status != 200]
    haproxy_lines = cluster.haproxy.wait_for_log_records(s.message_id for s in answers)

    # Every error is a request that the killed host had in flight: sent before it
    # was dead, answered 502 (after the kill) by HAProxy, which had passed it to
    # that host.  Those sent before the kill are at most one per connection.  A
    # connection whose request failed sends its next one at once, and the dying
    # host's port, open until its last process is gone, may still take it: such
    # a request is lost too, within the moment the host took to die.
    for sent in errors:
        line = haproxy_lines.get(sent.message_id)
        where = f"{sent} / {line}"
        assert sent.status == 502, where
        assert sent.started < dead_at, where
        assert sent.ended >= killed_at, where
        assert line is not None and line["server"] == name and line["status"] == 502, where
        assert line["termination"][0] == "S", where  # the server side broke off
    in_flight_at_kill = [s for s in errors if s.started < killed_at]
    assert len(in_flight_at_kill) <= CONCURRENCY, [
        (round(s.started - killed_at, 3), round(s.ended - killed_at, 3)) for s in errors
    ]  # (sent, answered) in seconds after the kill
    # Every other request was answered with a signed statement.
    numbers = []
    for sent in answers:
        if sent.status == 200:
            root = etree.fromstring(sent.content)
            response_verifier.verify(root)
            numbers.append(statement_number(sent.content))
    assert len(numbers) == len(load.sent) - len(errors)
    assert len(set(numbers)) == len(numbers), "a statement number was given twice"
    # Routed around at once: nothing sent after the host died failed, whoever HAProxy
    # still picked for it (connection refused, sent to another host).
    assert all(s.started < dead_at for s in errors)
    assert down_after <= FALL * INTER_S + SLACK_S + 1, down_after
    # The restarted host took traffic again, through HAProxy.
    sent_after_restart = {s.message_id for s in load.sent if s.started >= restarted_at}
    rejoined_lines = [
        r
        for r in haproxy_lines.values()
        if r["request_id"] in sent_after_restart and r["server"] == name and r["status"] == 200
    ]
    assert len(rejoined_lines) >= REJOINED_ANSWERS

    # The audit: exactly one record for every answer, matching it; none for a
    # message twice (a message answered twice would have two, or a replay refusal).
    ids = [s.message_id for s in load.sent]
    rows = cluster.audit_rows(
        "SELECT xroad_message_id, outcome, statement_number FROM audit_record "
        "WHERE xroad_message_id = ANY(%s)",
        ids,
    )
    per_message = Counter(row[0] for row in rows)
    assert max(per_message.values()) == 1, per_message.most_common(3)
    recorded = {row[0]: (row[1], row[2]) for row in rows}
    for sent in load.sent:
        if sent.status == 200:
            assert recorded.get(sent.message_id) == ("OK", statement_number(sent.content))
    in_flight_recorded = sum(1 for s in errors if s.message_id in recorded)
    replays_after = cluster.audit_rows(
        "SELECT count(*) FROM audit_record WHERE outcome = 'wsse:InvalidSecurity'"
    )[0][0]
    assert replays_after == replays_before, "a request of the load was refused as a replay"

    record_figures(
        "kill_9",
        {
            "requests": len(load.sent),
            "load_s": round(max(x.ended for x in load.sent) - load.sent[0].started, 1),
            "answered_ok": len(numbers),
            "errors_in_flight_on_the_killed_host": len(errors),
            "errors_sent_while_the_host_died": len(errors) - len(in_flight_at_kill),
            "errors_with_an_audit_record": in_flight_recorded,
            "answered_before_the_kill": answered_at_kill,
            "concurrency": CONCURRENCY,
            "killed_to_down_in_haproxy_s": round(down_after, 2),
            "restart_to_serving_s": round(serving_after, 2),
            "restart_to_up_in_haproxy_s": round(up_after, 2),
            "check": {"inter_s": INTER_S, "fall": FALL, "rise": RISE},
            "answers_by_the_restarted_host_through_haproxy": len(rejoined_lines),
        },
    )


def test_a_drained_host_stops_without_losing_a_request(
    cluster: Cluster, signer: WsseSigner, response_verifier: WsseVerifier
) -> None:
    """The procedure of docs/operations.md: drain the host in HAProxy, stop it, bring it back."""
    cluster.wait_all("UP")
    index = 2
    host, name = cluster.hosts[index], HOSTS[index]
    load = Load(
        cluster.haproxy.soap_url,
        lambda message_id: signed_request(signer, message_id),
        CONCURRENCY,
        LOAD_MESSAGES,
    )
    load.start()
    try:
        _wait_until(lambda: load.answered >= 200, 120, "200 answers")
        drained_at = time.monotonic()
        assert cluster.haproxy.admin(f"set server {BACKEND}/{name} state drain").strip() == ""
        _wait_until(lambda: cluster.haproxy.server_sessions(name) == 0, 30, f"{name} idle")
        idle_after = time.monotonic() - drained_at
        host.signal(signal.SIGTERM)
        assert host.stop() == 0, host.log_text()[-3000:]  # a graceful stop
        stopped_after = time.monotonic() - drained_at
        answered = load.answered
        _wait_until(lambda: load.answered >= answered + 100, 120, "100 answers by two hosts")
        restarted_at = time.monotonic()
        host = cluster.hosts[index] = cluster.start_host(index, port=host.port)
        assert cluster.haproxy.admin(f"set server {BACKEND}/{name} state ready").strip() == ""
        cluster.haproxy.wait_for_states({name: "UP"}, 30)
        _wait_until(
            lambda: (
                len([r for r in logged(host, "request") if r["outcome"] == "OK"])
                >= REJOINED_ANSWERS
            ),
            60,
            f"{REJOINED_ANSWERS} answers of the restarted host",
        )
    finally:
        load.stop()
        cluster.restore()
    assert not load.exhausted
    failed = [s for s in load.sent if s.status != 200]
    assert failed == [], failed[:5]
    for sent in load.sent:
        response_verifier.verify(etree.fromstring(sent.content))
        statement_number(sent.content)
    # From the drain on, HAProxy sent the host nothing new until it was back.
    lines = cluster.haproxy.wait_for_log_records(s.message_id for s in load.sent)
    between = [s for s in load.sent if drained_at < s.started and s.ended < restarted_at]
    assert between and not [s for s in between if lines[s.message_id]["server"] == name]
    record_figures(
        "drain",
        {
            "requests": len(load.sent),
            "errors": len(failed),
            "drain_to_idle_s": round(idle_after, 2),
            "drain_to_stopped_s": round(stopped_after, 2),
        },
    )


# --------------------------------------------------------------------------- store outages


def _outage(
    cluster: Cluster,
    signer: WsseSigner,
    verifier: WsseVerifier,
    stop: Callable[[], None],
    start: Callable[[], None],
    fault: str,
    log_prefix: str,
) -> dict[str, float]:
    """Stop a shared store: every host refuses with ``fault``; start it: every host serves."""
    cluster.wait_all("UP")
    stop()
    try:
        stopped_at = time.monotonic()
        for host in cluster.hosts:
            before = len(logged(host, log_prefix))
            started = time.monotonic()
            refused = post(host.url, signed_request(signer, str(uuid.uuid4())))
            assert time.monotonic() - started < 5, "a refusal must not hang"
            assert_signed_fault(refused, verifier, fault)
            assert len(logged(host, log_prefix)) == before + 1, host.log_text()[-3000:]
        # Their /readyz fails: HAProxy takes every host out and answers 503 itself.
        all_down = cluster.wait_all("DOWN", 30) + (time.monotonic() - stopped_at)
        through = post(cluster.haproxy.soap_url, signed_request(signer, str(uuid.uuid4())))
        assert through.status_code == 503, through.text[:500]
        assert b"Envelope" not in through.content
        start()
    finally:
        cluster.restore()  # the store is back even when a check above failed
    started_at = time.monotonic()
    for host in cluster.hosts:
        assert_signed_ok(post(host.url, signed_request(signer, str(uuid.uuid4()))), verifier)
    all_up = cluster.wait_all("UP", 30) + (time.monotonic() - started_at)
    assert_signed_ok(
        post(cluster.haproxy.soap_url, signed_request(signer, str(uuid.uuid4()))), verifier
    )
    return {"stopped_to_all_down_s": round(all_down, 2), "started_to_all_up_s": round(all_up, 2)}


def test_redis_down_every_host_fails_closed_then_recovers(
    cluster: Cluster, signer: WsseSigner, response_verifier: WsseVerifier
) -> None:
    figures = _outage(
        cluster,
        signer,
        response_verifier,
        cluster.redis.stop,
        cluster.redis.start,
        REPLAY_STORE_FAULT,
        "replay store unavailable",
    )
    record_figures("redis_outage", figures)


def test_audit_database_down_every_host_fails_closed_then_recovers(
    cluster: Cluster, signer: WsseSigner, response_verifier: WsseVerifier
) -> None:
    figures = _outage(
        cluster,
        signer,
        response_verifier,
        lambda: cluster.audit_server.stop("fast"),
        cluster.audit_server.start,
        AUDIT_FAULT,
        "audit record not committed",
    )
    record_figures("audit_outage", figures)
