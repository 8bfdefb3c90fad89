"""Versioned gateway documents in SQL: SQLite embedded by default, PostgreSQL for many instances.

Every accepted write is a new row in `gateway_versions` (history is never rewritten); the
`gateways` row points at the current one. A write is one transaction, so a crash leaves either
the old or the new version, never half of one. Secrets are stored encrypted, per version.

Writes are serialised on both engines (SQLite: BEGIN IMMEDIATE; PostgreSQL: one transaction-scoped
advisory lock taken before anything is read or a seq is drawn). That is what lets followers read
"everything after seq N": seq order is commit order, so a version never becomes visible after a
higher seq was already seen. It also makes read-check-write sequences (preconditions, creating a
gateway, schema setup by instances starting together) race-free without retry loops.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from appgw.store.secrets import MasterKey, SecretsError
from appgw.store.watch import (
    NOTIFY_CHANNEL,
    ListeningWatch,
    PollingWatch,
    StoreWatch,
    listener_conninfo,
)

SCHEMA_VERSION = "1"
_KEY_CHECK = b"appgw master key check"
# The PostgreSQL advisory lock every write transaction holds ("appg" in ASCII): any constant
# works as long as all instances agree; advisory locks are per database, so stores in other
# databases of one server do not contend.
WRITE_LOCK_ID = 0x61707067
# A session that goes quiet inside a transaction (its process frozen, its host cut off) would hold
# the write lock until TCP notices, which can take hours; the server ends it after this instead.
# Our own transactions never wait on anything but the database, for milliseconds.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 30_000
WAL_SWITCH_TRIES = 300  # 10 ms apart: 3 s, far more than the switch takes a competitor

metadata = sa.MetaData()

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)

gateways_table = sa.Table(
    "gateways",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),  # case-folded resource id
    sa.Column("resource_id", sa.String(512), nullable=False),
    sa.Column("subscription", sa.String(128), nullable=False, index=True),  # folded
    sa.Column("resource_group", sa.String(128), nullable=False),  # folded
    sa.Column("current_version", sa.Integer, nullable=True),  # NULL once deleted
    sa.Column("last_version", sa.Integer, nullable=False),
)

versions_table = sa.Table(
    "gateway_versions",
    metadata,
    # A global, increasing sequence: data planes follow "everything after seq N".
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("gateway_key", sa.String(512), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("etag", sa.String(64), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("secrets", sa.LargeBinary, nullable=False),
    sa.Column("operational_state", sa.String(16), nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.UniqueConstraint("gateway_key", "version"),
)

activity_table = sa.Table(
    "activity_log",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("caller", sa.String(128), nullable=False),
    sa.Column("source_ip", sa.String(64), nullable=True),
    sa.Column("operation", sa.String(128), nullable=False),
    sa.Column("resource_id", sa.String(512), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("correlation_id", sa.String(36), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
)

operations_table = sa.Table(
    "operations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("resource_id", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
)

tokens_table = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class StoreError(Exception):
    """The store URL is unusable or the database cannot be reached; the text says which."""


class PreconditionFailed(Exception):
    """The caller's If-Match / If-None-Match does not hold for the current version."""


@dataclass(frozen=True, slots=True)
class GatewayVersion:
    resource_id: str
    version: int
    seq: int
    etag: str
    document: dict[str, Any]
    operational_state: str
    deleted: bool
    created_at: datetime
    actor: str


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    event_id: str
    time: datetime
    caller: str
    source_ip: str | None
    operation: str
    resource_id: str
    status: str
    version: int | None
    correlation_id: str
    detail: dict[str, Any] | None


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def utcnow() -> datetime:
    return datetime.now(UTC)


class SqlStore:
    """One class for both engines: SQLAlchemy Core hides the dialect differences we touch."""

    def __init__(self, url: str, master_key: MasterKey) -> None:
        self.url = url
        self._key = master_key
        self._engine = _create_engine(url)
        try:
            self._set_up()
        except sa.exc.DBAPIError as error:  # unreachable, no such database, no rights, ...
            self._engine.dispose()
            shown = sa.engine.make_url(url).render_as_string(hide_password=True)  # as typed
            reason = str(error.orig).strip() if error.orig is not None else str(error)
            raise StoreError(f"cannot open the store {shown}: {reason}") from None

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self._engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    # --- setup ----------------------------------------------------------------------------------

    def _set_up(self) -> None:
        """Create the schema and the master-key check row, once, even with several instances.

        Under the write lock: instances starting together would otherwise both see no tables
        (or no check row) and both create them, and one would fail. PostgreSQL and SQLite both
        run DDL inside transactions, so the loser waits and then finds everything in place.
        """
        with self._write() as conn:
            metadata.create_all(conn)
            self._check_master_key(conn)

    def _check_master_key(self, conn: Connection) -> None:
        """Refuse to start with a key the stored secrets were not written with."""
        row = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == "key_check")
        ).first()
        if row is None:
            conn.execute(
                meta_table.insert(),
                [
                    {"key": "key_check", "value": self._key.encrypt(_KEY_CHECK, b"meta")},
                    {"key": "schema_version", "value": SCHEMA_VERSION.encode()},
                ],
            )
        elif self._key.decrypt(row.value, b"meta") != _KEY_CHECK:
            raise SecretsError("the master key check value is corrupt")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction; it runs alone (see the module docstring)."""
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITE_LOCK_ID)))
            yield conn

    # --- gateway versions -----------------------------------------------------------------------

    def current(self, key: str) -> GatewayVersion | None:
        with self._engine.connect() as conn:
            return self._current(conn, key)

    def current_etag(self, key: str) -> str | None:
        """The current version's etag, without reading its document (a GET-sized cost)."""
        with self._engine.connect() as conn:
            return self._current_etag(conn, key)

    def _current_etag(self, conn: Connection, key: str) -> str | None:
        etag = conn.execute(
            sa.select(versions_table.c.etag)
            .join(gateways_table, gateways_table.c.key == versions_table.c.gateway_key)
            .where(
                gateways_table.c.key == key,
                versions_table.c.version == gateways_table.c.current_version,
            )
        ).scalar()
        return str(etag) if etag is not None else None

    def _current(self, conn: Connection, key: str) -> GatewayVersion | None:
        row = conn.execute(
            sa.select(versions_table, gateways_table.c.resource_id)
            .join(gateways_table, gateways_table.c.key == versions_table.c.gateway_key)
            .where(
                gateways_table.c.key == key,
                versions_table.c.version == gateways_table.c.current_version,
            )
        ).first()
        return _version_from_row(row) if row is not None else None

    def secrets(self, version: GatewayVersion) -> dict[str, Any]:
        with self._engine.connect() as conn:
            blob = conn.execute(
                sa.select(versions_table.c.secrets).where(versions_table.c.seq == version.seq)
            ).scalar_one()
        return _decode_secrets(
            self._key.decrypt(blob, _secrets_aad(version.resource_id, version.version))
        )

    def commit(
        self,
        resource_id: str,
        key: str,
        document: Mapping[str, Any],
        secrets: Mapping[str, Any],
        *,
        operational_state: str,
        actor: str,
        if_match: str | None = None,
        if_none_match: str | None = None,
        deleted: bool = False,
    ) -> GatewayVersion:
        """Append a version and make it current, atomically checking the preconditions."""
        subscription, resource_group = _scope_of(resource_id)
        with self._write() as conn:
            # No row lock needed: the write lock already keeps other writers out (also the one
            # creating this very gateway, which a row lock could not, as there is no row yet).
            gateway = conn.execute(
                sa.select(gateways_table).where(gateways_table.c.key == key)
            ).first()
            current_etag = self._current_etag(conn, key)
            _check_preconditions(current_etag, if_match, if_none_match)
            if deleted and current_etag is None:
                raise LookupError(key)
            version = (gateway.last_version if gateway is not None else 0) + 1
            etag = new_etag()
            now = utcnow()
            seq = conn.execute(
                versions_table.insert().values(
                    gateway_key=key,
                    version=version,
                    etag=etag,
                    document=json.dumps(document, separators=(",", ":"), sort_keys=True),
                    secrets=self._key.encrypt(
                        json.dumps(secrets, sort_keys=True).encode(),
                        _secrets_aad(resource_id, version),
                    ),
                    operational_state=operational_state,
                    deleted=deleted,
                    created_at=now,
                    actor=actor,
                )
            ).inserted_primary_key
            assert seq is not None
            values = {
                "resource_id": resource_id
                if current_etag is None or gateway is None
                else gateway.resource_id,
                "current_version": None if deleted else version,
                "last_version": version,
            }
            if gateway is None:
                conn.execute(
                    gateways_table.insert().values(
                        key=key, subscription=subscription, resource_group=resource_group, **values
                    )
                )
            else:
                conn.execute(
                    gateways_table.update().where(gateways_table.c.key == key).values(**values)
                )
            if conn.dialect.name == "postgresql":
                # Delivered at COMMIT and not at all on rollback: a woken watch always finds the
                # version (see appgw.store.watch).
                conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, str(seq[0]))))
        return GatewayVersion(
            resource_id=str(values["resource_id"]),
            version=version,
            seq=int(seq[0]),
            etag=etag,
            document=dict(document),
            operational_state=operational_state,
            deleted=deleted,
            created_at=now,
            actor=actor,
        )

    def list_current(
        self, subscription: str, resource_group: str | None, *, after_key: str | None, limit: int
    ) -> list[GatewayVersion]:
        query = (
            sa.select(versions_table, gateways_table.c.resource_id)
            .join(gateways_table, gateways_table.c.key == versions_table.c.gateway_key)
            .where(
                gateways_table.c.subscription == subscription.casefold(),
                versions_table.c.version == gateways_table.c.current_version,
            )
            .order_by(gateways_table.c.key)
            .limit(limit)
        )
        if resource_group is not None:
            query = query.where(gateways_table.c.resource_group == resource_group.casefold())
        if after_key is not None:
            query = query.where(gateways_table.c.key > after_key)
        with self._engine.connect() as conn:
            return [_version_from_row(row) for row in conn.execute(query)]

    def history(self, key: str) -> list[GatewayVersion]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(versions_table, gateways_table.c.resource_id)
                .join(gateways_table, gateways_table.c.key == versions_table.c.gateway_key)
                .where(gateways_table.c.key == key)
                .order_by(versions_table.c.version)
            )
            return [_version_from_row(row) for row in rows]

    def current_all(self, *, excluding: str | None = None) -> list[GatewayVersion]:
        """The current version of every gateway (what a starting data plane serves), but the
        one whose key is `excluding`."""
        query = (
            sa.select(versions_table, gateways_table.c.resource_id)
            .join(gateways_table, gateways_table.c.key == versions_table.c.gateway_key)
            .where(versions_table.c.version == gateways_table.c.current_version)
            .order_by(gateways_table.c.key)
        )
        if excluding is not None:
            query = query.where(gateways_table.c.key != excluding)
        with self._engine.connect() as conn:
            rows = conn.execute(query)
            return [_version_from_row(row) for row in rows]

    def watch(self) -> StoreWatch:
        """Wakes followers as soon as a version after theirs may exist: see appgw.store.watch.

        Each watch has a connection of its own (PostgreSQL: a LISTEN connection; SQLite: a
        polling one), opened when first waited on. close() of the store leaves it open: close it
        with `await watch.close()`.
        """
        max_seq_sql = f"SELECT max(seq) FROM {versions_table.name}"
        if self.dialect == "postgresql":
            _args, params = self._engine.dialect.create_connect_args(self._engine.url)
            return ListeningWatch(listener_conninfo(params), max_seq_sql)
        database = self._engine.url.database
        if not database or database == ":memory:":  # private to each connection: unwatchable
            raise StoreError("an in-memory SQLite store cannot be watched")
        return PollingWatch(database, max_seq_sql)

    def max_seq(self) -> int:
        with self._engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(versions_table.c.seq))).scalar()
        return int(value or 0)

    def versions_after(self, seq: int) -> list[GatewayVersion]:
        """What data planes have not applied yet, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(versions_table, gateways_table.c.resource_id)
                .join(gateways_table, gateways_table.c.key == versions_table.c.gateway_key)
                .where(versions_table.c.seq > seq)
                .order_by(versions_table.c.seq)
            )
            return [_version_from_row(row) for row in rows]

    # --- activity log, operations, tokens --------------------------------------------------------

    def record_activity(self, event_: ActivityEvent) -> None:
        with self._write() as conn:
            conn.execute(
                activity_table.insert().values(
                    event_id=event_.event_id,
                    time=_utc(event_.time),
                    caller=event_.caller,
                    source_ip=event_.source_ip,
                    operation=event_.operation,
                    resource_id=event_.resource_id,
                    status=event_.status,
                    version=event_.version,
                    correlation_id=event_.correlation_id,
                    detail=json.dumps(event_.detail) if event_.detail is not None else None,
                )
            )

    def activity(
        self, *, resource_prefix: str | None = None, since: datetime | None = None, limit: int
    ) -> list[ActivityEvent]:
        query = sa.select(activity_table).order_by(activity_table.c.seq.desc()).limit(limit)
        if resource_prefix is not None:
            query = query.where(
                sa.func.lower(activity_table.c.resource_id).startswith(
                    resource_prefix.casefold(), autoescape=True
                )
            )
        if since is not None:
            # UTC like the stored values: SQLite compares them as text.
            query = query.where(activity_table.c.time >= _utc(since))
        with self._engine.connect() as conn:
            return [
                ActivityEvent(
                    event_id=row.event_id,
                    time=_utc(row.time),
                    caller=row.caller,
                    source_ip=row.source_ip,
                    operation=row.operation,
                    resource_id=row.resource_id,
                    status=row.status,
                    version=row.version,
                    correlation_id=row.correlation_id,
                    detail=json.loads(row.detail) if row.detail else None,
                )
                for row in conn.execute(query)
            ]

    def record_operation(self, operation_id: str, resource_id: str, status: str) -> None:
        now = utcnow()
        with self._write() as conn:
            conn.execute(
                operations_table.insert().values(
                    id=operation_id,
                    resource_id=resource_id,
                    status=status,
                    started_at=now,
                    ended_at=now,
                )
            )

    def operation(self, operation_id: str) -> tuple[str, str] | None:
        """(status, resource id) of an operation, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(operations_table.c.status, operations_table.c.resource_id).where(
                    operations_table.c.id == operation_id
                )
            ).first()
        return (row.status, row.resource_id) if row is not None else None

    def has_tokens(self) -> bool:
        with self._engine.connect() as conn:
            return (
                conn.execute(sa.select(sa.func.count()).select_from(tokens_table)).scalar_one() > 0
            )

    def add_token(self, token_hash: str, name: str) -> None:
        with self._write() as conn:
            # Instances starting together with one APPGW_ADMIN_TOKEN each add it: once is enough.
            if conn.execute(
                sa.select(tokens_table.c.name).where(tokens_table.c.token_hash == token_hash)
            ).first():
                return
            conn.execute(
                tokens_table.insert().values(token_hash=token_hash, name=name, created_at=utcnow())
            )

    def token_name(self, token_hash: str) -> str | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(tokens_table.c.name).where(tokens_table.c.token_hash == token_hash)
            ).first()
        return row.name if row is not None else None


def _create_engine(url: str) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(
            "the store URL is not a database URL; use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DATABASE"
        ) from None
    if parsed.drivername in {"postgresql", "postgres"}:
        # Users type the plain form; psycopg 3 is the driver appgw ships and is tested with.
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # pre_ping: a connection the server dropped (restart, failover) is replaced, not failed.
        pg_engine = sa.create_engine(parsed, pool_pre_ping=True)

        @event.listens_for(pg_engine, "connect")
        def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(
                    "SET idle_in_transaction_session_timeout = "
                    f"{int(IDLE_IN_TRANSACTION_TIMEOUT_MS)}"
                )
            dbapi_connection.commit()  # a SET in a rolled-back transaction would not stay

        return pg_engine
    if backend != "sqlite":
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(f"the store URL {shown} is neither sqlite:/// nor postgresql://")
    engine = sa.create_engine(parsed, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (below) so writers can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _enable_wal(cursor)
        # FULL: a commit is on disk before we acknowledge it, so kill -9 or power loss keeps it.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # IMMEDIATE: take the write lock at BEGIN, so two writers serialise instead of one failing
        # with "database is locked" half-way through its read-check-write.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _enable_wal(cursor: Any) -> None:
    # Switching a new database to WAL needs it to itself, and SQLite answers "locked" at once
    # instead of waiting: processes opening a new store together retry for a moment.
    for attempt in range(WAL_SWITCH_TRIES):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == WAL_SWITCH_TRIES - 1:
                raise
            time.sleep(0.01)


def _check_preconditions(
    current_etag: str | None, if_match: str | None, if_none_match: str | None
) -> None:
    if if_match is not None:
        if current_etag is None:
            raise PreconditionFailed("the gateway does not exist")
        if if_match.strip() != "*" and current_etag not in _etag_list(if_match):
            raise PreconditionFailed(
                f"If-Match {if_match} does not match the current etag {current_etag}"
            )
    if (
        if_none_match is not None
        and current_etag is not None
        and (if_none_match.strip() == "*" or current_etag in _etag_list(if_none_match))
    ):
        raise PreconditionFailed("the gateway already exists (If-None-Match)")


def _etag_list(header: str) -> set[str]:
    """If-Match may list several etags; weak and strong forms of one value compare equal."""
    values: set[str] = set()
    for raw in header.split(","):
        value = raw.strip()
        if not value:
            continue
        bare = value[2:] if value.startswith("W/") else value
        values.update({bare, f"W/{bare}"})
    return values


def _scope_of(resource_id: str) -> tuple[str, str]:
    parts = resource_id.split("/")
    return parts[2].casefold(), parts[4].casefold()


def _secrets_aad(resource_id: str, version: int) -> bytes:
    return f"{resource_id.casefold()}#{version}".encode()


def _decode_secrets(blob: bytes) -> dict[str, Any]:
    value = json.loads(blob)
    if not isinstance(value, dict):
        raise SecretsError("stored secrets are not a JSON object")
    return value


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes (we store UTC); PostgreSQL aware ones in the session's
    # time zone, which is the server's unless the client sets one. Callers always get UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _version_from_row(row: Any) -> GatewayVersion:
    return GatewayVersion(
        resource_id=row.resource_id,
        version=row.version,
        seq=row.seq,
        etag=row.etag,
        document=json.loads(row.document),
        operational_state=row.operational_state,
        deleted=bool(row.deleted),
        created_at=_utc(row.created_at),
        actor=row.actor,
    )
