"""The admin listener of a real `appgw serve` at the HTTP level: what it reads before refusing
a request head that never ends, and the headers every answer carries."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from e2e.raw import RawClient
from helpers import TOKEN, ServeProcess, serving

pytestmark = pytest.mark.slow

ENDLESS = 1024 * 1024  # what the attacker sends: far past any limit
PIECE = 4096  # sent in pieces, as a slow or streaming client would
# The server may buffer up to its limit (32 KiB) and one read; a few MiB of growth means the
# endless bytes were kept.
RSS_GROWTH_LIMIT = 4 * 1024 * 1024
# Seconds: what "/healthz still answers promptly" means for another client. An endless head
# held it 9 s before; on a test machine busy with other test processes ~2 s have been seen.
PROMPT = 3.0
HEAD_TIMEOUT = 3  # seconds (--client-header-timeout): short, so a slow head is seen in a test


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data_dir = tmp_path_factory.mktemp("admin") / "data"
    with serving(
        data_dir,
        {"APPGW_ADMIN_TOKEN": TOKEN},
        wait_ready=False,
        args=("--client-header-timeout", str(HEAD_TIMEOUT)),
    ) as running:
        yield running


def _address(server: ServeProcess) -> tuple[str, int]:
    parts = urlsplit(server.base_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class HealthWatch:
    """Another client asking /healthz over and over; the slowest answer it got."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.slowest = 0.0
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthWatch:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self.stopping.is_set():
                started = time.monotonic()
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                    continue
                self.slowest = max(self.slowest, time.monotonic() - started)
                if status != 200:
                    self.failures.append(str(status))
                time.sleep(0.02)


def _send_endless(server: ServeProcess, start: bytes) -> tuple[bytes, bool]:
    """Send `start`, then up to 1 MiB more in pieces; (what the server answered, whether it
    closed the connection)."""
    sock = socket.create_connection(_address(server), timeout=5)
    try:
        sock.sendall(start)
        sent = 0
        try:
            while sent < ENDLESS:
                sock.sendall(b"a" * PIECE)
                sent += PIECE
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed: what it answered is read below
        answer = b""
        closed = False
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                answer += chunk
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            pass
        return answer, closed
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("start", "status", "code"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ", 431, "RequestHeaderFieldsTooLarge"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless", 431, "RequestHeaderFieldsTooLarge"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 2000, 431, None),
        (b"GET /", 414, "RequestUriTooLong"),
        (b"GET /subscriptions?x=", 414, "RequestUriTooLong"),
    ],
    ids=["header-value", "header-name", "many-headers", "url", "query"],
)
def test_an_endless_request_head_is_refused_and_closed(
    server: ServeProcess, start: bytes, status: int, code: str | None
) -> None:
    before = _rss(server.process.pid)
    with HealthWatch(server.base_url) as watch:
        answer, closed = _send_endless(server, start)
        time.sleep(0.3)  # and after
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    if code is not None:
        assert json.loads(body)["error"]["code"] == code
    assert closed, "the connection stays open after the refusal"
    assert _rss(server.process.pid) - before < RSS_GROWTH_LIMIT
    assert not watch.failures, watch.failures
    assert watch.slowest < PROMPT, f"/healthz took {watch.slowest:.2f} s meanwhile"


def _read_answer(sock: socket.socket) -> tuple[bytes, bool]:
    """Everything until the server closes or is silent for 2 s; (bytes, closed)."""
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except TimeoutError:
        return answer, False
    return answer, True


def test_a_head_sent_a_byte_at_a_time_is_refused_at_the_deadline(server: ServeProcess) -> None:
    """Slow loris: each byte arrives well within any idle timeout, the head never completes.
    The deadline counts from the head's first byte, not from the last one."""
    sock = socket.create_connection(_address(server), timeout=2)
    try:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        with HealthWatch(server.base_url) as watch:
            try:
                for _ in range(int(HEAD_TIMEOUT * 4)):
                    sock.sendall(b"X")
                    time.sleep(0.5)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused and closed: read below
            answer, closed = _read_answer(sock)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert json.loads(body)["error"]["code"] == "RequestTimeout"
    assert closed
    assert HEAD_TIMEOUT - 0.5 < elapsed < HEAD_TIMEOUT * 4, elapsed
    assert not watch.failures, watch.failures
    assert watch.slowest < PROMPT


def test_the_head_deadline_starts_again_with_each_request(server: ServeProcess) -> None:
    """Requests on one kept-alive connection, the last one sent after the first request's
    deadline would have passed: each head has a deadline of its own."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with RawClient(_address(server)[1], timeout=5) as client:
        for pause in (0, HEAD_TIMEOUT * 0.7, HEAD_TIMEOUT * 0.7):
            time.sleep(pause)
            client.send(request)
            assert client.reply().status == 200


def test_heads_under_the_limits_are_served_and_the_connection_kept(server: ServeProcess) -> None:
    """A large but allowed head (an 8 KiB URL, 20 KiB of headers), twice on one connection,
    the second request arriving in the same read as the first."""
    url = "/healthz?" + "q" * (8 * 1024)
    headers = b"".join(b"X-%d: %s\r\n" % (n, b"v" * 1000) for n in range(20))
    request = f"GET {url} HTTP/1.1\r\nHost: x\r\n".encode() + headers + b"\r\n"
    sock = socket.create_connection(_address(server), timeout=5)
    try:
        sock.sendall(request + request)
        answer = b""
        while answer.count(b"HTTP/1.1 200 ") < 2:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    finally:
        sock.close()


def test_a_body_may_be_larger_than_the_head_limit(server: ServeProcess) -> None:
    """The limit is on the head only: a 200 KiB body reaches the API (and is refused there
    for what it is, not for its size)."""
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        answer = client.put(
            "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/"
            "applicationGateways/gw?api-version=2024-05-01",
            headers={"Authorization": f"Bearer {TOKEN}"},
            content=b"[" + b"1," * (100 * 1024) + b"1]",
        )
    assert answer.status_code == 400, answer.text


@pytest.mark.parametrize(
    ("url_bytes", "header_bytes", "status"),
    [(16 * 1024 + 1, 0, 414), (0, 32 * 1024, 431), (12 * 1024, 20 * 1024, 431)],
    ids=["url-one-over", "headers-at-the-limit", "url-and-headers-together"],
)
def test_a_complete_head_just_over_a_limit_is_refused(
    server: ServeProcess, url_bytes: int, header_bytes: int, status: int
) -> None:
    url = "/healthz?" + "q" * max(0, url_bytes - len("/healthz?"))
    header = f"X-Big: {'v' * header_bytes}\r\n".encode() if header_bytes else b""
    sock = socket.create_connection(_address(server), timeout=5)
    try:
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\n".encode() + header + b"\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    finally:
        sock.close()
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:100]


SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@pytest.mark.parametrize(
    ("method", "path", "token"),
    [
        ("GET", "/portal/signin", False),
        ("POST", "/portal/signin", False),  # the sign-in refused (no CSRF needed there)
        ("GET", "/portal/resources", False),  # a redirect to sign in
        ("GET", "/portal/static/portal.css", False),
        ("GET", "/portal/nowhere", False),  # the portal's own 404 page
        ("GET", "/healthz", False),
        ("GET", "/openapi.json", False),
        ("GET", "/subscriptions/sub1/providers/Microsoft.Network/applicationGateways", False),
        ("GET", "/subscriptions/sub1/providers/Microsoft.Network/applicationGateways", True),
        ("GET", "/metrics", True),
    ],
)
def test_every_answer_forbids_framing_sniffing_and_referrers(
    server: ServeProcess, method: str, path: str, token: bool
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"} if token else {}
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        answer = client.request(method, path, headers=headers, data={"token": "wrong"})
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value, (name, answer.status_code, answer.headers)


def test_swagger_ui_from_a_public_cdn_is_not_served(server: ServeProcess) -> None:
    """/docs would load unpinned scripts from a CDN on the portal's origin: it is off; the
    OpenAPI description stays."""
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/docs/oauth2-redirect").status_code == 404
        assert client.get("/openapi.json").json()["info"]["title"] == "appgw"
