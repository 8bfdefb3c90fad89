"""The access log: one JSON line per request (Azure's ApplicationGatewayAccessLog fields).

Records are queued as they are and turned into lines off the request path: at most every
FLUSH_INTERVAL or every FLUSH_RECORDS records, all at once, with one O_APPEND write, so lines of
several workers never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _json_string  # what json.dumps uses
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

FLUSH_INTERVAL = 0.2  # seconds a line may wait; short enough for `tail -f` to feel live
# ~600 B a line: one write stays around 64 KiB, which keeps syscalls rare and is not so big
# that a burst of lines holds the event loop for long.
FLUSH_RECORDS = 100
# Rotated past 100 MiB, 5 old files kept: about 600 MB of history, half a million lines per
# file, and a bound on the disk traffic can use.
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_FILES = 5

log = logging.getLogger("appgw.dataplane")
R = TypeVar("R")


class AccessRecord(NamedTuple):
    """One request's line, in the order of Azure's fields."""

    time_stamp: str
    resource_id: str
    listener_name: str
    rule_name: str
    backend_pool_name: str
    backend_setting_name: str
    instance_id: str
    client_ip: str
    client_port: int
    http_method: str
    original_request_uri_with_args: str
    request_uri: str
    request_query: str
    user_agent: str
    http_status: int
    http_version: str
    received_bytes: int
    sent_bytes: int
    time_taken: float
    transaction_id: str
    ssl_enabled: str
    ssl_cipher: str
    ssl_protocol: str
    server_routed: str
    server_status: str
    server_response_latency: float | None
    original_host: str
    host: str
    error_info: str
    # Mutual TLS (Azure's names): SUCCESS, FAILED:<reason> or NONE; "" without client auth.
    ssl_client_verify: str = ""
    ssl_client_certificate_fingerprint: str = ""
    ssl_client_certificate_issuer_name: str = ""
    # The WAF (Azure's WAFEvaluationTime in seconds, as a string; WAFMode): "" without one.
    waf_evaluation_time: str = ""
    waf_mode: str = ""


_LINE = (
    '{"timeStamp":%s,"resourceId":%s,"listenerName":%s,"ruleName":%s,"backendPoolName":%s,'
    '"backendSettingName":%s,"operationName":"ApplicationGatewayAccess",'
    '"category":"ApplicationGatewayAccessLog","properties":{"instanceId":%s,"clientIP":%s,'
    '"clientPort":%d,"httpMethod":%s,"originalRequestUriWithArgs":%s,"requestUri":%s,'
    '"requestQuery":%s,"userAgent":%s,"httpStatus":%d,"httpVersion":%s,"receivedBytes":%d,'
    '"sentBytes":%d,"timeTaken":%r,"transactionId":%s,"sslEnabled":%s,"sslCipher":%s,'
    '"sslProtocol":%s,"serverRouted":%s,"serverStatus":%s,"serverResponseLatency":%s,'
    '"originalHost":%s,"host":%s,"error_info":%s,"sslClientVerify":%s,'
    '"sslClientCertificateFingerprint":%s,"sslClientCertificateIssuerName":%s,'
    '"WAFEvaluationTime":%s,"WAFMode":%s}}\n'
)


def render(r: AccessRecord) -> str:
    """The JSON line, byte for byte what json.dumps(separators=(",", ":")) makes of it, at
    half the cost: the shape is fixed, only the values are encoded."""
    s = _json_string
    latency = r.server_response_latency
    return _LINE % (
        s(r.time_stamp), s(r.resource_id), s(r.listener_name), s(r.rule_name),
        s(r.backend_pool_name), s(r.backend_setting_name), s(r.instance_id), s(r.client_ip),
        r.client_port, s(r.http_method), s(r.original_request_uri_with_args),
        s(r.request_uri), s(r.request_query), s(r.user_agent), r.http_status,
        s(r.http_version), r.received_bytes, r.sent_bytes, r.time_taken,
        s(r.transaction_id), s(r.ssl_enabled), s(r.ssl_cipher), s(r.ssl_protocol),
        s(r.server_routed), s(r.server_status), "null" if latency is None else repr(latency),
        s(r.original_host), s(r.host), s(r.error_info), s(r.ssl_client_verify),
        s(r.ssl_client_certificate_fingerprint), s(r.ssl_client_certificate_issuer_name),
        s(r.waf_evaluation_time), s(r.waf_mode),
    )  # fmt: skip


_stamp: tuple[int, str] = (0, "")


def utc_timestamp() -> str:
    """The current second as the log's timeStamp; formatted once per second."""
    global _stamp
    second = int(time.time())
    if second != _stamp[0]:
        _stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _stamp[1]


@dataclass(frozen=True, slots=True)
class Rotation:
    """When the access log is rotated: past `max_bytes`, access.log becomes access.log.1
    (access.log.1 becomes .2, ...) and `files` old files are kept, so traffic alone can never
    fill the disk."""

    max_bytes: int = DEFAULT_MAX_BYTES
    files: int = DEFAULT_FILES


class LineLog(Generic[R]):
    """A log of JSON lines (the access log, the firewall log). Every worker appends to one
    file; the first to find it past its size rotates it (under a lock on the file) and the
    others reopen at their next flush. A write that fails (a full disk) drops those lines and
    says so once, never stopping the worker."""

    def __init__(
        self, path: Path | None, render: Callable[[R], str], rotation: Rotation | None = None
    ) -> None:
        self._path = path
        self._render = render
        self._rotation = rotation or Rotation()
        self._fd: int | None = None
        self._inode = 0
        self._records: list[R] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self.dropped = 0  # lines lost to failed writes since the last good one
        if path is not None:
            self._open()

    def _open(self) -> None:
        assert self._path is not None
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._inode = os.fstat(self._fd).st_ino

    def write(self, record: R) -> None:
        if self._path is None:
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
        if self._path is None or not self._records:
            return
        records, self._records = self._records, []
        data = "".join([self._render(record) for record in records]).encode()
        try:
            self._follow_rotation()
            assert self._fd is not None
            os.write(self._fd, data)
        except OSError as error:
            if not self.dropped:
                log.error(
                    "log %s: cannot write (%s); lines are dropped until it can",
                    self._path,
                    error.strerror or error,
                )
            self.dropped += len(records)
            return
        if self.dropped:
            log.warning("log %s: writing again; %d lines were lost", self._path, self.dropped)
            self.dropped = 0
        self._rotate_if_full()

    def _follow_rotation(self) -> None:
        """Reopen when another worker rotated the file (or it was removed)."""
        assert self._path is not None
        try:
            current = os.stat(self._path).st_ino
        except FileNotFoundError:
            current = -1
        if self._fd is None or current != self._inode:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._open()

    def _rotate_if_full(self) -> None:
        assert self._fd is not None and self._path is not None
        if os.fstat(self._fd).st_size < self._rotation.max_bytes:
            return
        with contextlib.suppress(OSError), open(self._path, "ab") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # one rotation, however many workers
            if os.stat(self._path).st_ino != self._inode:
                return  # another worker rotated it meanwhile: follow at the next flush
            path = str(self._path)
            for index in range(self._rotation.files - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{path}.{index}", f"{path}.{index + 1}")
            os.replace(path, f"{path}.1")

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class AccessLog(LineLog[AccessRecord]):
    """Azure's ApplicationGatewayAccessLog, one line per request."""

    def __init__(self, path: Path | None, rotation: Rotation | None = None) -> None:
        super().__init__(path, render, rotation)
