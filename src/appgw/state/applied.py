"""Which versions each process of this instance serves: what a PUT's operation waits for.

Every worker and the health monitor publish, after each version they apply, the sequence number
(the store's global `seq`) they serve per gateway. The API reads them all: an operation is done
once every live process serves its version or a newer one (Azure's provisioning state turns
Succeeded once every instance applied the change).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appgw.state.files import read_json, write_json

FILE_PREFIX = "applied-"
FORMAT = 1


@dataclass(frozen=True, slots=True)
class Applied:
    process: str  # "worker-0", "worker-1", ..., "health"
    pid: int
    seq: int  # every version up to this seq has been applied (or skipped for a newer one)
    failed: dict[str, int]  # gateway key -> seq of a version that did not compile here

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "process": self.process,
            "pid": self.pid,
            "seq": self.seq,
            "failed": self.failed,
        }


def publish(directory: Path, applied: Applied) -> bool:
    return write_json(directory / f"{FILE_PREFIX}{applied.process}.json", applied.to_json())


def load(directory: Path, process: str) -> Applied | None:
    value = read_json(directory / f"{FILE_PREFIX}{process}.json")
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        return None
    try:
        return Applied(
            process=str(value["process"]),
            pid=int(value["pid"]),
            seq=int(value["seq"]),
            failed={str(k): int(v) for k, v in dict(value.get("failed", {})).items()},
        )
    except (KeyError, TypeError, ValueError):
        return None


class AppliedVersions:
    """What the live processes of this instance serve, as they published it.

    `processes` names each live process and its pid: a file left by a process that has been
    replaced (another pid) says nothing about its successor, which is still starting.
    """

    def __init__(self, directory: Path, processes: Callable[[], Iterable[tuple[str, int]]]) -> None:
        self.directory = directory
        self.processes = processes

    def status(self, gateway_key: str, seq: int) -> str:
        """ "Succeeded" once every process serves `seq` or later; "Failed" when one could not
        compile that very version; else "InProgress"."""
        for name, pid in self.processes():
            applied = load(self.directory, name)
            if applied is None or applied.pid != pid:
                return "InProgress"
            if applied.failed.get(gateway_key) == seq:
                return "Failed"
            if applied.seq < seq:
                return "InProgress"
        return "Succeeded"

    def ready(self) -> bool:
        """Every process has started serving (published at least once)."""
        for name, pid in self.processes():
            applied = load(self.directory, name)
            if applied is None or applied.pid != pid:
                return False
        return True

    def clear(self) -> None:
        """Forget what processes of an earlier start published (serve starts afresh)."""
        for path in self.directory.glob(f"{FILE_PREFIX}*.json"):
            path.unlink(missing_ok=True)
