"""HTTP/2 to clients (issue 17) over real TLS sockets: what a stream gets and what its HTTP/1.1
backend receives, flow control tied to the backend, and the HTTP/2 floods.

One `appgw serve` with one worker (its limits and memory are the ones measured), short client
timeouts and small HTTP/2 limits (set with serve's own options), serving two gateways: `h2`
with enableHttp2 and `plain` without. Clients are httpx (HTTP/2 through h2) and, for hostile
input, a raw h2 client whose frames the tests write themselves.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame, PingFrame, SettingsFrame

from backends import free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway
from e2e.special_backends import SpecialBackend, payload
from helpers import TOKEN, make_pfx, start_serve, worker_pids

pytestmark = pytest.mark.slow

HOST = "h2.test"
HEAD_TIMEOUT = 2  # serve --client-header-timeout
SEND_TIMEOUT = 2  # serve --client-send-timeout
STREAMS = 16  # max_concurrent_streams
RESETS = 20  # max_resets per window
PINGS = 30  # max_pings (and max_settings) per window
EMPTY = 50  # max_empty_frames per window
CONTINUATIONS = 4  # max_continuation_frames
WINDOW = 64 * 1024  # initial_window_size: a stream's unacknowledged request body
REQUESTS = 40  # max_requests per connection
IDLE = 3  # idle_timeout: seconds a connection without streams is kept
HSTS = "max-age=31536000"
LIMITS = (
    f"max_requests={REQUESTS},"
    f"max_concurrent_streams={STREAMS},max_resets={RESETS},max_pings={PINGS},"
    f"max_settings={PINGS},max_empty_frames={EMPTY},max_continuation_frames={CONTINUATIONS},"
    f"initial_window_size={WINDOW},flood_window=30,idle_timeout={IDLE}"
)


@dataclass
class Site:
    gateway: Gateway
    backend: SpecialBackend
    port: int  # the enableHttp2 gateway's HTTPS listener
    plain_port: int  # a gateway without enableHttp2
    ca: trustme.CA
    data_dir: Path

    def worker_rss(self) -> int:
        """The worker's resident memory in KiB."""
        (pid,) = worker_pids(self.gateway.log()).values()
        status = Path(f"/proc/{pid}/status").read_text()
        return int(
            next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]
        )

    def access_lines(self, mark: str) -> list[dict[str, Any]]:
        lines = []
        path = self.data_dir / "access.log"
        if path.exists():
            lines += (json.loads(line) for line in path.read_text().splitlines() if mark in line)
        return lines


def gateway_document(name: str, port: int, backend_port: int, ca: trustme.CA, http2: bool) -> Any:
    pfx = make_pfx(ca, HOST)
    document = (
        GatewayBuilder(name)
        .certificate("cert", pfx.b64, pfx.password)
        .pool("pool", "127.0.0.1")
        .settings("settings", backend_port)
        .listener("tls", port, "Https", certificate="cert")
        .rewrite_set(
            "security",
            [
                {
                    "name": "hsts",
                    "ruleSequence": 100,
                    "conditions": [],
                    "actionSet": {
                        "responseHeaderConfigurations": [
                            {"headerName": "Strict-Transport-Security", "headerValue": HSTS}
                        ],
                        "requestHeaderConfigurations": [
                            {"headerName": "X-Client-Version", "headerValue": "{var_http_version}"}
                        ],
                    },
                }
            ],
        )
        .rule("rule", "tls", pool="pool", settings="settings", rewrite_set="security")
        .build()
    )
    document["properties"]["enableHttp2"] = http2
    return document


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    backend = SpecialBackend("h2").start()
    data_dir = tmp_path_factory.mktemp("http2") / "data"
    server = start_serve(
        data_dir,
        {"APPGW_ADMIN_TOKEN": TOKEN},
        workers=1,
        args=(
            "--client-header-timeout",
            str(HEAD_TIMEOUT),
            "--client-send-timeout",
            str(SEND_TIMEOUT),
            "--http2-limits",
            LIMITS,
        ),
    )
    gateway = Gateway(server, workers=1)
    ca = trustme.CA()
    port, plain_port = free_port(), free_port()
    gateway.apply(gateway_document("h2", port, backend.port, ca, True), "h2")
    gateway.apply(gateway_document("plain", plain_port, backend.port, ca, False), "plain")
    try:
        yield Site(gateway, backend, port, plain_port, ca, data_dir)
    finally:
        server.stop()
        backend.stop()


def mark() -> str:
    return uuid.uuid4().hex[:16]


def tls_context(ca: trustme.CA, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(alpn)
    return context


def client(site: Site) -> httpx.Client:
    """httpx over HTTP/2 to the h2 gateway; Host (:authority) names the site, the address is
    loopback (so the certificate's name is not checked here: other tests do)."""
    context = tls_context(site.ca, ["h2", "http/1.1"])
    context.check_hostname = False
    return httpx.Client(
        http2=True,
        verify=context,
        base_url=f"https://127.0.0.1:{site.port}",
        headers={"host": HOST},
        timeout=10,
    )


class RawH2:
    """A TLS connection that chose h2, with an h2 client for the well-formed part and raw
    frames for the rest."""

    def __init__(self, site: Site, *, timeout: float = 5) -> None:
        context = tls_context(site.ca, ["h2"])
        sock = socket.create_connection(("127.0.0.1", site.port), timeout=timeout)
        self.sock = context.wrap_socket(sock, server_hostname=HOST)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.events: list[Event] = []
        self.closed = False
        self.flush()

    def __enter__(self) -> RawH2:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self, path: str, *, end_stream: bool = True, extra: list[tuple[str, str]] | None = None
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers(path, extra), end_stream=end_stream)
        return stream_id

    def read_until(self, done: Callable[[], bool], timeout: float = 5) -> None:
        """Read and process frames until `done()` or the connection ends."""
        deadline = time.monotonic() + timeout
        while not done() and not self.closed:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    return
                continue
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                return
            self.events += self.conn.receive_data(data)
            pending = self.conn.data_to_send()
            if pending:
                try:
                    self.sock.sendall(pending)
                except OSError:
                    self.closed = True

    def wait_ended(self, stream_ids: list[int]) -> None:
        wanted = list(stream_ids)
        self.read_until(lambda: all(self.ended(i) for i in wanted))

    def goaway(self) -> ConnectionTerminated | None:
        return next((e for e in self.events if isinstance(e, ConnectionTerminated)), None)

    def ended(self, stream_id: int) -> bool:
        return any(
            isinstance(e, (StreamEnded, StreamReset)) and e.stream_id == stream_id
            for e in self.events
        )

    def status(self, stream_id: int) -> int:
        for event in self.events:
            if isinstance(event, ResponseReceived) and event.stream_id == stream_id:
                return int(dict(event.headers or [])[b":status"])
        raise AssertionError(f"no response on stream {stream_id}: {self.events}")

    def body(self, stream_id: int) -> bytes:
        return b"".join(
            e.data or b""
            for e in self.events
            if isinstance(e, DataReceived) and e.stream_id == stream_id
        )


def headers(path: str, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", HOST),
        (":path", path),
        *(extra or []),
    ]


def still_serves(site: Site) -> None:
    """Another client is answered at once over HTTP/2: the worker survived, not stuck."""
    started = time.monotonic()
    with client(site) as other:
        response = other.get("/alive")
    assert response.status_code == 200 and response.http_version == "HTTP/2"
    assert time.monotonic() - started < 3.0


# --- what a stream gets, and what reaches the backend ---------------------------------------------


def test_alpn_offers_h2_only_where_enable_http2_is_on(site: Site) -> None:
    for port, expected in ((site.port, "h2"), (site.plain_port, "http/1.1")):
        context = tls_context(site.ca, ["h2", "http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            assert tls.selected_alpn_protocol() == expected


def test_a_stream_is_routed_forwarded_over_http11_and_logged_as_http2(site: Site) -> None:
    m = mark()
    with client(site) as h2:
        response = h2.get(f"/{m}?q=1", headers={"x-custom": "yes"})
        assert response.http_version == "HTTP/2"
        assert response.status_code == 200
        seen = response.json()
        posted = h2.post(f"/{m}/post", content=b"x" * 100_000)
        assert posted.status_code == 200 and posted.json()["body_size"] == 100_000
    assert seen["version"] == "HTTP/1.1" and seen["target"] == f"/{m}?q=1"
    sent = dict((name.lower(), value) for name, value in seen["headers"])
    assert sent["host"] == HOST  # :authority became Host
    assert sent["x-custom"] == "yes" and sent["x-original-host"] == HOST
    assert "x-appgw-trace-id" in sent and sent["x-forwarded-proto"] == "https"
    # The rule's rewrite set ran on both sides, as for HTTP/1.1.
    assert response.headers["strict-transport-security"] == HSTS
    assert sent["x-client-version"] == "HTTP/2.0"
    wait_until(lambda: len(site.access_lines(m)) >= 2, what="the access-log lines")
    line = next(
        entry
        for entry in site.access_lines(m)
        if entry["properties"]["originalRequestUriWithArgs"].endswith("q=1")
    )
    assert line["properties"]["httpVersion"] == "HTTP/2.0"
    assert line["properties"]["httpStatus"] == 200


def test_many_streams_on_one_connection_are_answered_concurrently(site: Site) -> None:
    m = mark()
    crumbs = [("cookie", "a=1"), ("cookie", "b=2")]
    with RawH2(site) as raw:
        ids = [raw.request(f"/{m}/{index}", extra=crumbs) for index in range(STREAMS)]
        raw.flush()
        raw.read_until(lambda: all(raw.ended(i) for i in ids))
        assert [raw.status(i) for i in ids] == [200] * STREAMS
        answers = [json.loads(raw.body(i)) for i in ids]
    assert {answer["target"] for answer in answers} == {f"/{m}/{index}" for index in range(STREAMS)}
    # Cookie crumbs are one Cookie header on HTTP/1.1 (RFC 9113 §8.2.3).
    assert [v for n, v in answers[0]["headers"] if n.lower() == "cookie"] == ["a=1; b=2"]


def test_a_request_body_of_unknown_length_and_its_trailers_reach_the_backend_chunked(
    site: Site,
) -> None:
    m = mark()
    with RawH2(site) as raw:
        stream_id = raw.request(f"/{m}", end_stream=False, extra=[("te", "trailers")])
        raw.conn.send_data(stream_id, b"a" * 1000)
        raw.conn.send_headers(stream_id, [("x-checksum", f"sum-{m}")], end_stream=True)
        raw.flush()
        raw.read_until(lambda: raw.ended(stream_id))
        answer = json.loads(raw.body(stream_id))
    assert answer["body_size"] == 1000 and answer["complete"]
    assert ("Transfer-Encoding", "chunked") in [tuple(h) for h in answer["headers"]]
    assert site.backend.saw_bytes(f"x-checksum: sum-{m}".encode())


def test_a_large_response_streams_within_flow_control_and_the_backend_waits(site: Site) -> None:
    """The client opens its window slowly: the backend is not read past what the stream
    can take, and every byte arrives in order."""
    size = 4 * 1024 * 1024
    with RawH2(site) as raw:
        raw.conn.update_settings({4: 16384})  # SETTINGS_INITIAL_WINDOW_SIZE: 16 KiB
        raw.flush()
        stream_id = raw.request(f"/big/cl/{size}")
        raw.flush()
        received = bytearray()
        deadline = time.monotonic() + 20
        while not raw.ended(stream_id) and time.monotonic() < deadline:
            raw.read_until(lambda: False, timeout=0.05)
            for event in raw.events:
                if isinstance(event, DataReceived) and event.data:
                    received += event.data
                    raw.conn.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)
            raw.events = [e for e in raw.events if not isinstance(e, DataReceived)]
            raw.flush()
    assert bytes(received) == payload(size)


def test_a_header_field_over_8_kb_is_a_431_on_its_stream_alone(site: Site) -> None:
    m = mark()
    with RawH2(site) as raw:
        big = raw.request(f"/{m}/big", extra=[("x-big", "v" * (8 * 1024 + 1))])
        raw.flush()
        raw.read_until(lambda: raw.ended(big))
        assert raw.status(big) == 431
        fine = raw.request(f"/{m}/fine")  # the connection goes on
        raw.flush()
        raw.read_until(lambda: raw.ended(fine))
        assert raw.status(fine) == 200 and raw.goaway() is None
    assert [r.target for r in site.backend.requests_for(m)] == [f"/{m}/fine"]


def test_a_header_block_over_16_kb_ends_the_connection(site: Site) -> None:
    m = mark()
    fields = [(f"x-part-{index}", "v" * 4000) for index in range(5)]  # 20 KB, 4 KB each
    with RawH2(site) as raw:
        raw.request(f"/{m}", extra=fields)
        raw.flush()
        raw.read_until(lambda: raw.goaway() is not None)
        refused = raw.goaway()
    assert refused is not None and refused.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert not site.backend.requests_for(m)
    still_serves(site)


def test_a_connection_serves_its_request_limit_then_says_goaway(site: Site) -> None:
    """Azure: 1,000 requests per HTTP/2 connection (here REQUESTS): the last is answered,
    GOAWAY names it, and the client goes elsewhere for more."""
    m = mark()
    with RawH2(site) as raw:
        ids: list[int] = []
        for batch in range(REQUESTS // 10):
            ids += [raw.request(f"/{m}/{batch}-{index}") for index in range(10)]
            raw.flush()
            raw.wait_ended(ids)
        assert [raw.status(i) for i in ids] == [200] * REQUESTS
        raw.read_until(lambda: raw.goaway() is not None)  # once the last stream has ended
        refused = raw.goaway()
        assert refused is not None and refused.error_code == ErrorCodes.NO_ERROR
        assert refused.last_stream_id == ids[-1]
    assert len(site.backend.requests_for(m)) == REQUESTS


def test_connection_specific_headers_are_refused_and_nothing_is_forwarded(site: Site) -> None:
    """RFC 9113 §8.2.2: Connection, Keep-Alive, Transfer-Encoding, Upgrade (and TE other
    than trailers) make a request malformed; it never reaches a backend."""
    for name, value in (
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("keep-alive", "timeout=5"),
        ("te", "gzip"),
    ):
        m = mark()
        with RawH2(site) as raw:
            block = raw.conn.encoder.encode([*headers(f"/{m}"), (name, value)])
            raw.send_raw(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
            raw.read_until(lambda: raw.goaway() is not None or raw.ended(1))
            refused = raw.goaway()
            assert refused is not None and refused.error_code == ErrorCodes.PROTOCOL_ERROR, name
        time.sleep(0.2)
        assert not site.backend.requests_for(m), f"{name} reached the backend"
    still_serves(site)


def test_prior_knowledge_h2c_on_a_plain_port_is_not_http2(site: Site) -> None:
    """No h2c: the HTTP/2 preface on a TLS port without ALPN h2 is refused as HTTP/1.1."""
    context = tls_context(site.ca, ["http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", site.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        answer = tls.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]


# --- floods ---------------------------------------------------------------------------------------


def flood_closes(site: Site, attack: Callable[[RawH2], None]) -> ConnectionTerminated:
    with RawH2(site, timeout=10) as raw:
        with contextlib.suppress(OSError):  # the gateway closed the connection mid-attack
            attack(raw)
        raw.read_until(lambda: raw.goaway() is not None, timeout=10)
        refused = raw.goaway()
    assert refused is not None, "the flood must be answered with GOAWAY"
    return refused


def rapid_reset(raw: RawH2) -> None:
    for _ in range(RESETS * 4):
        stream_id = raw.request(f"/rapid-{uuid.uuid4().hex[:8]}")
        raw.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
    raw.flush()


def settings_flood(raw: RawH2) -> None:
    raw.send_raw(
        b"".join(SettingsFrame(0, settings={3: 100}).serialize() for _ in range(PINGS * 3))
    )


def ping_flood(raw: RawH2) -> None:
    raw.send_raw(
        b"".join(PingFrame(0, opaque_data=b"12345678").serialize() for _ in range(PINGS * 3))
    )


def empty_data_flood(raw: RawH2) -> None:
    stream_id = raw.request("/empty", end_stream=False)
    raw.flush()
    raw.send_raw(b"".join(DataFrame(stream_id, b"").serialize() for _ in range(EMPTY * 3)))


def continuation_flood(raw: RawH2) -> None:
    block = raw.conn.encoder.encode(headers("/continuation"))
    frames = [HeadersFrame(1, block).serialize()]
    frames += [ContinuationFrame(1, b"").serialize() for _ in range(CONTINUATIONS * 50)]
    raw.send_raw(b"".join(frames))


def hpack_bomb(raw: RawH2) -> None:
    """One large header in the table, referenced thousands of times: a small block that
    decodes to far more than the header list limit."""
    big = "x" * 4000
    first = raw.conn.encoder.encode([*headers("/bomb"), ("bomb", big)])
    index = bytes([0x80 | 62])  # the dynamic table's newest entry, indexed
    raw.send_raw(HeadersFrame(1, first + index * 5000, flags=["END_HEADERS"]).serialize())


@pytest.mark.parametrize(
    ("attack", "code"),
    [
        (rapid_reset, ErrorCodes.ENHANCE_YOUR_CALM),
        (settings_flood, ErrorCodes.ENHANCE_YOUR_CALM),
        (ping_flood, ErrorCodes.ENHANCE_YOUR_CALM),
        (empty_data_flood, ErrorCodes.ENHANCE_YOUR_CALM),
        (continuation_flood, ErrorCodes.ENHANCE_YOUR_CALM),
        (hpack_bomb, None),
    ],
    ids=["rapid-reset", "settings", "ping", "empty-data", "continuation", "hpack-bomb"],
)
def test_a_flood_is_sent_goaway_and_the_worker_keeps_serving_with_its_memory(
    site: Site, attack: Callable[[RawH2], None], code: ErrorCodes | None
) -> None:
    flood_closes(site, attack)  # warms up what the first of a kind allocates
    before = site.worker_rss()
    for _ in range(5):
        refused = flood_closes(site, attack)
        if code is not None:
            assert refused.error_code == code
        else:
            assert refused.error_code != ErrorCodes.NO_ERROR
    still_serves(site)
    wait_until(lambda: site.worker_rss() - before < 4096, what="the worker's memory to return")
    assert (
        not site.backend.requests_for("/rapid-")
        or len([r for r in site.backend.requests if r.target.startswith("/rapid-")]) <= 6 * RESETS
    )


def test_streams_over_the_concurrency_limit_end_the_connection(site: Site) -> None:
    def too_many(raw: RawH2) -> None:
        for _ in range(STREAMS + 1):
            raw.request("/hang/too-many", end_stream=True)
        raw.flush()

    refused = flood_closes(site, too_many)
    assert refused.error_code in (ErrorCodes.PROTOCOL_ERROR, ErrorCodes.REFUSED_STREAM)
    still_serves(site)


def test_a_header_block_never_finished_ends_at_the_header_timeout(site: Site) -> None:
    started = time.monotonic()
    with RawH2(site, timeout=HEAD_TIMEOUT + 5) as raw:
        block = raw.conn.encoder.encode(headers("/slow"))
        raw.send_raw(HeadersFrame(1, block[:5]).serialize())  # no END_HEADERS, never continued
        raw.read_until(lambda: raw.goaway() is not None, timeout=HEAD_TIMEOUT + 4)
    assert raw.closed or raw.goaway() is not None
    assert time.monotonic() - started < HEAD_TIMEOUT + 3
    still_serves(site)


def test_an_idle_connection_is_sent_goaway_and_closed(site: Site) -> None:
    with RawH2(site, timeout=IDLE + 5) as raw:
        stream_id = raw.request("/idle")
        raw.flush()
        raw.read_until(lambda: raw.ended(stream_id))
        answered = time.monotonic()
        raw.read_until(lambda: raw.closed, timeout=IDLE + 4)
        refused = raw.goaway()
    assert refused is not None and refused.error_code == ErrorCodes.NO_ERROR
    assert refused.last_stream_id == stream_id and raw.closed
    assert IDLE - 0.5 < time.monotonic() - answered < IDLE + 2


def test_a_connection_without_preface_ends_at_the_header_timeout(site: Site) -> None:
    context = tls_context(site.ca, ["h2"])
    started = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", site.port), timeout=HEAD_TIMEOUT + 5) as sock,
        context.wrap_socket(sock, server_hostname=HOST) as tls,
    ):
        while tls.recv(4096):
            pass  # the gateway's SETTINGS, then its GOAWAY and close
    assert time.monotonic() - started < HEAD_TIMEOUT + 3
    still_serves(site)


def test_a_client_that_never_opens_its_window_is_dropped_with_its_backend(site: Site) -> None:
    with RawH2(site, timeout=SEND_TIMEOUT + 10) as raw:
        stream_id = raw.request("/big/cl/104857600")  # 100 MiB; the window is never opened
        raw.flush()
        raw.read_until(lambda: raw.ended(stream_id), timeout=SEND_TIMEOUT + 6)
        assert raw.ended(stream_id), "the stream should have been reset"
    wait_until(
        lambda: site.backend.connections_closed("104857600"), what="the backend connection to close"
    )
    still_serves(site)
