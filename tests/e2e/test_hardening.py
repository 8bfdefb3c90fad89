"""Hostile input to the data plane, as raw bytes over real sockets (issue 12, hardening.md §4).

Every reject asserts three things: what reached the backend (nothing), what the client got, and
that the worker still serves others. The cases are those an outside attack found mishandled,
then variants of the same class.

One `appgw serve` with one worker (so caps and timeouts are this worker's) and short client
timeouts, set with serve's own options, serves the module: a path-routed HTTP listener (`/api/*`
to one backend, everything else to another) and two HTTPS sites on one port with different
certificates.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from backends import free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway
from e2e.raw import RAW_TIMEOUT, RawClient, Reply, exchange
from e2e.special_backends import SpecialBackend
from helpers import TOKEN, Pfx, make_pfx, start_serve

pytestmark = pytest.mark.slow

HOST = "hardening.test"
HEAD_TIMEOUT = 2  # serve --client-header-timeout for this module
SEND_TIMEOUT = 2  # serve --client-send-timeout
PER_IP = 24  # serve --max-connections-per-ip
PER_WORKER = 40  # serve --max-connections
SITE_A, SITE_B = "a.hardening.test", "b.hardening.test"


@dataclass
class Site:
    gateway: Gateway
    api: SpecialBackend  # receives /api/*
    web: SpecialBackend  # receives everything else
    port: int  # the path-routed HTTP listener
    tls_port: int  # a.hardening.test and b.hardening.test, each with its own certificate
    ca: trustme.CA
    document: Callable[[Pfx], dict[str, Any]]  # the gateway, with this certificate for site A

    def backends_saw(self, mark: str) -> bool:
        return bool(self.api.requests_for(mark) or self.web.requests_for(mark)) or any(
            backend.saw_bytes(mark.encode()) for backend in (self.api, self.web)
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    api, web = SpecialBackend("api").start(), SpecialBackend("web").start()
    server = start_serve(
        tmp_path_factory.mktemp("hardening") / "data",
        {"APPGW_ADMIN_TOKEN": TOKEN},
        workers=1,
        args=(
            "--client-header-timeout",
            str(HEAD_TIMEOUT),
            "--client-send-timeout",
            str(SEND_TIMEOUT),
            "--max-connections-per-ip",
            str(PER_IP),
            "--max-connections",
            str(PER_WORKER),
        ),
    )
    gateway = Gateway(server, workers=1)
    ca = trustme.CA()
    port, tls_port = free_port(), free_port()
    b = make_pfx(ca, SITE_B)

    def document(a: Pfx) -> dict[str, Any]:
        return (
            GatewayBuilder()
            .certificate("certA", a.b64, a.password)
            .certificate("certB", b.b64, b.password)
            .pool("api", "127.0.0.1")
            .pool("web", "127.0.0.1")
            .settings("api", api.port)
            .settings("web", web.port)
            .listener("main", port, "Http")
            .listener("siteA", tls_port, "Https", certificate="certA", host_name=SITE_A)
            .listener("siteB", tls_port, "Https", certificate="certB", host_name=SITE_B)
            .path_map("paths", ("web", "web"), [("api", ["/api/*"], "api", "api")])
            .rule("main", "main", path_map="paths", priority=10)
            .rule("siteA", "siteA", pool="web", settings="web", priority=20)
            .rule("siteB", "siteB", pool="api", settings="api", priority=30)
            .build()
        )

    gateway.apply(document(make_pfx(ca, SITE_A)))
    try:
        yield Site(gateway, api, web, port, tls_port, ca, document)
    finally:
        server.stop()
        api.stop()
        web.stop()


def mark() -> str:
    return uuid.uuid4().hex[:16]


def get(path: str, *headers: str, version: str = "HTTP/1.1", method: str = "GET") -> bytes:
    lines = [f"{method} {path} {version}", f"Host: {HOST}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def still_serves(site: Site) -> None:
    """Another client is answered at once: the worker survived and is not stuck."""
    started = time.monotonic()
    response = httpx.get(f"http://127.0.0.1:{site.port}/alive", headers={"Host": HOST}, timeout=5)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 2.0


def rejected(site: Site, data: bytes, status: int, mark_text: str) -> Reply:
    """`data` (carrying `mark_text`) gets `status` and a close; nothing reaches a backend."""
    replies, closed, raw = exchange(site.port, data)
    assert replies, f"no answer; got {raw!r}"
    assert replies[0].status == status, (replies[0].status, raw[:300])
    assert closed, "the connection must close after a reject"
    assert len(replies) == 1, f"nothing after the reject: {raw!r}"
    time.sleep(0.3)  # what the gateway might still forward reaches the backend
    assert not site.backends_saw(mark_text), "a rejected request reached a backend"
    still_serves(site)
    return replies[0]


# --- 1. limits enforced on bytes received --------------------------------------------------------


@pytest.mark.parametrize(
    ("opening", "status"),
    [
        ("GET /{m}/", 414),  # a URL that never ends
        ("GET /{m} HTTP/1.1\r\nHost: " + HOST + "\r\nX-Long: ", 431),  # a header value
        ("GET /{m} HTTP/1.1\r\nHost: " + HOST + "\r\nX-Long", 431),  # a header name
    ],
    ids=["url", "header-value", "header-name"],
)
def test_an_endless_head_is_refused_once_the_limit_is_crossed(
    site: Site, opening: str, status: int
) -> None:
    m = mark()
    sent = 0
    with RawClient(site.port, timeout=RAW_TIMEOUT) as client:
        client.send(opening.replace("{m}", m).encode())
        piece = b"x" * 4096
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(256):  # 1 MiB if nobody stops it
                client.send(piece)
                sent += len(piece)
                time.sleep(0.002)
        closed = client.until_closed(RAW_TIMEOUT)
        answer = client.buffer
    assert closed
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert sent < 256 * 1024, f"the gateway read {sent} bytes of an endless head"
    assert not site.backends_saw(m)
    still_serves(site)


def test_many_small_headers_over_the_limit_are_refused(site: Site) -> None:
    m = mark()
    headers = [f"X-Filler-{index}: {'v' * 200}" for index in range(190)]
    rejected(site, get(f"/{m}", *headers), 431, m)


def test_an_endless_head_does_not_hold_up_other_clients(site: Site) -> None:
    stop = threading.Event()

    def flood() -> None:
        with RawClient(site.port, timeout=RAW_TIMEOUT) as client:
            client.send(f"GET /{mark()} HTTP/1.1\r\nHost: {HOST}\r\nX: ".encode())
            with contextlib.suppress(OSError):
                while not stop.is_set():
                    client.send(b"y" * 65536)

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        for _ in range(5):
            still_serves(site)
    finally:
        stop.set()
        thread.join(5)


# --- 3, 4. the framing is valid before anything is forwarded -------------------------------------


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        # RFC 9112 §6.3: chunked must be the final coding, else 400; §6.1: a coding the
        # server does not implement (before chunked) is 501.
        ("Transfer-Encoding: xchunked", 400),
        ("Transfer-Encoding: gzip, chunked", 501),
        ("Transfer-Encoding: chunked, identity", 400),
        ("Transfer-Encoding: identity", 400),
        ("Transfer-Encoding: chunked\x0b", 400),
        ("Transfer-Encoding: ,chunked", 400),
        ("Transfer-Encoding: chunked, chunked", 400),
        ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 400),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5", 400),
        ("Content-Length: 5\r\nContent-Length: 6", 400),
        ("Content-Length: +5", 400),
        ("Content-Length: 0x5", 400),
    ],
)
def test_a_request_with_bad_framing_is_refused_before_any_byte_is_forwarded(
    site: Site, framing: str, status: int
) -> None:
    m = mark()
    data = get(f"/{m}", framing, method="POST") + b"5\r\nhello\r\n0\r\n\r\n"
    rejected(site, data, status, m)


@pytest.mark.parametrize(
    "chunks",
    [
        b"10000000000000001\r\nx\r\n0\r\n\r\n",  # a chunk size that overflows 64 bits
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",  # data not followed by CRLF
        b"5;ext\nhello\r\n0\r\n\r\n",  # bare LF
    ],
    ids=["overflow", "0x", "plus", "no-crlf", "bare-lf"],
)
def test_a_malformed_chunk_in_the_first_read_is_refused_and_nothing_forwarded(
    site: Site, chunks: bytes
) -> None:
    m = mark()
    data = get(f"/{m}", "Transfer-Encoding: chunked", method="POST") + chunks
    rejected(site, data, 400, m)


def test_transfer_encoding_on_http10_is_refused(site: Site) -> None:
    m = mark()
    data = get(f"/{m}", "Transfer-Encoding: chunked", version="HTTP/1.0", method="POST")
    rejected(site, data + b"0\r\n\r\n", 400, m)


def test_a_malformed_chunk_later_aborts_the_backend_connection(site: Site) -> None:
    m = mark()
    with RawClient(site.port, timeout=RAW_TIMEOUT) as client:
        client.send(get(f"/api/{m}", "Transfer-Encoding: chunked", method="POST"))
        client.send(b"5\r\nhello\r\n")
        wait_until(lambda: bool(site.api.requests_for(m)), what="the head at the backend")
        client.send(b"zz\r\n")  # not a chunk size
        assert client.until_closed(RAW_TIMEOUT)
        assert client.buffer.startswith(b"HTTP/1.1 400 ")
    [seen] = site.api.requests_for(m)
    connection = site.api.connections[seen.connection]
    wait_until(lambda: connection.closed, what="the backend connection to be closed")
    assert not seen.complete
    still_serves(site)


# --- 5. pipelining: nothing after a reject, answers in order -------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "TRACE / HTTP/1.1\r\nHost: " + HOST,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443",
        "GET / HTTP/1.1",  # no Host
        "GET / HTTP/1.1\r\nHost: " + HOST + "\r\nHost: other.test",
        "GET / HTTP/1.1\r\nHost: a b",
        "GET http://elsewhere.test/ HTTP/1.1\r\nHost: " + HOST,
    ],
    ids=["trace", "connect", "no-host", "two-hosts", "host-space", "absolute-other-host"],
)
def test_a_request_pipelined_after_a_reject_never_reaches_a_backend(site: Site, bad: str) -> None:
    for _ in range(5):
        m = mark()
        data = (bad + "\r\n\r\n").encode() + get(f"/{m}")
        rejected(site, data, 400, m)


def test_a_valid_request_then_a_bad_one_in_one_read_get_two_answers_in_order(site: Site) -> None:
    m = mark()
    data = (
        get(f"/{m}") + b"GET /second HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nX: a\r\n b\r\n\r\n"
    )
    replies, closed, raw = exchange(site.port, data)
    assert [r.status for r in replies] == [200, 400], raw[:500]
    assert m in replies[0].json()["target"]
    assert closed
    assert not site.backends_saw("/second")


# --- 6. routing on the normalized path ------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "pool", "forwarded"),
    [
        ("/api/../web/{m}", "web", "/web/{m}"),
        ("/api/./x/../{m}", "api", "/api/{m}"),
        ("/%61pi/{m}", "api", "/api/{m}"),  # an encoded unreserved character is the character
        ("/API/{m}", "api", "/API/{m}"),  # path rules ignore case, as Azure's
        ("/web/%2e%2e/api/{m}", "api", "/api/{m}"),
        ("/api%2f{m}", "web", "/api%2F{m}"),  # an encoded slash is not a separator
        ("/web//{m}", "web", "/web//{m}"),
    ],
)
def test_routing_and_forwarding_use_the_normalized_path(
    site: Site, target: str, pool: str, forwarded: str
) -> None:
    m = mark()
    request = get(target.replace("{m}", m), "Connection: close")
    replies, _closed, raw = exchange(site.port, request)
    assert replies and replies[0].status == 200, raw[:300]
    backend = site.api if pool == "api" else site.web
    [seen] = backend.requests_for(m)
    assert seen.target == forwarded.replace("{m}", m)
    other = site.web if pool == "api" else site.api
    assert not other.requests_for(m)


@pytest.mark.parametrize(
    "target",
    [
        "/a/../../etc/passwd-{m}",
        "/%2e%2e/{m}",
        "/%2E%2E/%2e%2e/{m}",
        "/{m}/%zz",
        "/{m}/%",
        "/{m}/%0",
        "/{m}/%00",
        "/{m}#fragment",
        "/{m}\\..\\x",
    ],
)
def test_paths_that_cannot_be_normalized_are_refused(site: Site, target: str) -> None:
    m = mark()
    rejected(site, get(target.replace("{m}", m)), 400, m)


def test_asterisk_form_is_only_for_options(site: Site) -> None:
    m = mark()
    rejected(site, get("*", f"X-Mark: {m}"), 400, m)


# --- 7. what a backend answers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/bighead/102400", "/bighead/33554432", "/manyheaders/10000"], ids=str
)
def test_a_backend_head_over_the_limits_is_a_502(site: Site, path: str) -> None:
    replies, _closed, raw = exchange(site.port, get(path, "Connection: close"))
    assert replies and replies[0].status == 502, raw[:300]
    assert b"bbbbbbbb" not in raw and b"X-H9999" not in raw
    still_serves(site)


@pytest.mark.parametrize("path", ["/unsolicited101", "/badaccept"])
def test_a_101_the_request_did_not_get_is_a_502(site: Site, path: str) -> None:
    headers = (
        ("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
        if path == "/badaccept"
        else ()
    )
    replies, _closed, raw = exchange(site.port, get(path, *headers, "Connection: close"))
    assert replies and replies[0].status == 502, raw[:300]
    assert b"RAW-BYTES-AFTER-101" not in raw


def test_early_hints_are_relayed_with_their_link_and_reason(site: Site) -> None:
    with RawClient(site.port, timeout=RAW_TIMEOUT) as client:
        client.send(get("/earlyhints"))
        hints = client.reply()
        final = client.reply()
    assert hints.status == 103
    assert hints.header("link") == "</style.css>; rel=preload; as=style"
    assert final.status == 200 and final.body == b"final"


def test_a_second_response_from_the_backend_never_reaches_another_client(site: Site) -> None:
    for _ in range(8):
        replies, _closed, _raw = exchange(site.port, get("/double", "Connection: close"))
        assert replies[0].body == b"first"
        for _ in range(3):
            response = httpx.get(
                f"http://127.0.0.1:{site.port}/after-double", headers={"Host": HOST}
            )
            assert b"SECOND" not in response.content
            assert response.status_code == 200


def test_a_second_response_never_answers_the_request_pipelined_behind(site: Site) -> None:
    """The next request of the same client, in the same read, is sent as soon as the first
    response ends: it must not get the backend's unsolicited second response."""
    for _ in range(5):
        m = mark()
        pipelined = get("/double") + get(f"/after-{m}", "Connection: close")
        replies, _closed, raw = exchange(site.port, pipelined)
        assert [r.status for r in replies] == [200, 200], raw[:400]
        assert replies[0].body == b"first"
        assert b"SECOND" not in raw
        assert m in replies[1].json()["target"]


# --- 8. slow clients, connection caps ------------------------------------------------------------


def test_a_head_sent_one_byte_at_a_time_ends_at_the_total_deadline(site: Site) -> None:
    m = mark()
    data = get(f"/{m}")
    started = time.monotonic()
    with RawClient(site.port, timeout=HEAD_TIMEOUT + 5) as client:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in data[:-1]:
                client.send(bytes([byte]))
                time.sleep(0.2)  # each byte long before any idle timeout
                if time.monotonic() - started > HEAD_TIMEOUT + 3:
                    break
        assert client.until_closed(HEAD_TIMEOUT + 3)
        answer = client.buffer
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - started < HEAD_TIMEOUT + 2.5
    assert not site.backends_saw(m)


def test_a_client_that_never_reads_is_dropped_and_so_is_its_backend_connection(
    site: Site,
) -> None:
    m = mark()
    with RawClient(site.port, timeout=SEND_TIMEOUT + 10, rcvbuf=4096) as client:
        client.send(get(f"/big/cl/209715200?{m}"))  # 200 MiB, never read
        started = time.monotonic()
        # Nothing is read until the gateway has given up: reading earlier (on a loaded
        # machine the gateway may fill its buffers late) would be a client that reads.
        wait_until(
            lambda: bool(site.web.requests_for(m)) and site.web.connections_closed(m),
            timeout=SEND_TIMEOUT + 20,
            what="the gateway to drop the backend connection",
        )
        assert time.monotonic() - started > SEND_TIMEOUT - 0.5
        client.sock.settimeout(2)
        received = 0
        with contextlib.suppress(OSError):
            while piece := client.sock.recv(1 << 20):
                received += len(piece)
    assert received < 64 * 1024 * 1024, "the client connection should have been dropped too"
    still_serves(site)


def test_idle_connections_of_one_address_are_capped_oldest_idle_first(site: Site) -> None:
    clients = [RawClient(site.port, timeout=RAW_TIMEOUT) for _ in range(PER_IP + 10)]
    try:
        time.sleep(0.5)
        oldest = clients[:10]
        for client in oldest:  # the first ones were closed to make room
            assert client.until_closed(RAW_TIMEOUT), "the oldest idle connection stays open"
        newest = clients[-1]
        newest.send(get("/newest"))
        assert newest.reply().status == 200
    finally:
        for client in clients:
            client.sock.close()
    still_serves(site)


# --- 9. the certificate negotiated is the site's ------------------------------------------------


def tls_get(site: Site, sni: str, host: str, path: str) -> int:
    context = ssl.create_default_context()
    site.ca.configure_trust(context)
    with (
        socket.create_connection(("127.0.0.1", site.tls_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while piece := tls.recv(65536):
            answer += piece
    return int(answer.split(b" ", 2)[1])


def test_a_host_needing_another_certificate_than_the_sni_is_misdirected(site: Site) -> None:
    m = mark()
    assert tls_get(site, SITE_A, SITE_A, f"/ok-{m}") == 200
    assert tls_get(site, SITE_A, SITE_B, f"/other-{m}") == 421
    assert tls_get(site, SITE_B, SITE_B, f"/b-{m}") == 200
    assert not site.backends_saw(f"/other-{m}")


# --- TLS: what AppGwSslPolicy20220101 offers, not OpenSSL's defaults -----------------------------

CLIENT = """
import socket, ssl, sys
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
context.minimum_version = ssl.TLSVersion.TLSv1_3
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=sys.argv[2]) as tls:
            print("negotiated", tls.version(), tls.cipher()[0])
except ssl.SSLError as error:
    print("refused", error.reason)
"""


def handshake_offering(site: Site, tmp_path: Path, setting: str) -> str:
    """A TLS 1.3 client whose OpenSSL offers only what `setting` allows."""
    config = tmp_path / "client.cnf"
    config.write_text(
        "openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = tls\n"
        f"[tls]\n{setting}\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, str(site.tls_port), SITE_A],
        env={**os.environ, "OPENSSL_CONF": str(config)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout.strip() + result.stderr.strip()


@pytest.mark.parametrize(
    ("setting", "outcome"),
    [
        ("Groups = X448", "refused"),
        ("Groups = P-521", "refused"),
        ("Ciphersuites = TLS_CHACHA20_POLY1305_SHA256", "refused"),
        ("Groups = X25519", "negotiated TLSv1.3"),
        ("Groups = P-384", "negotiated TLSv1.3"),
        ("Ciphersuites = TLS_AES_128_GCM_SHA256", "negotiated TLSv1.3 TLS_AES_128_GCM_SHA256"),
    ],
)
def test_tls13_offers_only_the_policy_suites_and_groups(
    site: Site, tmp_path: Path, setting: str, outcome: str
) -> None:
    assert handshake_offering(site, tmp_path, setting).startswith(outcome)


def test_a_certificate_renewed_under_its_name_keeps_open_connections_valid(site: Site) -> None:
    """421 compares the listener's certificate entry, not its bytes: renewing the certificate
    of a site must not turn its open keep-alive connections into misdirected ones."""
    context = ssl.create_default_context()
    site.ca.configure_trust(context)
    request = f"GET /renewal HTTP/1.1\r\nHost: {SITE_A}\r\n\r\n".encode()
    with (
        socket.create_connection(("127.0.0.1", site.tls_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=SITE_A) as tls,
    ):
        tls.sendall(request)
        assert tls.recv(65536).startswith(b"HTTP/1.1 200 ")
        renewed = make_pfx(site.ca, SITE_A)
        site.gateway.apply(site.document(renewed))
        tls.sendall(request)
        assert tls.recv(65536).startswith(b"HTTP/1.1 200 ")
