"""Backend servers for data-plane tests: real sockets on 127.0.0.1, HTTP/1.1 via h11.

Each request is answered with JSON describing what the backend saw (method, target, headers,
body size, the SNI of its TLS connection), so tests can assert on what the gateway forwarded.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body_size: int
    sni: str | None
    tls: bool


@dataclass
class Backend:
    """A backend in its own thread and event loop. `behaviour` may slow or vary answers."""

    name: str
    context: ssl.SSLContext | None = None
    delay: float = 0.0
    status: int = 200
    # Extra headers of every answer (a Server banner, a Location to rewrite, ...).
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0  # 0: any free port
    bind: str = "127.0.0.1"
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.AbstractServer | None = None
    _sni: dict[int, str | None] = field(default_factory=dict)

    def start(self) -> Backend:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            if self.context is not None:
                self.context.sni_callback = self._record_sni
            sock = socket.socket()
            sock.bind((self.bind, self.port))
            self.port = sock.getsockname()[1]
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, sock=sock, ssl=self.context)
            )
            ready.set()
            loop.run_forever()
            self._server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name=f"backend-{self.name}")
        self._thread.start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _record_sni(self, ssl_object: Any, server_name: str | None, _context: Any) -> None:
        self._sni[id(ssl_object)] = server_name

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        sni = self._sni.get(id(ssl_object)) if ssl_object is not None else None
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    connection.receive_data(data)
                    if not data and connection.their_state is h11.CLOSED:
                        break
                    continue
                if isinstance(event, h11.Request):
                    body_size = 0
                    while True:
                        part = connection.next_event()
                        if part is h11.NEED_DATA:
                            connection.receive_data(await reader.read(65536))
                            continue
                        if isinstance(part, h11.Data):
                            body_size += len(part.data)
                            continue
                        break
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                    seen = Seen(
                        event.method.decode(),
                        event.target.decode(),
                        headers,
                        body_size,
                        sni,
                        ssl_object is not None,
                    )
                    self.seen.append(seen)
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    payload = json.dumps(
                        {"backend": self.name, **seen.__dict__}, sort_keys=True
                    ).encode()
                    writer.write(
                        connection.send(
                            h11.Response(
                                status_code=self.status,
                                headers=[
                                    ("Content-Type", "application/json"),
                                    ("Content-Length", str(len(payload))),
                                    *self.response_headers,
                                ],
                            )
                        )
                        or b""
                    )
                    writer.write(connection.send(h11.Data(data=payload)) or b"")
                    writer.write(connection.send(h11.EndOfMessage()) or b"")
                    await writer.drain()
                    if connection.our_state is h11.MUST_CLOSE:
                        break
                    connection.start_next_cycle()
                    continue
                break
        except (ConnectionError, h11.RemoteProtocolError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()


# Ports free_port handed out stay bound, never listening, while this test process runs: a port
# only bound and released could be handed to another test process too (pytest-xdist), and with
# SO_REUSEPORT two gateways would then share it, each taking some of the other's connections. A
# bound port is skipped by every other bind to port 0 and by outgoing connections; a gateway
# (SO_REUSEPORT, same user) still binds it, and a socket that never listens takes no
# connections, so a port nothing listens on still refuses. The oldest are let go past this
# many, well under the descriptor limit.
_RESERVED_PORTS_KEPT = 256
_reserved: collections.deque[socket.socket] = collections.deque()


def free_port() -> int:
    """An unused port for a gateway listener (or anything that binds with SO_REUSEADDR)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    _reserved.append(sock)
    if len(_reserved) > _RESERVED_PORTS_KEPT:
        _reserved.popleft().close()
    return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
