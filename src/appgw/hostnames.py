"""Tiny host-name helpers shared by the model, the data plane and certificates."""

from __future__ import annotations

import ipaddress
import socket


def is_ip_address(text: str) -> bool:
    """An IPv4 or IPv6 literal (never sent as SNI, RFC 6066)."""
    # inet_pton first: validating Azure's 120,000 pool members with ipaddress alone took 0.6 s
    # of every PUT. It accepts exactly ipaddress's IPv4 forms (no leading zeros, four parts).
    try:
        socket.inet_pton(socket.AF_INET, text)
        return True
    except (OSError, ValueError):
        pass
    if ":" not in text:
        return False
    try:
        ipaddress.ip_address(text)  # IPv6, with scope ids too
    except ValueError:
        return False
    return True
