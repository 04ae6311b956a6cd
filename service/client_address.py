"""Who the client is: its address behind a trusted proxy, and what a limit counts by.

The worker bounds connections per client by :func:`client_key`, and the
public verification page its NOT_FOUND answers: both must count an attacker
the same way, or one limit could be dodged where the other holds.  Behind a
reverse proxy (HAProxy, ``deploy/haproxy/``) every connection comes from the
proxy: :func:`forwarded_client` takes the client from ``X-Forwarded-For``,
but only when the peer is a proxy the operator listed, and only the entry
that proxy wrote (the right-most one not itself a listed proxy), so that a
client cannot name itself.  (A fixed hop count, as in werkzeug's ProxyFix,
would believe a client that reaches the service directly.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_key(addr: Any) -> str:
    """Return what a per-client limit counts by: the IPv4 address, or the IPv6 /64.

    One IPv6 host is usually given a whole /64, so counting its single
    addresses would give an attacker as many limits as it likes.
    """
    host = addr[0] if isinstance(addr, tuple) else str(addr)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return host


def forwarded_client(peer: str, forwarded_for: str, proxies: Sequence[Network]) -> str:
    """Return the client's address: ``peer``, or what a trusted proxy forwarded.

    ``X-Forwarded-For: 198.51.100.9, 203.0.113.7`` from a trusted proxy
    10.0.0.5 names 203.0.113.7 (the address that proxy saw); from any other
    peer it is ignored.  An entry that is not an address ends the walk: the
    last trusted hop is taken instead.
    """
    if not proxies or not _is_proxy(peer, proxies):
        return peer
    client = peer
    for entry in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        try:
            ipaddress.ip_address(entry)
        except ValueError:
            break
        client = entry
        if not _is_proxy(entry, proxies):
            break
    return client


def _is_proxy(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in proxies)
