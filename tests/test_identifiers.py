"""Subscriber code and FIN rules, table-driven."""

from __future__ import annotations

import re

import pytest

from service.errors import FinInvalid, SubscriberCodeEmpty, SubscriberCodeInvalid
from service.identifiers import normalize_fin, normalize_subscriber_code
from service.settings import DEFAULT_SUBSCRIBER_CODE_PATTERN

PATTERN = re.compile(DEFAULT_SUBSCRIBER_CODE_PATTERN)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("123456", "123456"),
        ("123456789012", "123456789012"),
        ("  100000001 ", "100000001"),
        ("\t100000001\n", "100000001"),
        ("\u00a0100000001\u00a0", "100000001"),  # no-break spaces from a copy-paste
    ],
)
def test_valid_codes_are_trimmed(raw: str, expected: str) -> None:
    assert normalize_subscriber_code(raw, PATTERN) == expected


@pytest.mark.parametrize("raw", [None, "", "   ", "\t\n", "\u00a0"])
def test_empty_codes(raw: str | None) -> None:
    with pytest.raises(SubscriberCodeEmpty):
        normalize_subscriber_code(raw, PATTERN)


@pytest.mark.parametrize(
    "raw",
    [
        "12345",  # too short
        "1234567890123",  # too long
        "12345a",
        "123 456",
        "١٢٣٤٥٦٧",  # Arabic-Indic digits match \\d but are not billing codes
        "１２３４５６",  # full-width digits
        "123456\n7",
        "-123456",
        "' OR 1=1 --",
    ],
)
def test_invalid_codes(raw: str) -> None:
    with pytest.raises(SubscriberCodeInvalid):
        normalize_subscriber_code(raw, PATTERN)


def test_configured_pattern_is_used() -> None:
    letters = re.compile(r"[A-Z]{2}\d{4}")
    assert normalize_subscriber_code("AB1234", letters) == "AB1234"
    with pytest.raises(SubscriberCodeInvalid):
        normalize_subscriber_code("123456", letters)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5ZT3K9M", "5ZT3K9M"),
        ("5zt3k9m", "5ZT3K9M"),
        (" 7ab2c4d ", "7AB2C4D"),
        ("1234567", "1234567"),
    ],
)
def test_valid_fins(raw: str, expected: str) -> None:
    assert normalize_fin(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "5ZT3K9",  # 6 characters
        "5ZT3K9MM",  # 8 characters
        "5ZT3K9I",  # I is never used
        "5ZT3K9O",  # O is never used
        "5zt3k9ı",  # dotless ı must not become I
        "5ZT3K9İ",
        "5ZT-K9M",
        "5ZT3K9Ə",
    ],
)
def test_invalid_fins(raw: str | None) -> None:
    with pytest.raises(FinInvalid):
        normalize_fin(raw)
