"""Portal sessions in the store: they outlive a restart of `appgw serve` and are shared by the
instances of one store. The cookie holds a random id; the store only its SHA-256 (as for API
tokens), so a copy of the database signs nobody in."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from appgw.store.sql import SqlStore, utcnow

IDLE_TIMEOUT = timedelta(hours=1)  # an hour without a click signs the operator out
ABSOLUTE_TIMEOUT = timedelta(hours=12)  # a working day at most, whatever the activity
MAX_SESSIONS = 10_000  # bounds the table if someone scripts sign-ins
# Last-seen times are written at most this often: a click is a read, not a write, and an
# hour's idle timeout does not need a finer clock.
SEEN_RESOLUTION = timedelta(minutes=1)


def session_hash(session_id: str) -> str:
    # Session ids are 256-bit random values: a plain hash is enough (see control.auth).
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token(session_id: str) -> str:
    """The session's CSRF token, derived from its id: nothing more to store, and it cannot be
    computed from what the store keeps."""
    return hmac.new(session_id.encode(), b"appgw portal csrf", hashlib.sha256).hexdigest()


def start(store: SqlStore, caller: str) -> str:
    """A new session for `caller`; its id (for the cookie)."""
    now = utcnow()
    store.end_sessions(seen_before=now - IDLE_TIMEOUT, created_before=now - ABSOLUTE_TIMEOUT)
    session_id = secrets.token_urlsafe(32)
    store.add_session(session_hash(session_id), caller, now, MAX_SESSIONS)
    return session_id


def caller(store: SqlStore, session_id: str, now: datetime | None = None) -> str | None:
    """Who the session signed in, or None (unknown, idle too long or too old)."""
    id_hash = session_hash(session_id)
    found = store.session(id_hash)
    if found is None:
        return None
    name, created, seen = found
    now = now or utcnow()
    if now - seen > IDLE_TIMEOUT or now - created > ABSOLUTE_TIMEOUT:
        store.end_sessions(id_hash=id_hash)
        return None
    if now - seen >= SEEN_RESOLUTION:
        store.session_seen(id_hash, now)
    return name


def end(store: SqlStore, session_id: str) -> None:
    store.end_sessions(id_hash=session_hash(session_id))
