"""Several `appgw serve` instances on one PostgreSQL store, set up as the README says: they share
the store URL, the master key (APPGW_MASTER_KEY) and the admin token (APPGW_ADMIN_TOKEN); each
has its own data directory and binds the gateway's public frontend on its own address
(--frontend-address), as two machines would on theirs."""

from __future__ import annotations

import base64
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from builders import GatewayBuilder
from helpers import TOKEN, ServeProcess, start_serve

ADDRESSES = ("127.0.0.1", "127.0.0.2")  # instance A's and instance B's frontend address
PUBLIC_IP = (
    "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/publicIPAddresses/pip"
)


def start_both(url: str, root: Path, workers: int = 1) -> list[ServeProcess]:
    """Both at once, on the empty database: schema setup must not race."""
    env = {
        "APPGW_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "APPGW_ADMIN_TOKEN": TOKEN,
    }
    with ThreadPoolExecutor(len(ADDRESSES)) as pool:
        futures = [
            pool.submit(
                start_serve,
                root / f"instance-{index}",
                env,
                workers=workers,
                args=("--store-url", url, "--frontend-address", address),
            )
            for index, address in enumerate(ADDRESSES)
        ]
    started = [f.result() for f in futures if f.exception() is None]
    errors = [error for f in futures if (error := f.exception()) is not None]
    if errors:
        for server in started:
            server.stop()
        raise errors[0]
    return started


def gateway_document(backend_port: int, listener_port: int) -> dict[str, Any]:
    document = (
        GatewayBuilder()
        .pool("pool", "127.0.0.1")
        .settings("settings", backend_port)
        .listener("listener", listener_port)
        .rule("rule1", "listener", pool="pool", settings="settings")
        .build()
    )
    # A public frontend: each instance binds it on its own --frontend-address.
    document["properties"]["frontendIPConfigurations"][0]["properties"] = {
        "publicIPAddress": {"id": PUBLIC_IP}
    }
    return document


def answered_by(address: str, port: int) -> str | None:
    """Which backend answered a request through the listener on address:port (None: nothing)."""
    try:
        response = httpx.get(f"http://{address}:{port}/", timeout=5)
    except httpx.TransportError:
        return None
    return str(response.json()["backend"]) if response.status_code == 200 else None
