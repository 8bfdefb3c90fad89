"""The access log's hand-shaped JSON lines are exactly what json.dumps makes of the record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hypothesis import given, strategies as st

from appgw.dataplane.access_log import AccessLog, AccessRecord, render

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
]


def _as_dict(record: AccessRecord) -> dict[str, object]:
    values = list(record)
    top = dict(zip(_KEYS, values[: len(_KEYS)], strict=True))
    top["operationName"] = "ApplicationGatewayAccess"
    top["category"] = "ApplicationGatewayAccessLog"
    top["properties"] = dict(zip(_PROPERTIES, values[len(_KEYS) :], strict=True))
    return top


def _record(text: str, number: int, seconds: float, latency: float | None) -> AccessRecord:
    return AccessRecord(
        "2026-01-01T00:00:00Z", text, text, "rule", "pool", "settings", "0", "::1", number,
        "GET", text, text, text, text, number, "HTTP/1.1", number, number, seconds, "ab" * 16,
        "on", "TLS_AES_256_GCM_SHA384", "TLSv1.3", "10.0.0.1:443", "200", latency, text,
        text, "ERRORINFO_NO_ERROR",
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
    record = _record(text, number, seconds, latency)
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
