"""The access log: one JSON line per request (Azure's ApplicationGatewayAccessLog fields).

Lines are buffered and written off the request path: at most every FLUSH_INTERVAL or when the
buffer is full, with one O_APPEND write, so lines of several workers never interleave.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

FLUSH_INTERVAL = 0.2  # seconds a line may wait; short enough for `tail -f` to feel live
FLUSH_BYTES = 64 * 1024  # one write per 64 KiB keeps syscalls rare and stays under pipe limits


class AccessLog:
    def __init__(self, path: Path | None) -> None:
        self._fd = (
            os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            if path is not None
            else None
        )
        self._lines: list[str] = []
        self._size = 0
        self._flush_handle: asyncio.TimerHandle | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            return
        line = json.dumps(record, separators=(",", ":")) + "\n"
        self._lines.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._fd is None or not self._lines:
            return
        data = "".join(self._lines).encode()
        self._lines.clear()
        self._size = 0
        os.write(self._fd, data)

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
