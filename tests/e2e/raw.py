"""A raw HTTP/1.1 client for tests: bytes out exactly as written, responses parsed strictly.

A well-behaved client library would repair exactly what hostile-input tests are about.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

RAW_TIMEOUT = 3.0  # how long a raw client waits for the gateway to answer or close


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    def json(self) -> Any:
        return json.loads(self.body)


def parse_reply(buffer: bytes, *, eof: bool) -> tuple[Reply, int] | None:
    """One response from the start of `buffer`, and its length; None if it is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        assert not eof or not buffer, f"truncated response head: {buffer[:300]!r}"
        return None
    lines = buffer[:end].split(b"\r\n")
    assert re.fullmatch(rb"HTTP/1\.[01] \d{3}( .*)?", lines[0]), f"not a status line: {buffer!r}"
    status = int(lines[0].split(b" ")[1])
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        assert colon, f"bad response header line {line!r}"
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    reply = Reply(status, headers, b"")
    position = end + 4
    if 100 <= status < 200 or status in (204, 304):
        return reply, position
    if any("chunked" in v.lower() for v in reply.values("transfer-encoding")):
        body = bytearray()
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(buffer[position:line_end].split(b";")[0], 16)
            position = line_end + 2
            if size == 0:
                trailers_end = buffer.find(b"\r\n", position)
                while trailers_end > position:  # skip trailer lines
                    position = trailers_end + 2
                    trailers_end = buffer.find(b"\r\n", position)
                if trailers_end < 0:
                    return None
                reply.body = bytes(body)
                return reply, trailers_end + 2
            if len(buffer) < position + size + 2:
                return None
            body += buffer[position : position + size]
            position += size + 2
    length = reply.header("content-length")
    if length is not None:
        if len(buffer) - position < int(length):
            assert not eof, f"body shorter than Content-Length: {buffer!r}"
            return None
        reply.body = buffer[position : position + int(length)]
        return reply, position + int(length)
    if not eof:
        return None
    reply.body = buffer[position:]
    return reply, len(buffer)


class RawClient:
    def __init__(
        self,
        port: int,
        *,
        timeout: float = 10.0,
        rcvbuf: int | None = None,
        mss: int | None = None,
    ) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if mss is not None:  # advertised in the SYN: the gateway's send buffer is sized by it
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buffer = b""
        self.eof = False

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    @property
    def local_port(self) -> int:
        return int(self.sock.getsockname()[1])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> None:
        try:
            piece = self.sock.recv(65536)
        except ConnectionResetError:
            piece = b""
        if not piece:
            self.eof = True
        self.buffer += piece

    def reply(self) -> Reply:
        while True:
            parsed = parse_reply(self.buffer, eof=self.eof)
            if parsed is not None:
                reply, used = parsed
                self.buffer = self.buffer[used:]
                return reply
            assert not self.eof, f"the gateway closed the connection; received {self.buffer!r}"
            try:
                self.receive()
            except TimeoutError:
                raise AssertionError(f"no complete response; received {self.buffer!r}") from None

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            assert not self.eof, (
                f"the gateway closed the connection; {size} bytes expected, got {self.buffer!r}"
            )
            self.receive()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def until_closed(self, timeout: float) -> bool:
        """Read everything until the gateway closes (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                self.receive()
            except TimeoutError:
                return False
        return True


def exchange(port: int, data: bytes) -> tuple[list[Reply], bool, bytes]:
    """Send `data` in one write; return every response, whether the gateway closed, the bytes."""
    with RawClient(port, timeout=RAW_TIMEOUT) as client:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.send(data)  # the gateway may close early; read what it said anyway
        closed = client.until_closed(RAW_TIMEOUT)
        raw = client.buffer
    replies = []
    rest = raw
    while rest:
        parsed = parse_reply(rest, eof=closed)
        if parsed is None:
            break
        replies.append(parsed[0])
        rest = rest[parsed[1] :]
    return replies, closed, raw
