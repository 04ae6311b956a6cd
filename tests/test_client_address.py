"""The client behind a trusted reverse proxy, and only behind one.

Behind HAProxy every connection comes from the proxy; the audit and the
verification page's limit must count the client it forwarded, while a
client that reaches the service directly must not be able to name itself
with an ``X-Forwarded-For`` of its own.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest
import requests

from service.app import create_app
from service.client_address import client_key, forwarded_client
from service.errors import ConfigurationError
from service.settings import Settings

PROXIES = (ipaddress.ip_network("10.0.0.5/32"), ipaddress.ip_network("192.168.7.0/24"))

FORWARDING = [
    # (peer, X-Forwarded-For, client taken)
    ("10.0.0.5", "203.0.113.7", "203.0.113.7"),  # HAProxy forwards its client
    ("10.0.0.5", "198.51.100.9, 203.0.113.7", "203.0.113.7"),  # what the client sent is not it
    ("10.0.0.5", "203.0.113.7, 192.168.7.20", "203.0.113.7"),  # through two listed proxies
    ("10.0.0.5", "", "10.0.0.5"),  # nothing forwarded: the proxy itself
    ("10.0.0.5", "garbage", "10.0.0.5"),  # not an address: the last trusted hop
    ("10.0.0.5", "203.0.113.7, unknown", "10.0.0.5"),
    ("10.0.0.5", "2001:db8::1", "2001:db8::1"),
    ("::ffff:10.0.0.5", "203.0.113.7", "203.0.113.7"),  # the proxy as an IPv4-mapped address
    ("203.0.113.66", "1.2.3.4", "203.0.113.66"),  # a direct client can't name itself
    ("10.0.0.6", "1.2.3.4", "10.0.0.6"),  # the next address is no proxy
]


@pytest.mark.parametrize(("peer", "forwarded_for", "client"), FORWARDING)
def test_the_client_is_what_a_trusted_proxy_forwarded(
    peer: str, forwarded_for: str, client: str
) -> None:
    assert forwarded_client(peer, forwarded_for, PROXIES) == client


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert forwarded_client("10.0.0.5", "203.0.113.7", ()) == "10.0.0.5"


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_a_limit_counts_an_ipv4_address_or_an_ipv6_64(address: str, key: str) -> None:
    assert client_key(address) == key


@pytest.mark.parametrize("listed", ["10.0.0.5", "10.0.0.0/8, 2001:db8::/32", "10.0.0.5 10.0.0.6"])
def test_trusted_proxies_are_addresses_or_networks(base_settings: Settings, listed: str) -> None:
    settings = dataclasses.replace(base_settings, trusted_proxies=listed).validate()
    assert all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network)
               for n in settings.trusted_proxy_networks)  # fmt: skip


def test_a_trusted_proxy_that_is_no_address_stops_the_start(base_settings: Settings) -> None:
    with pytest.raises(ConfigurationError) as refused:
        dataclasses.replace(base_settings, trusted_proxies="10.0.0.5, haproxy").validate()
    assert refused.value.setting == "AZERSU_TRUSTED_PROXIES"
    assert "'haproxy'" in str(refused.value)


@pytest.mark.parametrize(
    ("trusted_proxies", "recorded"),
    [
        ("127.0.0.1", "203.0.113.7"),  # the loopback peer is the listed proxy
        ("", "127.0.0.1"),  # no proxy listed: the header is the client's own claim
        ("10.0.0.5", "127.0.0.1"),  # another proxy listed
    ],
)
def test_the_audit_records_the_client_a_trusted_proxy_forwarded(
    settings: Settings, serve_app, tmp_path: Path, trusted_proxies: str, recorded: str
) -> None:
    app = create_app(
        dataclasses.replace(
            settings,
            audit_url=f"sqlite:///{tmp_path / 'audit.sqlite'}",
            trusted_proxies=trusted_proxies,
        )
    )
    server = serve_app(app)
    answer = requests.get(
        f"{server.base_url}/verify.json",
        params={"n": "AZS-20261207-000000000000", "d": "0" * 64},
        headers={"X-Forwarded-For": "203.0.113.7"},
        timeout=10,
    )
    assert answer.json() == {"result": "NOT_FOUND"}
    [record] = [e for e in app.audit.search() if e.outcome.startswith("VERIFY_")]
    assert record.remote_addr == recorded
