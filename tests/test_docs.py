"""The documentation says what the code does: every setting, and examples that work.

``docs/configuration.md`` is the one full table of settings: a field added to
:class:`service.settings.Settings` without a row there, a row for a variable
that is no setting, or a default that changed in the code but not on the page
fails here.  The ``call`` examples of the README and of ``docs/`` must name a
residential subscriber of the demo database that ``make run`` builds (the real
``init-demo`` command, with its defaults), under the FIN they show: a reader
who copies one gets a statement, not ``SUBSCRIBER_NOT_FOUND``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import SETTINGS_FILE_VARIABLE, Settings, env_name

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
