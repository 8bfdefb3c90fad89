"""Following the store: the current version of every gateway, then each newer one.

Shared by the data-plane workers and the health monitor, which must see the same versions and
compile them the same way. Bursts coalesce: of several new versions of one gateway only the
newest is applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from appgw.compile.gateway import compile_gateway
from appgw.compile.snapshot import Snapshot
from appgw.gc_pause import collector_paused
from appgw.store.sql import GatewayVersion, SqlStore


class VersionFollower:
    def __init__(
        self,
        store: SqlStore,
        frontend_address: str,
        apply: Callable[[GatewayVersion], Awaitable[None]],
    ) -> None:
        self.store = store
        self.frontend_address = frontend_address
        self.apply = apply
        self.seq = 0

    async def start(self) -> None:
        self.seq = await asyncio.to_thread(self.store.max_seq)
        for version in await asyncio.to_thread(self.store.current_all):
            await self.apply(version)

    async def poll(self) -> None:
        versions = await asyncio.to_thread(self.store.versions_after, self.seq)
        if not versions:
            return
        latest: dict[str, GatewayVersion] = {}
        for version in versions:  # oldest first: keep the newest per gateway
            latest[version.resource_id.casefold()] = version
        self.seq = versions[-1].seq
        for version in latest.values():
            await self.apply(version)

    def compile(self, version: GatewayVersion) -> Snapshot:
        """Blocking (certificates, TLS contexts): call it in a thread."""
        with collector_paused():
            return self._compile(version)

    def _compile(self, version: GatewayVersion) -> Snapshot:
        return compile_gateway(
            version.document,
            self.store.secrets(version),
            gateway_id=version.resource_id,
            seq=version.seq,
            version=version.version,
            running=version.operational_state == "Running",
            frontend_address=self.frontend_address,
        )
