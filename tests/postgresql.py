"""A throwaway PostgreSQL server for the tests: its own cluster in a temp dir, 127.0.0.1 only.

initdb refuses to run as root, so as root the server runs as the `postgres` OS user (which the
Debian package creates). Missing server binaries fail the tests with the fix, never skip them:
`make test` installs the package (target system-deps).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from backends import free_port

INITDB_GLOB = "/usr/lib/postgresql/*/bin/initdb"
SERVER_USER = "postgres"
# A zone with a half-hour offset: any datetime the store hands back un-normalised shows up.
SERVER_TIME_ZONE = "Asia/Kolkata"
START_TRIES = 3  # the free port can be taken between choosing it and the server binding it


@dataclass(frozen=True)
class PostgresServer:
    port: int
    root: Path

    def url(self, database: str = "postgres") -> str:
        """In the form users type: the store maps it to the psycopg driver itself."""
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL. Cheaper than a cluster per test."""
        name = f"appgw_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def bin_dir() -> Path:
    found = sorted(glob.glob(INITDB_GLOB), key=lambda path: int(Path(path).parts[-3]))
    if not found:
        pytest.fail(
            f"PostgreSQL server binaries not found ({INITDB_GLOB}): the PostgreSQL store tests "
            "need them; run 'make system-deps' (it apt-installs the postgresql package)",
            pytrace=False,
        )
    return Path(found[-1]).parent


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        pytest.fail("running as root without runuser: cannot start PostgreSQL", pytrace=False)
    return ["runuser", "-u", SERVER_USER, "--"]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    binaries = bin_dir()
    prefix = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="appgw-pg-"))
    if prefix:
        shutil.chown(root, SERVER_USER, SERVER_USER)
    data = root / "data"
    log = root / "server.log"
    # Trust, and only from 127.0.0.1 (no Unix socket, no other address): a test cluster.
    _run([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", SERVER_USER,
          "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])  # fmt: skip
    (data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    pg_ctl = [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log)]
    for attempt in range(START_TRIES):
        port = free_port()
        # Durability off: the cluster is thrown away, and the tests are about concurrency.
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
            f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            f"-c timezone={SERVER_TIME_ZONE} -c max_connections=200"
        )
        try:
            _run([*pg_ctl, "-w", "-t", "30", "-o", options, "start"])
            break
        except RuntimeError:
            if attempt == START_TRIES - 1:
                shutil.rmtree(root, ignore_errors=True)
                raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text()}") from None
    try:
        yield PostgresServer(port, root)
    finally:
        # A test may have stopped it already (a store outage): stopping is then a no-op.
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def pg_ctl(server: PostgresServer, *args: str) -> None:
    """pg_ctl on the server's cluster, as the cluster's owner."""
    _run([*_as_server_user(), str(bin_dir() / "pg_ctl"), "-D", str(server.root / "data"), *args])


@contextmanager
def stopped(server: PostgresServer) -> Iterator[None]:
    """The server stopped for the block, then started again (with the options it ran with:
    postmaster.opts). Fast: the test clusters commit lazily, so there is nothing to wait for."""
    pg_ctl(server, "-m", "fast", "stop")
    try:
        yield
    finally:
        pg_ctl(server, "-l", str(server.root / "server.log"), "-w", "restart")


def read_only(url: str, on: bool) -> None:
    """Make every new transaction in the database of `url` read-only (as on a standby), or not
    again, and end its other sessions, which would keep the old setting."""
    database = url.rsplit("/", 1)[1]
    setting = "on" if on else "off"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET default_transaction_read_only = off")  # this session's own
        statement = f'ALTER DATABASE "{database}" SET default_transaction_read_only = {setting}'
        connection.execute(statement)
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server
