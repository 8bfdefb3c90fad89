"""A raw asyncio backend for HTTP-semantics tests: it records every byte it receives.

The h11 echo backend of tests/backends.py answers one way only. This one parses requests with a
small strict parser of its own (so it sees header names and values exactly as the gateway sent
them) and chooses its behaviour by path:

* ``/big/cl/<size>`` and ``/big/chunked/<size>``: stream ``payload(size)`` in 64 KiB pieces,
  framed by Content-Length or chunked (with ``?close``: ``Connection: close`` and close after);
* ``/burst/<size>``: ``payload(size)`` with Content-Length, head and body in one write;
* ``/hop``: a small answer carrying hop-by-hop response headers;
* ``/hang``: read the request and never answer (until the gateway closes the connection);
* ``/ws``: answer a valid WebSocket handshake with 101, then echo raw bytes;
* hostile answers (``HOSTILE_ANSWERS``): ``/bighead/<n>`` (one header of n
  bytes), ``/manyheaders/<n>``, ``/unsolicited101``, ``/badaccept`` (a WebSocket 101 with a
  wrong Sec-WebSocket-Accept), ``/earlyhints`` (103 with Link, then 200), ``/double`` (two
  responses to one request; then it goes on serving the connection);
* anything else: 200 with JSON describing what arrived (member address, connection, method,
  target, raw headers, body size and SHA-256).

One server may listen on several loopback addresses with the same port (``hosts``), so one
instance can be two pool members (127.0.0.1 and 127.0.0.2); the JSON answer's ``member`` says
which address a request arrived on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import random
import re
import socket
import threading
from dataclasses import dataclass, field

PIECE = 64 * 1024
RAW_KEEP = 1024 * 1024  # bytes of each connection kept for inspection (the count is exact)
HANG_LIMIT = 30.0  # a hanging answer gives up after this long, whatever happens
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


def _big_head(path: str) -> bytes:
    size = int(path.split("/")[2])
    return b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * size + b"\r\nContent-Length: 2\r\n\r\nok"


def _many_headers(path: str) -> bytes:
    count = int(path.split("/")[2])
    lines = b"".join(b"X-H%d: v\r\n" % index for index in range(count))
    return b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\nok"


# Responses no well-behaved backend sends, by the path's first segment (see the docstring).
HOSTILE_ANSWERS = {
    "bighead": _big_head,
    "manyheaders": _many_headers,
    "unsolicited101": lambda _path: (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"\r\nRAW-BYTES-AFTER-101"
    ),
    "badaccept": lambda _path: (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBhY2NlcHQ=\r\n\r\nRAW-BYTES-AFTER-101"
    ),
    "earlyhints": lambda _path: (
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
    ),
    "double": lambda _path: (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECOND"
    ),
}


@functools.lru_cache(maxsize=4)
def payload(size: int) -> bytes:
    """Deterministic pseudo-random bytes: what ``/big/.../<size>`` answers with."""
    return random.Random(size).randbytes(size)


def websocket_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


@dataclass
class Connection:
    id: int
    member: str  # the local address it arrived on
    peer_port: int
    raw: bytearray = field(default_factory=bytearray)
    received: int = 0
    closed: bool = False

    def record(self, data: bytes) -> None:
        self.received += len(data)
        room = RAW_KEEP - len(self.raw)
        if room > 0:
            self.raw += data[:room]


@dataclass
class Request:
    connection: int
    member: str
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body_size: int = 0
    body_sha256: str = ""
    complete: bool = False  # the whole body arrived

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


class _BadMessage(Exception):
    pass


class _Input:
    """Buffered reads that record everything into the connection."""

    def __init__(self, reader: asyncio.StreamReader, connection: Connection) -> None:
        self.reader = reader
        self.connection = connection
        self.buffer = bytearray()

    async def fill(self) -> bool:
        data = await self.reader.read(PIECE)
        if not data:
            return False
        self.connection.record(data)
        self.buffer += data
        return True

    async def until(self, marker: bytes, limit: int = 65536) -> bytes | None:
        while True:
            index = self.buffer.find(marker)
            if index >= 0:
                found = bytes(self.buffer[: index + len(marker)])
                del self.buffer[: index + len(marker)]
                return found
            if len(self.buffer) > limit:
                raise _BadMessage("line too long")
            if not await self.fill():
                return None

    async def exactly(self, size: int, sink: hashlib._Hash) -> int:
        """Consume `size` bytes into `sink`; returns how many arrived before EOF."""
        got = 0
        while got < size:
            if not self.buffer and not await self.fill():
                return got
            take = min(size - got, len(self.buffer))
            sink.update(self.buffer[:take])
            del self.buffer[:take]
            got += take
        return got


class SpecialBackend:
    def __init__(self, name: str, hosts: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.name = name
        self.hosts = hosts
        self.port = 0
        self.connections: list[Connection] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- what the tests read ----------------------------------------------------------------------

    def requests_for(self, marker: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if marker in r.target]

    def saw_bytes(self, marker: bytes) -> bool:
        with self._lock:
            return any(marker in bytes(c.raw) for c in self.connections)

    # --- lifecycle --------------------------------------------------------------------------------

    def connections_closed(self, marker: str) -> bool:
        """Every connection whose request bytes carry `marker` is closed."""
        return all(
            c.closed for c in self.connections if c.received and marker.encode() in bytes(c.raw)
        )

    def start(self) -> SpecialBackend:
        sockets = self._bind()
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            servers = [
                loop.run_until_complete(asyncio.start_server(self._handle, sock=sock))
                for sock in sockets
            ]
            ready.set()
            loop.run_forever()
            for server in servers:
                server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name=f"special-{self.name}")
        self._thread.start()
        assert ready.wait(10), "special backend did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _bind(self) -> list[socket.socket]:
        """One port on every host; retried a few times if a later host has the port taken."""
        for _attempt in range(20):
            sockets: list[socket.socket] = []
            try:
                for host in self.hosts:
                    sock = socket.socket()
                    sockets.append(sock)
                    sock.bind((host, sockets[0].getsockname()[1] if len(sockets) > 1 else 0))
                    sock.listen(128)
            except OSError:
                for sock in sockets:
                    sock.close()
                continue
            self.port = sockets[0].getsockname()[1]
            return sockets
        raise AssertionError(f"no common free port on {self.hosts}")

    # --- serving ----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        local = writer.get_extra_info("sockname")
        peer = writer.get_extra_info("peername")
        with self._lock:
            connection = Connection(len(self.connections), str(local[0]), int(peer[1]))
            self.connections.append(connection)
        source = _Input(reader, connection)
        try:
            while await self._serve_one(source, writer, connection):
                pass
            # A graceful close (FIN): an abort would reset the connection and could destroy
            # the end of a response the gateway has not read yet.
            writer.close()
            await writer.wait_closed()
        except (_BadMessage, ConnectionError, asyncio.CancelledError, TimeoutError):
            writer.transport.abort()
        finally:
            connection.closed = True

    async def _serve_one(
        self, source: _Input, writer: asyncio.StreamWriter, connection: Connection
    ) -> bool:
        head = await source.until(b"\r\n\r\n")
        if head is None:
            return False
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise _BadMessage(f"request line {lines[0]!r}")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise _BadMessage(f"header line {line!r}")
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        request = Request(
            connection.id,
            connection.member,
            parts[0].decode("latin-1"),
            parts[1].decode("latin-1"),
            parts[2].decode("latin-1"),
            headers,
        )
        with self._lock:
            self.requests.append(request)
        await self._read_body(source, request)
        path = request.target.split("?")[0]
        if path.startswith("/hang"):
            await self._hang(source)
            return False
        if path.startswith("/ws"):
            await self._websocket(source, writer, request)
            return False
        close_after = False
        kind = path.split("/")[1] if "/" in path else ""
        hostile = HOSTILE_ANSWERS.get(kind)
        if hostile is not None:
            writer.write(hostile(path))
            await writer.drain()
            # Well-framed answers keep serving the connection (the gateway decides whether
            # it may be reused); the others end it.
            return kind in ("double", "earlyhints")
        if path.startswith("/big/"):
            close_after = request.target.endswith("?close")
            await self._big(writer, path, close_after)
        elif path.startswith("/burst/"):
            body = payload(int(path.split("/")[2]))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        elif path.startswith("/hop"):
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                b"Connection: X-Internal\r\nX-Internal: secret\r\n"
                b"Keep-Alive: timeout=987, max=654\r\nProxy-Connection: keep-alive\r\n"
                b"Upgrade: backend-proto\r\nX-Kept: yes\r\n\r\nok"
            )
        else:
            body = json.dumps(
                {
                    "member": connection.member,
                    "connection": connection.id,
                    "peer_port": connection.peer_port,
                    "method": request.method,
                    "target": request.target,
                    "version": request.version,
                    "headers": request.headers,
                    "body_size": request.body_size,
                    "body_sha256": request.body_sha256,
                    "complete": request.complete,
                }
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        await writer.drain()
        closing = any("close" in v.lower() for v in request.values("connection"))
        return (
            request.complete and not closing and not close_after and request.version == "HTTP/1.1"
        )

    async def _read_body(self, source: _Input, request: Request) -> None:
        sink = hashlib.sha256()
        lengths = request.values("content-length")
        chunked = any("chunked" in v.lower() for v in request.values("transfer-encoding"))
        if chunked:
            while True:
                line = await source.until(b"\r\n")
                if line is None:
                    return
                size_text = line[:-2].split(b";")[0].strip()
                if not _CHUNK_SIZE.fullmatch(size_text):
                    raise _BadMessage(f"chunk size {line!r}")
                size = int(size_text, 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        trailer = await source.until(b"\r\n")
                        if trailer is None:
                            return
                        if trailer == b"\r\n":
                            break
                    break
                got = await source.exactly(size, sink)
                request.body_size += got
                if got < size or await source.until(b"\r\n", limit=2) != b"\r\n":
                    return
        elif lengths:
            size = int(lengths[0])
            request.body_size = await source.exactly(size, sink)
            if request.body_size < size:
                return
        request.body_sha256 = sink.hexdigest()
        request.complete = True

    async def _big(self, writer: asyncio.StreamWriter, path: str, close: bool) -> None:
        _, _, mode, size_text = path.split("/")[:4]
        body = memoryview(payload(int(size_text)))
        head = b"HTTP/1.1 200 OK\r\n" + (b"Connection: close\r\n" if close else b"")
        if mode == "chunked":
            writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
        else:
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), PIECE):
            piece = body[start : start + PIECE]
            if mode == "chunked":
                writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                writer.write(piece)
            await writer.drain()
        if mode == "chunked":
            writer.write(b"0\r\n\r\n")

    async def _hang(self, source: _Input) -> None:
        async def drain_until_eof() -> None:
            while await source.fill():
                source.buffer.clear()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain_until_eof(), HANG_LIMIT)

    async def _websocket(
        self, source: _Input, writer: asyncio.StreamWriter, request: Request
    ) -> None:
        keys = request.values("sec-websocket-key")
        upgrade = [v.lower() for v in request.values("upgrade")]
        tokens = {t.strip().lower() for v in request.values("connection") for t in v.split(",")}
        if len(keys) != 1 or upgrade != ["websocket"] or "upgrade" not in tokens:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: %s\r\n\r\n" % websocket_accept(keys[0]).encode()
        )
        await writer.drain()
        if source.buffer:  # bytes that followed the handshake in the same read
            writer.write(bytes(source.buffer))
            source.buffer.clear()
            await writer.drain()

        async def echo() -> None:
            while await source.fill():
                writer.write(bytes(source.buffer))
                source.buffer.clear()
                await writer.drain()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(echo(), HANG_LIMIT)
