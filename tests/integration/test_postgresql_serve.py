"""Two real `appgw serve` instances on one PostgreSQL store: one gateway, served by both.

What the instances share is what the README says they must: the store URL, the master key
(APPGW_MASTER_KEY) and the admin token (APPGW_ADMIN_TOKEN). Each has its own data directory and
binds the gateway's public frontend on its own address (--frontend-address), as two machines
would on theirs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from backends import Backend, free_port, wait_until
from helpers import API_VERSION, TOKEN, gateway_id, gateway_url
from instances import ADDRESSES, answered_by, gateway_document, start_both
from postgresql import PostgresServer

pytestmark = pytest.mark.slow


def test_a_gateway_written_through_one_instance_is_served_by_the_other(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    first, second = Backend("first").start(), Backend("second").start()
    servers = start_both(postgres.new_database(), tmp_path)
    a, b = (
        httpx.Client(base_url=s.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        for s in servers
    )
    try:
        port = free_port()
        document = gateway_document(first.port, port)
        created = a.put(gateway_url(), json=document)
        assert created.status_code == 201, created.text

        # Instance B's worker picks it up from the store and serves it on B's own address.
        wait_until(lambda: answered_by(ADDRESSES[1], port) == "first", what="B to serve it")
        wait_until(lambda: answered_by(ADDRESSES[0], port) == "first", what="A to serve it")
        assert f"serving {gateway_id()} version 1" in servers[1].log_path.read_text()

        # A write through B (with A's etag) is what A's API returns and A's workers serve.
        current = b.get(gateway_url())
        assert current.status_code == 200 and current.json()["etag"] == created.json()["etag"]
        changed = current.json()
        changed["properties"]["backendHttpSettingsCollection"][0]["properties"]["port"] = (
            second.port
        )
        changed["tags"] = {"written-through": "B"}
        updated = b.put(gateway_url(), json=changed, headers={"If-Match": current.json()["etag"]})
        assert updated.status_code == 200, updated.text
        seen_by_a = a.get(gateway_url()).json()
        assert seen_by_a["etag"] == updated.json()["etag"]
        assert seen_by_a["tags"] == {"written-through": "B"}
        revisions = a.get(f"{gateway_id()}/revisions?api-version={API_VERSION}").json()["value"]
        assert [(r["version"], r["etag"]) for r in revisions] == [
            (1, created.json()["etag"]),
            (2, updated.json()["etag"]),
        ]
        wait_until(lambda: answered_by(ADDRESSES[0], port) == "second", what="A to follow B")
        wait_until(lambda: answered_by(ADDRESSES[1], port) == "second", what="B to apply it")

        # A stale etag is refused on either instance: one store, one current version.
        stale = a.put(gateway_url(), json=document, headers={"If-Match": created.json()["etag"]})
        assert stale.status_code == 412, stale.text
    finally:
        a.close()
        b.close()
        for server in servers:
            server.stop()
        first.stop()
        second.stop()


def test_an_unreachable_store_stops_serve_with_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://appgw:Hunter2Secret@127.0.0.1:{free_port()}/appgw"
    command = [sys.executable, "-m", "appgw", "serve", "--data-dir", str(tmp_path / "data"),
               "--admin-listen", "127.0.0.1:0", "--store-url", url]  # fmt: skip
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "appgw: cannot open the store postgresql://appgw:***@127.0.0.1:"
    )
    assert "Traceback" not in result.stderr
    assert "Hunter2Secret" not in result.stdout + result.stderr
