"""Following the store: the current version of every gateway, then each newer one as committed.

One class for the data-plane workers and the health monitor, which must see the same versions
and compile them the same way. The store's watch wakes it as soon as a version is committed
(LISTEN/NOTIFY on PostgreSQL, a cheap poll on SQLite); bursts coalesce: of several new versions
of one gateway only the newest is applied. After each round it publishes the seq it serves
(state/applied.py), which is what the API's operations wait for.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from appgw.compile.gateway import CompileError, compile_gateway
from appgw.compile.snapshot import Snapshot
from appgw.gc_pause import collector_paused
from appgw.state import applied
from appgw.store.sql import GatewayVersion, SqlStore

log = logging.getLogger("appgw.state")

# A wait on the store's watch ends after this even without news: the loop then checks the
# store itself, which bounds what a lost notification can delay.
WAIT_TIMEOUT = 1.0
# After a store error the next read waits this long: a database that is away is not hammered.
RETRY_DELAY = 1.0

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
    ) -> None:
        self.store = store
        self.frontend_address = frontend_address
        self.apply = apply
        self.process = process  # names this process in logs and in state/applied
        self.state = state  # where the applied seq is published (None: nowhere)
        self.on_round = on_round  # told the seq served after each round of versions
        self.seq = 0
        self.failed: dict[str, int] = {}  # gateway key -> seq of a version that did not compile

    async def start(self) -> None:
        """Serve the current version of every gateway."""
        self.seq = await asyncio.to_thread(self.store.max_seq)
        for version in await asyncio.to_thread(self.store.current_all):
            await self._apply(version)
        self._publish()

    async def run(self, stopping: asyncio.Event) -> None:
        """Apply every newer version as it is committed, until `stopping` is set."""
        watch = self.store.watch()
        try:
            while not stopping.is_set():
                await watch.wait(self.seq, WAIT_TIMEOUT)
                if stopping.is_set():
                    break
                try:
                    await self.poll()
                except Exception:  # a store hiccup must not stop what is being served
                    log.exception("%s: following the store failed; retrying", self.process)
                    await asyncio.sleep(RETRY_DELAY)
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
        self._publish()

    def compile(self, version: GatewayVersion) -> Snapshot:
        """Blocking (certificates, TLS contexts): call it in a thread."""
        with collector_paused():
            return compile_gateway(
                version.document,
                self.store.secrets(version),
                gateway_id=version.resource_id,
                seq=version.seq,
                version=version.version,
                running=version.operational_state == "Running",
                frontend_address=self.frontend_address,
            )

    async def _apply(self, version: GatewayVersion) -> None:
        key = version.resource_id.casefold()
        if version.deleted:
            self.failed.pop(key, None)
            await self.apply(key, None)
            return
        try:
            snapshot = await asyncio.to_thread(self.compile, version)
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

    def _publish(self) -> None:
        if self.state is not None:
            applied.publish(
                self.state, applied.Applied(self.process, os.getpid(), self.seq, self.failed)
            )
        if self.on_round is not None:
            self.on_round(self.seq)
