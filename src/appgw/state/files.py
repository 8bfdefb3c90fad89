"""The state directory, and whole-file JSON writes that readers never see half-done."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("appgw.state")

STATE_DIR = "state"


def state_dir(data_dir: Path) -> Path:
    """`<data_dir>/state`, private to the user that runs appgw (made if missing)."""
    directory = data_dir / STATE_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(OSError):
        directory.chmod(0o700)
    return directory


def write_json(path: Path, value: Any) -> bool:
    """Replace `path` with `value` atomically; False (and the old file kept) when the write
    fails, e.g. on a full disk: state is advisory, serving must not depend on writing it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(value, handle, separators=(",", ":"))
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        log.warning("could not write %s: %s", path, error.strerror or error)
        return False
    return True


def read_json(path: Path) -> Any:
    """The file's value, or None when it is missing or unreadable (being replaced: the next
    read finds the new one)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


Stamp = tuple[int, int]  # (inode, mtime in ns): every whole-file write makes a new inode


def changed_since(path: Path, seen: Stamp | None) -> Stamp | None:
    """The file's stamp when it differs from `seen` (None: unchanged or absent): one stat, so
    readers can poll often."""
    try:
        status = path.stat()
    except OSError:
        return None
    stamp = (status.st_ino, status.st_mtime_ns)
    return stamp if stamp != seen else None
