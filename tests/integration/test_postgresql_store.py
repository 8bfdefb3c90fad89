"""The SQL store on both engines (SQLite and a real PostgreSQL), and what only concurrency shows.

Concurrency here is real: several connections (threads, and processes for the writers' test) on
one database, and followers reading `versions_after` the way the data planes do.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from appgw.control.auth import ensure_admin_token, hash_token
from appgw.state.follower import Follower
from appgw.store import sql
from appgw.store.secrets import MasterKey, SecretsError
from appgw.store.sql import (
    ActivityEvent,
    GatewayVersion,
    LinkChanged,
    PolicyInUse,
    PreconditionFailed,
    Recommit,
    SqlStore,
    StoreError,
)
from backends import free_port
from helpers import TOKEN, gateway_id
from postgresql import PostgresServer

T = TypeVar("T")
THREADS = 8  # more writers than the 2 cores: they really do overlap on the server
INDIA = timezone(timedelta(hours=5, minutes=30))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'appgw.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def raw_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def key(raw_key: bytes) -> MasterKey:
    return MasterKey(raw_key)


@pytest.fixture
def store(store_url: str, key: MasterKey) -> Iterator[SqlStore]:
    opened = SqlStore(store_url, key)
    yield opened
    opened.close()


def commit(
    store: SqlStore, name: str, rg: str = "rg1", *, tags: dict[str, str] | None = None, **kw: Any
) -> GatewayVersion:
    resource_id = gateway_id(name, rg)
    return store.commit(
        resource_id,
        resource_id.casefold(),
        {"location": "local", "tags": tags or {}, "properties": {"note": "ünïcode ✓"}},
        {"appGatewaySslCert": {"data": "AAEC/w==", "password": "pässwörd"}},
        operational_state="Running",
        actor="tester",
        **kw,
    )


def key_of(name: str, rg: str = "rg1") -> str:
    return gateway_id(name, rg).casefold()


def all_at_once(count: int, action: Callable[[int], T]) -> list[T | BaseException]:
    """Run action(i) in `count` threads released together; results or exceptions, in order."""
    barrier = threading.Barrier(count)
    results: list[T | BaseException] = [RuntimeError("did not run")] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except BaseException as error:  # the test inspects every outcome
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# --- URLs and start-up ---------------------------------------------------------------------------


def test_plain_postgresql_urls_use_psycopg(postgres: PostgresServer, key: MasterKey) -> None:
    url = postgres.new_database()
    assert url.startswith("postgresql://")
    for form in (url, url.replace("postgresql://", "postgres://", 1)):
        store = SqlStore(form, key)
        try:
            assert store.dialect == "postgresql"
            with store._engine.connect() as conn:  # the driver really in use
                assert conn.dialect.driver == "psycopg"
                assert conn.execute(sa.text("select 1")).scalar() == 1
        finally:
            store.close()


def test_unusable_store_urls_fail_clearly(postgres: PostgresServer, key: MasterKey) -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        SqlStore("not a url", key)
    with pytest.raises(StoreError, match="neither sqlite:/// nor postgresql://"):
        SqlStore("mysql://user@127.0.0.1/appgw", key)
    nothing_there = f"postgresql://appgw:Hunter2Secret@127.0.0.1:{free_port()}/appgw"
    with pytest.raises(StoreError, match="cannot open the store") as raised:
        SqlStore(nothing_there, key)
    assert "Hunter2Secret" not in str(raised.value), "the database password was shown"
    assert "127.0.0.1" in str(raised.value)
    with pytest.raises(StoreError, match='database "no_such_database" does not exist'):
        SqlStore(postgres.url("no_such_database"), key)


def test_a_store_opens_only_with_its_master_key(store_url: str, key: MasterKey) -> None:
    SqlStore(store_url, key).close()
    SqlStore(store_url, key).close()  # reopening: the check row is there and matches
    with pytest.raises(SecretsError, match="do not decrypt with this master key"):
        SqlStore(store_url, MasterKey(os.urandom(32)))


def test_instances_starting_together_on_an_empty_database(store_url: str, key: MasterKey) -> None:
    """Schema creation, the key-check row and the shared admin token: each exactly once."""

    def start(_: int) -> str | None:
        store = SqlStore(store_url, key)
        try:
            return ensure_admin_token(store, {"APPGW_ADMIN_TOKEN": TOKEN})
        finally:
            store.close()

    outcomes = all_at_once(THREADS, start)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, errors
    store = SqlStore(store_url, key)
    try:
        assert store.token_name(hash_token(TOKEN)) == "admin"
        with store._engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from meta")).scalar() == 2
            assert conn.execute(sa.text("select count(*) from tokens")).scalar() == 1
    finally:
        store.close()


# --- versions, history, preconditions ------------------------------------------------------------


def test_versions_preconditions_and_history(store: SqlStore) -> None:
    first = commit(store, "a", if_none_match="*")
    assert (first.version, first.deleted) == (1, False)
    with pytest.raises(PreconditionFailed):
        commit(store, "a", if_none_match="*")
    with pytest.raises(PreconditionFailed):
        commit(store, "a", if_match='W/"not-the-etag"')
    second = commit(store, "a", if_match=first.etag, tags={"n": "2"})
    third = commit(store, "a", if_match=second.etag.removeprefix("W/"))  # strong form matches
    current = store.current(key_of("a"))
    assert current is not None and current.etag == third.etag and current.version == 3
    gone = commit(store, "a", if_match="*", deleted=True)
    assert store.current(key_of("a")) is None
    with pytest.raises(LookupError):
        commit(store, "a", deleted=True)
    again = commit(store, "a", if_none_match="*")
    assert again.version == 5
    history = store.history(key_of("a"))
    assert [v.version for v in history] == [1, 2, 3, 4, 5]
    assert [v.deleted for v in history] == [False, False, False, True, False]
    assert all(type(v.deleted) is bool for v in history)
    assert history[1].document["tags"] == {"n": "2"}
    assert [v.seq for v in store.versions_after(first.seq)] == [
        second.seq,
        third.seq,
        gone.seq,
        again.seq,
    ]
    assert store.max_seq() == again.seq
    assert len({v.etag for v in history}) == 5


def test_lists_current_gateways_by_scope_with_paging(store: SqlStore) -> None:
    for name, rg in (("a", "rg1"), ("b", "rg1"), ("c", "RG2"), ("d", "rg1")):
        commit(store, name, rg)
    commit(store, "d", "rg1", if_match="*", deleted=True)
    in_rg1 = store.list_current("SUB1", "rg1", after_key=None, limit=10)
    assert [v.resource_id for v in in_rg1] == [gateway_id("a"), gateway_id("b")]
    page = store.list_current("sub1", None, after_key=None, limit=2)
    rest = store.list_current("sub1", None, after_key=page[-1].resource_id.casefold(), limit=2)
    assert [v.resource_id.rsplit("/", 1)[1] for v in page + rest] == ["a", "b", "c"]
    assert [v.resource_id for v in store.list_current("sub1", "rg2", after_key=None, limit=9)] == [
        gateway_id("c", "RG2")
    ]
    assert {v.resource_id.rsplit("/", 1)[1] for v in store.current_all()} == {"a", "b", "c"}


def test_values_round_trip_exactly(store: SqlStore) -> None:
    """Timezone-aware datetimes (returned in UTC), binary secrets, booleans, Unicode text."""
    before = datetime.now(UTC)
    version = commit(store, "a")
    for read in (store.current(key_of("a")), *store.history(key_of("a")), *store.versions_after(0)):
        assert read is not None
        assert read.created_at.tzinfo is not None and read.created_at.utcoffset() == timedelta(0)
        assert read.created_at.tzinfo == UTC
        assert abs(read.created_at - version.created_at) < timedelta(milliseconds=1)
        assert before - timedelta(seconds=1) <= read.created_at <= datetime.now(UTC)
        assert read.document["properties"]["note"] == "ünïcode ✓"
        assert read.deleted is False
        assert store.secrets(read) == {
            "appGatewaySslCert": {"data": "AAEC/w==", "password": "pässwörd"}
        }
    # The secrets column holds AES-GCM ciphertext: arbitrary bytes, compared byte for byte.
    with store._engine.connect() as conn:
        blob = conn.execute(sa.text("select secrets from gateway_versions")).scalar_one()
    assert isinstance(blob, bytes) and blob[:1] == b"\x01" and b"p\xc3\xa4ssw" not in blob


def test_activity_operations_and_tokens(store: SqlStore) -> None:
    moment = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=INDIA)  # 06:30 UTC
    for index, resource in enumerate(
        (
            "/subscriptions/sub_1/resourceGroups/rg/providers/x/y/one",
            "/subscriptions/subX1/resourceGroups/rg/providers/x/y/two",
            "/subscriptions/SUB_1/resourceGroups/rg/providers/x/y/three",
        )
    ):
        store.record_activity(
            ActivityEvent(
                event_id=f"00000000-0000-0000-0000-00000000000{index}",
                time=moment + timedelta(minutes=index),
                caller="admin",
                source_ip="127.0.0.1" if index else None,
                operation="Microsoft.Network/applicationGateways/write",
                resource_id=resource,
                status="Succeeded",
                version=index or None,
                correlation_id="c",
                detail={"code": "ünï"} if index == 2 else None,
            )
        )
    # "_" is a literal, not a LIKE wildcard; the prefix is case-insensitive; newest first.
    events = store.activity(resource_prefix="/subscriptions/sub_1/", limit=10)
    assert [e.resource_id.rsplit("/", 1)[1] for e in events] == ["three", "one"]
    assert events[0].detail == {"code": "ünï"} and events[1].detail is None
    assert events[1].source_ip is None and events[1].version is None
    assert events[1].time == moment and events[1].time.tzinfo == UTC
    assert len(store.activity(limit=2)) == 2
    # `since` in another zone means the same instant.
    since = (moment + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=-8)))
    assert [e.event_id[-1] for e in store.activity(since=since, limit=10)] == ["2", "1"]

    assert store.operation("no-such-operation") is None
    store.record_operation("op-1", gateway_id("a"), "Succeeded")
    assert store.operation("op-1") == ("Succeeded", gateway_id("a"))

    assert not store.has_tokens()
    store.add_token(hash_token(TOKEN), "admin")
    store.add_token(hash_token(TOKEN), "admin")  # a second instance with the same token
    assert store.has_tokens()
    assert store.token_name(hash_token(TOKEN)) == "admin"
    assert store.token_name(hash_token("appgw_someone-else-entirely")) is None


# --- concurrency ---------------------------------------------------------------------------------


def test_one_new_gateway_created_by_many_at_once(store_url: str, key: MasterKey) -> None:
    """Exactly one creator wins; the others get PreconditionFailed (a 412), not a 500."""
    stores = [SqlStore(store_url, key) for _ in range(THREADS)]
    try:
        created = all_at_once(THREADS, lambda i: commit(stores[i], "a", if_none_match="*"))
        winners = [o for o in created if isinstance(o, GatewayVersion)]
        assert len(winners) == 1, created
        assert all(isinstance(o, PreconditionFailed) for o in created if o not in winners), created
        # Without a precondition the same race serialises into consecutive versions.
        updated = all_at_once(THREADS, lambda i: commit(stores[i], "b"))
        assert sorted(o.version for o in updated if isinstance(o, GatewayVersion)) == list(
            range(1, THREADS + 1)
        ), updated
    finally:
        for store in stores:
            store.close()


def test_a_follower_never_misses_a_version_committed_late(store_url: str, key: MasterKey) -> None:
    """The bug this guards against: writer A draws seq N, writer B draws N+1 and commits first;
    a follower that saw N+1 asks for "after N+1" from then on and never sees N. Writer A is
    held between its INSERT and its COMMIT while B writes and the follower polls."""
    slow, fast, reader = (SqlStore(store_url, key) for _ in range(3))
    a_inserted = threading.Event()

    def hold_commit(_conn: Any) -> None:
        a_inserted.set()
        time.sleep(0.5)

    applied: list[GatewayVersion] = []

    class Recording(Follower):
        """Records the versions it would compile and apply (these documents do not compile)."""

        async def _apply(self, version: GatewayVersion) -> None:
            applied.append(version)

    async def never(_key: str, _snapshot: object) -> None:
        raise AssertionError("nothing is compiled here")

    follower = Recording(reader, "127.0.0.1", never, process="test")
    try:
        asyncio.run(follower.start())
        sa.event.listen(slow._engine, "commit", hold_commit)
        results: dict[str, GatewayVersion] = {}
        a = threading.Thread(target=lambda: results.setdefault("a", commit(slow, "a")))
        a.start()
        assert a_inserted.wait(10)
        b = threading.Thread(target=lambda: results.setdefault("b", commit(fast, "b")))
        b.start()

        async def follow_until_done() -> None:
            while a.is_alive() or b.is_alive():
                await follower.poll()
                await asyncio.sleep(0.01)
            await follower.poll()

        asyncio.run(follow_until_done())
        a.join()
        b.join()
        assert set(results) == {"a", "b"}, "a writer failed"
        assert results["a"].seq < results["b"].seq, "seq order differs from commit order"
        assert {v.etag for v in applied} == {results["a"].etag, results["b"].etag}
    finally:
        for store in (slow, fast, reader):
            store.close()


def test_a_writer_stalled_mid_transaction_does_not_block_the_others(
    postgres: PostgresServer, key: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process frozen inside a write holds the write lock; the server ends its session."""
    monkeypatch.setattr(sql, "IDLE_IN_TRANSACTION_TIMEOUT_MS", 300)
    url = postgres.new_database()
    stalled, other = SqlStore(url, key), SqlStore(url, key)
    done: list[GatewayVersion] = []
    try:
        with pytest.raises(sql.StoreUnavailable), stalled._write():  # its commit finds it ended
            started = time.monotonic()
            writer = threading.Thread(target=lambda: done.append(commit(other, "a")))
            writer.start()
            writer.join(10)
            assert done, "a stalled writer blocked the others"
            assert time.monotonic() - started >= 0.25, "the write lock was not held"
        assert other.current(key_of("a")) is not None
    finally:
        stalled.close()
        other.close()


WRITER = """
import base64, json, os, sys, time
from appgw.store.secrets import MasterKey
from appgw.store.sql import SqlStore
url, key, name, count, go = sys.argv[1:6]
store = SqlStore(url, MasterKey(base64.b64decode(key)))
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
done = []
for i in range(int(count)):
    for gateway in (name, "shared"):
        rid = f"/subscriptions/sub1/resourceGroups/rg1/providers/x/y/{gateway}"
        v = store.commit(rid, rid.casefold(), {"n": i}, {}, operational_state="Running",
                         actor=name)
        done.append([v.seq, v.etag, rid.casefold(), v.version])
store.close()
print(json.dumps(done), flush=True)
"""


@pytest.mark.slow
def test_concurrent_writers_in_processes_are_all_followed_in_order(
    store_url: str, key: MasterKey, raw_key: bytes, tmp_path: Path
) -> None:
    """Several processes commit to one store while a follower polls: every acknowledged version
    is seen, once, in seq order; versions of a gateway have no holes; etags are unique."""
    writers, per_writer = 4, 25
    store = SqlStore(store_url, key)  # creates the schema before the writers race
    go = tmp_path / "go"
    key_b64 = base64.b64encode(raw_key).decode()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store_url, key_b64, f"w{i}", str(per_writer), go],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    seen: list[GatewayVersion] = []
    stop = threading.Event()

    def follow() -> None:
        seq = 0
        while True:
            finishing = stop.is_set()
            batch = store.versions_after(seq)
            seen.extend(batch)
            seq = batch[-1].seq if batch else seq
            if finishing:
                return
            time.sleep(0.002)

    follower = threading.Thread(target=follow)
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        follower.start()
        go.touch()
        acknowledged = []
        for process in processes:
            out, _ = process.communicate(timeout=60)
            assert process.returncode == 0
            acknowledged += [tuple(row) for row in json.loads(out)]
    finally:
        stop.set()
        follower.join(30)
        for process in processes:
            process.kill()
        store.close()
    assert len(acknowledged) == writers * per_writer * 2
    got = [(v.seq, v.etag, v.resource_id.casefold(), v.version) for v in seen]
    assert [row[0] for row in got] == sorted({row[0] for row in got}), "out of order or twice"
    assert sorted(got) == sorted(acknowledged), "the follower missed or invented versions"
    assert len({row[1] for row in got}) == len(got), "etags repeat"
    for gateway in {row[2] for row in got}:
        versions = [row[3] for row in got if row[2] == gateway]
        assert versions == list(range(1, len(versions) + 1)), gateway


def test_superseded_secrets_are_purged_on_both_engines(store_url: str, key: MasterKey) -> None:
    """A commit keeps the secrets of the newest N versions; a start-up purge does the same for
    every gateway (a lowered N, an older store); a deleted gateway keeps none."""
    keeping = SqlStore(store_url, key, keep_secret_versions=2)
    try:
        versions = [commit(keeping, "a", if_match="*" if n else None) for n in range(4)]
        others = [commit(keeping, "b", if_match="*" if n else None) for n in range(2)]
        for version in versions[:2]:
            with pytest.raises(SecretsError, match="purged"):
                keeping.secrets(version)
        assert all(keeping.secrets(v) for v in versions[2:] + others)
        keeping.keep_secret_versions = 1
        keeping.purge_superseded_secrets()
        with pytest.raises(SecretsError, match="purged"):
            keeping.secrets(versions[2])
        assert keeping.secrets(versions[3]) and keeping.secrets(others[1])
        gone = commit(keeping, "b", if_match="*", deleted=True)
        for version in (*others, gone):
            with pytest.raises(SecretsError, match="purged"):
                keeping.secrets(version)
        assert len(keeping.history(key_of("a"))) == 4  # the documents stay
    finally:
        keeping.close()


# --- WAF policies -----------------------------------------------------------------------------

WAF_POLICY = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
    "ApplicationGatewayWebApplicationFirewallPolicies/p"
)
LINKING_GATEWAY = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationGateways/gw"
)
LINKED_DOCUMENT = {"properties": {"firewallPolicy": {"id": WAF_POLICY}}}


def _links(version: Any) -> list[str]:
    return [version.resource_id] if version.document == LINKED_DOCUMENT else []


def _put_policy(store: SqlStore, content: str, recommits: list[Recommit]) -> Any:
    return store.commit_policy(
        WAF_POLICY,
        WAF_POLICY.casefold(),
        {"properties": {"x": content}},
        actor="t",
        recommits=recommits,
        linking=_links,
    )


def test_a_policy_and_its_gateways_commit_together(store: SqlStore) -> None:
    """A WAF policy and the versions of the gateways that link it commit together or not at
    all; writes that read something that changed before they commit are refused."""
    policy, _ = _put_policy(store, "one", [])
    gateway = store.commit(
        LINKING_GATEWAY,
        LINKING_GATEWAY.casefold(),
        LINKED_DOCUMENT,
        {"firewallPolicies": {"p": "one"}},
        operational_state="Running",
        actor="t",
        linked_policies={WAF_POLICY.casefold(): policy.etag},
    )
    # A policy write that does not re-commit a gateway linking it is refused, and keeps nothing.
    with pytest.raises(LinkChanged):
        _put_policy(store, "two", [])
    stored = store.policy(WAF_POLICY.casefold())
    assert stored is not None and stored.document == {"properties": {"x": "one"}}
    stored_policy, versions = _put_policy(
        store, "two", [Recommit(gateway, {"firewallPolicies": {"p": "two"}})]
    )
    assert [v.version for v in versions] == [2]
    current = store.current(LINKING_GATEWAY.casefold())
    assert current is not None and store.secrets(current) == {"firewallPolicies": {"p": "two"}}
    # The gateway moved on since `gateway` was read: re-committing that version is refused.
    with pytest.raises(LinkChanged):
        _put_policy(store, "three", [Recommit(gateway, {})])
    # A gateway write made from a policy etag that is no longer current is refused too.
    with pytest.raises(LinkChanged):
        store.commit(
            LINKING_GATEWAY,
            LINKING_GATEWAY.casefold(),
            LINKED_DOCUMENT,
            {"firewallPolicies": {"p": "one"}},
            operational_state="Running",
            actor="t",
            linked_policies={WAF_POLICY.casefold(): policy.etag},
        )
    assert stored_policy is not None
    # A linked policy cannot be deleted; unlinked, it can.
    with pytest.raises(PolicyInUse, match="applicationGateways/gw"):
        store.commit_policy(WAF_POLICY, WAF_POLICY.casefold(), None, actor="t", linking=_links)
    assert store.policy(WAF_POLICY.casefold()) is not None
    store.commit(
        LINKING_GATEWAY,
        LINKING_GATEWAY.casefold(),
        {"properties": {}},
        {},
        operational_state="Running",
        actor="t",
    )
    store.commit_policy(WAF_POLICY, WAF_POLICY.casefold(), None, actor="t", linking=_links)
    assert store.policy(WAF_POLICY.casefold()) is None


def test_policy_and_gateway_writers_racing_never_leave_stale_policy_content(
    store_url: str, key: MasterKey
) -> None:
    """A gateway writer (re-linking the policy with the content it read) and a policy writer
    (re-committing the gateways it found linking) race on separate connections; each retries
    what the store refuses. Whatever the interleaving, no gateway version holds older policy
    content than the version before it, and the last holds the policy's current content."""
    setup = SqlStore(store_url, key)
    _put_policy(setup, "v0", [])
    rounds = 20

    def gateway_writer() -> None:
        store = SqlStore(store_url, key)
        try:
            for _ in range(rounds):
                while True:
                    policy = store.policy(WAF_POLICY.casefold())
                    assert policy is not None
                    time.sleep(0.003)  # a PUT's validation and dry run, between read and commit
                    try:
                        store.commit(
                            LINKING_GATEWAY,
                            LINKING_GATEWAY.casefold(),
                            LINKED_DOCUMENT,
                            {"firewallPolicies": {"p": policy.document["properties"]["x"]}},
                            operational_state="Running",
                            actor="gateway-writer",
                            linked_policies={WAF_POLICY.casefold(): policy.etag},
                        )
                        break
                    except LinkChanged:
                        continue
        finally:
            store.close()

    def policy_writer() -> None:
        store = SqlStore(store_url, key)
        try:
            for number in range(1, rounds + 1):
                content = f"v{number}"
                while True:
                    linking = [v for v in store.current_all() if _links(v)]
                    recommits = [Recommit(v, {"firewallPolicies": {"p": content}}) for v in linking]
                    try:
                        _put_policy(store, content, recommits)
                        break
                    except LinkChanged:
                        continue
        finally:
            store.close()

    threads = [threading.Thread(target=gateway_writer), threading.Thread(target=policy_writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    policy = setup.policy(WAF_POLICY.casefold())
    current = setup.current(LINKING_GATEWAY.casefold())
    assert policy is not None and current is not None
    assert policy.document["properties"]["x"] == f"v{rounds}"
    assert setup.secrets(current) == {"firewallPolicies": {"p": f"v{rounds}"}}
    held = [
        int(setup.secrets(version)["firewallPolicies"]["p"].removeprefix("v"))
        for version in setup.history(LINKING_GATEWAY.casefold())
    ]
    assert held == sorted(held), held
    setup.close()
