"""The verification page as HTML: one Jinja2 template, escaped by construction.

Every value goes through Jinja2's autoescaping, and the template names no
variable it is not given (``StrictUndefined``).  The page has no script, no
inline style and no remote resource: its one stylesheet is ``verify.css``,
served beside it, so the Content-Security-Policy can forbid everything else.
Links are relative (``verify``, ``verify.css``), so the page works under
whatever path a front proxy publishes it.

The output is a pure function of its inputs: a NOT_FOUND page is given no
number or digest, so the page for a wrong digest is byte for byte the page
for an unknown number.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2

from service.verification.lookup import (
    Answer,
    Result,
    baku_time,
    masked_code,
    money_text,
    volume_text,
)
from service.verification.texts import LANGUAGE_NAMES, LANGUAGES, TEXTS, month_name

#: Relative to the page, so that a proxy may publish it under any path.
PAGE_HREF = "verify"
CSS_HREF = "verify.css"
STYLESHEET = resources.files("service.verification") / "static" / "verify.css"


class State:
    """Which page is shown: the form, a result, or a refusal (the section's class)."""

    FORM = "form"
    VALID = "valid"
    REVOKED = "revoked"
    NOT_FOUND = "not-found"
    NOT_VERIFIED = "not-verified"
    LIMITED = "limited"
    UNAVAILABLE = "unavailable"
    BAD_REQUEST = "bad-request"


_STATE_OF_RESULT = {
    Result.VALID: State.VALID,
    Result.REVOKED: State.REVOKED,
    Result.NOT_FOUND: State.NOT_FOUND,
}
#: The texts' keys of each state's heading (its note is ``<key>_note``).
_HEADING = {
    State.VALID: "valid",
    State.REVOKED: "revoked",
    State.NOT_FOUND: "not_found",
    State.NOT_VERIFIED: "not_verified",
    State.LIMITED: "limited",
    State.UNAVAILABLE: "unavailable",
    State.BAD_REQUEST: "bad_request",
}


@dataclass(frozen=True)
class LanguageLink:
    """A link to the same page in another language."""

    code: str
    name: str
    href: str


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("service.verification", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@functools.cache
def stylesheet() -> bytes:
    """Return the page's stylesheet (read once)."""
    return STYLESHEET.read_bytes()


def _links(query: dict[str, str]) -> list[LanguageLink]:
    return [
        LanguageLink(
            code, LANGUAGE_NAMES[code], f"{PAGE_HREF}?{urlencode({**query, 'lang': code})}"
        )
        for code in LANGUAGES
    ]


def _render(lang: str, state: str, **values: Any) -> bytes:
    t = TEXTS[lang]
    heading_key = _HEADING.get(state)
    context: dict[str, Any] = {
        "lang": lang,
        "t": t,
        "state": state,
        "css_href": CSS_HREF,
        "action": PAGE_HREF,
        "heading": t[heading_key] if heading_key else "",
        "note": t[f"{heading_key}_note"] if heading_key else "",
        "result": "",
        "statement": None,
        "languages": _links({}),
    }
    context.update(values)
    return _environment().get_template("verify.html").render(context).encode("utf-8")


def form_page(lang: str) -> bytes:
    """Return the page without a lookup: the number-and-digest form and the file upload."""
    return _render(lang, State.FORM)


def result_page(lang: str, answer: Answer, number: str = "", digest: str = "") -> bytes:
    """Return the page of a lookup's answer.

    ``number`` and ``digest`` (what was looked up) only go into the language
    links of a statement that was found; a NOT_FOUND page never shows them.
    """
    state = _STATE_OF_RESULT[answer.result]
    values: dict[str, Any] = {"result": answer.result.value}
    statement = answer.statement
    if statement is not None and answer.found:
        t = TEXTS[lang]
        months = (
            f"{month_name(lang, statement.period_from)} – {month_name(lang, statement.period_to)}"
            if statement.period_from and statement.period_to
            else t["no_months"]
        )
        values["statement"] = {
            "number": statement.statement_number,
            "issuer": statement.issuer,
            "issued_at": _shown_time(statement.issued_at, t["utc"]),
            "code": masked_code(statement.subscriber_code),
            "months": months,
            "consumption": volume_text(statement.consumption_m3),
            "invoiced": money_text(statement.invoiced_amount),
            "paid": money_text(statement.paid_amount),
            "revoked_at": _shown_time(statement.revoked_at, t["utc"])
            if statement.revoked_at
            else "",
            "reason": statement.revocation_reason or "",
        }
        if number and digest:
            values["languages"] = _links({"n": number, "d": digest})
    return _render(lang, state, **values)


def not_verified_page(lang: str) -> bytes:
    """Return the page of an uploaded file whose signature does not verify."""
    return _render(lang, State.NOT_VERIFIED, result="NOT_VERIFIED")


def refusal_page(lang: str, state: str, seconds: int = 0) -> bytes:
    """Return the page of a refused lookup: LIMITED (with the wait), UNAVAILABLE, BAD_REQUEST."""
    note = TEXTS[lang][f"{_HEADING[state]}_note"].format(seconds=seconds)
    return _render(lang, state, note=note, result=state.upper().replace("-", "_"))


def _shown_time(moment: Any, utc: str) -> str:
    """Return a time as the printed statement shows it: ``07.12.2026 21:03:33 (UTC+04:00)``."""
    local = baku_time(moment)
    offset = local.isoformat()[-6:]
    return f"{local:%d.%m.%Y %H:%M:%S} ({utc}{offset})"
