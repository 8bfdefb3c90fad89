"""The health board: which members the health monitor keeps out of rotation.

The monitor publishes it whole; every worker loads it within a quarter second (a stat per
poll) and hands it to its balancer. Keys carry the probe's fingerprint, so a verdict about an
older configuration of a pair never applies to a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from appgw.compile.snapshot import HealthKey
from appgw.state.files import Stamp, changed_since, read_json, write_json

BOARD_FILE = "health-board.json"
FORMAT = 2  # a reader ignores a board of another format rather than misreading it


@dataclass(frozen=True, slots=True)
class HealthBoard:
    unhealthy: frozenset[HealthKey] = frozenset()


def publish(path: Path, board: HealthBoard) -> bool:
    return write_json(
        path, {"format": FORMAT, "unhealthy": [list(key) for key in sorted(board.unhealthy)]}
    )


def load(path: Path) -> HealthBoard | None:
    """The board, or None when there is none (yet) or it is unreadable."""
    value = read_json(path)
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        return None
    keys: set[HealthKey] = set()
    for item in value.get("unhealthy", []):
        if isinstance(item, list) and len(item) == len(HealthKey._fields):
            keys.add(HealthKey(*(str(part) for part in item)))
    return HealthBoard(frozenset(keys))


@dataclass
class BoardReader:
    """Loads the board when the file changed since the last load."""

    path: Path
    _seen: Stamp | None = field(default=None, repr=False)

    def load_if_changed(self) -> HealthBoard | None:
        stamp = changed_since(self.path, self._seen)
        if stamp is None:
            return None
        board = load(self.path)
        if board is not None:
            self._seen = stamp
        return board
