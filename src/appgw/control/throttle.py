"""Refused authentication, limited and counted per client address.

Each address has a token bucket of BURST refusals, refilled one every REFILL_SECONDS. A refused
token that the address already presented (a script retrying a stale token) takes nothing from
it: only new guesses do. An address whose bucket is empty gets 429 for every token it presents,
the right one included, until Retry-After: were the right one let through, the answer would
still tell a right guess from a wrong one, and guessing would go on at full speed. Other
addresses are never affected. An IPv6 client counts by its /64, which one host usually has.

Refusals are counted per address and minute for the activity log: one entry per window, its
counts rewritten at most every WRITE_INTERVAL seconds, and whenever the log is read (`pending`).
The tokens presented are never kept: only a 64-bit digest of the last few, per address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

# A person mistyping or pasting the wrong token fails a few times; ten is beyond that, and
# one more guess every 6 s (600 an hour) makes guessing even a weak 24-character token hopeless.
BURST = 10
REFILL_SECONDS = 6.0
WINDOW_SECONDS = 60.0  # the activity log has one entry per address and minute
WRITE_INTERVAL = 10.0  # an entry's counts are rewritten at most this often while refusals go on
# Addresses tracked at once (about 400 bytes each: 4 MB at most); beyond, the least recently
# refused one is forgotten (its counts written first).
MAX_ADDRESSES = 10_000
REMEMBERED_TOKENS = 8  # refused tokens remembered per address, so retries of one are no guesses


@dataclass
class Tally:
    """The refusals of one address in one window: what its activity entry says."""

    address: str
    started: float  # time.time() of the first refusal
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    refused: int = 0
    limited: int = 0  # of which refused unchecked, the address being limited
    via: set[str] = field(default_factory=set)
    written: bool = False  # the entry exists (later writes update it)

    def detail(self) -> dict[str, object]:
        return {
            "code": "InvalidAuthenticationToken",
            "refused": self.refused,
            "limited": self.limited,
            "via": sorted(self.via),
            "windowSeconds": int(WINDOW_SECONDS),
        }


@dataclass
class _Address:
    allowance: float
    refilled: float  # monotonic time the allowance was last brought up to date
    tokens: deque[int] = field(default_factory=lambda: deque(maxlen=REMEMBERED_TOKENS))
    tally: Tally | None = None
    window_end: float = 0.0
    dirty: bool = False  # the tally has counts its entry does not show yet
    written_at: float = 0.0


@dataclass(frozen=True)
class Entry:
    """An activity entry to write (insert, or update of the one with `tally.event_id`)."""

    tally: Tally
    new: bool


class AuthThrottle:
    def __init__(
        self,
        *,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_addresses = max_addresses
        self.clock = clock
        self.wall_clock = wall_clock
        self._addresses: OrderedDict[str, _Address] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._addresses)

    def retry_after(self, address: str | None) -> int | None:
        """Seconds until `address` may present a token again; None if it may now."""
        with self._lock:
            found = self._addresses.get(_key(address))
            if found is None:
                return None
            self._refill(found)
            if found.allowance >= 1:
                return None
            return max(1, math.ceil((1 - found.allowance) * REFILL_SECONDS))

    def was_refused(self, address: str | None, token: str) -> bool:
        """Whether `address` presented `token` lately and it was refused (one of the last
        REMEMBERED_TOKENS): a wrong token known without the store."""
        with self._lock:
            found = self._addresses.get(_key(address))
            return found is not None and _digest(token) in found.tokens

    def refused(self, address: str | None, token: str, via: str, *, limited: bool) -> list[Entry]:
        """Count a refusal (`limited`: refused unchecked); what to write to the activity log."""
        key = _key(address)
        now = self.clock()
        digest = _digest(token)
        to_write: list[Entry] = []
        with self._lock:
            found = self._addresses.get(key)
            if found is None:
                found = _Address(allowance=BURST, refilled=now)
                self._addresses[key] = found
                while len(self._addresses) > self.max_addresses:
                    _old, forgotten = self._addresses.popitem(last=False)
                    to_write += self._flush(forgotten)
            self._addresses.move_to_end(key)
            self._refill(found)
            if not limited and digest not in found.tokens:
                found.allowance = max(0.0, found.allowance - 1)
                found.tokens.append(digest)
            if found.tally is not None and now >= found.window_end:
                to_write += self._flush(found)
                found.tally = None
            if found.tally is None:
                found.tally = Tally(key, self.wall_clock())
                found.window_end = now + WINDOW_SECONDS
            tally = found.tally
            tally.refused += 1
            tally.limited += int(limited)
            tally.via.add(via)
            found.dirty = True
            if not tally.written or now - found.written_at >= WRITE_INTERVAL:
                to_write += self._flush(found)
        return to_write

    def pending(self) -> list[Entry]:
        """Every count not written yet (the log is about to be read, or serve stops)."""
        with self._lock:
            return [entry for found in self._addresses.values() for entry in self._flush(found)]

    def _flush(self, found: _Address) -> list[Entry]:
        tally = found.tally
        if tally is None or not found.dirty:
            return []
        # A copy of the counts as they are now: the entry is written outside the lock.
        entry = Entry(replace(tally, via=set(tally.via)), new=not tally.written)
        tally.written = True
        found.dirty = False
        found.written_at = self.clock()
        return [entry]

    def _refill(self, found: _Address) -> None:
        now = self.clock()
        found.allowance = min(BURST, found.allowance + (now - found.refilled) / REFILL_SECONDS)
        found.refilled = now


def _digest(token: str) -> int:
    """What is remembered of a refused token: 64 bits of its SHA-256."""
    return int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "big")


def _key(address: str | None) -> str:
    """What an address counts as: itself, an IPv6 one by its /64."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
    return str(parsed)
