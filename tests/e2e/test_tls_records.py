"""Fewer TLS writes: what is at hand when the gateway writes goes out as one TLS record.

Every TLS write is a record, an encryption and a send however small it is, so a request's head
and body (and a response's head and body) that the gateway has in hand are written together.
Both peers here run their TLS by hand over a raw socket (ssl.SSLObject with memory BIOs) and
count the application-data records of each message straight off the wire. TLS 1.2 keeps
handshake and application records apart by their type, so the count is exact."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
import trustme

from backends import free_port
from builders import GatewayBuilder
from e2e.harness import Gateway, context_for, issued
from helpers import cer_b64, make_pfx

pytestmark = pytest.mark.slow

BACKEND_NAME = "backend.contoso.test"
SITE = "www.contoso.test"
APPLICATION_DATA = 23  # TLS record content type (RFC 5246 §6.2.1)
WAIT = 10.0  # seconds; every socket wait here is bounded


class RecordCountingTls:
    """One TLS 1.2 endpoint over a raw socket that counts the application-data records it
    receives."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server: bool) -> None:
        sock.settimeout(WAIT)
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        hostname = None if server else SITE
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server, hostname)
        self.raw = b""
        self.records = 0

    def _flush(self) -> None:
        pending = self.outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def _next_record(self) -> None:
        while len(self.raw) < 5 or len(self.raw) < 5 + int.from_bytes(self.raw[3:5], "big"):
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.raw += data
        size = 5 + int.from_bytes(self.raw[3:5], "big")
        record, self.raw = self.raw[:size], self.raw[size:]
        if record[0] == APPLICATION_DATA:
            self.records += 1
        self.incoming.write(record)

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._next_record()

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def receive_message(self) -> bytes:
        """One HTTP message with a Content-Length body, record by record."""
        self.records = 0
        message = b""
        while True:
            with suppress(ssl.SSLWantReadError):
                message += self.tls.read(65536)
            head, sep, body = message.partition(b"\r\n\r\n")
            if sep:
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(body) >= length:
                    return message
            self._next_record()


@contextmanager
def counting_backend(
    ca: trustme.CA, answer: bytes
) -> Iterator[tuple[int, list[tuple[bytes, int]]]]:
    """A TLS 1.2 backend answering `answer` (one write) to each request; yields its port and
    (request line, records it arrived in) of each request, health probes included."""
    context = context_for(*issued(ca, BACKEND_NAME))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    counts: list[tuple[bytes, int]] = []
    stop = threading.Event()

    def answer_on(conn: socket.socket) -> None:
        with conn:
            try:
                tls = RecordCountingTls(conn, context, server=True)
                tls.handshake()
                while not stop.is_set():
                    request = tls.receive_message()
                    counts.append((request.split(b"\r\n", 1)[0], tls.records))
                    tls.send(answer)
            except (OSError, ConnectionError, ssl.SSLError):
                return

    def serve() -> None:
        # A connection of its own per thread: a probe's must not hold up the gateway's.
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue  # no connection yet: look at `stop` again
            except OSError:
                return  # closed
            threading.Thread(target=answer_on, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], counts
    finally:
        stop.set()
        listener.close()
        thread.join(WAIT)


def test_a_request_and_a_response_each_cross_tls_as_one_record(gateway: Gateway) -> None:
    backend_ca, front_ca = trustme.CA(), trustme.CA()
    pfx = make_pfx(front_ca, SITE)
    body = b"x" * 300
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + b"y" * 500
    with counting_backend(backend_ca, answer) as (backend_port, counts):
        port = free_port()
        gateway.apply(
            GatewayBuilder()
            .certificate("cert", pfx.b64, pfx.password)
            .trusted_root("root", cer_b64(backend_ca))
            .pool("pool", "127.0.0.1")
            .settings(
                "settings",
                backend_port,
                "Https",
                hostName=BACKEND_NAME,
                trustedRootCertificates=["root"],
            )
            .listener("listener", port, "Https", certificate="cert")
            .rule("rule1", "listener", pool="pool", settings="settings")
            .build()
        )
        client_context = ssl.create_default_context()
        front_ca.configure_trust(client_context)
        client_context.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            client = RecordCountingTls(sock, client_context, server=False)
            client.handshake()
            for framing in (
                b"Content-Length: 300\r\n\r\n" + body,
                b"Transfer-Encoding: chunked\r\n\r\n12c\r\n" + body + b"\r\n0\r\n\r\n",
            ):
                client.send(b"POST /upload HTTP/1.1\r\nHost: " + SITE.encode() + b"\r\n" + framing)
                response = client.receive_message()
                assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"y" * 500)
                # The response's head and body: one record to the client.
                assert client.records == 1, framing
        # Each request's head and body (and last chunk): one record to the backend.
        posts = [records for line, records in counts if line.startswith(b"POST ")]
        assert posts == [1, 1]
