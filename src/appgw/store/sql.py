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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from appgw import json_text
from appgw.defaults import DEFAULT_STORE_CONNECT_TIMEOUT
from appgw.store.secrets import MasterKey, SecretsError
from appgw.store.watch import (
    LISTENER_OPTIONS,
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
# Our statements take milliseconds; one still running after this waits behind a lock (a writer
# that froze) or on a server in trouble, and the server ends it, so an API request answers 503
# instead of hanging. (A server that stops answering at all is the TCP options' part: see
# CONNECTION_OPTIONS.)
STATEMENT_TIMEOUT_MS = 30_000
# libpq options of every PostgreSQL connection unless the URL sets them: the store watch's
# keepalives and tcp_user_timeout, so a query on a connection to a host that is gone fails in
# seconds rather than after the kernel's retransmissions (about 15 minutes), and the connect
# timeout (psycopg's own default is 130 s).
CONNECTION_OPTIONS = {**LISTENER_OPTIONS, "connect_timeout": str(DEFAULT_STORE_CONNECT_TIMEOUT)}
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

# WAF policies (ApplicationGatewayWebApplicationFirewallPolicies): the current document of each.
# A policy's history is in the versions of the gateways that link it: each gateway version
# keeps the content of its policies (compile/firewall.py), so a policy needs no versions here.
firewall_policies_table = sa.Table(
    "firewall_policies",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),  # case-folded resource id
    sa.Column("resource_id", sa.String(512), nullable=False),
    sa.Column("subscription", sa.String(128), nullable=False, index=True),  # folded
    sa.Column("resource_group", sa.String(128), nullable=False),  # folded
    sa.Column("etag", sa.String(64), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
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


# Portal sign-ins: kept here so that they outlive a restart of `appgw serve` and are shared by
# instances. Only the SHA-256 of a session id is stored, as for tokens.
sessions_table = sa.Table(
    "portal_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("caller", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
)


class StoreError(Exception):
    """The store URL is unusable or the database cannot be reached; the text says which."""


class StoreFailure(StoreError):
    """The database could not do what was asked; nothing of it was kept. The text says why;
    `store` names the store (its URL without the password)."""

    store = ""


class StoreFull(StoreFailure):
    """No room to write: a full disk or file system (SQLite SQLITE_FULL, PostgreSQL 53100)."""


class StoreUnavailable(StoreFailure):
    """The database cannot be reached, is read-only, busy or failing I/O: try again later."""


class StoreCorrupt(StoreFailure):
    """The database file is damaged; the text says how to restore it."""


class PreconditionFailed(Exception):
    """The caller's If-Match / If-None-Match does not hold for the current version."""


class PolicyInUse(Exception):
    """A WAF policy that gateways link cannot be deleted; the text names them."""


class LinkChanged(Exception):
    """A write read a linked resource that changed before it committed (a WAF policy a
    gateway links, or a gateway a policy's write re-commits): nothing was kept; read again
    and retry. The text names what changed."""


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    resource_id: str
    etag: str
    document: dict[str, Any]
    updated_at: datetime
    actor: str


@dataclass(frozen=True, slots=True)
class Recommit:
    """A gateway version to append with a policy's write: its current version as read (which
    must still be current) and the secrets to store with the same document."""

    current: GatewayVersion
    secrets: Mapping[str, Any]
    activity: ActivityEvent | None = None  # the gateway's write, in its own activity log


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
    """One class for both engines: SQLAlchemy Core hides the dialect differences we touch.

    What the database cannot do (a full disk, a server that is gone, a damaged file) is raised
    as a StoreFailure, whatever the engine; any other database error is a bug and raised as is.
    """

    def __init__(
        self,
        url: str,
        master_key: MasterKey,
        *,
        keep_secret_versions: int | None = None,
        set_up: bool = True,
    ) -> None:
        """`keep_secret_versions`: a commit purges the secrets of a gateway's older versions
        (None: it does not; processes that only read need not say). `set_up`: create the
        schema and check the master key now; serve's children pass False, since serve did
        it, and they must start (and serve) even while the database is away."""
        self.url = url
        self.shown_url = shown_url(url)
        self._key = master_key
        self.keep_secret_versions = keep_secret_versions
        self._engine = _create_engine(url)
        if not set_up:
            return
        try:
            self._set_up()
        except StoreCorrupt:
            self._engine.dispose()
            raise
        except (sa.exc.DBAPIError, StoreFailure) as error:  # unreachable, no rights, ...
            self._engine.dispose()
            reason = _reason(error, self._engine.url)
            raise StoreError(f"cannot open the store {self.shown_url}: {reason}") from None
        except StoreError:  # what _set_up found missing, saying how to fix it
            self._engine.dispose()
            raise

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
            if conn.dialect.name == "postgresql":
                self._check_create_privilege(conn)
            metadata.create_all(conn)
            self._check_master_key(conn)

    def _check_create_privilege(self, conn: Connection) -> None:
        """A StoreError saying which GRANT to run, when appgw's tables are still to be created
        and this role may not create them (PostgreSQL 15 took CREATE on schema public from
        PUBLIC: only the database's owner, or whom it grants it to, creates there now)."""
        existing = set(sa.inspect(conn).get_table_names())
        if all(table.name in existing for table in metadata.sorted_tables):
            return
        schema, role, allowed = conn.execute(
            sa.text(
                "SELECT current_schema(), current_user, "
                "has_schema_privilege(current_schema(), 'CREATE')"
            )
        ).one()
        if allowed:
            return
        quote = conn.dialect.identifier_preparer.quote
        # No current schema: none on the search path exists or grants this role USAGE.
        target = schema or "public"
        raise StoreError(
            f"cannot open the store {self.shown_url}: its tables do not exist yet and role "
            f"{role} may not create them in schema {target} (PostgreSQL 15 and later let only "
            "the database's owner create in schema public). As the owner or a superuser, run: "
            f"GRANT USAGE, CREATE ON SCHEMA {quote(target)} TO {quote(role)};"
        )

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
        with self._failures(), self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITE_LOCK_ID)))
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._failures(), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """Database errors that are no bug of ours, as StoreFailures."""
        try:
            yield
        except sa.exc.DBAPIError as error:
            failure = _failure(error, self._engine.url)
            if failure is None:
                raise
            if isinstance(failure, StoreCorrupt) and self.dialect == "sqlite":
                failure = self._damaged(str(failure))
            failure.store = self.shown_url
            raise failure from error
        except sa.exc.TimeoutError as error:  # no pooled connection came free
            busy = StoreUnavailable(f"no database connection is free: {error}")
            busy.store = self.shown_url
            raise busy from error

    def check_integrity(self) -> None:
        """SQLite's quick check of every page; StoreCorrupt, saying how to restore, if any is
        damaged. (PostgreSQL checks its own pages.)"""
        if self.dialect != "sqlite":
            return
        with self._read() as conn:
            rows = conn.exec_driver_sql("PRAGMA quick_check").fetchall()
        problems = [str(row[0]) for row in rows if row[0] != "ok"]
        if problems:
            raise self._damaged("; ".join(problems[:3]))

    def _damaged(self, reason: str) -> StoreCorrupt:
        path = self._engine.url.database
        return StoreCorrupt(
            f"the store {path} is damaged ({reason}). Stop every appgw that uses it and keep a "
            f"copy of it (with its -wal and -shm files). Then put back a backup, or rescue what "
            f"SQLite can still read: 'sqlite3 {path} .recover | sqlite3 {path}.recovered', and "
            f"move {path}.recovered to {path} (removing the old -wal and -shm files)."
        )

    # --- gateway versions -----------------------------------------------------------------------

    def current(self, key: str) -> GatewayVersion | None:
        with self._read() as conn:
            return self._current(conn, key)

    def current_etag(self, key: str) -> str | None:
        """The current version's etag, without reading its document (a GET-sized cost)."""
        with self._read() as conn:
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
        """The version's secrets; SecretsError for a version whose secrets were purged (only
        the newest versions keep theirs, and none of a deleted gateway)."""
        return self.open_secrets(version, self.sealed_secrets(version))

    def sealed_secrets(self, version: GatewayVersion) -> bytes:
        """The version's secrets as stored: encrypted under the master key (what a copy of
        the version outside the store keeps). SecretsError once purged."""
        with self._read() as conn:
            blob = bytes(
                conn.execute(
                    sa.select(versions_table.c.secrets).where(versions_table.c.seq == version.seq)
                ).scalar_one()
            )
        if blob == PURGED:
            raise SecretsError(
                f"the secrets of version {version.version} of {version.resource_id} were "
                "purged: a newer version is current"
            )
        return blob

    def open_secrets(self, version: GatewayVersion, sealed: bytes) -> dict[str, Any]:
        """Secrets sealed by this store (see sealed_secrets), without reading the database."""
        return _decode_secrets(
            self._key.decrypt(sealed, _secrets_aad(version.resource_id, version.version))
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
        operation_id: str | None = None,
        activity: ActivityEvent | None = None,
        linked_policies: Mapping[str, str] | None = None,
        expected_etag: str | None = None,
    ) -> GatewayVersion:
        """Append a version and make it current, atomically checking the preconditions; its
        operation record (Succeeded) and its activity entry (with the new version number) are
        written in the same transaction: all of them are kept, or none. `linked_policies`
        (policy key -> etag) are the WAF policies whose content the version keeps: each must
        still be at that etag (LinkChanged otherwise), and so must the gateway when
        `expected_etag` says which version the write was made from."""
        with self._write() as conn:
            # No row lock needed: the write lock already keeps other writers out (also the one
            # creating this very gateway, which a row lock could not, as there is no row yet).
            current_etag = self._current_etag(conn, key)
            _check_preconditions(current_etag, if_match, if_none_match)
            if expected_etag is not None and current_etag != expected_etag:
                raise LinkChanged(f"the gateway {resource_id} changed meanwhile")
            for policy_key, etag in (linked_policies or {}).items():
                if _policy_etag(conn, policy_key) != etag:
                    raise LinkChanged(f"the WAF policy {policy_key} changed meanwhile")
            return self._append(
                conn,
                resource_id,
                key,
                document,
                secrets,
                operational_state=operational_state,
                actor=actor,
                deleted=deleted,
                operation_id=operation_id,
                activity=activity,
            )

    def _append(
        self,
        conn: Connection,
        resource_id: str,
        key: str,
        document: Mapping[str, Any],
        secrets: Mapping[str, Any],
        *,
        operational_state: str,
        actor: str,
        deleted: bool = False,
        operation_id: str | None = None,
        activity: ActivityEvent | None = None,
    ) -> GatewayVersion:
        """commit's writes, in the caller's transaction (which holds the write lock)."""
        subscription, resource_group = _scope_of(resource_id)
        gateway = conn.execute(sa.select(gateways_table).where(gateways_table.c.key == key)).first()
        current_etag = self._current_etag(conn, key)
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
                document=json_text.dumps_text(document, sort_keys=True),
                secrets=self._key.encrypt(
                    json_text.dumps(secrets, sort_keys=True),
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
        if deleted or self.keep_secret_versions is not None:
            kept = 0 if deleted else self.keep_secret_versions or 0
            conn.execute(
                _purge.where(
                    versions_table.c.gateway_key == key,
                    versions_table.c.version <= version - kept,
                )
            )
        if operation_id is not None:
            conn.execute(_operation_row(operation_id, resource_id, "Succeeded", now))
        if activity is not None:
            conn.execute(_activity_row(replace(activity, version=version)))
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

    # --- WAF policies ----------------------------------------------------------------------------

    def policy(self, key: str) -> StoredPolicy | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(firewall_policies_table).where(firewall_policies_table.c.key == key)
            ).first()
        return _policy_from_row(row) if row is not None else None

    def list_policies(self, subscription: str, resource_group: str | None) -> list[StoredPolicy]:
        query = (
            sa.select(firewall_policies_table)
            .where(firewall_policies_table.c.subscription == subscription.casefold())
            .order_by(firewall_policies_table.c.key)
        )
        if resource_group is not None:
            query = query.where(
                firewall_policies_table.c.resource_group == resource_group.casefold()
            )
        with self._read() as conn:
            return [_policy_from_row(row) for row in conn.execute(query)]

    def commit_policy(
        self,
        resource_id: str,
        key: str,
        document: Mapping[str, Any] | None,
        *,
        actor: str,
        recommits: Sequence[Recommit] = (),
        if_match: str | None = None,
        if_none_match: str | None = None,
        operation_id: str | None = None,
        activity: ActivityEvent | None = None,
        linking: Callable[[GatewayVersion], list[str]] | None = None,
    ) -> tuple[StoredPolicy | None, list[GatewayVersion]]:
        """Write a policy (`document`), or delete it (None), and append a version of each
        gateway that links it, in one transaction: every gateway serves the new content, or
        nothing was kept. `linking` says what in a gateway version links the policy: the
        gateways that link it now must be exactly `recommits`, each still at the version read
        (LinkChanged otherwise: a gateway changed since); a delete is refused (PolicyInUse)
        while any links it."""
        subscription, resource_group = _scope_of(resource_id)
        with self._write() as conn:
            _check_preconditions(_policy_etag(conn, key), if_match, if_none_match)
            if linking is not None:
                current = [_version_from_row(row) for row in conn.execute(_CURRENT_VERSIONS)]
                owners = {g.resource_id.casefold(): linking(g) for g in current}
                linked = {
                    g.resource_id.casefold(): g.etag
                    for g in current
                    if owners[g.resource_id.casefold()]
                }
                if document is None and linked:
                    raise PolicyInUse(", ".join(o for found in owners.values() for o in found))
                read = {r.current.resource_id.casefold(): r.current.etag for r in recommits}
                if linked != read:
                    changed = {gateway for gateway, _ in set(linked.items()) ^ set(read.items())}
                    raise LinkChanged(
                        "gateways linking the policy changed meanwhile: "
                        + ", ".join(sorted(changed))
                    )
            now = utcnow()
            stored = None
            table = firewall_policies_table
            if document is None:
                conn.execute(table.delete().where(table.c.key == key))
            else:
                stored = StoredPolicy(resource_id, new_etag(), dict(document), now, actor)
                values = {
                    "etag": stored.etag,
                    "document": json_text.dumps_text(document, sort_keys=True),
                    "updated_at": now,
                    "actor": actor,
                }
                found = conn.execute(sa.select(table.c.resource_id).where(table.c.key == key))
                existing = found.scalar()
                if existing is None:
                    conn.execute(
                        table.insert().values(
                            key=key,
                            resource_id=resource_id,
                            subscription=subscription,
                            resource_group=resource_group,
                            **values,
                        )
                    )
                else:
                    conn.execute(table.update().where(table.c.key == key).values(**values))
                    stored = replace(stored, resource_id=existing)
            versions = [
                self._append(
                    conn,
                    recommit.current.resource_id,
                    recommit.current.resource_id.casefold(),
                    recommit.current.document,
                    recommit.secrets,
                    operational_state=recommit.current.operational_state,
                    actor=actor,
                    activity=recommit.activity,
                )
                for recommit in recommits
            ]
            if operation_id is not None:
                conn.execute(_operation_row(operation_id, resource_id, "Succeeded", now))
            if activity is not None:
                conn.execute(_activity_row(activity))
        return stored, versions

    def purge_superseded_secrets(self) -> None:
        """What commits do per gateway, for every gateway at once: secrets are kept by the
        newest `keep_secret_versions` versions of a gateway, and by none of a deleted one."""
        if self.keep_secret_versions is None:
            return
        gateway = sa.select(gateways_table).where(
            gateways_table.c.key == versions_table.c.gateway_key
        )
        last = gateway.with_only_columns(gateways_table.c.last_version).scalar_subquery()
        current = gateway.with_only_columns(gateways_table.c.current_version).scalar_subquery()
        with self._write() as conn:
            conn.execute(
                _purge.where(
                    sa.or_(
                        versions_table.c.version <= last - self.keep_secret_versions,
                        current.is_(None),
                    )
                )
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
        with self._read() as conn:
            return [_version_from_row(row) for row in conn.execute(query)]

    def history(self, key: str) -> list[GatewayVersion]:
        with self._read() as conn:
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
        query = _CURRENT_VERSIONS.order_by(gateways_table.c.key)
        if excluding is not None:
            query = query.where(gateways_table.c.key != excluding)
        with self._read() as conn:
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
        with self._read() as conn:
            value = conn.execute(sa.select(sa.func.max(versions_table.c.seq))).scalar()
        return int(value or 0)

    def versions_after(self, seq: int) -> list[GatewayVersion]:
        """What data planes have not applied yet, oldest first."""
        with self._read() as conn:
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
            conn.execute(_activity_row(event_))

    def update_activity_detail(self, event_id: str, detail: dict[str, Any]) -> None:
        """Rewrite the detail of an entry (the counts of a coalesced one)."""
        with self._write() as conn:
            conn.execute(
                activity_table.update()
                .where(activity_table.c.event_id == event_id)
                .values(detail=json.dumps(detail))
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
        with self._read() as conn:
            return [_activity_of_row(row) for row in conn.execute(query)]

    def record_operation(self, operation_id: str, resource_id: str, status: str) -> None:
        with self._write() as conn:
            conn.execute(_operation_row(operation_id, resource_id, status, utcnow()))

    def operation(self, operation_id: str) -> tuple[str, str] | None:
        """(status, resource id) of an operation, or None."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(operations_table.c.status, operations_table.c.resource_id).where(
                    operations_table.c.id == operation_id
                )
            ).first()
        return (row.status, row.resource_id) if row is not None else None

    def has_tokens(self) -> bool:
        with self._read() as conn:
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
        with self._read() as conn:
            row = conn.execute(
                sa.select(tokens_table.c.name).where(tokens_table.c.token_hash == token_hash)
            ).first()
        return row.name if row is not None else None

    # --- portal sessions (the policy: appgw.control.sessions) ------------------------------

    def add_session(self, id_hash: str, caller: str, now: datetime, keep: int) -> None:
        """A new session; the oldest beyond `keep` sessions go (sign-ins scripted in a loop
        must not grow the table without bound)."""
        with self._write() as conn:
            conn.execute(
                sessions_table.insert().values(
                    id_hash=id_hash, caller=caller, created_at=now, seen_at=now
                )
            )
            overflow = conn.execute(
                sa.select(sessions_table.c.id_hash)
                .order_by(sessions_table.c.seen_at.desc())
                .offset(keep)
            ).scalars()
            stale = list(overflow)
            if stale:
                conn.execute(sessions_table.delete().where(sessions_table.c.id_hash.in_(stale)))

    def session(self, id_hash: str) -> tuple[str, datetime, datetime] | None:
        """(caller, created, last seen) of a session, or None."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(
                    sessions_table.c.caller, sessions_table.c.created_at, sessions_table.c.seen_at
                ).where(sessions_table.c.id_hash == id_hash)
            ).first()
        if row is None:
            return None
        return row.caller, _utc(row.created_at), _utc(row.seen_at)

    def session_seen(self, id_hash: str, now: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                sessions_table.update()
                .where(sessions_table.c.id_hash == id_hash)
                .values(seen_at=now)
            )

    def end_sessions(self, *, id_hash: str | None = None, seen_before: datetime | None = None,
                     created_before: datetime | None = None) -> None:  # fmt: skip
        """End one session, or every session idle or old beyond the given times."""
        condition: sa.ColumnElement[bool]
        if id_hash is not None:
            condition = sessions_table.c.id_hash == id_hash
        else:
            assert seen_before is not None and created_before is not None
            condition = sa.or_(
                sessions_table.c.seen_at < seen_before,
                sessions_table.c.created_at < created_before,
            )
        with self._write() as conn:
            conn.execute(sessions_table.delete().where(condition))


# What a version's secrets column holds once they are purged (AES-GCM blobs are never empty).
PURGED = b""
_purge = (
    versions_table.update()
    .where(sa.func.length(versions_table.c.secrets) > 0)
    .values(secrets=PURGED)
)


def _activity_row(event_: ActivityEvent) -> sa.Insert:
    """The row of an activity entry: its fields by name, the detail as JSON."""
    values = {field.name: getattr(event_, field.name) for field in fields(ActivityEvent)}
    values["time"] = _utc(event_.time)
    values["detail"] = json.dumps(event_.detail) if event_.detail is not None else None
    return activity_table.insert().values(**values)


def _activity_of_row(row: Any) -> ActivityEvent:
    values = {field.name: getattr(row, field.name) for field in fields(ActivityEvent)}
    values["time"] = _utc(row.time)
    values["detail"] = json.loads(row.detail) if row.detail else None
    return ActivityEvent(**values)


def _operation_row(operation_id: str, resource_id: str, status: str, now: datetime) -> sa.Insert:
    return operations_table.insert().values(
        id=operation_id, resource_id=resource_id, status=status, started_at=now, ended_at=now
    )


# SQLite's primary result codes (the low byte of an extended code) that are no bug of ours.
_SQLITE_FULL = {13}  # SQLITE_FULL
_SQLITE_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
# SQLITE_PERM, BUSY, LOCKED, READONLY, IOERR, CANTOPEN
_SQLITE_UNAVAILABLE = {3, 5, 6, 8, 10, 14}
# PostgreSQL SQLSTATEs (and classes, by their first two characters) that are no bug of ours.
_PG_FULL = {"53100"}  # disk_full
_PG_CORRUPT = {"XX001", "XX002"}  # data_corrupted, index_corrupted
# connection exceptions, insufficient resources, operator intervention (shutdown, recovery),
# system errors (I/O); and a read-only database or standby
_PG_UNAVAILABLE_CLASSES = {"08", "53", "57", "58"}
_PG_UNAVAILABLE = {"25006"}  # read_only_sql_transaction


def _failure(error: sa.exc.DBAPIError, url: sa.URL) -> StoreFailure | None:
    """The StoreFailure a database error is, or None for one that is our bug."""
    orig = error.orig
    reason = _reason(error, url)
    kind: type[StoreFailure] | None = None
    if isinstance(orig, sqlite3.Error):
        code = (getattr(orig, "sqlite_errorcode", 0) or 0) & 0xFF
        if code in _SQLITE_FULL:
            kind = StoreFull
        elif code in _SQLITE_CORRUPT:
            kind = StoreCorrupt
        elif code in _SQLITE_UNAVAILABLE:
            kind = StoreUnavailable
    else:
        state = getattr(orig, "sqlstate", None)
        if state in _PG_FULL:
            kind = StoreFull
        elif state in _PG_CORRUPT:
            kind = StoreCorrupt
        elif state in _PG_UNAVAILABLE or (state and state[:2] in _PG_UNAVAILABLE_CLASSES):
            kind = StoreUnavailable
        elif state is None and isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError):
            kind = StoreUnavailable  # no answer at all: refused, reset, timed out
    if error.connection_invalidated and kind is None:
        kind = StoreUnavailable
    return kind(reason) if kind is not None else None


def shown_url(url: str) -> str:
    """The store's URL as messages and logs may show it: without the password, and without the
    query (libpq takes a password there too)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return "(not a database URL)"
    return parsed.set(query={}).render_as_string(hide_password=True)


def with_connect_timeout(url: str, seconds: int) -> str:
    """A PostgreSQL store URL with connect_timeout=`seconds`, unless it sets its own; any other
    URL as it is. (Processes handed the URL then all wait the same.)"""
    parsed = _parse(url)
    if parsed.get_backend_name() != "postgresql" or "connect_timeout" in parsed.query:
        return url
    as_typed = sa.engine.make_url(url)  # the scheme too: messages show it as the user wrote it
    return as_typed.update_query_dict({"connect_timeout": str(seconds)}).render_as_string(
        hide_password=False
    )


def connect_timeout(url: str) -> str | None:
    """The connect timeout (seconds, as written) a PostgreSQL store URL is opened with; None
    for SQLite, whose file opens at once."""
    return _connect_timeout(_parse(url))


def _connect_timeout(parsed: sa.URL) -> str | None:
    if parsed.get_backend_name() != "postgresql":
        return None
    value = parsed.query.get("connect_timeout", CONNECTION_OPTIONS["connect_timeout"])
    return value if isinstance(value, str) else value[-1]


def _reason(error: BaseException, url: sa.URL) -> str:
    """What went wrong, in one line: the driver's message without libpq's hints (lines that
    begin with a tab, e.g. "Is the server running on that host ...?")."""
    orig = error.orig if isinstance(error, sa.exc.DBAPIError) and error.orig else error
    if not isinstance(orig, sqlite3.Error):
        from psycopg.errors import ConnectionTimeout  # loaded already: the error is psycopg's

        if isinstance(orig, ConnectionTimeout):
            return f"no answer within the connect timeout ({_connect_timeout(url)} s)"
    lines = [line for line in str(orig).splitlines() if line.strip() and line[0] != "\t"]
    return " ".join("; ".join(lines).split()) or type(orig).__name__


def _parse(url: str) -> sa.URL:
    """The URL with the driver appgw uses; a StoreError for what is no database URL."""
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
    return parsed


def _create_engine(url: str) -> Engine:
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # In the URL, not connect_args (which would override it): what the URL sets wins.
        parsed = parsed.update_query_dict(
            {name: value for name, value in CONNECTION_OPTIONS.items() if name not in parsed.query}
        )
        # pre_ping: a connection the server dropped (restart, failover) is replaced, not failed.
        pg_engine = sa.create_engine(parsed, pool_pre_ping=True)

        @event.listens_for(pg_engine, "connect")
        def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(
                    "SET idle_in_transaction_session_timeout = "
                    f"{int(IDLE_IN_TRANSACTION_TIMEOUT_MS)}"
                )
                cursor.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
            dbapi_connection.commit()  # a SET in a rolled-back transaction would not stay

        return pg_engine
    if backend != "sqlite":
        raise StoreError(f"the store URL {shown_url(url)} is neither sqlite:/// nor postgresql://")
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


# The current version of every gateway (with its resource id).
_CURRENT_VERSIONS = (
    sa.select(versions_table, gateways_table.c.resource_id)
    .join(gateways_table, gateways_table.c.key == versions_table.c.gateway_key)
    .where(versions_table.c.version == gateways_table.c.current_version)
)


def _policy_etag(conn: Connection, key: str) -> str | None:
    table = firewall_policies_table
    return conn.execute(sa.select(table.c.etag).where(table.c.key == key)).scalar()


def _policy_from_row(row: Any) -> StoredPolicy:
    return StoredPolicy(
        resource_id=row.resource_id,
        etag=row.etag,
        document=json.loads(row.document),
        updated_at=_utc(row.updated_at),
        actor=row.actor,
    )


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
