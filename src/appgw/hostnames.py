"""Tiny host-name helpers shared by the model, the data plane and certificates."""

from __future__ import annotations

import ipaddress


def is_ip_address(text: str) -> bool:
    """An IPv4 or IPv6 literal (never sent as SNI, RFC 6066)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
