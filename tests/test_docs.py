"""The documentation says what the code does: every setting, and examples that work.

``docs/configuration.md`` is the one full table of settings: a field added to
:class:`service.settings.Settings` without a row there, a row for a variable
that is no setting, or a default that changed in the code but not on the page
fails here.  The ``call`` examples of the README and of ``docs/`` must name a
residential subscriber of the demo database that ``make run`` builds (the real
``init-demo`` command, with its defaults), under the FIN they show: a reader
who copies one gets a statement, not ``SUBSCRIBER_NOT_FOUND``.

``docs/integration.md`` is what an integrator goes by when a request is
refused, so its tables are read back against the code: the verification
policy's values (``Settings``, ``VerificationPolicy``, gunicorn's limits), every
faultcode the service can send, every reason a WS-Security refusal can carry
with its faultcode, every business Status, and the ``check-request`` output
it shows.

A relative link of the README, of ``docs/`` or of the integration kit's
READMEs must lead to a file or folder that a clean clone has (and a link to a
heading, to that heading): the pages send integrators to ``examples/``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from gunicorn.config import Config as GunicornConfig

from service import namespaces as ns
from service.cli import main
from service.errors import SecurityFault, Status
from service.pki import IssuedPair
from service.settings import SETTINGS_FILE_VARIABLE, Settings, env_name
from service.signing import hardened_xml
from service.signing.keys import fingerprint
from service.signing.policy import (
    ENVELOPED_CHAIN,
    EXCLUSIVE_C14N_CHAIN,
    WSSE_POLICY,
    Reason,
)
from service.signing.replay import REDIS_TIMEOUT_S
from service.signing.trust import MIN_EC_BITS, MIN_RSA_BITS
from service.signing.wsse import WsseVerifier
from tests.wsse_forge import forge

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
#: Pages whose ``call`` examples are run by readers (the integration kit's READMEs too).
EXAMPLE_PAGES = (
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "examples").glob("**/*.md")),
)

_VARIABLE = re.compile(r"\bAZERSU_[A-Z0-9_]+")
#: A command line (in a code block) that runs ``call``, or an example client of examples/,
#: with its continuation lines.
_CALL = re.compile(
    r"^[ \t]*(?:\S*/)?(?:azersu-statement call|node \S*client\.js|python3? \S*client\.py)\b"
    r"(?P<args>(?:\\\n|[^\n])*)",
    re.MULTILINE,
)


def _table_rows(text: str) -> list[list[str]]:
    """Return the cells of every Markdown table row (header and separator rows included)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and line.rstrip().endswith("|"):
            rows.append([cell.strip() for cell in line.strip()[1:-1].split("|")])
    return rows


def configuration_rows() -> dict[str, tuple[str, str]]:
    """Return (default, meaning) of each variable that has a row of its own in the table."""
    rows: dict[str, tuple[str, str]] = {}
    for cells in _table_rows(CONFIGURATION.read_text(encoding="utf-8")):
        names = _VARIABLE.findall(cells[0])
        if len(cells) != 3 or len(names) != 1 or cells[0] != f"`{names[0]}`":
            continue
        assert names[0] not in rows, f"two rows for {names[0]}"
        rows[names[0]] = (cells[1], cells[2])
    return rows


def documented_default(value: object) -> str | None:
    """Return how the table writes a non-empty default, or None for an empty one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if value in ("", None):
        return None
    return str(value)


SETTINGS_FIELDS = dataclasses.fields(Settings)


@pytest.mark.parametrize("field", SETTINGS_FIELDS, ids=lambda f: env_name(f.name))
def test_every_setting_has_a_row_with_its_default_and_meaning(field: dataclasses.Field) -> None:
    rows = configuration_rows()
    variable = env_name(field.name)
    assert variable in rows, f"{variable} has no row in docs/configuration.md"
    default_cell, meaning = rows[variable]
    assert len(meaning) > 10, f"{variable}: the meaning is missing"
    shown = documented_default(field.default)
    if shown is None:
        assert default_cell.startswith(("–", "`")), f"{variable}: default {default_cell!r}"
    else:
        assert f"`{shown}`" in default_cell, f"{variable}: default {shown!r}, not {default_cell!r}"


def test_the_configuration_page_names_only_settings() -> None:
    settings = {env_name(f.name) for f in SETTINGS_FIELDS}
    named = set(_VARIABLE.findall(CONFIGURATION.read_text(encoding="utf-8")))
    assert named - settings - {SETTINGS_FILE_VARIABLE} == set()
    assert settings <= named  # the check above is not vacuous


def test_the_table_reader_finds_rows_and_refuses_strangers() -> None:
    rows = configuration_rows()
    assert rows["AZERSU_MAX_BODY_BYTES"][0] == "`262144`"
    assert rows["AZERSU_ACCEPT_ANY_CALLER_OF_CA"][0] == "`false`"
    assert "AZERSU_NOT_A_SETTING" not in rows
    # A family of names is read as a name of its own, which no setting has; AZERSU_* is no name.
    found = _VARIABLE.findall("`AZERSU_WORKER`, AZERSU_TLS_* and AZERSU_*")
    assert found == ["AZERSU_WORKER", "AZERSU_TLS_"]


# --- the examples -------------------------------------------------------------------------------


def call_examples() -> list[tuple[str, str, str]]:
    """Return (page, code, FIN) of every ``azersu-statement call`` example in the docs.

    The FIN is ``--fin``'s, or the X-Road ``--xroad-user-id`` "AZ<FIN>"'s.
    """
    found = []
    for page in EXAMPLE_PAGES:
        for match in _CALL.finditer(page.read_text(encoding="utf-8")):
            lines = match.group("args").split("\\\n")
            args = " ".join(re.sub(r"(^|\s)#.*", "", line) for line in lines).split()
            options = dict(zip(args, [*args[1:], ""], strict=True))
            code = options.get("--code")
            fin = options.get("--fin") or options.get("--xroad-user-id", "").removeprefix("AZ")
            assert code and fin, f"{page.name}: a call example without --code and a FIN: {args}"
            example = (page.relative_to(ROOT).as_posix(), code, fin)
            if example not in found:
                found.append(example)
    return found


CALL_EXAMPLES = call_examples()


def test_the_readme_shows_calls() -> None:
    assert any(page == "README.md" for page, _, _ in CALL_EXAMPLES)


@pytest.fixture(scope="module")
def make_run_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the demo database as ``make run`` does: ``init-demo --db URL``, defaults otherwise."""
    path = tmp_path_factory.mktemp("make-run") / "billing-demo.sqlite"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    command = [sys.executable, "-m", "service", "init-demo", "--db", f"sqlite:///{path}"]
    subprocess.run(command, env=environ, check=True, capture_output=True, timeout=600)
    return path


@pytest.mark.parametrize(("page", "code", "fin"), CALL_EXAMPLES)
def test_call_examples_name_a_residential_subscriber_of_the_demo(
    make_run_demo: Path, page: str, code: str, fin: str
) -> None:
    with sqlite3.connect(make_run_demo) as db:
        row = db.execute(
            "SELECT fin, category FROM subscriber WHERE subscriber_code = ?", (code,)
        ).fetchone()
    assert row is not None, f"{page}: {code} is not in the demo database"
    assert row == (fin, "RESIDENTIAL"), f"{page}: {code} is {row}, not a residential {fin}"


def test_every_test_named_on_the_security_page_exists() -> None:
    """docs/security.md proves each defence by naming tests: each must be a test that exists."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    current = ""
    named: list[tuple[str, str]] = []
    for match in re.finditer(r"(tests/test_\w+\.py)?::(\w+)", text):
        current = match.group(1) or current
        named.append((current, match.group(2)))
    assert len(named) > 40
    for path, name in named:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{path}::{name} does not exist"


# --- docs/integration.md ------------------------------------------------------------------------

INTEGRATION = ROOT / "docs" / "integration.md"
SERVICE = ROOT / "service"
_BACKTICKED = re.compile(r"`([^`]+)`")
_NUMBER = re.compile(r"`(\d+(?:\.\d+)?)`")
_URI = re.compile(r"`(https?://[^`\s]+)`")


def integration_section(heading: str) -> str:
    """Return the text under a heading of docs/integration.md, up to the next heading."""
    lines = INTEGRATION.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if re.match(r"#{1,6} ", lines[i])), len(lines))
    return "\n".join(lines[start:end])


def section_table(heading: str) -> list[list[str]]:
    """Return the body rows of the first table under a heading (header and separator left out)."""
    rows = _table_rows(integration_section(heading))
    assert len(rows) > 2, f"no table under {heading!r}"
    return rows[2:]


def keyed_rows(heading: str) -> dict[str, list[str]]:
    """Return the rows of a table whose first cell is one backticked word, by that word."""
    rows: dict[str, list[str]] = {}
    for cells in section_table(heading):
        key = re.fullmatch(r"`([^`]+)`", cells[0])
        assert key, f"{heading}: a row without a `code` first: {cells}"
        assert key.group(1) not in rows, f"{heading}: two rows for {key.group(1)}"
        rows[key.group(1)] = cells
    return rows


POLICY_HEADING = "### The verification policy"
FAULT_HEADING = "## SOAP Faults: technical and security failures"
REASON_HEADING = "### WS-Security refusals: the reason in the log"
STATUS_HEADING = "## Status: business outcomes"


def policy_rows() -> list[tuple[str, str, str]]:
    """Return (rule, required, in the code) of each row of the policy table, group rows left out."""
    rows = []
    for cells in section_table(POLICY_HEADING):
        assert len(cells) == 3, f"the policy table has three columns: {cells}"
        if cells[1] or cells[2]:
            rows.append((cells[0], cells[1], cells[2]))
    return rows


# What each value of the policy table is checked against.
_SETTING_DEFAULTS = {env_name(f.name): f.default for f in dataclasses.fields(Settings)}


def code_value(source: str) -> object:
    """Return the value in the code that a cell of the "In the code" column names, or None."""
    if match := re.fullmatch(r"`(AZERSU_[A-Z0-9_]+)`", source):
        return _SETTING_DEFAULTS[match.group(1)]
    if match := re.fullmatch(r"`VerificationPolicy\.(\w+)`", source):
        return getattr(WSSE_POLICY, match.group(1))
    if match := re.fullmatch(r"gunicorn's `(limit_request_\w+)`", source):
        # The service leaves gunicorn's HTTP parser limits at their defaults.
        return getattr(GunicornConfig(), match.group(1))
    if source == "`MAX_DEPTH`":
        return hardened_xml.MAX_DEPTH
    return None


#: Every limit the integrator needs, each with its row and its value checked.
NUMERIC_SOURCES = {
    "`AZERSU_WSSE_CLOCK_SKEW_S`",
    "`AZERSU_WSSE_MAX_AGE_S`",
    "`AZERSU_RESPONSE_LIFETIME_S`",
    "`AZERSU_MAX_BODY_BYTES`",
    "`AZERSU_MAX_BODY_CHUNKS`",
    "`AZERSU_REQUEST_TIMEOUT_S`",
    "`AZERSU_KEEPALIVE_S`",
    "`AZERSU_MAX_CONNECTIONS_PER_CLIENT`",
    "`AZERSU_DB_TIMEOUT_S`",
    "`VerificationPolicy.max_references`",
    "`VerificationPolicy.min_rsa_bits`",
    "`VerificationPolicy.min_ec_bits`",
    "gunicorn's `limit_request_line`",
    "gunicorn's `limit_request_fields`",
    "gunicorn's `limit_request_field_size`",
    "`MAX_DEPTH`",
}


def test_the_policy_tables_limits_are_the_codes_defaults() -> None:
    checked = set()
    for rule, required, source in policy_rows():
        value = code_value(source)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        numbers = _NUMBER.findall(required)
        assert numbers, f"policy table, {rule!r}: no value in {required!r}"
        assert float(numbers[0]) == value, f"policy table, {rule!r}: {numbers[0]}, code {value}"
        checked.add(source)
    assert NUMERIC_SOURCES - checked == set(), "limits without a row in the policy table"


def test_the_replay_window_is_the_verifiers() -> None:
    """The window is max age + 2 x skew (the verifier's own formula), with the default settings."""
    assert "self.max_age + 2 * self.clock_skew" in inspect.getsource(WsseVerifier.verify)
    (required,) = [r for rule, r, _ in policy_rows() if rule == "Replay window"]
    window = Settings().wsse_max_age_s + 2 * Settings().wsse_clock_skew_s
    assert _NUMBER.findall(required)[0] == str(window)


def test_the_fit_to_sign_row_has_the_trust_stores_key_sizes() -> None:
    (required,) = [r for rule, r, _ in policy_rows() if rule == "Fit to sign"]
    assert f"RSA of {MIN_RSA_BITS} bits" in required and f"EC of {MIN_EC_BITS}" in required
    # The trust store and the signature policy agree, as the table says.
    assert (WSSE_POLICY.min_rsa_bits, WSSE_POLICY.min_ec_bits) == (MIN_RSA_BITS, MIN_EC_BITS)


def test_the_database_wait_row_gives_the_redis_timeout_too() -> None:
    (required,) = [r for _, r, s in policy_rows() if s == "`AZERSU_DB_TIMEOUT_S`"]
    assert f"a Redis replay store: {REDIS_TIMEOUT_S:g} s" in required


def _policy_uris(source: str) -> set[str]:
    (required,) = [r for _, r, s in policy_rows() if s == source]
    return set(_URI.findall(required))


def test_the_policy_table_names_exactly_the_accepted_algorithms() -> None:
    for name in ("c14n_methods", "signature_methods", "digest_methods"):
        shown = _policy_uris(f"`VerificationPolicy.{name}`")
        assert shown == getattr(WSSE_POLICY, name), f"the {name} row"
    assert _policy_uris("`VerificationPolicy.transform_chains`") == WSSE_POLICY.known_transforms
    # The row describes these two chains, in this order of transforms.
    assert WSSE_POLICY.transform_chains == {EXCLUSIVE_C14N_CHAIN, ENVELOPED_CHAIN}
    assert ENVELOPED_CHAIN == (ns.ENVELOPED, ns.EXC_C14N)


def test_the_refused_algorithms_are_refused_by_the_policy() -> None:
    (required,) = [r for rule, r, _ in policy_rows() if rule == "Refused"]
    refused = set(_URI.findall(required))
    assert {
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2000/09/xmldsig#sha1",
    } <= refused
    accepted = (
        WSSE_POLICY.c14n_methods
        | WSSE_POLICY.signature_methods
        | WSSE_POLICY.digest_methods
        | WSSE_POLICY.known_transforms
    )
    assert refused & accepted == set()


def test_the_required_references_are_body_and_timestamp() -> None:
    (required,) = [r for _, r, s in policy_rows() if s == "`WSSE_POLICY.required_references`"]
    assert WSSE_POLICY.required_references == {
        f"{{{ns.SOAP11_ENV}}}Body",
        f"{{{ns.WSU}}}Timestamp",
    }
    assert "`soap:Body`" in required and "`wsu:Timestamp`" in required


#: Modules whose names the "In the code" column may give.
_CODE_MODULES = (
    "service.signing.policy",
    "service.signing.wsse",
    "service.signing.trust",
    "service.signing.hardened_xml",
    "service.soap_gateway",
)


def _names_something(name: str) -> bool:
    head, _, attribute = name.partition(".")
    for module_name in _CODE_MODULES:
        module = importlib.import_module(module_name)
        if hasattr(module, head):
            return not attribute or hasattr(getattr(module, head), attribute)
    return False


def test_every_name_in_the_policy_tables_code_column_exists() -> None:
    named = 0
    for rule, _, source in policy_rows():
        if source == "–":
            continue
        for token in _BACKTICKED.findall(source):
            if token.startswith("AZERSU_"):
                assert token in _SETTING_DEFAULTS, f"{rule!r}: {token} is no setting"
            elif token.startswith("limit_request_"):
                assert hasattr(GunicornConfig(), token), f"{rule!r}: gunicorn has no {token}"
            else:
                assert _names_something(token), f"{rule!r}: {token} is not in the code"
            named += 1
    assert named > 30


def test_the_wsdl_address_section_names_the_setting_and_its_defaults() -> None:
    text = integration_section("### The WSDL's address")
    assert "`AZERSU_PUBLIC_URL`" in text
    assert f"`{Settings().resolved_public_url}`" in text  # make run's address
    snapshot = (SERVICE / "wsdl" / "billing_statement.wsdl").read_text(encoding="utf-8")
    (location,) = re.findall(r'address location="([^"]+)"', snapshot)
    assert f"`{location}`" in text


# --- faults and reasons ---


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def faultcodes_in_code() -> dict[str, str]:
    """Return every faultcode a class in service/ declares, as the wire shows it, and where."""
    found: dict[str, str] = {}
    for path in sorted(SERVICE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for statement in node.body:
                if (
                    isinstance(statement, ast.Assign)
                    and [getattr(t, "id", None) for t in statement.targets] == ["faultcode"]
                    and isinstance(statement.value, ast.Constant)
                ):
                    cls = getattr(importlib.import_module(_module_name(path)), node.name)
                    assert cls.faultcode == statement.value.value
                    label = f"wsse:{cls.faultcode}" if cls.fault_namespace else cls.faultcode
                    found[label] = f"{path.relative_to(ROOT)}:{node.name}"
    return found


def test_every_faultcode_in_the_code_has_a_row_and_no_other() -> None:
    in_code = faultcodes_in_code()
    assert {"Client.OneOperation", "wsse:InvalidSecurity", "Server.ReplayStoreUnavailable"} <= set(
        in_code
    )
    documented = set(keyed_rows(FAULT_HEADING))
    missing = {code: where for code, where in in_code.items() if code not in documented}
    assert missing == {}, "faultcodes without a row in docs/integration.md"
    assert documented - set(in_code) == set(), "rows for faultcodes the service doesn't send"


def test_every_fault_row_says_when_and_what_to_do() -> None:
    for code, cells in keyed_rows(FAULT_HEADING).items():
        assert len(cells) == 3 and len(cells[1]) > 10 and cells[2], f"the row of {code}"


def _security_fault_classes() -> dict[str, type[SecurityFault]]:
    found: dict[str, type[SecurityFault]] = {}
    pending: list[type[SecurityFault]] = [SecurityFault]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


_FAULT_CODES = "|".join(sorted({c.faultcode for c in _security_fault_classes().values()}))
#: ``#: ... (FailedCheck).`` -- the faultcode a Reason's comment in policy.py gives.
_COMMENT_FAULT = re.compile(rf"\(({_FAULT_CODES})\)")


def reasons_of_the_enum() -> set[tuple[str, str]]:
    """Return (reason, faultcode) of each Reason, the faultcode as its comment in policy.py says."""
    pairs = set()
    comment: list[str] = []
    for line in inspect.getsource(Reason).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            comment.append(stripped[2:])
        elif match := re.fullmatch(r'([A-Z0-9_]+) = "([a-z0-9_]+)"(?:\s*#.*)?', stripped):
            codes = _COMMENT_FAULT.findall(" ".join(comment))
            assert len(codes) == 1, f"Reason.{match.group(1)}: its comment names no faultcode"
            pairs.add((match.group(2), codes[0]))
            comment = []
    assert {reason for reason, _ in pairs} == {member.value for member in Reason}
    return pairs


def reasons_raised_in_code() -> set[tuple[str, str]]:
    """Return (reason, faultcode) of every WS-Security fault service/ raises with a known reason.

    A fault class called with a reason that is a string, a ``Reason`` member or a
    module constant, or a helper such as ``trust._refuse`` that returns one (its
    ``reason`` parameter); a reason passed through a variable is one of the
    ``Reason`` members, which :func:`reasons_of_the_enum` covers.
    """
    classes = _security_fault_classes()
    default = inspect.signature(SecurityFault.__init__).parameters["reason"].default
    pairs = set()
    for path in sorted(SERVICE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        # Helpers returning a fault: name -> (class, position of their reason parameter).
        helpers = {
            node.name: (classes[node.returns.id], [a.arg for a in node.args.args].index("reason"))
            for node in tree.body
            if isinstance(node, ast.FunctionDef)
            and isinstance(node.returns, ast.Name)
            and node.returns.id in classes
            and "reason" in [a.arg for a in node.args.args]
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id in helpers:
                cls, position = helpers[node.func.id]
            elif node.func.id in classes:
                cls, position = classes[node.func.id], 1
            else:
                continue
            argument = next((k.value for k in node.keywords if k.arg == "reason"), None)
            if argument is None and len(node.args) > position:
                argument = node.args[position]
            if argument is None:
                reason = default
            elif isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                reason = argument.value
            elif (
                isinstance(argument, ast.Attribute)
                and getattr(argument.value, "id", "") == "Reason"
            ):
                reason = Reason[argument.attr].value
            elif isinstance(argument, ast.Name) and argument.id in constants:
                reason = constants[argument.id]
            else:
                continue  # a variable: a Reason member chosen by the caller
            pairs.add((reason, cls.faultcode))
    return pairs


def test_every_reason_has_a_row_with_its_faultcode() -> None:
    rows = keyed_rows(REASON_HEADING)
    in_code = reasons_of_the_enum() | reasons_raised_in_code()
    assert {"signer_not_registered", "key_reference_unresolved", "xroad_unsigned"} <= {
        reason for reason, _ in in_code
    }
    missing = sorted({reason for reason, _ in in_code} - set(rows))
    assert missing == [], "reasons without a row in docs/integration.md"
    for reason, code in sorted(in_code):
        assert f"`wsse:{code}`" in rows[reason][1], f"{reason} is sent as wsse:{code}"
    assert set(rows) - {reason for reason, _ in in_code} == set(), "rows for unknown reasons"
    for reason, cells in rows.items():
        assert len(cells) == 4 and len(cells[2]) > 10 and cells[3], f"the row of {reason}"


def test_every_member_of_the_reason_enum_has_a_row() -> None:
    documented = set(keyed_rows(REASON_HEADING))
    assert {member.value for member in Reason} - documented == set()


def test_every_business_status_has_a_row() -> None:
    rows = keyed_rows(STATUS_HEADING)
    assert set(rows) == {status.value for status in Status}
    for status, cells in rows.items():
        assert len(cells) == 3 and cells[1] and cells[2], f"the row of {status}"


def test_check_request_prints_what_the_page_shows(
    pki: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The diagnosis example: a request that signs only the Body, as WSS4J does by default."""
    for name in [n for n in os.environ if n.startswith("AZERSU_")]:
        monkeypatch.delenv(name)
    certificate = x509.load_pem_x509_certificate(pki["portal.pem"].read_bytes())
    key = serialization.load_pem_private_key(pki["portal.key"].read_bytes(), None)
    portal = IssuedPair(key, certificate)  # type: ignore[arg-type]
    captured = tmp_path / "request.xml"
    captured.write_bytes(forge(portal, sign_timestamp=False).bytes())
    registered = ["--trusted-clients", fingerprint(certificate)]
    status = main(["check-request", str(captured), "--trust", str(pki["ca.pem"]), *registered])
    printed = capsys.readouterr().out.splitlines()
    text = integration_section("### Diagnosing a refusal: check-request first")
    (shown,) = re.findall(r"```text\n(.*?)```", text, re.DOTALL)
    assert status == 1
    assert printed == shown.splitlines()


def _slug(heading: str) -> str:
    """Return the anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_integration_pages_anchors_exist() -> None:
    text = INTEGRATION.read_text(encoding="utf-8")
    links = re.findall(r"\]\(((?:[\w-]+\.md)?)#([^)]+)\)", text)
    assert len(links) > 15
    for page, anchor in links:
        target = (ROOT / "docs" / page) if page else INTEGRATION
        headings = re.findall(r"^#{1,6} (.+)$", target.read_text(encoding="utf-8"), re.MULTILINE)
        assert anchor in {_slug(h) for h in headings}, f"{page or 'integration.md'}#{anchor}"


# --- relative links ------------------------------------------------------------------------------

#: Pages whose relative links must lead somewhere in the repository.
LINKED_PAGES = (
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "examples").glob("**/*.md")),
)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def relative_links(page: Path) -> list[tuple[str, Path, str]]:
    """Return (link, target path, anchor) of each relative link of a page, code blocks left out."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    found = []
    for link in _LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", link) or link.startswith("#"):
            continue  # a URL, or an anchor of the page itself (checked above for integration.md)
        path, _, anchor = link.partition("#")
        found.append((link, (page.parent / path).resolve(), anchor))
    return found


def tracked_files() -> set[Path] | None:
    """Return the files git tracks, or None outside a git checkout (a source archive)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {(ROOT / name).resolve() for name in listed.decode().split("\0") if name}


def test_the_link_reader_finds_relative_links_only(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "[a](../x/README.md) [b](#here) [c](https://example.org/a) ![d](img.png) "
        "[e](other.md#part)\n```sh\n[f](in-code.md)\n```\n",
        encoding="utf-8",
    )
    assert [(link, anchor) for link, _, anchor in relative_links(page)] == [
        ("../x/README.md", ""),
        ("img.png", ""),
        ("other.md#part", "part"),
    ]
    assert relative_links(page)[0][1] == (tmp_path.parent / "x" / "README.md").resolve()


@pytest.mark.parametrize("page", LINKED_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_lead_to_files_of_the_repository(page: Path) -> None:
    """A link to a file or folder that is not in a clean clone, or to a missing heading, fails."""
    tracked = tracked_files()
    for link, target, anchor in relative_links(page):
        assert target.is_relative_to(ROOT), f"{link}: outside the repository"
        assert target.exists(), f"{link}: no such file or folder"
        if tracked is not None:
            in_git = target in tracked or any(f.is_relative_to(target) for f in tracked)
            assert in_git, f"{link}: not tracked by git (not in a clean clone)"
        if anchor and target.suffix == ".md":
            headings = re.findall(r"^#{1,6} (.+)$", target.read_text(encoding="utf-8"), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{link}: no such heading"


def test_the_integration_page_links_the_kit_and_the_readme_links_the_docs() -> None:
    """The pages this check is for have links for it to check."""
    linked = {target for _, target, _ in relative_links(INTEGRATION)}
    for folder in ("java", "node", "python", "shell", "soapui"):
        assert (ROOT / "examples" / folder / "README.md").resolve() in linked, folder
    readme = {target for _, target, _ in relative_links(ROOT / "README.md")}
    assert INTEGRATION.resolve() in readme
