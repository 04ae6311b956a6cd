"""Settings: environment, settings file, defaults and their checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from service.errors import ConfigurationError
from service.settings import Settings, load_settings


def test_defaults_are_embedded_and_loopback() -> None:
    settings = load_settings({})
    assert settings.resolved_billing_url == "sqlite:///var/billing-demo.sqlite"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.subscriber_code_pattern == r"\d{6,12}"
    assert settings.report_period_pin is None


def test_environment_values_are_typed() -> None:
    settings = load_settings(
        {
            "AZERSU_BILLING_URL": "postgresql://billing@db/azersu",
            "AZERSU_PORT": "9090",
            "AZERSU_REPORT_PERIOD": "2026-02",
            "AZERSU_ISSUER": "“Azərsu” ASC — Gəncə",
            "PATH": "/usr/bin",
        }
    )
    assert settings.resolved_billing_url == "postgresql://billing@db/azersu"
    assert settings.port == 9090
    assert settings.report_period_pin == (2026, 2)
    assert settings.issuer == "“Azərsu” ASC — Gəncə"


def test_settings_file_and_environment_precedence(tmp_path: Path) -> None:
    path = tmp_path / "azersu.env"
    path.write_text(
        '# Azərsu\nAZERSU_PORT=9000\nAZERSU_ISSUER="Azərsu Şəki"\n\nAZERSU_WORKERS=3\n',
        encoding="utf-8",
    )
    settings = load_settings({"AZERSU_SETTINGS_FILE": str(path), "AZERSU_WORKERS": "5"})
    assert (settings.port, settings.issuer, settings.workers) == (9000, "Azərsu Şəki", 5)


@pytest.mark.parametrize(
    ("environ", "setting"),
    [
        ({"AZERSU_PORT": "eighty"}, "AZERSU_PORT"),
        ({"AZERSU_PORT": "0"}, "AZERSU_PORT"),
        ({"AZERSU_REPORT_PERIOD": "2026-13"}, "AZERSU_REPORT_PERIOD"),
        ({"AZERSU_REPORT_PERIOD": "02/2026"}, "AZERSU_REPORT_PERIOD"),
        ({"AZERSU_SUBSCRIBER_CODE_PATTERN": "(["}, "AZERSU_SUBSCRIBER_CODE_PATTERN"),
        ({"AZERSU_BILING_URL": "sqlite://"}, "AZERSU_BILING_URL"),  # misspelt: refused
        ({"AZERSU_SETTINGS_FILE": "/nonexistent/azersu.env"}, "AZERSU_SETTINGS_FILE"),
        ({"AZERSU_WORKER": "gevent"}, "AZERSU_WORKER"),  # one worker model: no such setting
        ({"AZERSU_PUBLIC_URL": "attacker.example/soap"}, "AZERSU_PUBLIC_URL"),
        ({"AZERSU_PUBLIC_URL": "http://a.example/soap?x=1"}, "AZERSU_PUBLIC_URL"),
        ({"AZERSU_REQUEST_TIMEOUT_S": "0"}, "AZERSU_REQUEST_TIMEOUT_S"),
        ({"AZERSU_MAX_CONNECTIONS_PER_CLIENT": "0"}, "AZERSU_MAX_CONNECTIONS_PER_CLIENT"),
        ({"AZERSU_VERIFY_URL": "e-xidmet.azersu.az/verify"}, "AZERSU_VERIFY_URL"),
        ({"AZERSU_VERIFY_URL": "https://e-xidmet.azersu.az/verify?x=1"}, "AZERSU_VERIFY_URL"),
        ({"AZERSU_VERIFY_URL": "javascript:alert(1)//x/"}, "AZERSU_VERIFY_URL"),
        ({"AZERSU_VERIFY_RATE_PER_MIN": "0"}, "AZERSU_VERIFY_RATE_PER_MIN"),
        ({"AZERSU_REGISTRY_RETENTION_DAYS": "0"}, "AZERSU_REGISTRY_RETENTION_DAYS"),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(environ)
    assert raised.value.setting == setting


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True), ("TRUE", True), (" True ", True), ("1", True), ("yes", True),
        ("YES", True), ("false", False), ("False", False), ("0", False), ("no", False),
        ("No", False),
    ],
)  # fmt: skip
def test_a_bool_setting_reads_true_false_one_zero_yes_no(text: str, expected: bool) -> None:
    settings = load_settings({"AZERSU_ACCEPT_ANY_CALLER_OF_CA": text})
    assert settings.accept_any_caller_of_ca is expected


def test_a_bool_setting_read_from_the_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "azersu.env"
    path.write_text("AZERSU_ACCEPT_ANY_CALLER_OF_CA=yes\n", encoding="utf-8")
    assert load_settings({"AZERSU_SETTINGS_FILE": str(path)}).accept_any_caller_of_ca is True
    assert load_settings({}).accept_any_caller_of_ca is False  # the default


@pytest.mark.parametrize("text", ["", "on", "off", "y", "2", "-1", "truee", "t", "enabled"])
def test_a_bool_setting_refuses_anything_else(text: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings({"AZERSU_ACCEPT_ANY_CALLER_OF_CA": text})
    assert raised.value.setting == "AZERSU_ACCEPT_ANY_CALLER_OF_CA"
    assert raised.value.problem == f"expected true or false, got {text!r}"


def test_bad_settings_file_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_text("PORT=1\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"bad.env:1"):
        load_settings({"AZERSU_SETTINGS_FILE": str(path)})


def test_settings_are_frozen_and_replaceable() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    assert dataclasses.replace(settings, port=1).port == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "http://127.0.0.1:8080/verify"),
        ({"AZERSU_HOST": "10.0.0.5", "AZERSU_PORT": "9000"}, "http://10.0.0.5:9000/verify"),
        ({"AZERSU_VERIFY_URL": "https://e-xidmet.azersu.az/verify"},
         "https://e-xidmet.azersu.az/verify"),
    ],
)  # fmt: skip
def test_the_verification_page_printed_statements_lead_to(
    environ: dict[str, str], expected: str
) -> None:
    assert load_settings(environ).resolved_verify_url == expected
