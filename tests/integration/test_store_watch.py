"""SqlStore.watch(): a commit by any instance sharing the database wakes a watch at once
(PostgreSQL, LISTEN/NOTIFY) or within a poll (SQLite), and the PostgreSQL watch outlives its
connection, and the database refusing connections, without raising or spinning.

Real engines throughout: a throwaway PostgreSQL server (tests/postgresql.py) and SQLite files.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import uvloop

from appgw.store import watch as store_watch
from appgw.store.secrets import MasterKey
from appgw.store.sql import GatewayVersion, SqlStore, StoreError
from appgw.store.watch import StoreWatch
from helpers import gateway_id
from postgresql import PostgresServer

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]
# How soon after a commit a pending wait must return: on PostgreSQL a notification is a round
# trip (well under the 0.25 s the followers polled at); SQLite polls, so up to one interval plus
# scheduling, allowing for a second as the 2 cores are shared.
WAKE_WITHIN = {"postgresql": 0.2, "sqlite": 2 * store_watch.SQLITE_POLL_INTERVAL}
WAIT = 10.0  # for waits that must end early: long enough that ending by timeout is a failure

COMMITTER = """
import base64, sys, time
from appgw.store.secrets import MasterKey
from appgw.store.sql import SqlStore
url, key = sys.argv[1:3]
store = SqlStore(url, MasterKey(base64.b64decode(key)))
print("ready", flush=True)
sys.stdin.readline()
rid = "/subscriptions/sub1/resourceGroups/rg1/providers/x/y/from-another-process"
version = store.commit(rid, rid.casefold(), {}, {}, operational_state="Running", actor="other")
print(version.seq, time.monotonic(), flush=True)  # CLOCK_MONOTONIC: comparable across processes
store.close()
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'appgw.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture
def raw_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def stores(store_url: str, raw_key: bytes) -> Iterator[tuple[SqlStore, SqlStore]]:
    """Two instances sharing one database: the writer and the watching reader."""
    writer = SqlStore(store_url, MasterKey(raw_key))
    reader = SqlStore(store_url, MasterKey(raw_key))
    yield writer, reader
    writer.close()
    reader.close()


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner[Any]:
    """Both event loops: production runs the followers on uvloop."""

    def run_with(coroutine: Coroutine[Any, Any, T]) -> T:
        factory = uvloop.new_event_loop if request.param == "uvloop" else None
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coroutine)

    return run_with


def commit(store: SqlStore, name: str) -> tuple[GatewayVersion, float]:
    """A new version of gateway `name`, and when its commit returned."""
    resource_id = gateway_id(name)
    version = store.commit(
        resource_id, resource_id.casefold(), {"n": name}, {}, operational_state="Running", actor="t"
    )
    return version, time.monotonic()


async def timed_wait(watch: StoreWatch, after_seq: int, timeout: float) -> tuple[bool, float]:
    """wait(), and when it returned."""
    woke = await watch.wait(after_seq, timeout)
    return woke, time.monotonic()


async def started(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    task = asyncio.create_task(coroutine)
    await asyncio.sleep(0.01)  # let it get to its wait
    assert not task.done()
    return task


def listener_pids(url: str, *, via: str | None = None) -> list[int]:
    """The watch connections to the database of `url`, asking through `via` if given."""
    with psycopg.connect(via or url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            [url.rsplit("/", 1)[1], store_watch.APPLICATION_NAME],
        ).fetchall()
    return [row[0] for row in rows]


def admin(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement)


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


# --- waking --------------------------------------------------------------------------------------


def test_a_commit_wakes_a_watch_on_another_instance(
    stores: tuple[SqlStore, SqlStore], run: Runner[None]
) -> None:
    writer, reader = stores

    async def scenario() -> None:
        async with reader.watch() as watch:
            seq = reader.max_seq()
            begun = time.monotonic()
            assert not await watch.wait(seq, 0.3), "woke with nothing committed"
            # Ended by its timeout: uvloop's clock moves in steps of 1 ms, and the CPUs are shared.
            assert 0.29 <= time.monotonic() - begun < 1.0

            pending = await started(timed_wait(watch, seq, WAIT))
            version, committed_at = await asyncio.to_thread(commit, writer, "a")
            woke, woke_at = await pending
            assert woke
            assert woke_at - committed_at < WAKE_WITHIN[reader.dialect]
            assert [v.seq for v in reader.versions_after(seq)] == [version.seq]

            # Kept, not edge-triggered: a wait that starts after the commit returns at once.
            assert await watch.wait(seq, 0)
            assert not await watch.wait(version.seq, 0.05)

    run(scenario())


def test_a_commit_in_another_process_wakes_the_watch(
    store_url: str, stores: tuple[SqlStore, SqlStore], raw_key: bytes
) -> None:
    _, reader = stores
    process = subprocess.Popen(
        [sys.executable, "-c", COMMITTER, store_url, base64.b64encode(raw_key).decode()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    async def scenario() -> None:
        async with reader.watch() as watch:
            seq = reader.max_seq()
            assert not await watch.wait(seq, 0.1)  # watching now
            assert await asyncio.to_thread(stdout.readline) == "ready\n"
            pending = await started(timed_wait(watch, seq, WAIT))
            stdin.write("go\n")
            stdin.flush()
            committed_seq, committed_at = (await asyncio.to_thread(stdout.readline)).split()
            woke, woke_at = await pending
            assert woke
            assert woke_at - float(committed_at) < WAKE_WITHIN[reader.dialect]
            assert [v.seq for v in reader.versions_after(seq)] == [int(committed_seq)]

    try:
        asyncio.run(scenario())
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.wait()
        stdin.close()
        stdout.close()


def test_following_the_store_with_a_watch(
    stores: tuple[SqlStore, SqlStore], run: Runner[None]
) -> None:
    """A demonstration of the follower loop the data planes use: read whenever woken."""
    writer, reader = stores
    names = [f"gw{i}" for i in range(5)]

    async def follow(watch: StoreWatch, seq: int) -> list[GatewayVersion]:
        seen: list[GatewayVersion] = []
        while len(seen) < len(names):
            if await watch.wait(seq, timeout=1.0):
                batch = await asyncio.to_thread(reader.versions_after, seq)
                seen += batch
                seq = batch[-1].seq if batch else seq
        return seen

    def write_slowly() -> list[GatewayVersion]:
        written = []
        for name in names:
            written.append(commit(writer, name)[0])
            time.sleep(0.05)
        return written

    async def scenario() -> None:
        async with reader.watch() as watch:
            following = asyncio.create_task(follow(watch, reader.max_seq()))
            written = await asyncio.to_thread(write_slowly)
            written_at = time.monotonic()
            seen = await asyncio.wait_for(following, WAIT)
            assert [v.etag for v in seen] == [v.etag for v in written]
            # The pause after the last commit, then a wake-up and a read.
            assert time.monotonic() - written_at < WAKE_WITHIN[reader.dialect] + 0.1

    run(scenario())


# --- PostgreSQL: losing the connection -----------------------------------------------------------


def test_a_terminated_listener_reconnects_and_reports_a_possible_change(
    postgres_url: str, raw_key: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    writer, reader = (SqlStore(postgres_url, MasterKey(raw_key)) for _ in range(2))

    async def scenario() -> None:
        async with reader.watch() as watch:
            seq = reader.max_seq()
            assert not await watch.wait(seq, 0.1)  # listening now
            [first] = listener_pids(postgres_url)

            pending = await started(timed_wait(watch, seq, WAIT))
            terminated_at = time.monotonic()
            admin(postgres_url, f"SELECT pg_terminate_backend({first})")
            woke, woke_at = await pending
            assert woke, "no report after reconnecting"
            assert woke_at - terminated_at < store_watch.RECONNECT_DELAY_MIN + 1.0
            assert [pid for pid in listener_pids(postgres_url) if pid != first]
            assert not await watch.wait(seq, 0.1), "reported more than once"

            pending = await started(timed_wait(watch, seq, WAIT))
            version, committed_at = await asyncio.to_thread(commit, writer, "a")
            woke, woke_at = await pending
            assert woke and woke_at - committed_at < WAKE_WITHIN["postgresql"]

            # Someone else's notification on the channel: not a seq, so "may have changed".
            pending = await started(watch.wait(version.seq, WAIT))
            admin(postgres_url, f"NOTIFY {store_watch.NOTIFY_CHANNEL}, 'not a seq'")
            assert await asyncio.wait_for(pending, 1.0)

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
        reader.close()
    warnings = [r.message for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("store watch: lost the LISTEN connection")


def test_while_the_database_refuses_connections_the_watch_polls_slowly(
    postgres: PostgresServer,
    postgres_url: str,
    raw_key: bytes,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No exception reaches the caller, reconnects back off, waits return True now and then
    (the caller's own read is the fallback poll), and it recovers when the database does."""
    monkeypatch.setattr(store_watch, "RECONNECT_DELAY_MIN", 0.05)
    monkeypatch.setattr(store_watch, "RECONNECT_DELAY_MAX", 0.4)
    monkeypatch.setattr(store_watch, "FALLBACK_POLL_INTERVAL", 0.6)
    attempts: list[float] = []
    connect = psycopg.AsyncConnection.connect

    async def counted_connect(*args: Any, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        attempts.append(time.monotonic())
        return await connect(*args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", staticmethod(counted_connect))
    database = postgres_url.rsplit("/", 1)[1]
    writer, reader = (SqlStore(postgres_url, MasterKey(raw_key)) for _ in range(2))
    outage = 2.0

    async def scenario() -> None:
        async with reader.watch() as watch:
            seq = reader.max_seq()
            assert not await watch.wait(seq, 0.1)
            [pid] = listener_pids(postgres_url)
            admin(postgres.url(), f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin(postgres.url(), f"SELECT pg_terminate_backend({pid})")
            attempts.clear()
            reports: list[float] = []
            begun = time.monotonic()
            while time.monotonic() - begun < outage:
                if await watch.wait(seq, 0.1):  # never raises
                    reports.append(time.monotonic() - begun)
            assert not listener_pids(postgres_url, via=postgres.url())  # really disconnected
            # Backoff 0.05 s doubling to 0.4 s: about 6 attempts in 2 s, not hundreds.
            assert 3 <= len(attempts) <= outage / 0.4 + 4, attempts
            # At most one per FALLBACK_POLL_INTERVAL (0.6 s), at failed attempts: 2 or 3 in 2 s.
            assert 1 <= len(reports) <= 4, reports
            assert reports[0] >= 0.5, "reported before the interval"

            admin(postgres.url(), f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            begun = time.monotonic()
            woke, woke_at = await timed_wait(watch, seq, WAIT)
            assert woke and woke_at - begun < 0.4 + 0.5  # the next attempt, at most 0.4 s away
            await eventually(lambda: len(listener_pids(postgres_url)) == 1)
            while await watch.wait(seq, 0.1):  # a fallback report may still be due: drain it
                pass

            pending = await started(timed_wait(watch, seq, WAIT))
            _, committed_at = await asyncio.to_thread(commit, writer, "a")
            woke, woke_at = await pending
            assert woke and woke_at - committed_at < WAKE_WITHIN["postgresql"]

    try:
        asyncio.run(scenario())
    finally:
        admin(postgres.url(), f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        writer.close()
        reader.close()
    warnings = [r.message for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, "an outage is logged once, not at every attempt"
    assert warnings[0].startswith("store watch: lost the LISTEN connection")


# --- closing -------------------------------------------------------------------------------------


def test_close_ends_waits_and_releases_the_connection(
    store_url: str, stores: tuple[SqlStore, SqlStore]
) -> None:
    _, reader = stores

    def released() -> bool:
        if reader.dialect == "postgresql":
            return not listener_pids(store_url)
        return not [t for t in threading.enumerate() if t.name.startswith("appgw-store-watch")]

    async def scenario() -> None:
        unused = reader.watch()
        await unused.close()  # never waited on: nothing to release

        watch = reader.watch()
        seq = reader.max_seq()
        assert not await watch.wait(seq, 0.1)
        assert not released()
        pending = await started(timed_wait(watch, seq, WAIT))
        closed_at = time.monotonic()
        await watch.close()
        woke, woke_at = await pending
        assert not woke and woke_at - closed_at < 0.5
        await watch.close()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            await watch.wait(seq, 0.1)
        await eventually(released)

        with pytest.raises(ValueError, match="finite"):
            await reader.watch().wait(seq, float("inf"))

    asyncio.run(scenario())


def test_a_watch_outlives_its_event_loop(stores: tuple[SqlStore, SqlStore]) -> None:
    """asyncio.run() twice, as a follower's start-up and its loop may be: the second run gets a
    working watch (the first run's task was cancelled with its loop), and a commit wakes it."""
    writer, reader = stores
    watch = reader.watch()
    seq = reader.max_seq()
    assert not asyncio.run(watch.wait(seq, 0.1))

    async def second() -> None:
        pending = await started(timed_wait(watch, seq, WAIT))
        _, committed_at = await asyncio.to_thread(commit, writer, "a")
        woke, woke_at = await pending
        assert woke and woke_at - committed_at < WAKE_WITHIN[reader.dialect]
        await watch.close()

    asyncio.run(second())

    other = reader.watch()
    assert not asyncio.run(other.wait(reader.max_seq(), 0.1))
    asyncio.run(other.close())  # from a later loop: nothing left to cancel, the rest released


def test_the_listener_connection_takes_the_store_url_settings_first() -> None:
    # As SQLAlchemy's create_connect_args() gives them: with a psycopg adapter `context`.
    params = {"host": "db.example", "port": 5433, "application_name": "mine", "context": object()}
    conninfo = store_watch.listener_conninfo({**params, "keepalives_idle": "60"})
    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
        "host": "db.example",
        "port": "5433",
        "application_name": "mine",
        "keepalives": "1",
        "keepalives_idle": "60",
        "keepalives_interval": "5",
        "keepalives_count": "2",
        "tcp_user_timeout": "10000",
    }


def test_an_in_memory_sqlite_store_cannot_be_watched(raw_key: bytes) -> None:
    store = SqlStore("sqlite://", MasterKey(raw_key))
    try:
        with pytest.raises(StoreError, match="in-memory"):
            store.watch()
    finally:
        store.close()
