"""Normalize and check what the citizen typed: the subscriber code and the FIN.

The checks answer in the order the contract fixes: an empty code, then a
malformed code, then a malformed FIN, then a FIN that disagrees with the
X-Road userId (the lookups that follow are in
:mod:`service.handlers.billing_statement`).
"""

from __future__ import annotations

import re
import unicodedata

from service.errors import FinInvalid, FinMismatch, SubscriberCodeEmpty, SubscriberCodeInvalid

#: The FIN (fərdi identifikasiya nömrəsi): 7 Latin capitals and digits, never
#: I or O (they would be confused with 1 and 0).
FIN_PATTERN = re.compile(r"[A-HJ-NP-Z0-9]{7}")


def normalize_subscriber_code(raw: str | None, pattern: re.Pattern[str]) -> str:
    """Return the trimmed subscriber code, or raise the business rejection."""
    code = (raw or "").strip()
    if not code:
        raise SubscriberCodeEmpty()
    # Full-width or Arabic-Indic digits would pass \d; the billing codes are ASCII.
    if not code.isascii() or not pattern.fullmatch(code):
        raise SubscriberCodeInvalid(f"code of {len(code)} characters does not match")
    return code


def normalize_fin(raw: str | None) -> str:
    """Return the FIN in upper case, or raise :class:`FinInvalid`.

    Lower-case input is accepted.  Only ASCII is upper-cased: the Turkish
    dotless/dotted i rules must not turn ``ı`` or ``i̇`` into a valid ``I``.
    """
    fin = unicodedata.normalize("NFC", (raw or "").strip())
    if not fin.isascii():
        raise FinInvalid("non-ASCII characters")
    fin = fin.upper()
    if not FIN_PATTERN.fullmatch(fin):
        raise FinInvalid(f"FIN of {len(fin)} characters does not match")
    return fin


def citizen_fin(citizen_fin: str | None, user_id_fin: str | None, has_user_id: bool) -> str:
    """Return the asking citizen's FIN from ``CitizenFin`` and the X-Road ``userId``.

    ``user_id_fin`` is the FIN part of a userId "AZ<FIN>" (None when the
    userId is absent or not Azerbaijani).  CitizenFin wins when given, and
    must then agree with the userId; without it the userId's FIN is used.
    """
    if citizen_fin is not None and citizen_fin.strip():
        fin = normalize_fin(citizen_fin)
        if has_user_id:
            try:
                other = normalize_fin(user_id_fin) if user_id_fin is not None else None
            except FinInvalid:
                other = None
            if other != fin:
                raise FinMismatch("CitizenFin and X-Road userId differ")
        return fin
    return normalize_fin(user_id_fin)
