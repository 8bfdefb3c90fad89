"""`appgw serve` starting on a PostgreSQL store it cannot use: it says what it waits for, and
stops in one line that names the store (never its password) and the reason: a server that
accepts TCP but never answers (within the connect timeout), or a role that may not create
appgw's tables (PostgreSQL 15 and later), with the GRANT that fixes it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from appgw.store.secrets import MasterKey
from appgw.store.sql import SqlStore, metadata
from postgresql import PostgresServer

pytestmark = pytest.mark.slow

PASSWORD = "Start5Sentinel"
# Python's start-up and appgw's imports on a busy machine, on top of the connect timeout.
START_UP_ALLOWANCE = 30.0  # still far below the 130 s of a store without a connect timeout


def serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appgw", "serve", "--data-dir", str(data_dir),
         "--admin-listen", "127.0.0.1:0", "--workers", "1", *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("APPGW_")},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("query", "flags"),
    [
        ("", ("--store-connect-timeout", "2")),
        # The URL's connect_timeout wins over the option.
        ("?connect_timeout=2", ("--store-connect-timeout", "300")),
    ],
    ids=["option", "url"],
)
def test_a_store_that_never_answers_stops_serve_within_the_connect_timeout(
    tmp_path: Path, query: str, flags: tuple[str, ...]
) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        shown = f"postgresql://appgw:***@127.0.0.1:{port}/appgw"
        started = time.monotonic()
        result = serve(
            tmp_path / "data",
            "--store-url", f"postgresql://appgw:{PASSWORD}@127.0.0.1:{port}/appgw{query}",
            *flags,
        )  # fmt: skip
        took = time.monotonic() - started
    assert result.returncode == 2, result.stdout + result.stderr
    assert took < 2 + START_UP_ALLOWANCE, took
    assert f"appgw: waiting for the store {shown} (connect timeout 2 s)\n" in result.stdout
    assert result.stderr == (
        f"appgw: cannot open the store {shown}: no answer within the connect timeout (2 s)\n"
    )
    assert PASSWORD not in result.stdout + result.stderr


def test_a_role_that_may_not_create_the_tables_is_told_the_grant(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    role = f"appgw_{uuid.uuid4().hex[:8]}"
    url = postgres.new_database()
    with psycopg.connect(url, autocommit=True) as owner:
        owner.execute(f"CREATE ROLE {role} LOGIN")
        # What PostgreSQL 15 and later do by default; said here so any version tests it.
        owner.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    as_role = url.replace("//postgres@", f"//{role}@")

    refused = serve(tmp_path / "data", "--store-url", as_role)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr == (
        f"appgw: cannot open the store {as_role}: its tables do not exist yet and role {role} "
        "may not create them in schema public (PostgreSQL 15 and later let only the database's "
        "owner create in schema public). As the owner or a superuser, run: "
        f"GRANT USAGE, CREATE ON SCHEMA public TO {role};\n"
    )

    with psycopg.connect(url, autocommit=True) as owner:  # what the message says to run
        owner.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
    store = SqlStore(as_role, MasterKey.load_or_create(tmp_path / "data"))
    try:
        assert store.max_seq() == 0
    finally:
        store.close()
    with psycopg.connect(as_role) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = %s",
            (role,),
        ).fetchone()
    assert tables == (len(metadata.tables),)
