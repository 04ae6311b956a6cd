"""The answer to "did Azərsu issue this statement?": VALID, REVOKED or NOT_FOUND.

A lookup names a statement number and the SHA-256 of its SignatureValue
(the QR code's ``n`` and ``d``).  The number alone proves nothing: numbers
appear on paper that is shown around.  So the answer is VALID or REVOKED
only when the registry holds that number *with that digest*, and a wrong
digest gets exactly what an unknown number gets -- the page is no oracle of
which numbers exist.  The digests are compared in constant time, and a
number the registry doesn't hold is compared against a stand-in, so that the
comparison costs the same either way.

What an answer shows is public by design: issuer, issue time, the subscriber
code with all but its last four characters masked, the months and the three
totals, and a revocation.  Never a name, an address or a FIN (the registry
has none).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from service.registry import IssuedStatement, StatementRegistry

BAKU = ZoneInfo("Asia/Baku")
#: Longest statement number looked up (the registry's column).
NUMBER_MAX_CHARS = 64
#: Compared against when the registry holds no such number.
_STAND_IN = "0" * 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MONEY = Decimal("0.01")


class Result(StrEnum):
    """What a lookup found."""

    VALID = "VALID"
    REVOKED = "REVOKED"
    NOT_FOUND = "NOT_FOUND"


@dataclass(frozen=True)
class Answer:
    """A lookup's result and, unless NOT_FOUND, the statement it found."""

    result: Result
    statement: IssuedStatement | None = None

    @property
    def found(self) -> bool:
        """Return whether the registry holds the statement (valid or revoked)."""
        return self.result is not Result.NOT_FOUND


def normalize_number(raw: str) -> str:
    """Return a statement number as typed, trimmed and in upper case."""
    return raw.strip().upper()[: NUMBER_MAX_CHARS + 1]


def normalize_digest(raw: str) -> str:
    """Return a digest as printed (groups of eight, any case, spaces or colons) as 64 hex digits.

    Anything that is no such digest comes back as it is, and matches nothing.
    """
    compact = re.sub(r"[\s:]", "", raw).lower()
    return compact if _HEX64.fullmatch(compact) else raw


def look_up(registry: StatementRegistry, number: str, digest: str) -> Answer:
    """Return VALID or REVOKED only for a number the registry holds with that very digest."""
    number, digest = normalize_number(number), normalize_digest(digest)
    row = registry.find(number) if number and len(number) <= NUMBER_MAX_CHARS else None
    expected = row.signature_sha256 if row is not None else _STAND_IN
    matches = hmac.compare_digest(expected.encode("ascii"), digest.encode("utf-8", "replace"))
    if row is None or not matches:
        return Answer(Result.NOT_FOUND)
    return Answer(Result.REVOKED if row.revoked else Result.VALID, row)


def masked_code(code: str) -> str:
    """Return a subscriber code with all but its last four characters masked: ``*****0001``."""
    shown = 4 if len(code) > 4 else 0
    return "*" * (len(code) - shown) + code[len(code) - shown :]


def baku_time(moment: datetime) -> datetime:
    """Return a stored (UTC) time in Baku, to the second, as the statement shows it."""
    return moment.astimezone(BAKU).replace(microsecond=0)


def money_text(amount: Decimal) -> str:
    """Return an amount as the statement writes it: two decimals, ``144.00``."""
    return format(amount.quantize(_MONEY), "f")


def volume_text(volume: Decimal) -> str:
    """Return a consumption as the statement writes it: ``288``, ``12.5``, ``9.125``."""
    return format(volume.normalize(), "f")


def public_record(answer: Answer) -> dict[str, Any]:
    """Return the answer as ``GET /verify.json`` gives it (only ``result`` when NOT_FOUND)."""
    record: dict[str, Any] = {"result": answer.result.value}
    statement = answer.statement
    if statement is None:
        return record
    record.update(
        statementNumber=statement.statement_number,
        issuedAt=baku_time(statement.issued_at).isoformat(),
        issuer=statement.issuer,
        subscriberCodeMasked=masked_code(statement.subscriber_code),
        periodFrom=statement.period_from,
        periodTo=statement.period_to,
        totals={
            "consumptionM3": volume_text(statement.consumption_m3),
            "invoicedAmount": money_text(statement.invoiced_amount),
            "paidAmount": money_text(statement.paid_amount),
        },
        revokedAt=baku_time(statement.revoked_at).isoformat() if statement.revoked_at else None,
        revocationReason=statement.revocation_reason,
    )
    return record
