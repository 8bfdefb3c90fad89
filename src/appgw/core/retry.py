"""What happens when a backend fails a request: one retry where Azure makes one, else an answer.

* A pooled keep-alive connection that the backend had closed before any response byte: the
  request is sent once more, on a fresh connection, when nothing of it is lost by doing so
  (idempotent method, no body byte sent yet). An invalid response is never retried: the
  backend answered, badly.
* A request timeout: v2 tries one other member once (same conditions, more than one member);
  v1 answers 502, v2 504.
* A connection that cannot be made: 502, or 504 on v2 when it timed out; no retry (a new
  connection to another member would face the same network).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from appgw.core.request import Reject

# RFC 9110 §9.2.2: repeating these has the effect of doing it once.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})
TIMED_OUT = "ERRORINFO_UPSTREAM_TIMED_OUT"
CLOSED = "ERRORINFO_UPSTREAM_CLOSED_CONNECTION"


class Failure(Enum):
    CONNECTION_LOST = "connection lost"  # closed or broken before a response started
    TIMEOUT = "timeout"  # no complete response head within the settings' request timeout
    CONNECT = "connect"  # TCP, DNS or TLS (handshake or verification) failed


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the policy needs to know about the attempt that failed."""

    method: bytes
    body_sent: bool  # some request body already went to the backend
    retried: bool  # this was the retry already
    reused: bool  # the connection came from the idle pool
    members: int  # members of the pool


@dataclass(frozen=True, slots=True)
class Retry:
    avoid_failed_member: bool


def after_failure(
    failure: Failure, attempt: Attempt, *, sku_v1: bool, error_info: str
) -> Retry | Reject:
    repeatable = attempt.method in IDEMPOTENT and not attempt.body_sent and not attempt.retried
    if failure is Failure.CONNECTION_LOST:
        if repeatable and attempt.reused and error_info == CLOSED:
            return Retry(avoid_failed_member=False)
        return Reject(502, error_info, close=False)
    if failure is Failure.TIMEOUT:
        if repeatable and not sku_v1 and attempt.members > 1:
            return Retry(avoid_failed_member=True)
        return Reject(502 if sku_v1 else 504, TIMED_OUT, close=False)
    timed_out = error_info == TIMED_OUT
    return Reject(504 if timed_out and not sku_v1 else 502, error_info, close=False)
