"""A store that cannot write, on a real `appgw serve`: a full file system, a read-only one, a
PostgreSQL that refuses or is gone, a damaged SQLite file. The API answers with an ARM error
(507 StorageFull, 503 StoreUnavailable), a write is all or nothing (version, operation and
activity entry together), and serve refuses to start on a damaged file, saying how to restore."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from backends import free_port
from builders import GatewayBuilder
from helpers import (
    API_VERSION,
    TOKEN,
    ServeProcess,
    fill,
    gateway_id,
    gateway_url,
    serving,
    small_file_system,
)
from postgresql import PostgresServer, read_only, running_postgres, stopped

pytestmark = pytest.mark.slow

GATEWAY = gateway_url("full")
ACTIVITY = (
    "/subscriptions/sub1/providers/Microsoft.Insights/eventtypes/management/values"
    f"?api-version={API_VERSION}&$filter=resourceUri eq '{gateway_id('full')}'"
)
SMALL_FS = "4m"  # room for serve's store, not for a large write once a filler takes the rest


def document(port: int, pools: int = 1, members: int = 1) -> dict[str, Any]:
    """A gateway; with many pools and members, a large document (about 40 bytes a member)."""
    builder = GatewayBuilder("full").settings("s", 80).listener("l", port)
    for index in range(pools):
        builder.pool(
            f"pool{index}", *(f"10.{index}.{n // 250}.{n % 250 + 1}" for n in range(members))
        )
    builder.rule("r", "l", pool="pool0", settings="s")
    return builder.build()


def client(server: ServeProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )


def history(api: httpx.Client) -> list[int]:
    answer = api.get(GATEWAY.replace("?", "/revisions?"))
    assert answer.status_code == 200, answer.text
    return [entry["version"] for entry in answer.json()["value"]]


def succeeded_writes(api: httpx.Client) -> int:
    events = api.get(ACTIVITY).json()["value"]
    return sum(1 for event in events if event["status"]["value"] == "Succeeded")


def test_a_full_file_system_is_a_507_and_nothing_half_written(tmp_path: Path) -> None:
    with small_file_system(tmp_path / "small", SMALL_FS) as small:
        store_url = f"sqlite:///{small / 'appgw.db'}"
        port = free_port()
        with (
            serving(
                tmp_path / "data", {"APPGW_ADMIN_TOKEN": TOKEN}, args=("--store-url", store_url)
            ) as server,
            client(server) as api,
        ):
            assert api.put(GATEWAY, json=document(port)).status_code == 201
            etag = api.get(GATEWAY).json()["etag"]
            filler = fill(small)
            large = document(port, pools=40, members=100)  # ~200 KB: the WAL must grow
            refused = api.put(GATEWAY, json=large)
            assert refused.status_code == 507, refused.text
            error = refused.json()["error"]
            assert error["code"] == "StorageFull", error
            assert "full" in error["message"]
            # Nothing of it was kept: not the version, not an activity entry, not an operation.
            assert api.get(GATEWAY).json()["etag"] == etag
            assert history(api) == [1]
            assert succeeded_writes(api) == 1
            # A full store still reads, and writes again once there is room.
            assert httpx.get(f"{server.base_url}/healthz").status_code == 200
            filler.unlink()
            accepted = api.put(GATEWAY, json=large)
            assert accepted.status_code == 200, accepted.text
            assert history(api) == [1, 2]
            assert succeeded_writes(api) == 2


# --- PostgreSQL -------------------------------------------------------------------------------


def _sql(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)  # type: ignore[arg-type]


@pytest.fixture
def pg_server(tmp_path: Path, postgres: PostgresServer) -> Iterator[tuple[ServeProcess, str]]:
    url = postgres.new_database()
    with serving(
        tmp_path / "data", {"APPGW_ADMIN_TOKEN": TOKEN}, args=("--store-url", url)
    ) as server:
        yield server, url


def test_postgresql_disk_full_in_the_activity_insert_keeps_nothing(
    pg_server: tuple[ServeProcess, str],
) -> None:
    """The database refuses the last statement of a write (the activity entry) as a full disk
    would (SQLSTATE 53100): the version before it is not committed either."""
    server, url = pg_server
    port = free_port()
    with client(server) as api:
        assert api.put(GATEWAY, json=document(port)).status_code == 201
        _sql(
            url,
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'could not extend file: No space left on device' "
            "USING ERRCODE = 'disk_full'; END $$",
            "CREATE TRIGGER full_disk BEFORE INSERT ON activity_log "
            "FOR EACH ROW EXECUTE FUNCTION refuse()",
        )
        refused = api.put(GATEWAY, json=document(port, pools=2))
        assert refused.status_code == 507, refused.text
        assert refused.json()["error"]["code"] == "StorageFull"
        _sql(url, "DROP TRIGGER full_disk ON activity_log")
        assert history(api) == [1]
        with psycopg.connect(url) as connection:
            operations = connection.execute("select count(*) from operations").fetchone()
        assert operations == (1,)
        assert succeeded_writes(api) == 1
        assert api.put(GATEWAY, json=document(port, pools=2)).status_code == 200


def test_a_read_only_postgresql_is_a_503(pg_server: tuple[ServeProcess, str]) -> None:
    server, url = pg_server
    port = free_port()
    with client(server) as api:
        assert api.put(GATEWAY, json=document(port)).status_code == 201
        read_only(url, True)
        try:
            refused = api.put(GATEWAY, json=document(port, pools=2))
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "StoreUnavailable"
            assert api.get(GATEWAY).status_code == 200
        finally:
            read_only(url, False)
        assert history(api) == [1]


def test_an_unreachable_postgresql_is_a_503(tmp_path: Path) -> None:
    with running_postgres() as own:
        url = own.new_database()
        with (
            serving(
                tmp_path / "data", {"APPGW_ADMIN_TOKEN": TOKEN}, args=("--store-url", url)
            ) as server,
            client(server) as api,
        ):
            assert api.put(GATEWAY, json=document(free_port())).status_code == 201
            with stopped(own):
                for answer in (api.get(GATEWAY), api.put(GATEWAY, json=document(free_port()))):
                    assert answer.status_code == 503, answer.text
                    assert answer.json()["error"]["code"] == "StoreUnavailable"
            assert api.get(GATEWAY).status_code == 200  # back once the database is


# --- a damaged SQLite file --------------------------------------------------------------------


def test_serve_refuses_a_damaged_store_and_says_how_to_restore(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serving(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}) as server, client(server) as api:
        for index in range(3):
            assert api.put(GATEWAY, json=document(free_port(), pools=index + 1)).status_code in {
                200,
                201,
            }
    database = data_dir / "appgw.db"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        root = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'gateway_versions'"
        ).fetchone()[0]
    connection.close()
    with database.open("r+b") as handle:  # garbage over the table's root page (after its header)
        handle.seek((root - 1) * page_size + 8)
        handle.write(os.urandom(page_size - 8))
    log = tmp_path / "refused.log"
    refused = subprocess.run(
        [sys.executable, "-m", "appgw", "serve", "--data-dir", str(data_dir),
         "--admin-listen", "127.0.0.1:0", "--workers", "1"],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "APPGW_ADMIN_TOKEN": TOKEN},
    )  # fmt: skip
    log.write_text(refused.stdout + refused.stderr)
    assert refused.returncode != 0, log.read_text()
    assert str(database) in refused.stderr, refused.stderr
    assert "damaged" in refused.stderr and ".recover" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr
