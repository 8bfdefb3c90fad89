"""The access log: one JSON line per request (Azure's ApplicationGatewayAccessLog fields).

Records are queued as they are and turned into lines off the request path: at most every
FLUSH_INTERVAL or every FLUSH_RECORDS records, all at once, with one O_APPEND write, so lines of
several workers never interleave.
"""

from __future__ import annotations

import asyncio
import os
import time
from json.encoder import encode_basestring_ascii as _json_string  # what json.dumps uses
from pathlib import Path
from typing import NamedTuple

FLUSH_INTERVAL = 0.2  # seconds a line may wait; short enough for `tail -f` to feel live
# ~600 B a line: one write stays around 64 KiB, which keeps syscalls rare and is not so big
# that a burst of lines holds the event loop for long.
FLUSH_RECORDS = 100


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


_LINE = (
    '{"timeStamp":%s,"resourceId":%s,"listenerName":%s,"ruleName":%s,"backendPoolName":%s,'
    '"backendSettingName":%s,"operationName":"ApplicationGatewayAccess",'
    '"category":"ApplicationGatewayAccessLog","properties":{"instanceId":%s,"clientIP":%s,'
    '"clientPort":%d,"httpMethod":%s,"originalRequestUriWithArgs":%s,"requestUri":%s,'
    '"requestQuery":%s,"userAgent":%s,"httpStatus":%d,"httpVersion":%s,"receivedBytes":%d,'
    '"sentBytes":%d,"timeTaken":%r,"transactionId":%s,"sslEnabled":%s,"sslCipher":%s,'
    '"sslProtocol":%s,"serverRouted":%s,"serverStatus":%s,"serverResponseLatency":%s,'
    '"originalHost":%s,"host":%s,"error_info":%s}}\n'
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
        s(r.original_host), s(r.host), s(r.error_info),
    )  # fmt: skip


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
        self._records: list[AccessRecord] = []
        self._flush_handle: asyncio.TimerHandle | None = None

    def write(self, record: AccessRecord) -> None:
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
        data = "".join([render(record) for record in records]).encode()
        os.write(self._fd, data)

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
