"""What a per-client limit counts by: the IPv4 address, or the IPv6 /64.

The worker bounds connections per client with it, and the public
verification page its NOT_FOUND answers: both must count an attacker the
same way, or one limit could be dodged where the other holds.
"""

from __future__ import annotations

import ipaddress
from typing import Any


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
