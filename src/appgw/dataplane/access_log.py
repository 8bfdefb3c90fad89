"""The access log: one JSON line per request (Azure's ApplicationGatewayAccessLog fields).

Records are queued as they are and turned into lines off the request path: at most every
FLUSH_INTERVAL or every FLUSH_RECORDS records, all at once, with one O_APPEND write, so lines of
several workers never interleave.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

FLUSH_INTERVAL = 0.2  # seconds a line may wait; short enough for `tail -f` to feel live
# ~600 B a line: one write stays around 64 KiB, which keeps syscalls rare and is not so big
# that a burst of lines holds the event loop for long.
FLUSH_RECORDS = 100
# One encoder for every line: json.dumps with non-default separators builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode


_stamp: tuple[int, str] = (0, "")


def utc_timestamp() -> str:
    """The current second as the log's timeStamp; formatted once per second."""
    global _stamp
    second = int(time.time())
    if second != _stamp[0]:
        _stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _stamp[1]


class AccessLog:
    def __init__(self, path: Path | None) -> None:
        self._fd = (
            os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            if path is not None
            else None
        )
        self._records: list[dict[str, Any]] = []
        self._flush_handle: asyncio.TimerHandle | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            return
        self._records.append(record)
        if len(self._records) >= FLUSH_RECORDS:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._fd is None or not self._records:
            return
        records, self._records = self._records, []
        data = "".join([_encode(record) + "\n" for record in records]).encode()
        os.write(self._fd, data)

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
