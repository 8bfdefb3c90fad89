"""A data-plane worker process: follows the store, compiles versions, serves traffic.

Started by `appgw serve` (one per CPU by default); every worker binds the same listening
addresses with SO_REUSEPORT. It reads the store through the follower only, loads the health
board the monitor publishes, and publishes what it serves and what its traffic refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import os
import resource
import signal
import sys
from pathlib import Path

from appgw.compile.snapshot import Snapshot
from appgw.core.balancer import Balancer
from appgw.core.limits import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP,
    DEFAULT_SEND_TIMEOUT,
    ClientLimits,
    Http2Limits,
)
from appgw.dataplane.access_log import DEFAULT_FILES, DEFAULT_MAX_BYTES, AccessLog, Rotation
from appgw.dataplane.firewall_log import FIREWALL_LOG_FILE, FirewallLog
from appgw.dataplane.runtime import Runtime
from appgw.dataplane.services import Services
from appgw.dataplane.upstream import UpstreamPool
from appgw.state.board import BOARD_FILE, BoardReader
from appgw.state.files import state_dir
from appgw.state.follower import Follower
from appgw.state.sources import SOURCES_FILE, AppliedSources
from appgw.store.secrets import MasterKey
from appgw.store.sql import SqlStore
from appgw.supervised import supervisor_gone, supervisor_pid
from appgw.tasks import spawn
from appgw.tls import tickets
from appgw.tls.server import use_ticket_keys

# How often the health board is checked (a stat): a member leaves rotation within this.
BOARD_POLL_INTERVAL = 0.25
# How long a stopping worker lets in-flight requests finish.
SHUTDOWN_GRACE = 10.0
ACCESS_LOG_FILE = "access.log"
# How soon an orphaned worker notices and stops; also how often refusals are published.
MAINTENANCE_INTERVAL = 1.0
# "0" (or off/false/no) keeps OpenSSL's own per-worker ticket keys: a switch to compare
# resumption with and without sharing, and a way out should the ctypes path misbehave.
SHARED_TICKETS_ENV = "APPGW_SHARED_SESSION_TICKETS"
# Names the inherited pipe (its fd number, never the bytes: an environment is readable in
# /proc/<pid>/environ) through which `appgw serve` hands a new worker the ticket-key chain.
TICKET_KEYS_FD_ENV = "APPGW_TICKET_KEYS_FD"
# A handover is under 100 bytes; the bound keeps a wrong fd from being read without end.
_TICKET_HANDOVER_MAX_BYTES = 4096

log = logging.getLogger("appgw.dataplane")


class Worker:
    def __init__(
        self,
        data_dir: Path,
        store: SqlStore,
        frontend_address: str,
        instance: str,
        limits: ClientLimits,
        rotation: Rotation,
    ) -> None:
        self.state = state_dir(data_dir)
        self.instance = instance
        self.access_log = AccessLog(data_dir / ACCESS_LOG_FILE, rotation)
        self.firewall_log = FirewallLog(data_dir / FIREWALL_LOG_FILE, rotation)
        self.services = Services(
            pool=UpstreamPool(),
            balancer=Balancer(),
            access_log=self.access_log,
            instance_id=instance,
            limits=limits,
            firewall_log=self.firewall_log,
        )
        self.runtime = Runtime(self.services)
        self.board = BoardReader(self.state / BOARD_FILE)
        # The session-ticket chain, moved on by `maintain` (None: OpenSSL's own keys).
        self.ticket_keys: tickets.TicketKeys | None = None
        self.follower = Follower(
            store,
            frontend_address,
            self._apply,
            process=f"worker-{instance}",
            state=self.state,
            sources=AppliedSources(self.state / SOURCES_FILE),  # the monitor keeps it
        )

    async def _apply(self, gateway_key: str, snapshot: Snapshot | None) -> None:
        await self.runtime.apply(gateway_key, snapshot)
        if snapshot is None:
            return
        urls = {url for snap in self.runtime.snapshots.values() for url in snap.custom_error_urls}
        spawn(self.services.error_pages.refresh(urls))
        log.info("serving %s version %d", snapshot.gateway_id, snapshot.version)

    def load_board(self) -> None:
        """Take members in and out of rotation as the health monitor decided."""
        board = self.board.load_if_changed()
        if board is not None:
            self.services.balancer.unhealthy = board.unhealthy

    async def follow_board(self) -> None:
        while True:
            await asyncio.sleep(BOARD_POLL_INTERVAL)
            self.load_board()

    async def maintain(self, stop: asyncio.Event) -> None:
        parent = supervisor_pid()
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL)
            if supervisor_gone(parent):
                # `appgw serve` is gone (even kill -9): a worker must not serve on without it.
                log.error("the supervising appgw serve process exited; stopping")
                stop.set()
                return
            self.services.pool.close_expired()
            self.services.traffic.publish(self.state, self.instance)
            if self.ticket_keys is not None:
                # Even with no handshake to do it: a past period's chain value leaves memory.
                self.ticket_keys.advance()


def receive_ticket_keys(environ: dict[str, str] | None = None) -> tickets.TicketKeys | None:
    """The ticket-key chain `appgw serve` wrote into the pipe named by TICKET_KEYS_FD_ENV, the
    pipe then closed; None, said in the log, without one. Never raises."""
    env = os.environ if environ is None else environ
    text = env.pop(TICKET_KEYS_FD_ENV, None)
    if text is None:
        log.info("session tickets: no key chain from appgw serve; OpenSSL's own keys")
        return None
    try:
        fd = int(text)
    except ValueError:
        log.warning("session tickets: %s=%r is not a file descriptor", TICKET_KEYS_FD_ENV, text)
        return None
    data = bytearray()
    try:
        while chunk := os.read(fd, _TICKET_HANDOVER_MAX_BYTES - len(data)):
            data += chunk
            if len(data) >= _TICKET_HANDOVER_MAX_BYTES:
                break
        return tickets.decode_handover(bytes(data))
    except (OSError, ValueError) as error:
        log.warning("session tickets: the key chain from appgw serve is unusable (%s)", error)
        return None
    finally:
        data[:] = bytes(len(data))  # this copy at least does not outlive the read
        with contextlib.suppress(OSError):
            os.close(fd)


def share_session_tickets(
    keys: tickets.TicketKeys | None, environ: dict[str, str] | None = None
) -> bool:
    """Give this worker's TLS contexts the session-ticket keys of `keys` (the chain every worker
    of this `appgw serve` was handed, appgw.tls.tickets), once a self-test shows they work here;
    else OpenSSL keeps its own keys, said in one WARNING. Never raises."""
    env = os.environ if environ is None else environ
    if env.get(SHARED_TICKETS_ENV, "").strip().lower() in {"0", "off", "false", "no"}:
        log.info("session tickets: per-worker keys (%s is off)", SHARED_TICKETS_ENV)
        return False
    if keys is None:
        return False
    try:
        problem = tickets.self_test(keys)
    except Exception as error:  # whatever goes wrong here, the worker serves on
        problem = f"{type(error).__name__}: {error}"
    if problem is not None:
        log.warning(
            "session tickets are not shared between workers (%s): each worker uses OpenSSL's "
            "own keys, so a returning client resumes only on the worker that served it",
            problem,
        )
        return False
    use_ticket_keys(keys)
    log.info(
        "session tickets: keys shared with every worker of %s, rotated every %d s",
        "every instance given the same secret file" if keys.static else "this instance",
        keys.rotation_seconds,
    )
    return True


async def run(
    data_dir: Path,
    store_url: str,
    frontend_address: str,
    instance_id: str,
    limits: ClientLimits,
    rotation: Rotation,
) -> None:
    # serve set the store up; without waiting for the database this process serves from the
    # instance's copy while it is away (state/sources.py)
    master_key = MasterKey.load_or_create(data_dir)
    # Before any TLS context is made: every one of them gets the shared keys.
    ticket_keys = receive_ticket_keys()
    share_session_tickets(ticket_keys)
    store = SqlStore(store_url, master_key, set_up=False)
    worker = Worker(data_dir, store, frontend_address, instance_id, limits, rotation)
    worker.ticket_keys = ticket_keys
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker.load_board()
    await worker.follower.start(stop)
    background = [
        spawn(worker.follower.run(stop), name="follow the store"),
        spawn(worker.follow_board(), name="follow the health board"),
        spawn(worker.maintain(stop), name="maintenance"),
    ]
    print(f"appgw worker {instance_id} (pid {os.getpid()}) ready", flush=True)
    await stop.wait()
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    runtime = worker.runtime
    await runtime.close()
    deadline = loop.time() + SHUTDOWN_GRACE
    while any(listener.connections for listener in runtime.listeners.values()):
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.05)
    worker.services.metrics.flush()
    worker.access_log.close()
    worker.firewall_log.close()
    store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="appgw-worker")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--store-url", required=True)
    parser.add_argument("--frontend-address", default="0.0.0.0")
    parser.add_argument("--instance-id", default=str(os.getpid()))
    parser.add_argument("--client-header-timeout", type=float, default=DEFAULT_HEADER_TIMEOUT)
    parser.add_argument("--client-send-timeout", type=float, default=DEFAULT_SEND_TIMEOUT)
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS)
    parser.add_argument(
        "--max-connections-per-ip", type=int, default=DEFAULT_MAX_CONNECTIONS_PER_IP
    )
    parser.add_argument("--http2-limits", type=Http2Limits.parse, default=Http2Limits())
    parser.add_argument("--access-log-max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--access-log-files", type=int, default=DEFAULT_FILES)
    args = parser.parse_args(argv)
    # A crash in C (SIGSEGV, SIGBUS) prints the Python stack to serve's log, not just "-7".
    faulthandler.enable()
    limits = ClientLimits(
        args.client_header_timeout,
        args.client_send_timeout,
        args.max_connections,
        args.max_connections_per_ip,
        args.http2_limits,
    )
    # Every client connection is a descriptor: a worker holds tens of thousands of idle ones.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [worker {args.instance_id}] %(name)s: %(message)s",
    )
    rotation = Rotation(args.access_log_max_bytes, args.access_log_files)
    main_coroutine = run(
        args.data_dir, args.store_url, args.frontend_address, args.instance_id, limits, rotation
    )
    try:
        import uvloop
    except ImportError:  # uvloop is optional on platforms without it
        asyncio.run(main_coroutine)
    else:
        uvloop.run(main_coroutine)


if __name__ == "__main__":
    main()
