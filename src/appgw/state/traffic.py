"""Traffic's verdict on backends: the backend certificates live requests were refused for.

A probe and a request can judge one backend differently (the request's Host as SNI, another
host name): Backend health must never show a member as plainly Healthy while its traffic
fails. Each worker counts its refusals by minute per member, keyed as the health board keys it
(with the probe fingerprint: a changed pool or settings starts afresh), and publishes them (a
file per worker, at most once a second); the health monitor loads every worker's file when it
builds a report.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appgw.compile.snapshot import HealthKey
from appgw.state.files import read_json, write_json

if TYPE_CHECKING:
    from appgw.compile.snapshot import UpstreamKey
    from appgw.tls.trust import BackendCertificateVerdict

WINDOW_SECONDS = 300  # Backend health speaks of "the last 5 minutes"
BUCKET_SECONDS = 60  # counts are kept per minute: the window moves a minute at a time
# Members with refusals one worker keeps; beyond it the oldest is dropped. Bounds memory and
# the file (a gateway at Azure's limits has 120,000 members; a misconfiguration fails many).
MAX_MEMBERS = 2048
FILE_PREFIX = "traffic-"
FORMAT = 1


@dataclass
class Refusals:
    """One member's refusals in one worker (or all of them, once merged)."""

    counts: dict[int, int]  # minute (epoch seconds // 60) -> refused requests
    check: str  # the verdict's failed check (tls/trust.py's catalogue)
    message: str  # the verdict's sentence, with its fix
    sni: str | None
    verify_name: str | None
    certificate_names: list[str]  # what the presented leaf covers (SANs, else its CN)
    subject: str
    last: float  # epoch seconds of the latest refusal

    def count(self, now: float) -> int:
        first = int(now - WINDOW_SECONDS) // BUCKET_SECONDS
        return sum(n for minute, n in self.counts.items() if minute > first)

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {str(minute): n for minute, n in self.counts.items()},
            "check": self.check,
            "message": self.message,
            "sni": self.sni,
            "verifyName": self.verify_name,
            "certificateNames": self.certificate_names,
            "subject": self.subject,
            "last": self.last,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Refusals:
        return cls(
            counts={int(minute): int(n) for minute, n in value["counts"].items()},
            check=str(value["check"]),
            message=str(value["message"]),
            sni=value.get("sni"),
            verify_name=value.get("verifyName"),
            certificate_names=[str(name) for name in value.get("certificateNames", [])],
            subject=str(value.get("subject", "")),
            last=float(value["last"]),
        )


@dataclass
class TrafficFailures:
    """A worker's refusals; `record` runs on a refused handshake, never on a good request."""

    refusals: dict[HealthKey, Refusals] = field(default_factory=dict)
    dirty: bool = False

    def record(
        self,
        where: HealthKey,
        key: UpstreamKey,
        verdict: BackendCertificateVerdict,
        now: float | None = None,
    ) -> None:
        moment = time.time() if now is None else now
        minute = int(moment) // BUCKET_SECONDS
        leaf = verdict.presented[0] if verdict.presented else None
        known = self.refusals.pop(where, None)  # re-inserted: the dict stays oldest-first
        counts = known.counts if known is not None else {}
        counts[minute] = counts.get(minute, 0) + 1
        for old in [m for m in counts if m <= minute - WINDOW_SECONDS // BUCKET_SECONDS]:
            del counts[old]
        self.refusals[where] = Refusals(
            counts=counts,
            check=verdict.check,
            message=verdict.message,
            sni=key.sni,
            verify_name=key.verify_name,
            certificate_names=list(leaf.names) if leaf is not None else [],
            subject=leaf.subject if leaf is not None else "",
            last=moment,
        )
        while len(self.refusals) > MAX_MEMBERS:
            del self.refusals[next(iter(self.refusals))]
        self.dirty = True

    def publish(self, directory: Path, instance: str, now: float | None = None) -> None:
        """Write this worker's file when something changed; drops what left the window."""
        if not self.dirty:
            return
        moment = time.time() if now is None else now
        for where in [k for k, r in self.refusals.items() if r.last < moment - WINDOW_SECONDS]:
            del self.refusals[where]
        entries = [
            {"key": list(where), **refusals.to_json()} for where, refusals in self.refusals.items()
        ]
        value = {"format": FORMAT, "refusals": entries}
        if write_json(directory / f"{FILE_PREFIX}{instance}.json", value):
            self.dirty = False


def load(directory: Path, now: float | None = None) -> dict[HealthKey, Refusals]:
    """Every worker's refusals still in the window, added up per member (the latest details
    win)."""
    moment = time.time() if now is None else now
    merged: dict[HealthKey, Refusals] = {}
    for path in sorted(directory.glob(f"{FILE_PREFIX}*.json")):
        for where, refusals in _entries(read_json(path)):
            if refusals.count(moment) == 0:
                continue
            known = merged.get(where)
            if known is None:
                merged[where] = refusals
                continue
            counts = dict(known.counts)
            for minute, n in refusals.counts.items():
                counts[minute] = counts.get(minute, 0) + n
            latest = refusals if refusals.last >= known.last else known
            merged[where] = replace(latest, counts=counts)
    return merged


def _entries(value: Any) -> Iterable[tuple[HealthKey, Refusals]]:
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        return
    for entry in value.get("refusals", []):
        try:
            yield HealthKey(*(str(part) for part in entry["key"])), Refusals.from_json(entry)
        except (KeyError, TypeError, ValueError):
            continue  # a damaged entry says nothing; the others still count
