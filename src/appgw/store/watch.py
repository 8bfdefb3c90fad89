"""Waking followers as soon as the store may have a new version, instead of at their next poll.

`SqlStore.watch()` returns a `StoreWatch`. It does no I/O until first waited on; it then works in
that event loop (asyncio or uvloop), and only after that loop has ended may another use it. The
follower pattern (the store's own calls block: run them in a thread)::

    watch = store.watch()
    seq = store.max_seq()  # then serve store.current_all()
    while running:
        if await watch.wait(seq, timeout=1.0):
            versions = await asyncio.to_thread(store.versions_after, seq)  # may be empty
            seq = versions[-1].seq if versions else seq
            ...
    await watch.close()  # or: async with store.watch() as watch: ...

`wait(after_seq, timeout) -> bool` returns True as soon as a version with seq > after_seq may
exist, at once if one is already known to; False when `timeout` seconds pass without that (the
first wait starts the watch, which knows of no version before its first read of the database).
State is kept, not edge-triggered: a commit that lands between the caller's read and its next
wait() is not lost. Database trouble never raises into wait(): it is logged and retried in the
background. Many waits may be pending at once; close() ends them (they return False) and a wait
after close() raises RuntimeError.

PostgreSQL: `SqlStore.commit()` runs `pg_notify(NOTIFY_CHANNEL, '<seq>')` inside its transaction,
so the notification is delivered when, and only when, the version is visible. The watch LISTENs
on a connection of its own (psycopg AsyncConnection, autocommit, outside SQLAlchemy's pool) and
after LISTEN reads max(seq), so a commit made before it was listening is not missed either.
Every FALLBACK_POLL_INTERVAL it reads max(seq) again on that connection: a safety net for
writers that do not notify (an older appgw during an upgrade) and a liveness check. If the
connection breaks it reconnects after RECONNECT_DELAY_MIN, doubling to RECONNECT_DELAY_MAX, and
once listening again wakes every pending wait with True (notifications sent meanwhile are lost).
While it cannot connect, pending waits get True about every FALLBACK_POLL_INTERVAL, so callers
degrade to a slow poll of their own (which reaches the database through the store's pool).

SQLite: there is no cross-process notification, so a thread of the watch's own reads max(seq) on
a dedicated connection every SQLITE_POLL_INTERVAL (an index lookup, microseconds).
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from appgw.tasks import spawn

if TYPE_CHECKING:  # imported when a PostgreSQL watch starts: SQLite-only commands skip its cost
    import psycopg

log = logging.getLogger("appgw.store")


def one_line(error: BaseException) -> str:
    """An error as one line for a log: a database's reason often spans several."""
    return " ".join(str(error).split()) or type(error).__name__


# The channel commit() notifies on. Channels are per database, so stores in other databases of
# one server never wake each other's watches.
NOTIFY_CHANNEL = "appgw_versions"
# Shown in pg_stat_activity (unless the store URL names one), so operators can tell the
# listening connection from the pool's.
APPLICATION_NAME = "appgw store watch"
# Same as the followers' old poll: SQLite has no cross-process wake-up, and this is the latency
# the data plane was built around; the read is an index lookup, so 4 a second costs nothing.
SQLITE_POLL_INTERVAL = 0.25
# WAL readers wait only in rare cases (recovery after a crash); short, so close() is not held up.
SQLITE_BUSY_TIMEOUT = 1.0
# PostgreSQL safety net and liveness check while listening, and how often waits are woken while
# the listener cannot connect: slow, because notifications carry the normal case.
FALLBACK_POLL_INTERVAL = 5.0
# First pause before reconnecting: a terminated backend or a failover comes back quickly...
RECONNECT_DELAY_MIN = 0.5
# ...and the cap of its doubling, so a database that is down for long costs one attempt per 5 s.
RECONNECT_DELAY_MAX = 5.0
# Connecting, LISTEN and each max(seq) read take milliseconds; a stalled server or a dead network
# gets this long before the connection is given up and made again.
CONNECT_TIMEOUT = 10.0
QUERY_TIMEOUT = 10.0
# libpq options for the listening connection unless the URL sets them: it is idle for long
# stretches, and without keepalives a silently dead network would go unnoticed for hours
# (the max(seq) reads notice it too; these make the socket itself fail in about 15 s).
LISTENER_OPTIONS = {
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "5",
    "keepalives_count": "2",
    "tcp_user_timeout": "10000",  # ms of unacknowledged data before the socket is dropped
}


class StoreWatch(ABC):
    """Wakes waiters when a version newer than theirs may exist (see the module docstring)."""

    def __init__(self) -> None:
        self._seq = 0  # the highest seq known to exist (0: none yet)
        self._resets = 0  # how often "anything may have changed" was reported
        self._changed = asyncio.Event()  # set and replaced on every change: wakes all waiters
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def wait(self, after_seq: int, timeout: float) -> bool:
        """True once a version with seq > after_seq may exist; False after `timeout` seconds."""
        if self._closed:
            raise RuntimeError("the store watch is closed")
        if not 0 <= timeout < math.inf:  # also rejects NaN: every wait ends
            raise ValueError(f"timeout must be finite and >= 0, not {timeout!r}")
        self._start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        resets = self._resets
        while True:
            if self._seq > after_seq or self._resets != resets:
                return True
            remaining = deadline - loop.time()
            if self._closed or remaining <= 0:
                return False
            changed = self._changed
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                pass  # checked above, once more: a change may have come with the deadline

    async def close(self) -> None:
        """Stop watching and release the connection; pending waits return False. Idempotent."""
        self._closed = True
        self._wake()
        task, self._task = self._task, None
        # Not when it ran in an event loop that has ended: that cancelled it already.
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            # wait(), not `await task`: that would also swallow a cancellation of close() itself.
            await asyncio.wait([task])
        await self._release()

    async def __aenter__(self) -> StoreWatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- for the engines --------------------------------------------------------------------------

    @abstractmethod
    async def _run(self) -> None:
        """Watch until cancelled, calling _advance() and _report(); never raise."""

    @abstractmethod
    async def _release(self) -> None:
        """Free what _run() may leave behind once cancelled."""

    def _advance(self, seq: int) -> None:
        """A version with this seq exists."""
        if seq > self._seq:
            self._seq = seq
            self._wake()

    def _report(self) -> None:
        """Anything may have changed: wakes every pending wait with True."""
        self._resets += 1
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and not task.get_loop().is_closed():
            if task.get_loop() is not loop:
                raise RuntimeError("a store watch is used from one event loop at a time")
            return
        # Not started, crashed (a bug, logged below), or its loop has ended (asyncio.run() cancels
        # it on the way out): start it in this loop. Events bind to the loop of their first
        # waiter, so a new loop needs a new one.
        if task is not None and task.get_loop() is not loop:
            self._changed = asyncio.Event()
        # appgw.tasks logs a crash (a bug); the next wait restarts the watch.
        self._task = spawn(self._run(), name=f"appgw store watch {id(self):x}")


class PollingWatch(StoreWatch):
    """SQLite: reads max(seq) every SQLITE_POLL_INTERVAL on a dedicated connection and thread."""

    def __init__(self, path: str, max_seq_sql: str) -> None:
        super().__init__()
        self._path = path
        # Resolved now, as SQLAlchemy did: a later chdir must not make it another file. mode=rw:
        # a deleted store is an error, not a new empty file.
        self._uri = f"{Path(path).resolve().as_uri()}?mode=rw"
        self._max_seq_sql = max_seq_sql
        self._db: sqlite3.Connection | None = None
        # One thread, so the connection is only ever used by it, and polling never waits for
        # (or occupies) the default executor the followers' own reads run in.
        self._thread: ThreadPoolExecutor | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="appgw-store-watch")
        failing = False
        while True:
            try:
                seq = await loop.run_in_executor(self._thread, self._read)
            except sqlite3.Error as error:
                if not failing:  # once per outage: this repeats 4 times a second
                    log.warning("store watch: cannot read %s, retrying: %s", self._path, error)
                failing = True
            else:
                if failing:
                    log.info("store watch: reading %s again", self._path)
                failing = False
                self._advance(seq)
            await asyncio.sleep(SQLITE_POLL_INTERVAL)

    def _read(self) -> int:
        if self._db is None:
            # Autocommit (no read transaction left open between polls): each read sees the latest
            # commit, and the WAL is not pinned against checkpoints.
            self._db = sqlite3.connect(
                self._uri,
                uri=True,
                timeout=SQLITE_BUSY_TIMEOUT,
                isolation_level=None,
            )
        try:
            row = self._db.execute(self._max_seq_sql).fetchone()
        except sqlite3.Error:
            self._close_db()  # start afresh on the next poll
            raise
        return int(row[0] or 0)

    def _close_db(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    async def _release(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop = asyncio.get_running_loop()
        # After any read still under way (a cancelled run_in_executor does not stop the thread).
        await loop.run_in_executor(thread, self._close_db)
        await asyncio.to_thread(thread.shutdown, wait=True)  # no thread outlives close()


class ListeningWatch(StoreWatch):
    """PostgreSQL: LISTEN on a connection of its own; reconnects when it breaks."""

    def __init__(self, conninfo: str, max_seq_sql: str) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._max_seq_sql = max_seq_sql
        self._listening = False  # between LISTEN taking effect and the connection failing

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = RECONNECT_DELAY_MIN
        connected_once = False
        outage_logged = False
        last_report = loop.time()  # while not listening: a report every FALLBACK_POLL_INTERVAL
        while True:
            try:
                await self._listen(reconnecting=connected_once)
            except Exception as error:  # whatever broke it, the remedy is a new connection
                if self._listening:
                    self._listening = False
                    connected_once, delay, last_report = True, RECONNECT_DELAY_MIN, loop.time()
                    log.warning(
                        "store watch: lost the LISTEN connection, reconnecting: %s", one_line(error)
                    )
                    outage_logged = True
                elif not outage_logged:  # once per outage: attempts repeat every few seconds
                    log.warning("store watch: cannot LISTEN, retrying: %s", one_line(error))
                    outage_logged = True
                else:
                    log.debug("store watch: cannot LISTEN, retrying: %s", one_line(error))
            if loop.time() - last_report >= FALLBACK_POLL_INTERVAL:
                last_report = loop.time()
                self._report()  # still not listening: let the callers look for themselves
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY_MAX)

    async def _listen(self, *, reconnecting: bool) -> None:
        """LISTEN and handle notifications until the connection fails (raises) or cancellation."""
        import psycopg
        from psycopg import sql

        async with asyncio.timeout(CONNECT_TIMEOUT):
            connection = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        async with connection:  # closes it however this ends
            async with asyncio.timeout(QUERY_TIMEOUT):
                await connection.execute(
                    sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL))
                )
                await self._resync(connection)  # what was committed before LISTEN took effect
            self._listening = True
            if reconnecting:
                log.info("store watch: listening again")
                self._report()  # notifications sent while disconnected are lost
            while True:
                # aclosing: an unfinished notifies() generator would keep the connection locked.
                notifies = connection.notifies(timeout=FALLBACK_POLL_INTERVAL)
                async with aclosing(notifies):
                    async for notify in notifies:
                        self._notified(notify.payload)
                async with asyncio.timeout(QUERY_TIMEOUT):
                    await self._resync(connection)

    async def _resync(self, connection: psycopg.AsyncConnection[Any]) -> None:
        cursor = await connection.execute(self._max_seq_sql)
        row = await cursor.fetchone()
        self._advance(int(row[0] or 0) if row is not None else 0)

    async def _release(self) -> None:
        pass  # the connection is closed as _listen() is cancelled

    def _notified(self, payload: str) -> None:
        try:
            seq = int(payload)
        except ValueError:  # not one of ours (someone else on the channel): assume a change
            self._report()
        else:
            self._advance(seq)


def listener_conninfo(connect_params: Mapping[str, Any]) -> str:
    """The libpq conninfo for the listening connection, from the pool's connect() parameters."""
    from psycopg.conninfo import make_conninfo

    params = {name: value for name, value in connect_params.items() if name != "context"}
    params.setdefault("application_name", APPLICATION_NAME)
    for name, value in LISTENER_OPTIONS.items():
        params.setdefault(name, value)
    return make_conninfo("", **params)
