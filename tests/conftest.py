"""Shared fixtures: a hand-made billing database, settings, and the service on loopback.

A test that needs what a machine may lack (a program, a server, a jar) is
skipped without it, except on CI (``CI=true``), where it fails: :func:`require`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from lxml import etree

from service.app import ServiceApp, create_app
from service.client import StatementClient
from service.pki import init_pki
from service.settings import Settings
from service.signing.keys import SigningIdentity, fingerprint, load_signing_identity
from service.signing.trust import TrustStore
from service.signing.wsse import WsseSigner
from tests import billing_fixtures
from tests.postgres_server import PostgresServer, unavailable_reason
from tests.xmlsec_binding import xmlsec

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "service" / "schemas"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to run when lxml and python-xmlsec link different libxml2 builds.

    The tests hand lxml trees to python-xmlsec (the independent verifier the
    service's signatures are checked against); with two libxml2 builds in one
    process that corrupts memory.  setup.cfg pins a matching pair.
    """
    lxml_version = tuple(etree.LIBXML_VERSION)
    xmlsec_version = tuple(xmlsec.get_libxml_version())
    if lxml_version != xmlsec_version:
        raise pytest.UsageError(
            f"lxml uses libxml2 {lxml_version}, python-xmlsec {xmlsec_version}: "
            "install the versions pinned in setup.cfg"
        )


@pytest.fixture(scope="session")
def billing_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the URL of an SQLite billing database with the hand-made rows."""
    path = tmp_path_factory.mktemp("billing") / "billing.sqlite"
    url = f"sqlite:///{path}"
    billing_fixtures.create_billing_db(url)
    return url


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Return the files of a development PKI made for this test session."""
    return init_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def portal_identity(pki: dict[str, Path]) -> SigningIdentity:
    """Return the portal's (the caller's) signing identity."""
    return load_signing_identity(str(pki["portal.key"]), str(pki["portal.pem"]), None)


@pytest.fixture(scope="session")
def portal_fingerprint(portal_identity: SigningIdentity) -> str:
    """Return the SHA-256 fingerprint that registers the portal as a caller."""
    return fingerprint(portal_identity.certificate)


@pytest.fixture(scope="session")
def sign(portal_identity: SigningIdentity) -> Callable[[bytes], bytes]:
    """Return a function that signs a SOAP envelope as the portal does."""
    signer = WsseSigner(portal_identity)

    def _sign(envelope: bytes) -> bytes:
        root = etree.fromstring(envelope)
        signer.sign(root)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    return _sign


@pytest.fixture(scope="session")
def trust(pki: dict[str, Path]) -> TrustStore:
    """Return the portal's trust store: any fit certificate of the development CA.

    It checks the service's answers, whose signer the clients also check by name.
    """
    return TrustStore.from_pem_file(str(pki["ca.pem"]), accept_any_signer_of_ca=True)


@pytest.fixture(scope="session")
def base_settings(
    billing_db: str,
    pki: dict[str, Path],
    portal_fingerprint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """Return settings for the hand-made database, the window pinned to 2026-02.

    The portal is the one registered caller.
    """
    return Settings(
        var_dir=str(tmp_path_factory.mktemp("var")),
        billing_url=billing_db,
        report_period=billing_fixtures.REPORT_PERIOD,
        sign_key=str(pki["service.key"]),
        sign_cert=str(pki["service.pem"]),
        trust_ca=str(pki["ca.pem"]),
        trusted_clients=portal_fingerprint,
    )


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Return the test settings (override with dataclasses.replace)."""
    return dataclasses.replace(base_settings)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class LiveServer:
    """The service's WSGI app served over HTTP on a free loopback port."""

    def __init__(self, app: ServiceApp) -> None:
        self.app = app
        self.httpd = make_server(
            "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.port = self.httpd.server_port
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base_url}/soap"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.app.close()


@pytest.fixture(scope="session")
def live_server(base_settings: Settings) -> Iterator[LiveServer]:
    """Serve the app built from the base settings for the whole session."""
    server = LiveServer(create_app(base_settings))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def portal(
    live_server: LiveServer, portal_identity: SigningIdentity, trust: TrustStore
) -> StatementClient:
    """Return a client that signs as the portal and verifies the answers strictly."""
    return StatementClient(live_server.url, portal_identity, trust)


@pytest.fixture
def serve_app() -> Iterator[type[LiveServer]]:
    """Return a factory for servers with other settings; they stop after the test."""
    started: list[LiveServer] = []

    class _Factory(LiveServer):
        def __init__(self, app: ServiceApp) -> None:
            super().__init__(app)
            started.append(self)

    yield _Factory
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- what tests need
# A test that needs something this machine lacks (a program, a server, a jar)
# is skipped, except on CI, where it fails: CI must run every test.


def on_ci() -> bool:
    """Return whether the tests run on CI (``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require(unavailable: str | None, what: str) -> None:
    """Go on when ``unavailable`` is None; else skip, except on CI (``CI=true``), where fail.

    ``unavailable`` says what is missing; ``what`` names the tests that need it.
    """
    if unavailable is None:
        return
    if on_ci():
        pytest.fail(f"CI=true but {what} can't run: {unavailable}", pytrace=False)
    pytest.skip(f"{what}: {unavailable}")


def require_tool(
    command: str, debian_package: str, why: str = "", also: Sequence[str] = ()
) -> str:
    """Return the path of ``command`` (or of the first executable of ``also``).

    Without it the test is skipped, except on CI (``CI=true``), where it fails.
    ``why`` says what the test does with it; ``also`` are places off the PATH
    (``/usr/sbin`` for a user who is not root).
    """
    path = shutil.which(command) or next((p for p in also if os.access(p, os.X_OK)), None)
    missing = f"{command} is not installed (Debian package {debian_package})"
    require(None if path else missing + (f": {why}" if why else ""), "this test")
    assert path is not None  # require() skipped or failed the test otherwise
    return path


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start one real PostgreSQL server for the session; stop it and delete its files at the end.

    Without PostgreSQL the tests that need it are skipped, except on CI (``CI=true``)
    where they fail: CI must run them.
    """
    require(unavailable_reason(), "the tests on PostgreSQL")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def private_postgres_server() -> Iterator[PostgresServer]:
    """Start a PostgreSQL server for one test (which may stop or crash it); always removed."""
    require(unavailable_reason(), "the tests on PostgreSQL")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def module_postgres_server() -> Iterator[PostgresServer]:
    """Start a PostgreSQL server for one test module (whose tests may stop it); always removed."""
    require(unavailable_reason(), "the tests on PostgreSQL")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def pg_billing_url(postgres_server: PostgresServer) -> str:
    """Return the URL of a PostgreSQL database holding the hand-made billing rows."""
    url = postgres_server.create_database("billing_fixtures")
    billing_fixtures.create_billing_db(url)
    return url


# --------------------------------------------------------------------------- external tools
# Command-line tools and other SOAP stacks that interoperability tests run.

#: Where the tests install node-soap (package.json and package-lock.json are committed).
NODE_INTEROP = ROOT / "tests" / "interop" / "node"


@pytest.fixture(scope="session")
def xmlsec1() -> str:
    """Return the path of the xmlsec1 command-line tool."""
    return require_tool("xmlsec1", "xmlsec1")


@pytest.fixture(scope="session")
def curl() -> str:
    """Return the path of curl."""
    return require_tool("curl", "curl")


@dataclasses.dataclass(frozen=True)
class NodeSoap:
    """Node.js with node-soap installed: run a script with ``NODE_PATH`` set to it."""

    node: str
    node_modules: Path

    def env(self) -> dict[str, str]:
        """Return the environment that makes ``require('soap')`` find the installed copy."""
        return {**os.environ, "NODE_PATH": str(self.node_modules)}


def node_version_problem(node: str) -> str | None:
    """Return why ``node`` can't run the pinned node-soap (too old, see package.json), or None.

    node-soap 1.13 needs Node.js 20.19 or newer; Debian 12's own nodejs is 18.
    """
    package = json.loads((NODE_INTEROP / "package.json").read_text(encoding="utf-8"))
    engines = package["engines"]["node"]
    wanted = re.fullmatch(r">=\s*(\d+)\.(\d+)\.(\d+)", engines)
    assert wanted, f"{NODE_INTEROP / 'package.json'}: engines.node {engines!r} is not >=X.Y.Z"
    needed = tuple(int(part) for part in wanted.groups())
    ran = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    found = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", ran.stdout.strip())
    needs = (
        f"node-soap {package['dependencies']['soap']} needs Node.js "
        f"{'.'.join(map(str, needed))} or newer"
    )
    if ran.returncode != 0 or found is None:
        return f"{needs}; `{node} --version` answered {(ran.stdout + ran.stderr).strip()!r}"
    if tuple(int(part) for part in found.groups()) < needed:
        return f"{needs}; {node} is {ran.stdout.strip()}"
    return None


@pytest.fixture(scope="session")
def node_soap() -> NodeSoap:
    """Install node-soap as the lock file pins it (``npm ci``) once per session.

    A Node.js older than node-soap needs skips the tests, or fails them on CI.
    """
    node = require_tool("node", "nodejs")
    require(node_version_problem(node), "the node-soap tests")
    npm = require_tool("npm", "npm")
    installed = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
        cwd=NODE_INTEROP,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0:
        pytest.fail(f"npm ci in {NODE_INTEROP} failed:\n{installed.stdout}{installed.stderr}")
    return NodeSoap(node, NODE_INTEROP / "node_modules")
