"""A data-plane worker process: follows the store, compiles versions, serves traffic.

Started by `appgw serve` (one per CPU by default); every worker binds the same listening
addresses with SO_REUSEPORT. This module is the only data-plane module that reads the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import signal
import sys
from pathlib import Path

from appgw.compile.gateway import CompileError
from appgw.dataplane.access_log import AccessLog
from appgw.dataplane.follow import VersionFollower
from appgw.dataplane.proxy import Balancer, Services
from appgw.dataplane.runtime import Runtime
from appgw.dataplane.upstream import UpstreamPool
from appgw.health.monitor import BOARD_FILE
from appgw.store.secrets import MasterKey
from appgw.store.sql import GatewayVersion, SqlStore
from appgw.supervised import supervisor_gone, supervisor_pid

# How often the store is asked for new versions: a committed version is live within a second.
POLL_INTERVAL = 0.25
# How long a stopping worker lets in-flight requests finish.
SHUTDOWN_GRACE = 10.0
ACCESS_LOG_FILE = "access.log"
PARENT_CHECK_INTERVAL = 1.0  # how soon an orphaned worker notices and stops

log = logging.getLogger("appgw.dataplane")


class Follower:
    def __init__(
        self, store: SqlStore, runtime: Runtime, frontend_address: str, data_dir: Path
    ) -> None:
        self.board_path = data_dir / BOARD_FILE
        self.board_changed = 0
        self.runtime = runtime
        self.versions = VersionFollower(store, frontend_address, self._apply)
        self.refreshing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.versions.start()

    async def poll_forever(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                await self.poll()
            except Exception:  # a store hiccup must not stop the traffic being served
                log.exception("following the store failed; retrying")

    def read_health_board(self) -> None:
        """Take members in and out of rotation as the health monitor decided."""
        try:
            changed = self.board_path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if changed == self.board_changed:
            return
        try:
            board = json.loads(self.board_path.read_text())
        except (OSError, ValueError):
            return  # replaced under us; the next poll reads the new one
        self.board_changed = changed
        self.runtime.services.unhealthy = frozenset(
            (str(g), str(p), str(s), str(a), str(f)) for g, p, s, a, f in board.get("unhealthy", [])
        )

    async def poll(self) -> None:
        self.read_health_board()
        await self.versions.poll()

    async def _apply(self, version: GatewayVersion) -> None:
        key = version.resource_id.casefold()
        if version.deleted:
            await self.runtime.apply(key, None)
            return
        try:
            snapshot = await asyncio.to_thread(self.versions.compile, version)
        except CompileError as error:
            log.error(
                "gateway %s version %d does not compile; still serving the previous one: %s",
                version.resource_id,
                version.version,
                "; ".join(d.message for d in error.diagnostics),
            )
            return
        await self.runtime.apply(key, snapshot)
        services = self.runtime.services
        urls = {url for snap in self.runtime.snapshots.values() for url in snap.custom_error_urls}
        # Kept in an attribute: a task nobody references may be garbage-collected mid-flight.
        self.refreshing = asyncio.get_running_loop().create_task(services.error_pages.refresh(urls))
        log.info("serving %s version %d", version.resource_id, version.version)


async def run(data_dir: Path, store_url: str, frontend_address: str, instance_id: str) -> None:
    store = SqlStore(store_url, MasterKey.load_or_create(data_dir))
    access_log = AccessLog(data_dir / ACCESS_LOG_FILE)
    services = Services(
        pool=UpstreamPool(), balancer=Balancer(), access_log=access_log, instance_id=instance_id
    )
    runtime = Runtime(services)
    follower = Follower(store, runtime, frontend_address, data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    follower.read_health_board()
    await follower.start()
    polling = loop.create_task(follower.poll_forever())
    maintenance = loop.create_task(_maintain(services, stop))
    print(f"appgw worker {instance_id} (pid {os.getpid()}) ready", flush=True)
    await stop.wait()
    polling.cancel()
    maintenance.cancel()
    await runtime.close()
    deadline = loop.time() + SHUTDOWN_GRACE
    while any(listener.connections for listener in runtime.listeners.values()):
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.05)
    services.metrics.flush()
    access_log.close()
    store.close()


async def _maintain(services: Services, stop: asyncio.Event) -> None:
    parent = supervisor_pid()
    while True:
        await asyncio.sleep(PARENT_CHECK_INTERVAL)
        if supervisor_gone(parent):
            # `appgw serve` is gone (even kill -9): a worker must not serve on without it.
            log.error("the supervising appgw serve process exited; stopping")
            stop.set()
            return
        services.pool.close_expired()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="appgw-worker")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--store-url", required=True)
    parser.add_argument("--frontend-address", default="0.0.0.0")
    parser.add_argument("--instance-id", default=str(os.getpid()))
    args = parser.parse_args(argv)
    # Every client connection is a descriptor: a worker holds tens of thousands of idle ones.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [worker {args.instance_id}] %(name)s: %(message)s",
    )
    main_coroutine = run(args.data_dir, args.store_url, args.frontend_address, args.instance_id)
    try:
        import uvloop
    except ImportError:  # uvloop is optional on platforms without it
        asyncio.run(main_coroutine)
    else:
        uvloop.run(main_coroutine)


if __name__ == "__main__":
    main()
