"""How a version's secrets keep each SSL certificate: written by the API, read by compile.

The API decrypts an uploaded PFX once, in its PUT, and keeps the private key (PKCS#8 PEM) and
the chain (PEM, leaf first) under the master key: no worker or health monitor derives a PFX
key again, and neither the PFX nor its password is kept (Azure returns neither, and nothing
reads them). Versions stored before keep {"pfx" (base64), "password"}; they still load, through
load_pfx and its iteration caps, and the gateway's next PUT rewrites them in this form.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from appgw import certificates


def entry(
    name: str, certificate: certificates.ListenerCertificate, pfx_size: int
) -> dict[str, Any]:
    """What a version stores for an SSL certificate. `pfx_size` keeps the SKU's PFX size
    limit checkable when a later PUT keeps the certificate."""
    return {
        "name": name,
        "privateKey": certificate.private_key_pem().decode("ascii"),
        "certificateChain": certificate.chain_pem().decode("ascii"),
        "pfxSize": pfx_size,
    }


def load(
    stored: Mapping[str, Any], *, now: datetime | None = None, check_validity: bool = False
) -> certificates.ListenerCertificate:
    """The certificate a stored entry holds. Raises certificates.CertificateError."""
    if "privateKey" in stored:
        return certificates.load_listener_certificate(
            stored["privateKey"], stored["certificateChain"], now=now, check_validity=check_validity
        )
    return certificates.load_pfx(
        base64.b64decode(stored["pfx"]), stored["password"], now=now, check_validity=check_validity
    )


def pfx_size(stored: Mapping[str, Any]) -> int:
    if "pfxSize" in stored:
        return int(stored["pfxSize"])
    return len(base64.b64decode(stored["pfx"]))


def digest(stored: Mapping[str, Any]) -> bytes:
    """Equal for entries that hold the same key and chain (or the same PFX and password)."""
    fields = ("privateKey", "certificateChain") if "privateKey" in stored else ("pfx", "password")
    return hashlib.sha256(json.dumps([stored.get(name) for name in fields]).encode()).digest()
