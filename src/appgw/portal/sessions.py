"""Portal sessions: random ids in an HttpOnly SameSite=Strict cookie, kept in the store through
the service (appgw.control.sessions: they survive a restart), one CSRF token per session checked
on every form."""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field

from appgw.control.service import GatewayService
from appgw.control.sessions import csrf_token

COOKIE = "appgw_session"
# Messages shown once on the next page ("Saved ..."): kept in this process only, for at most
# this many sessions (a restart may drop one, which costs nothing).
MAX_FLASHED_SESSIONS = 1_000


@dataclass
class Session:
    caller: str
    csrf: str
    flash: list[str] = field(default_factory=list)

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf)


class Sessions:
    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self._flash: dict[str, list[str]] = {}  # session id -> messages not shown yet
        self._lock = threading.Lock()

    def create(self, caller: str) -> str:
        """A new session; its id, for the cookie."""
        return self.service.start_session(caller)

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        caller = self.service.session_caller(session_id)
        if caller is None:
            return None
        with self._lock:
            flash = self._flash.get(session_id)
            if flash is None:
                if len(self._flash) >= MAX_FLASHED_SESSIONS:
                    self._flash.pop(next(iter(self._flash)))  # the oldest
                flash = self._flash[session_id] = []
        return Session(caller, csrf_token(session_id), flash)

    def end(self, session_id: str | None) -> None:
        if not session_id:
            return
        with self._lock:
            self._flash.pop(session_id, None)
        self.service.end_session(session_id)
