"""The access log's hand-shaped JSON lines are exactly what json.dumps makes of the record."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from hypothesis import given, strategies as st

from appgw.dataplane.access_log import AccessLog, AccessRecord, Rotation, render

_KEYS = [
    "timeStamp",
    "resourceId",
    "listenerName",
    "ruleName",
    "backendPoolName",
    "backendSettingName",
]
_PROPERTIES = [
    "instanceId",
    "clientIP",
    "clientPort",
    "httpMethod",
    "originalRequestUriWithArgs",
    "requestUri",
    "requestQuery",
    "userAgent",
    "httpStatus",
    "httpVersion",
    "receivedBytes",
    "sentBytes",
    "timeTaken",
    "transactionId",
    "sslEnabled",
    "sslCipher",
    "sslProtocol",
    "serverRouted",
    "serverStatus",
    "serverResponseLatency",
    "originalHost",
    "host",
    "error_info",
    "sslClientVerify",
    "sslClientCertificateFingerprint",
    "sslClientCertificateIssuerName",
    "WAFEvaluationTime",
    "WAFMode",
]


def _as_dict(record: AccessRecord) -> dict[str, object]:
    values = list(record)
    top = dict(zip(_KEYS, values[: len(_KEYS)], strict=True))
    top["operationName"] = "ApplicationGatewayAccess"
    top["category"] = "ApplicationGatewayAccessLog"
    top["properties"] = dict(zip(_PROPERTIES, values[len(_KEYS) :], strict=True))
    return top


def _record(
    text: str, number: int, seconds: float, latency: float | None, client: str = ""
) -> AccessRecord:
    """`client`: the mutual-TLS and WAF fields' text ("" as for a listener without either)."""
    return AccessRecord(
        "2026-01-01T00:00:00Z", text, text, "rule", "pool", "settings", "0", "::1", number,
        "GET", text, text, text, text, number, "HTTP/1.1", number, number, seconds, "ab" * 16,
        "on", "TLS_AES_256_GCM_SHA384", "TLSv1.3", "10.0.0.1:443", "200", latency, text,
        text, "ERRORINFO_NO_ERROR", client, client, client, client, client,
    )  # fmt: skip


@given(
    text=st.text(),
    number=st.integers(min_value=0, max_value=2**40),
    seconds=st.floats(min_value=0, max_value=1e6),
    latency=st.none() | st.floats(min_value=0, max_value=1e6),
)
def test_a_line_is_json_dumps_of_the_record(
    text: str, number: int, seconds: float, latency: float | None
) -> None:
    record = _record(text, number, seconds, latency, client="FAILED:" + text)
    expected = json.dumps(_as_dict(record), separators=(",", ":")) + "\n"
    assert render(record) == expected


def test_lines_reach_the_file_on_close(tmp_path: Path) -> None:
    path = tmp_path / "access.log"

    async def serve() -> None:  # the log's flush timer lives on the worker's event loop
        log = AccessLog(path)
        log.write(_record('quote " and \u00e9 and \x00', 7, 0.5, None))
        assert path.read_text() == ""  # queued, not written per request
        log.close()

    asyncio.run(serve())
    (line,) = path.read_text().splitlines()
    parsed = json.loads(line)
    assert parsed["properties"]["requestUri"] == 'quote " and \u00e9 and \x00'
    assert parsed["properties"]["serverResponseLatency"] is None


def test_workers_sharing_the_log_rotate_it_once_and_lose_no_line(tmp_path: Path) -> None:
    """Two workers append to one access.log; past its size it is rotated (once, by whichever
    worker notices first), the other follows, old files beyond the count go."""
    path = tmp_path / "access.log"
    rotation = Rotation(max_bytes=4096, files=3)
    written = 0

    async def serve() -> None:
        nonlocal written
        workers = [AccessLog(path, rotation), AccessLog(path, rotation)]
        for index in range(200):
            worker = workers[index % 2]
            worker.write(_record(f"/r{index}", index, 0.1, None))
            worker.flush()
            written += 1
        for worker in workers:
            worker.close()

    asyncio.run(serve())
    files = sorted(tmp_path.iterdir())
    # Rotated more than three times, the oldest gone; access.log itself is missing only when
    # the very last line filled it (the next write makes it anew).
    names = {f.name for f in files}
    assert {"access.log.1", "access.log.2", "access.log.3"} <= names
    assert names <= {"access.log", "access.log.1", "access.log.2", "access.log.3"}
    assert all(f.stat().st_size < 4096 + 1024 for f in files)  # a file rotates past its size
    kept = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    uris = {record["properties"]["requestUri"] for record in kept}
    assert "/r199" in uris and len(uris) == len(kept), "a line written twice"


def test_a_failing_write_drops_lines_and_the_worker_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "access.log"

    async def serve() -> int:
        log = AccessLog(path)
        os.close(log._fd)  # type: ignore[arg-type]
        log._fd = os.open(os.devnull, os.O_RDONLY)  # every write now fails, as on a full disk
        log._inode = os.stat(path).st_ino
        log.write(_record("/lost", 1, 0.1, None))
        log.flush()  # no exception: the request path never sees the disk
        dropped = log.dropped
        os.close(log._fd)
        log._open()
        log.write(_record("/kept", 2, 0.1, None))
        log.close()
        return dropped

    assert asyncio.run(serve()) == 1
    assert "/kept" in path.read_text() and "/lost" not in path.read_text()
