"""The health monitor: one prober per appgw instance, and the board every worker reads.

It runs in a process of its own beside the API and the workers, so probe load does not grow
with the number of workers. It follows the store like a worker (state/follower.py), probes every
member of every (pool, settings) pair a rule uses, and publishes the members that are out of
rotation on the health board (state/board.py), which workers load within a quarter second.
Results survive configuration changes for members whose probe did not change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

from appgw.compile.snapshot import (
    BackendMember,
    HealthKey,
    ProbeSpec,
    Snapshot,
    backend_where,
)
from appgw.health.probe import ProbeResult, run_probe
from appgw.observability import HealthMetrics
from appgw.state.board import BOARD_FILE, HealthBoard, publish
from appgw.state.files import state_dir
from appgw.state.follower import Follower
from appgw.state.sources import SOURCES_FILE, AppliedSources
from appgw.store.sql import SqlStore
from appgw.tasks import spawn
from appgw.tls.trust import describe_rejection

log = logging.getLogger("appgw.health")

# How long a report waits for the monitor to apply a version committed just before: the
# follower is woken by the commit itself and compiles in milliseconds to a second or two (a
# gateway at Azure's limits).
CATCH_UP_TIMEOUT = 10.0
V1_RETRY_INTERVAL = 1.0  # v1 sends its extra threshold probes in quick succession
# Probes in flight at once: each holds a descriptor of `appgw serve`, which also serves the API.
# At Azure's limits (100 pools x 1,200 members) unbounded probes took all 20,000 descriptors:
# the API stopped answering and members were marked Unhealthy with "Too many open files".
MAX_CONCURRENT_PROBES = 512
# State changes within this time are published in one board write: a write is O(members), and
# 120,000 members turning Healthy one by one made the first round quadratic.
BOARD_WRITE_DELAY = 0.05


@dataclass
class MemberHealth:
    gateway_key: str
    gateway_id: str
    sku_v1: bool
    spec: ProbeSpec
    member: BackendMember
    state: str = "Unknown"  # Healthy / Unhealthy / Unknown (Draining is decided at report time)
    consecutive_failures: int = 0
    last: ProbeResult | None = None
    last_success: dt.datetime | None = None
    last_failure: dt.datetime | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.gateway_key, self.spec.pool.name, self.spec.settings.name, self.member.address)


class HealthMonitor:
    def __init__(self, store: SqlStore, data_dir: Path, frontend_address: str) -> None:
        self.store = store
        self.state = state_dir(data_dir)
        self.board_path = self.state / BOARD_FILE
        self.frontend_address = frontend_address
        self.members: dict[tuple[str, str, str, str], MemberHealth] = {}
        self.metrics = HealthMetrics()
        self.snapshots: dict[str, Snapshot] = {}
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._thread, name="appgw-health", daemon=True)
        self.ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self.follower = Follower(
            store,
            frontend_address,
            self._apply,
            process="health",
            state=self.state,
            on_round=self._round_done,
            # One writer per instance of the copy workers start from without a store.
            sources=AppliedSources(self.state / SOURCES_FILE),
            keeps_sources=True,
        )
        # Notified after every round of versions the follower applied.
        self.caught_up = threading.Condition()
        self._probe_slots = asyncio.Semaphore(MAX_CONCURRENT_PROBES)
        self._board_due: asyncio.TimerHandle | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._write_board()
        self.thread.start()
        self.ready.wait(30)

    def stop(self) -> None:
        if self.loop is not None and self._stopping is not None:
            self.loop.call_soon_threadsafe(self._stopping.set)
        self.thread.join(10)

    def _thread(self) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # uvloop is optional
            loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        await self.follower.start(self._stopping)
        self.ready.set()
        await self.follower.run(self._stopping)
        for member in list(self.members.values()):
            if member.task is not None:
                member.task.cancel()

    async def _apply(self, gateway_key: str, snapshot: Snapshot | None) -> None:
        self._reconcile(gateway_key, snapshot)

    # --- probing ------------------------------------------------------------------------------

    def _reconcile(self, gateway_key: str, snapshot: Snapshot | None) -> None:
        wanted: dict[tuple[str, str, str, str], tuple[ProbeSpec, BackendMember]] = {}
        if snapshot is not None and snapshot.running:
            for spec in snapshot.probe_specs:
                for member in spec.pool.members:
                    wanted[(gateway_key, spec.pool.name, spec.settings.name, member.address)] = (
                        spec,
                        member,
                    )
        with self.lock:
            if snapshot is None:
                self.snapshots.pop(gateway_key, None)
            else:
                self.snapshots[gateway_key] = snapshot
            for key, member_health in list(self.members.items()):
                if key[0] != gateway_key:
                    continue
                spec_member = wanted.get(key)
                if spec_member is not None and snapshot is not None:
                    spec, member = spec_member
                    if spec != member_health.spec and _probed_alike(
                        member_health, spec, member, snapshot.sku_v1
                    ):
                        # Probed as before: its results and failure count still hold, and
                        # its loop probes with the new spec from the next round.
                        member_health.spec = spec
                        member_health.gateway_id = snapshot.gateway_id
                        continue
                if spec_member is None or spec_member[0] != member_health.spec:
                    # Probed otherwise (or no more): its health starts afresh, as Azure marks
                    # a backend unhealthy until a successful probe (see _record).
                    if member_health.task is not None:
                        member_health.task.cancel()
                    del self.members[key]
                    self.metrics.set_certificate_days(member_health.gateway_id, *key[1:], None)
            for key, (spec, member) in wanted.items():
                if key in self.members:
                    continue
                member_health = MemberHealth(
                    gateway_key=gateway_key,
                    gateway_id=snapshot.gateway_id if snapshot else gateway_key,
                    sku_v1=snapshot.sku_v1 if snapshot else False,
                    spec=spec,
                    member=member,
                )
                self.members[key] = member_health
                member_health.task = spawn(self._probe_forever(member_health))
        self._write_board()

    async def _probe_forever(self, member: MemberHealth) -> None:
        # Spread first probes over a moment so a large pool does not probe in one burst.
        await asyncio.sleep(random.uniform(0, min(0.2, member.spec.interval)))
        while True:
            async with self._probe_slots:
                result = await run_probe(member.spec, member.member, sku_v1=member.sku_v1)
            self._record(member, result)
            delay = member.spec.interval
            if member.sku_v1 and not result.healthy and member.state != "Unhealthy":
                delay = min(delay, V1_RETRY_INTERVAL)
            await asyncio.sleep(delay)

    def _record(self, member: MemberHealth, result: ProbeResult) -> None:
        with self.lock:
            before = member.state
            member.last = result
            if result.healthy:
                member.consecutive_failures = 0
                member.last_success = result.at
                member.state = "Healthy"
            else:
                member.consecutive_failures += 1
                member.last_failure = result.at
                # The threshold protects a member that was working from one bad probe; one that
                # never answered correctly is reported (and kept out) at its first failure.
                if (
                    member.consecutive_failures >= member.spec.unhealthy_threshold
                    or member.last_success is None
                ):
                    member.state = "Unhealthy"
            changed = member.state != before
        leaf = result.verdict.presented[0] if result.verdict and result.verdict.presented else None
        if leaf is not None:
            self.metrics.set_certificate_days(
                member.gateway_id,
                member.spec.pool.name,
                member.spec.settings.name,
                member.member.address,
                leaf.days_until_expiry(),
            )
        if changed:
            reason = (
                describe_rejection(result.verdict, result.identity.sni)
                if result.verdict is not None and not result.verdict.ok
                else result.message
            )
            where = backend_where(
                member.gateway_id,
                member.spec.pool.name,
                member.spec.settings,
                member.member.address,
                result.port,
            )
            # A member coming back is good news; only losing one needs attention.
            level = logging.INFO if member.state == "Healthy" else logging.WARNING
            log.log(level, "health probe: %s is %s: %s", where, member.state, reason)
            if self._board_due is None:
                self._board_due = asyncio.get_running_loop().call_later(
                    BOARD_WRITE_DELAY, self._write_due_board
                )

    def _write_due_board(self) -> None:
        self._board_due = None
        self._write_board()

    def _write_board(self) -> None:
        """Atomically publish who is out of rotation (minServers keeps some in)."""
        with self.lock:
            groups: dict[tuple[str, str, str], list[MemberHealth]] = {}
            for member in self.members.values():
                groups.setdefault(member.key[:3], []).append(member)
            out: set[HealthKey] = set()
            for group in groups.values():
                down = down_of(group)
                healthy = len(group) - len(down)
                keep = max(0, group[0].spec.min_servers - healthy)
                out.update(HealthKey(*m.key, m.spec.fingerprint) for m in down[keep:])
            # Labelled by the resource id as stored, as the data plane labels its metrics.
            counts = {
                (group[0].gateway_id, key[1], key[2]): (
                    len(group) - len(down_of(group)),
                    len(down_of(group)),
                )
                for key, group in groups.items()
            }
        for (gateway, pool, settings), (up, down_count) in counts.items():
            self.metrics.set_host_counts(gateway, pool, settings, up, down_count)
        self.metrics.forget(set(counts))
        publish(self.board_path, HealthBoard(frozenset(out)))

    # --- reports --------------------------------------------------------------------------------

    def members_of(self, gateway_key: str) -> list[MemberHealth]:
        with self.lock:
            return [m for m in self.members.values() if m.gateway_key == gateway_key]

    def snapshot_of(self, gateway_key: str) -> Snapshot | None:
        with self.lock:
            return self.snapshots.get(gateway_key)

    def current_snapshot(self, gateway_key: str) -> Snapshot | None:
        """The gateway as committed now: an on-demand probe right after a PUT must see that
        PUT, so this waits (at most CATCH_UP_TIMEOUT) until the monitor applied it."""
        version = self.store.current(gateway_key)
        if version is None:
            return None
        with self.caught_up:
            self.caught_up.wait_for(
                lambda: self.follower.seq >= version.seq, timeout=CATCH_UP_TIMEOUT
            )
        return self.snapshot_of(gateway_key)

    def _round_done(self, seq: int) -> None:
        with self.caught_up:
            self.caught_up.notify_all()

    def probe_now(self, spec: ProbeSpec, sku_v1: bool, timeout: float) -> list[ProbeResult]:
        """Run one probe of every member now (the portal's "Test"); thread-safe, blocking."""
        assert self.loop is not None

        async def all_members() -> list[ProbeResult]:
            return list(
                await asyncio.gather(
                    *(run_probe(spec, member, sku_v1=sku_v1) for member in spec.pool.members)
                )
            )

        future = asyncio.run_coroutine_threadsafe(all_members(), self.loop)
        return future.result(timeout + 5)


def _probed_alike(
    member: MemberHealth, spec: ProbeSpec, backend: BackendMember, sku_v1: bool
) -> bool:
    return member.sku_v1 == sku_v1 and member.spec.probe_of(
        member.member, sku_v1=sku_v1
    ) == spec.probe_of(backend, sku_v1=sku_v1)


def down_of(group: list[MemberHealth]) -> list[MemberHealth]:
    return [m for m in group if m.state == "Unhealthy"]
