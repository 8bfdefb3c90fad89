"""HTTP/1.1 semantics of the data plane, over real sockets on 127.0.0.1.

Spec: azure-application-gateway.md §7 (headers added, timeouts and retries, cookie affinity,
WebSocket) and hardening.md §1.1-1.7 and §4 A-C, G (strict framing, hop-by-hop hygiene, no
retry of non-idempotent requests, bounded buffering). Malformed requests go out as raw bytes:
a well-behaved client library would repair exactly what these tests are about.

One gateway configuration serves the whole module (a listener per scenario), in front of one
`SpecialBackend` that listens on 127.0.0.1 and 127.0.0.2 with the same port, so it can be one
member or two.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backends import free_port
from builders import GatewayBuilder
from e2e.harness import Gateway
from e2e.raw import RawClient, exchange
from e2e.special_backends import Request, SpecialBackend, payload, websocket_accept
from helpers import API_VERSION, gateway_id

pytestmark = pytest.mark.slow

HOST = "semantics.test"
MIB = 1024 * 1024
SETTLE = 0.3  # time for anything the gateway might still forward to reach the backend


# --- the configuration ----------------------------------------------------------------------------


@dataclass
class Site:
    backend: SpecialBackend
    data_dir: Path
    main: int  # one member (127.0.0.1)
    affinity: int  # two members, cookie affinity with the default cookie name
    affinity_custom: int  # two members, affinityCookieName "MyAff"
    slow: int  # v2, two members, requestTimeout 1
    refused: int  # one member on a port nothing listens on
    v1_slow: int  # v1 gateway, one member, requestTimeout 1
    pooled: int  # one member, its own backend (so its own upstream pool)
    pooled_backend: SpecialBackend


@pytest.fixture(scope="module")
def site(gateway: Gateway) -> Iterator[Site]:
    backend = SpecialBackend("special", hosts=("127.0.0.1", "127.0.0.2")).start()
    pooled_backend = SpecialBackend("pooled").start()
    try:
        yield configure(gateway, backend, pooled_backend)
    finally:
        backend.stop()
        pooled_backend.stop()


def configure(gateway: Gateway, backend: SpecialBackend, pooled_backend: SpecialBackend) -> Site:
    dead_port = free_port()  # bound and released: nothing listens there
    ports = {
        name: free_port() for name in ("main", "aff", "affc", "slow", "refused", "v1", "pooled")
    }
    builder = (
        GatewayBuilder()
        .pool("single", "127.0.0.1")
        .pool("pair", "127.0.0.1", "127.0.0.2")
        .settings("plain", backend.port)
        .settings("affinity", backend.port, cookieBasedAffinity="Enabled")
        .settings(
            "affinityCustom",
            backend.port,
            cookieBasedAffinity="Enabled",
            affinityCookieName="MyAff",
        )
        .settings("slow", backend.port, requestTimeout=1)
        .settings("dead", dead_port)
        .settings("pooled", pooled_backend.port)
    )
    for listener, pool, settings in (
        ("main", "single", "plain"),
        ("aff", "pair", "affinity"),
        ("affc", "pair", "affinityCustom"),
        ("slow", "pair", "slow"),
        ("refused", "single", "dead"),
        ("pooled", "single", "pooled"),
    ):
        builder.listener(listener, ports[listener], "Http")
        builder.rule(f"rule-{listener}", listener, pool=pool, settings=settings)
    gateway.apply(builder.build())
    v1 = (
        GatewayBuilder("appgwv1", v1=True)
        .pool("single", "127.0.0.1")
        .settings("slow", backend.port, requestTimeout=1)
        .listener("slow", ports["v1"], "Http")
        .rule("rule1", "slow", pool="single", settings="slow")
    )
    gateway.apply(v1.build(), name="appgwv1")
    log_path = gateway.server.log_path
    return Site(
        backend=backend,
        data_dir=log_path.parent / log_path.name.split("-serve-")[0],
        main=ports["main"],
        affinity=ports["aff"],
        affinity_custom=ports["affc"],
        slow=ports["slow"],
        refused=ports["refused"],
        v1_slow=ports["v1"],
        pooled=ports["pooled"],
        pooled_backend=pooled_backend,
    )


def request(
    path: str, *headers: str, method: str = "GET", version: str = "HTTP/1.1", host: bool = True
) -> bytes:
    lines = [f"{method} {path} {version}", *([f"Host: {HOST}"] if host else []), *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def marker() -> str:
    return uuid.uuid4().hex[:16]


def url(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}"


def forwarded(site: Site, *headers: str) -> tuple[Request, int]:
    """Send a GET with extra header lines; return what the backend received and the client port."""
    mark = marker()
    with RawClient(site.main) as client:
        client.send(request(f"/headers/{mark}", *headers))
        reply = client.reply()
        client_port = client.local_port
    assert reply.status == 200, (reply.status, reply.body)
    seen = site.backend.requests_for(mark)
    assert len(seen) == 1, seen
    return seen[0], client_port


def names_at_backend(seen: Request) -> set[str]:
    return {name.lower() for name, _ in seen.headers}


# --- 1. framing (RFC 9112): 400, close, nothing forwarded -----------------------------------------


def assert_rejected(site: Site, data: bytes, mark: str | None) -> None:
    replies, closed, raw = exchange(site.main, data)
    assert [r.status for r in replies] == [400], f"expected exactly one 400; got {raw!r}"
    assert closed, f"the gateway kept the connection open after its 400; received {raw!r}"
    if mark is not None:
        time.sleep(SETTLE)
        assert not site.backend.saw_bytes(mark.encode()), "the rejected request reached the backend"


@pytest.mark.parametrize("order", ["cl-first", "te-first"])
def test_framing_content_length_with_chunked_is_rejected_and_not_forwarded(
    site: Site, order: str
) -> None:
    mark = marker()
    smuggled = f"GET /smuggled/{mark} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    body = b"0\r\n\r\n" + smuggled
    framing = [f"Content-Length: {len(body)}", "Transfer-Encoding: chunked"]
    if order == "te-first":
        framing.reverse()
    assert_rejected(site, request(f"/framing/{mark}", *framing, method="POST") + body, mark)


def test_framing_two_different_content_lengths_are_rejected(site: Site) -> None:
    mark = marker()
    data = request(f"/framing/{mark}", "Content-Length: 3", "Content-Length: 5", method="POST")
    assert_rejected(site, data + b"abcde", mark)


def test_framing_invalid_chunk_size_is_rejected(site: Site) -> None:
    mark = marker()
    data = request(f"/framing/{mark}", "Transfer-Encoding: chunked", method="POST")
    assert_rejected(site, data + b"zz\r\nhello\r\n0\r\n\r\n", None)
    time.sleep(SETTLE)
    complete = [r for r in site.backend.requests_for(mark) if r.complete]
    assert complete == [], "a request with a broken chunk reached the backend as a whole message"


def test_framing_obs_fold_is_rejected(site: Site) -> None:
    mark = marker()
    assert_rejected(site, request(f"/framing/{mark}", "X-Folded: one", " two"), mark)


def test_framing_space_before_colon_is_rejected(site: Site) -> None:
    mark = marker()
    assert_rejected(site, request(f"/framing/{mark}", "X-Spaced : value"), mark)


@pytest.mark.parametrize("byte", [b"\x00", b"\r"], ids=["nul", "cr"])
def test_framing_nul_or_cr_in_a_header_value_is_rejected(site: Site, byte: bytes) -> None:
    mark = marker()
    data = request(f"/framing/{mark}", "X-Bad: a#b").replace(b"#", byte)
    assert_rejected(site, data, mark)


@pytest.mark.parametrize(
    "line",
    [
        "GET {path} HTTP/2.0",
        "GET {path} HTTP/1.1 extra",
        "GE(T {path} HTTP/1.1",
        "\x16\x03\x01\x00\xa5 {path} garbage",
        "HELLO{path}",
    ],
    ids=["http2.0", "extra-token", "bad-method", "binary", "one-word"],
)
def test_framing_bad_request_line_is_rejected(site: Site, line: str) -> None:
    mark = marker()
    first = line.format(path=f"/framing/{mark}").encode("latin-1")
    assert_rejected(site, first + f"\r\nHost: {HOST}\r\n\r\n".encode(), mark)


def test_framing_missing_host_on_http11_is_rejected(site: Site) -> None:
    mark = marker()
    assert_rejected(site, request(f"/framing/{mark}", "X-A: 1", host=False), mark)


def test_framing_two_host_headers_are_rejected(site: Site) -> None:
    mark = marker()
    assert_rejected(site, request(f"/framing/{mark}", f"Host: other.{HOST}"), mark)


# --- 2. bodies stream both ways -------------------------------------------------------------------


def test_body_5mib_request_with_content_length_arrives_complete(site: Site) -> None:
    body = os.urandom(5 * MIB)
    response = httpx.post(
        url(site.main, f"/upload/{marker()}"), content=body, headers={"Host": HOST}, timeout=30
    )
    assert response.status_code == 200
    seen = response.json()
    assert (seen["body_size"], seen["complete"]) == (len(body), True)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_body_5mib_chunked_request_arrives_complete(site: Site) -> None:
    body = os.urandom(5 * MIB)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 100_000):
            yield body[start : start + 100_000]

    response = httpx.post(
        url(site.main, f"/upload/{marker()}"), content=pieces(), headers={"Host": HOST}, timeout=30
    )
    assert response.status_code == 200
    seen = response.json()
    assert (seen["body_size"], seen["complete"]) == (len(body), True)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("mode", ["cl", "chunked"])
def test_body_20mib_response_arrives_intact(site: Site, mode: str) -> None:
    size = 20 * MIB
    digest = hashlib.sha256()
    received = 0
    with httpx.stream(
        "GET", url(site.main, f"/big/{mode}/{size}?close"), headers={"Host": HOST}, timeout=30
    ) as response:
        assert response.status_code == 200
        if mode == "cl":
            assert response.headers["content-length"] == str(size)
        for piece in response.iter_raw():
            digest.update(piece)
            received += len(piece)
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(payload(size)).hexdigest()


def worker_pids(log: str) -> dict[int, int]:
    """Latest pid per worker index, from 'appgw worker N (pid P) ready' lines."""
    return {int(i): int(p) for i, p in re.findall(r"appgw worker (\d+) \(pid (\d+)\) ready", log)}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_body_slow_reader_does_not_make_the_gateway_buffer_the_response(
    gateway: Gateway, site: Site
) -> None:
    size = 64 * MIB
    payload(size)  # make the backend's answer before measuring anything
    pids = list(worker_pids(gateway.log()).values())
    assert len(pids) == 2
    baseline = {pid: rss_kib(pid) for pid in pids}
    peak = dict(baseline)
    received = 0
    head = b""
    with RawClient(site.main, timeout=2, rcvbuf=16 * 1024) as client:
        client.send(request(f"/big/cl/{size}?close"))
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            piece = client.sock.recv(16 * 1024)
            if not piece:
                break
            if len(head) < 64:
                head += piece[:64]
            received += len(piece)
            for pid in pids:
                peak[pid] = max(peak[pid], rss_kib(pid))
            time.sleep(0.02)
        time.sleep(0.3)
        for pid in pids:
            peak[pid] = max(peak[pid], rss_kib(pid))
    assert head.startswith(b"HTTP/1.1 200"), head
    assert 0 < received < size // 4, f"the client was meant to be slow; it read {received} bytes"
    growth_kib = {pid: peak[pid] - baseline[pid] for pid in pids}
    assert max(growth_kib.values()) * 1024 < size // 8, (
        f"worker RSS grew by {growth_kib} KiB while a client read {received} bytes of a "
        f"{size}-byte response"
    )


# --- 3. keep-alive and pipelining -----------------------------------------------------------------


def test_keepalive_50_requests_on_one_connection_reuse_few_backend_connections(
    site: Site,
) -> None:
    mark = marker()
    with RawClient(site.main) as client:
        for index in range(50):
            client.send(request(f"/ka/{mark}/{index}"))
            reply = client.reply()
            assert reply.status == 200, (index, reply.status, reply.body)
            assert reply.json()["target"] == f"/ka/{mark}/{index}"
    seen = site.backend.requests_for(mark)
    assert len(seen) == 50
    connections = {r.connection for r in seen}
    assert len(connections) <= 2, f"{len(connections)} backend connections for 50 requests"


def test_keepalive_backend_connection_that_served_a_slow_client_answers_the_next_request(
    site: Site,
) -> None:
    """A response whose last bytes overflow the gateway's write buffer towards a slow client
    (small MSS and window, not reading yet) makes the gateway stop reading from the backend
    just as the response completes; that backend connection goes back to the pool, and the
    next request on the same client connection (same worker, so it takes that pooled
    connection again) must still be answered. Where the overflow falls varies a little, so a
    few response sizes are tried, each on a new connection."""
    for size_kib in range(128, 256, 16):
        mark = marker()
        with RawClient(site.pooled, timeout=3, rcvbuf=4096, mss=536) as client:
            client.send(request(f"/burst/{size_kib * 1024}"))
            time.sleep(0.2)  # not reading: the gateway's buffers towards us fill up
            big = client.reply()
            assert (big.status, len(big.body)) == (200, size_kib * 1024)
            client.send(request(f"/after/{mark}"))
            try:
                reply = client.reply()
            except AssertionError:
                seen = len(site.pooled_backend.requests_for(mark))
                raise AssertionError(
                    f"after a {size_kib} KiB response to a slow client, the next request got "
                    f"no answer within 3 s; the backend received it {seen} time(s) and "
                    "answered at once"
                ) from None
        assert reply.status == 200, (reply.status, reply.body)
        assert reply.json()["target"] == f"/after/{mark}"


def test_keepalive_http10_without_keepalive_gets_an_answer_and_a_close(site: Site) -> None:
    mark = marker()
    replies, closed, raw = exchange(site.main, request(f"/ka10/{mark}", version="HTTP/1.0"))
    assert [r.status for r in replies] == [200], raw
    assert replies[0].json()["target"] == f"/ka10/{mark}"
    assert closed, f"the connection stayed open after an HTTP/1.0 answer: {raw!r}"


def test_keepalive_pipelined_requests_are_answered_in_order(site: Site) -> None:
    mark = marker()
    with RawClient(site.main) as client:
        client.send(request(f"/pipe/{mark}/1") + request(f"/pipe/{mark}/2"))
        first, second = client.reply(), client.reply()
    assert (first.status, second.status) == (200, 200)
    assert first.json()["target"] == f"/pipe/{mark}/1"
    assert second.json()["target"] == f"/pipe/{mark}/2"


# --- 4. header hygiene ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "name", "value"),
    [
        (["Connection: keep-alive, X-Conn-Token"], "connection", "x-conn-token"),
        (["Keep-Alive: timeout=321"], "keep-alive", ""),
        (["TE: trailers"], "te", ""),
        (["Upgrade: h2c"], "upgrade", ""),
        (["Proxy-Connection: keep-alive"], "proxy-connection", ""),
        (["Connection: close, X-Secret", "X-Secret: 1"], "x-secret", ""),
    ],
    ids=["connection", "keep-alive", "te", "upgrade", "proxy-connection", "named-in-connection"],
)
def test_headers_hop_by_hop_request_header_is_not_forwarded(
    site: Site, lines: list[str], name: str, value: str
) -> None:
    seen, _ = forwarded(site, "X-Control: kept", *lines)
    assert seen.values("x-control") == ["kept"]
    leaked = [(n, v) for n, v in seen.headers if n.lower() == name and value in v.lower()]
    assert leaked == [], f"forwarded to the backend: {leaked}"


def test_headers_h2c_upgrade_request_is_served_as_plain_http(site: Site) -> None:
    mark = marker()
    with RawClient(site.main) as client:
        client.send(request(f"/h2c/{mark}", *H2C_UPGRADE))
        reply = client.reply()
    assert reply.status == 200, (reply.status, reply.headers)
    seen = site.backend.requests_for(mark)
    assert len(seen) == 1
    leaked = {"upgrade", "http2-settings"} & names_at_backend(seen[0])
    assert leaked == set(), f"the backend received {seen[0].headers}"


H2C_UPGRADE = (
    "Connection: Upgrade, HTTP2-Settings",
    "Upgrade: h2c",
    "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
)


def test_headers_h2c_upgrade_request_body_is_not_parsed_as_a_request(site: Site) -> None:
    """A POST asking for h2c is served as plain HTTP/1.1: its Content-Length body goes to the
    backend as the body, never as a request of its own. (On the listener with requestTimeout
    1, so a body that never reaches the backend shows as a quick 504.)"""
    mark = marker()
    body = f"GET /smuggled/{mark} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    head = request(f"/h2cbody/{mark}", *H2C_UPGRADE, f"Content-Length: {len(body)}", method="POST")
    with RawClient(site.slow) as client:
        client.send(head + body)
        client.until_closed(2.5)
        raw = client.buffer
    posted = [(r.body_size, r.complete) for r in site.backend.requests_for(f"/h2cbody/{mark}")]
    smuggled = site.backend.requests_for(f"/smuggled/{mark}")
    observed = f"client received {raw!r}; backend got POST body {posted}, smuggled {smuggled}"
    assert smuggled == [], observed
    assert posted == [(len(body), True)], observed
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.count(b"HTTP/1.1 ") == 1, observed


def test_headers_h2c_upgrade_request_then_a_pipelined_request_both_answered(site: Site) -> None:
    mark = marker()
    with RawClient(site.main) as client:
        client.send(request(f"/h2c/{mark}/1", *H2C_UPGRADE) + request(f"/h2c/{mark}/2"))
        first, second = client.reply(), client.reply()
    assert (first.status, second.status) == (200, 200)
    assert [first.json()["target"], second.json()["target"]] == [
        f"/h2c/{mark}/1",
        f"/h2c/{mark}/2",
    ]


def test_headers_name_with_underscore_is_dropped(site: Site) -> None:
    seen, _ = forwarded(site, "X_Under_Score: 1", "X-Control: kept")
    assert seen.values("x-control") == ["kept"]
    names = {name.replace("_", "-") for name in names_at_backend(seen)}
    assert "x-under-score" not in names, seen.headers


def test_headers_client_x_original_host_is_replaced(site: Site) -> None:
    seen, _ = forwarded(site, "X-Original-Host: evil.example")
    assert seen.values("x-original-host") == [HOST]


def test_headers_client_trace_id_is_replaced(site: Site) -> None:
    spoofed = "0123456789abcdef0123456789abcdef"
    seen, _ = forwarded(site, f"X-AppGW-Trace-Id: {spoofed}")
    values = seen.values("x-appgw-trace-id")
    assert len(values) == 1, values
    assert re.fullmatch(r"[0-9a-f]{32}", values[0]) and values[0] != spoofed, values


def test_headers_incoming_x_forwarded_for_gets_the_client_appended(site: Site) -> None:
    seen, client_port = forwarded(site, "X-Forwarded-For: 1.2.3.4")
    assert seen.values("x-forwarded-for") == [f"1.2.3.4, 127.0.0.1:{client_port}"]


def test_headers_hop_by_hop_response_headers_do_not_reach_the_client(site: Site) -> None:
    with RawClient(site.main) as client:
        client.send(request("/hop"))
        reply = client.reply()
    assert (reply.status, reply.body, reply.values("x-kept")) == (200, b"ok", ["yes"])
    leaked = [
        (name, value)
        for name, value in reply.headers
        if name.lower() in ("x-internal", "proxy-connection", "upgrade")
        or (name.lower() == "keep-alive" and "987" in value)
        or (name.lower() == "connection" and "x-internal" in value.lower())
    ]
    assert leaked == [], f"relayed to the client: {leaked}"


# --- 5. backend errors, timeouts, retries ---------------------------------------------------------


def access_log_entry(site: Site, uri: str, timeout: float = 5.0) -> dict[str, Any]:
    path = site.data_dir / "access.log"
    deadline = time.monotonic() + timeout
    while True:
        if path.exists():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record["properties"].get("originalRequestUriWithArgs") == uri:
                    return record  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"no access-log line for {uri} in {path}"
        time.sleep(0.1)


def test_errors_refused_member_is_a_502_with_an_html_page_and_a_logged_upstream_error(
    site: Site,
) -> None:
    path = f"/refused/{marker()}"
    response = httpx.get(url(site.refused, path), headers={"Host": HOST}, timeout=15)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert 0 < len(response.content) < 4096 and b"<html" in response.content.lower()
    record = access_log_entry(site, path)
    assert record["properties"]["httpStatus"] == 502
    assert record["properties"]["error_info"].startswith("ERRORINFO_UPSTREAM"), record


def members_seen(site: Site, mark: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for seen in site.backend.requests_for(mark):
        counts[seen.member] = counts.get(seen.member, 0) + 1
    return counts


def test_errors_v2_timeout_retries_once_on_the_other_member_then_504(site: Site) -> None:
    mark = marker()
    started = time.monotonic()
    response = httpx.get(url(site.slow, f"/hang/{mark}"), headers={"Host": HOST}, timeout=15)
    elapsed = time.monotonic() - started
    assert response.status_code == 504, (response.status_code, elapsed)
    assert members_seen(site, mark) == {"127.0.0.1": 1, "127.0.0.2": 1}
    assert elapsed < 6, elapsed


def test_errors_v1_timeout_is_a_502(site: Site) -> None:
    mark = marker()
    started = time.monotonic()
    response = httpx.get(url(site.v1_slow, f"/hang/{mark}"), headers={"Host": HOST}, timeout=15)
    elapsed = time.monotonic() - started
    assert response.status_code == 502, (response.status_code, elapsed)
    assert sum(members_seen(site, mark).values()) == 1
    assert elapsed < 4, elapsed


def test_errors_v2_post_with_a_body_is_not_retried_and_gets_504(site: Site) -> None:
    mark = marker()
    response = httpx.post(
        url(site.slow, f"/hang/{mark}"), content=b"x" * 1000, headers={"Host": HOST}, timeout=15
    )
    assert response.status_code == 504
    time.sleep(SETTLE)
    assert sum(members_seen(site, mark).values()) == 1, members_seen(site, mark)


# --- 6. cookie-based affinity ---------------------------------------------------------------------


def cookies(response: httpx.Response) -> dict[str, list[str]]:
    """Set-Cookie headers by cookie name: [value, attribute, ...] (attributes lower-cased)."""
    found: dict[str, list[str]] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        found[name] = [value, *(a.lower().replace(" ", "") for a in attributes)]
    return found


def test_affinity_first_response_sets_both_cookies(site: Site) -> None:
    response = httpx.get(url(site.affinity, f"/aff/{marker()}"), headers={"Host": HOST})
    assert response.status_code == 200
    jar = cookies(response)
    assert {"ApplicationGatewayAffinity", "ApplicationGatewayAffinityCORS"} <= set(jar), jar
    assert jar["ApplicationGatewayAffinity"][0], jar
    cors = jar["ApplicationGatewayAffinityCORS"]
    assert cors[0] and "samesite=none" in cors and "secure" in cors, cors


def test_affinity_requests_with_the_cookie_stay_on_one_member(site: Site) -> None:
    first = httpx.get(url(site.affinity, f"/aff/{marker()}"), headers={"Host": HOST})
    member = first.json()["member"]
    value = cookies(first)["ApplicationGatewayAffinity"][0]
    members = []
    for _ in range(10):  # a new connection each time: either worker may take it
        response = httpx.get(
            url(site.affinity, f"/aff/{marker()}"),
            headers={"Host": HOST, "Cookie": f"ApplicationGatewayAffinity={value}"},
        )
        assert response.status_code == 200
        members.append(response.json()["member"])
    assert members == [member] * 10


def test_affinity_custom_cookie_name(site: Site) -> None:
    response = httpx.get(url(site.affinity_custom, f"/aff/{marker()}"), headers={"Host": HOST})
    assert response.status_code == 200
    jar = cookies(response)
    assert {"MyAff", "MyAffCORS"} <= set(jar), jar
    assert "ApplicationGatewayAffinity" not in jar, jar
    assert "samesite=none" in jar["MyAffCORS"] and "secure" in jar["MyAffCORS"], jar


def test_affinity_without_the_cookie_requests_alternate_between_members(site: Site) -> None:
    members = []
    with RawClient(site.affinity) as client:  # one connection, so one worker's round robin
        for _ in range(6):
            client.send(request(f"/rr/{marker()}"))
            reply = client.reply()
            assert reply.status == 200
            members.append(reply.json()["member"])
    assert set(members) == {"127.0.0.1", "127.0.0.2"}, members
    assert all(a != b for a, b in itertools.pairwise(members)), members


# --- 7. WebSocket ---------------------------------------------------------------------------------


def ws_frame(data: bytes, opcode: int = 0x2) -> bytes:
    """A masked client frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    if len(data) < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | len(data))
    else:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, len(data))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def test_websocket_upgrade_tunnels_bytes_both_ways(site: Site) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    mark = marker()
    with RawClient(site.main) as client:
        client.send(
            request(
                f"/ws/{mark}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
            )
        )
        head = client.reply()
        assert head.status == 101, (head.status, head.headers, head.body)
        assert [v.lower() for v in head.values("upgrade")] == ["websocket"], head.headers
        tokens = {t.strip().lower() for v in head.values("connection") for t in v.split(",")}
        assert "upgrade" in tokens, head.headers
        assert head.values("sec-websocket-accept") == [websocket_accept(key)], head.headers
        for frame in (ws_frame(b"hello", 0x1), ws_frame(os.urandom(300)), ws_frame(b"x" * 20000)):
            client.send(frame)
            assert client.exactly(len(frame)) == frame
    seen = site.backend.requests_for(mark)
    assert len(seen) == 1 and seen[0].values("sec-websocket-key") == [key]


# --- 8. stop and start ----------------------------------------------------------------------------


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_stop_closes_the_listeners_and_start_opens_them_again(gateway: Gateway, site: Site) -> None:
    name = "appgwstop"
    port = free_port()
    gateway.apply(
        GatewayBuilder(name)
        .pool("single", "127.0.0.1")
        .settings("plain", site.backend.port)
        .listener("listener", port, "Http")
        .rule("rule1", "listener", pool="single", settings="plain")
        .build(),
        name=name,
    )
    assert httpx.get(url(port, "/before"), headers={"Host": HOST}).status_code == 200
    with gateway.api() as api:
        assert api.post(f"{gateway_id(name)}/stop?api-version={API_VERSION}").status_code == 202
        stopped_at = time.monotonic()
        in_a_row = 0  # every worker's listener must be closed, not just one
        while in_a_row < 10:
            assert time.monotonic() - stopped_at < 2.0, "still accepting connections 2 s after stop"
            in_a_row = in_a_row + 1 if refused(port) else 0
            time.sleep(0.01)
        assert api.post(f"{gateway_id(name)}/start?api-version={API_VERSION}").status_code == 202
    started_at = time.monotonic()
    ok_in_a_row = 0
    while ok_in_a_row < 10:
        assert time.monotonic() - started_at < 10.0, "listeners did not reopen after start"
        try:
            status = httpx.get(url(port, "/after"), headers={"Host": HOST}, timeout=5).status_code
        except httpx.TransportError:
            status = 0
        ok_in_a_row = ok_in_a_row + 1 if status == 200 else 0
        time.sleep(0.02 if status == 200 else 0.1)
