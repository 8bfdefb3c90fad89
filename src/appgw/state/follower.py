"""Following the store: the current version of every gateway, then each newer one as committed.

One class for the data-plane workers and the health monitor, which must see the same versions
and compile them the same way. The store's watch wakes it as soon as a version is committed
(LISTEN/NOTIFY on PostgreSQL, a cheap poll on SQLite); bursts coalesce: of several new versions
of one gateway only the newest is applied. After each round it publishes the seq it serves
(state/applied.py), which is what the API's operations wait for.

While the store is unreachable it keeps serving what it applied and says so in a few lines
(state/outage.py). A follower that starts then serves the instance's copy of what was last
applied (state/sources.py, written by the health monitor's follower) and follows the store
from that copy's seq once it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from appgw.compile.gateway import CompileError, compile_gateway
from appgw.compile.snapshot import Snapshot
from appgw.gc_pause import collector_paused
from appgw.state import applied
from appgw.state.outage import StoreOutage
from appgw.state.sources import AppliedSources, Source
from appgw.store.sql import GatewayVersion, SqlStore, StoreFailure

log = logging.getLogger("appgw.state")

# A wait on the store's watch ends after this even without news: the loop then checks the
# store itself, which bounds what a lost notification can delay.
WAIT_TIMEOUT = 1.0
# After a store error the next read waits this long, twice as long after each further one up
# to the last: a database that is away is not hammered, and one that is back is seen soon.
RETRY_DELAY = 1.0
LAST_RETRY_DELAY = 8.0

# (gateway key, the snapshot to serve, or None for a deleted or non-compiling gateway's end)
Apply = Callable[[str, Snapshot | None], Awaitable[None]]


class Follower:
    def __init__(
        self,
        store: SqlStore,
        frontend_address: str,
        apply: Apply,
        *,
        process: str,
        state: Path | None = None,
        on_round: Callable[[int], None] | None = None,
        sources: AppliedSources | None = None,
        keeps_sources: bool = False,
    ) -> None:
        self.store = store
        self.frontend_address = frontend_address
        self.apply = apply
        self.process = process  # names this process in logs and in state/applied
        self.state = state  # where the applied seq is published (None: nowhere)
        self.on_round = on_round  # told the seq served after each round of versions
        # The instance's copy of what it serves: read when the store is away at start, and
        # written after each round by the one follower that `keeps_sources`.
        self.sources = sources
        self.keeps_sources = keeps_sources
        self.outage = StoreOutage(process)
        self.seq = 0
        self.failed: dict[str, int] = {}  # gateway key -> seq of a version that did not compile

    async def start(self, stopping: asyncio.Event | None = None) -> None:
        """Serve the current version of every gateway: from the store, or, while it cannot be
        read, from the instance's copy; with neither, wait for the store (or `stopping`)."""
        delay = RETRY_DELAY
        while stopping is None or not stopping.is_set():
            try:
                seq = await asyncio.to_thread(self.store.max_seq)
                versions = await asyncio.to_thread(self.store.current_all)
                for version in versions:
                    await self._apply(version)
            except StoreFailure as error:
                copy = self.sources.load() if self.sources is not None else None
                if copy is not None:
                    await self._serve_copy(error, *copy)
                    return
                self.outage.failed(error, "nothing to serve until it answers")
                await _sleep(delay, stopping)
                delay = min(delay * 2, LAST_RETRY_DELAY)
                continue
            self.outage.recovered()
            self.seq = seq
            self._round_done()
            return

    async def run(self, stopping: asyncio.Event) -> None:
        """Apply every newer version as it is committed, until `stopping` is set."""
        watch = self.store.watch()
        delay = RETRY_DELAY
        try:
            while not stopping.is_set():
                await watch.wait(self.seq, WAIT_TIMEOUT)
                if stopping.is_set():
                    break
                try:
                    await self.poll()
                except StoreFailure as error:  # what is being served stays served
                    self.outage.failed(error, f"serving what was applied (store seq {self.seq})")
                    await _sleep(delay, stopping)
                    delay = min(delay * 2, LAST_RETRY_DELAY)
                    continue
                except Exception:  # a bug: said in full, and what is served stays served
                    log.exception("%s: following the store failed; retrying", self.process)
                    await _sleep(delay, stopping)
                    continue
                self.outage.recovered()
                delay = RETRY_DELAY
        finally:
            await watch.close()

    async def poll(self) -> None:
        versions = await asyncio.to_thread(self.store.versions_after, self.seq)
        if not versions:
            return
        latest: dict[str, GatewayVersion] = {}
        for version in versions:  # oldest first: keep the newest per gateway
            latest[version.resource_id.casefold()] = version
        for version in latest.values():
            await self._apply(version)
        self.seq = versions[-1].seq
        self._round_done()

    def compile(self, version: GatewayVersion, sealed_secrets: bytes) -> Snapshot:
        """Blocking (certificates, TLS contexts): call it in a thread."""
        with collector_paused():
            return compile_gateway(
                version.document,
                self.store.open_secrets(version, sealed_secrets),
                gateway_id=version.resource_id,
                seq=version.seq,
                version=version.version,
                running=version.operational_state == "Running",
                frontend_address=self.frontend_address,
            )

    async def _serve_copy(self, error: StoreFailure, seq: int, sources: list[Source]) -> None:
        """Serve the instance's copy while the store cannot be read at start."""
        self.outage.failed(
            error,
            f"serving the {len(sources)} gateway(s) this instance last applied (store seq {seq}) "
            "until it answers",
        )
        for source in sources:
            await self._apply(source.version, source.sealed_secrets)
        self.seq = seq
        self._round_done(keep_sources=False)  # the copy is what was just read

    async def _apply(self, version: GatewayVersion, sealed: bytes | None = None) -> None:
        """Serve `version` (its sealed secrets read from the store unless given)."""
        key = version.resource_id.casefold()
        if version.deleted:
            self.failed.pop(key, None)
            await self.apply(key, None)
            self._keep(key, None)
            return
        try:
            if sealed is None:
                sealed = await asyncio.to_thread(self.store.sealed_secrets, version)
            snapshot = await asyncio.to_thread(self.compile, version, sealed)
        except CompileError as error:
            # The API compiles every version before committing it, so this is another
            # appgw's version this one cannot serve, or a machine difference (OpenSSL).
            log.error(
                "gateway %s version %d does not compile here; still serving the previous one: %s",
                version.resource_id,
                version.version,
                "; ".join(d.message for d in error.diagnostics),
            )
            self.failed[key] = version.seq
            return
        self.failed.pop(key, None)
        await self.apply(key, snapshot)
        self._keep(key, Source(version, sealed))

    def _keep(self, key: str, source: Source | None) -> None:
        if self.keeps_sources and self.sources is not None:
            self.sources.applied(key, source)

    def _round_done(self, *, keep_sources: bool = True) -> None:
        if keep_sources and self.keeps_sources and self.sources is not None:
            self.sources.save(self.seq)
        if self.state is not None:
            applied.publish(
                self.state, applied.Applied(self.process, os.getpid(), self.seq, self.failed)
            )
        if self.on_round is not None:
            self.on_round(self.seq)


async def _sleep(seconds: float, stopping: asyncio.Event | None) -> None:
    """Sleep, ending early when `stopping` is set."""
    if stopping is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
