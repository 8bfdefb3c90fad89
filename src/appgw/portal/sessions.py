"""Portal sessions: server-side, random ids in an HttpOnly SameSite=Strict cookie, one CSRF
token per session checked on every form."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "appgw_session"
IDLE_TIMEOUT = 60 * 60  # an hour without a click signs the operator out
ABSOLUTE_TIMEOUT = 12 * 60 * 60  # a working day at most, whatever the activity
MAX_SESSIONS = 10_000  # bounds memory if someone scripts sign-ins


@dataclass
class Session:
    caller: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    flash: list[str] = field(default_factory=list)

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf)


class Sessions:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, caller: str) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(caller)
        with self._lock:
            self._expire()
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda key: self._sessions[key].seen)
                del self._sessions[oldest]
            self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            now = time.monotonic()
            if session is None:
                return None
            if now - session.seen > IDLE_TIMEOUT or now - session.created > ABSOLUTE_TIMEOUT:
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def _expire(self) -> None:
        now = time.monotonic()
        for key, session in list(self._sessions.items()):
            if now - session.seen > IDLE_TIMEOUT or now - session.created > ABSOLUTE_TIMEOUT:
                del self._sessions[key]
