"""The protocol classes with mock transports, no sockets (as uvicorn's protocol tests do): bytes
into a ClientConnection, bytes out to a backend's UpstreamConnection and back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from appgw.compile.matching import HostMatcher
from appgw.compile.snapshot import (
    BackendMember,
    Endpoint,
    Site,
    Snapshot,
    UpstreamKey,
)
from appgw.core.balancer import Balancer
from appgw.dataplane import runtime
from appgw.dataplane.access_log import AccessLog
from appgw.dataplane.downstream import ClientConnection
from appgw.dataplane.services import Listener, Services
from appgw.dataplane.upstream import UpstreamConnection
from snapshots import forward_target

MEMBER = BackendMember("10.0.0.1", False)


class MockTransport:
    """Records what a protocol writes; pause/resume and close as flags."""

    def __init__(self, peer: tuple[str, int] = ("192.0.2.10", 40000)) -> None:
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.peer = peer

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def writelines(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.write(piece)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer}.get(name, default)

    def take(self) -> bytes:
        data, self.written = bytes(self.written), bytearray()
        return data


@dataclass
class FakePool:
    """An UpstreamPool whose connections are UpstreamConnections on mock transports."""

    idle: list[UpstreamConnection] = field(default_factory=list)
    made: list[UpstreamConnection] = field(default_factory=list)
    released: list[UpstreamConnection] = field(default_factory=list)

    def backend(self, key: UpstreamKey) -> UpstreamConnection:
        connection = UpstreamConnection(key, self.release)
        connection.connection_made(MockTransport())
        return connection

    def take_idle(self, key: UpstreamKey) -> UpstreamConnection | None:
        return self.idle.pop() if self.idle else None

    async def connect(self, key: UpstreamKey, timeout: float) -> UpstreamConnection:
        connection = self.backend(key)
        self.made.append(connection)
        return connection

    def release(self, connection: UpstreamConnection) -> None:
        self.released.append(connection)


class Metrics:
    """Counts requests; the real metrics write to the process's shared files (test_metrics)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def connection_opened(self, gateway: str) -> None:
        pass

    def connection_closed(self, gateway: str) -> None:
        pass

    def tls_handshake(self, gateway: str, listener: str, protocol: str) -> None:
        pass

    def request_finished(self, **values: Any) -> None:
        self.requests.append(values)


def backend_transport(connection: UpstreamConnection) -> MockTransport:
    assert isinstance(connection.transport, MockTransport)
    return connection.transport


@dataclass
class Rig:
    client: ClientConnection
    transport: MockTransport
    pool: FakePool
    log_path: Path

    def send(self, data: bytes) -> None:
        self.client.data_received(data)

    async def settle(self) -> None:
        for _ in range(5):  # connect tasks and call_soon retries run
            await asyncio.sleep(0)


def rig(tmp_path: Path, pool: FakePool | None = None) -> Rig:
    target = forward_target((MEMBER,))
    endpoint = Endpoint(
        bind_host="127.0.0.1",
        port=80,
        https=False,
        sites=HostMatcher([(("www.contoso.com",), Site("listener1", target))]),
        certificates=None,
        tls_policy=None,
    )
    snapshot = Snapshot(
        seq=1,
        gateway_id="/subscriptions/s/resourceGroups/g/providers/x/applicationGateways/gw",
        version=1,
        running=True,
        sku_v1=False,
        endpoints={endpoint.key: endpoint},
        forward_targets=(target,),
    )
    pool = pool or FakePool()
    log_path = tmp_path / "access.log"
    services = Services(
        pool=pool,
        balancer=Balancer(),
        access_log=AccessLog(log_path),
        instance_id="0",
        metrics=Metrics(),
    )
    listener = Listener(key=endpoint.key, https=False, state=(snapshot, endpoint))
    client = ClientConnection(listener, services)
    transport = MockTransport()
    client.connection_made(transport)
    return Rig(client, transport, pool, log_path)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


GET = b"GET /a?b=1 HTTP/1.1\r\nHost: www.contoso.com\r\nUser-Agent: t\r\n\r\n"


def test_a_request_goes_out_rewritten_and_its_response_comes_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        r = rig(tmp_path)
        r.send(GET)
        await r.settle()
        [backend] = r.pool.made
        sent = backend_transport(backend).take()
        assert sent.startswith(b"GET /a?b=1 HTTP/1.1\r\nHost: www.contoso.com\r\n")
        assert b"X-Forwarded-For: 192.0.2.10:40000\r\n" in sent
        backend.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: b\r\n\r\nhi")
        answer = r.transport.take()
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nhi")
        assert r.pool.released == [backend], "a complete response returns the connection"
        assert not r.transport.closed, "keep-alive"
        r.client.services.access_log.flush()
        assert '"httpStatus":200' in r.log_path.read_text()

    run(scenario)


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        r = rig(tmp_path)
        r.send(GET + GET.replace(b"/a?b=1", b"/second"))
        await r.settle()
        assert len(r.pool.made) == 1, "the second request waits for the first response"
        assert not r.transport.reading, "reading pauses while a request is queued"
        r.pool.made[0].data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        await r.settle()
        # The first connection went back to the pool; the queued request made a new one.
        second = r.pool.made[-1]
        assert b"GET /second " in backend_transport(second).take()
        second.data_received(b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n2")
        answer = r.transport.take()
        assert answer.index(b"200 OK") < answer.index(b"201 Created")

    run(scenario)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: www.contoso.com\r\nX: a\r\n b\r\n\r\n", b"400"),  # obs-fold
        (b"TRACE / HTTP/1.1\r\nHost: www.contoso.com\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\n\r\n", b"400"),  # no Host
        (b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\n", b"414"),
    ],
)
def test_a_bad_request_is_answered_and_nothing_is_forwarded(
    tmp_path: Path, request_bytes: bytes, status: bytes
) -> None:
    async def scenario() -> None:
        r = rig(tmp_path)
        r.send(request_bytes)
        await r.settle()
        assert r.pool.made == [], "nothing reaches a backend"
        assert r.transport.take().startswith(b"HTTP/1.1 " + status)
        assert r.transport.closed

    run(scenario)


def test_a_stale_pooled_connection_is_retried_on_a_fresh_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = FakePool()
        r = rig(tmp_path, pool)
        key = next(iter(r.client.listener.state[0].forward_targets[0].upstreams.values())).key
        assert key is not None
        stale = pool.backend(key)
        pool.idle.append(stale)
        r.send(GET)
        await r.settle()
        assert b"GET /a" in backend_transport(stale).take()
        stale.connection_lost(None)  # the backend had closed it meanwhile
        await r.settle()
        [fresh] = pool.made
        assert b"GET /a" in backend_transport(fresh).take()
        fresh.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        assert r.transport.take().startswith(b"HTTP/1.1 200 OK")

    run(scenario)


def test_backpressure_pauses_the_backend_while_the_client_cannot_take_more(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        r = rig(tmp_path)
        r.send(GET)
        await r.settle()
        [backend] = r.pool.made
        backend.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
        r.client.pause_writing()
        assert not backend_transport(backend).reading
        r.client.resume_writing()
        assert backend_transport(backend).reading

    run(scenario)


def test_an_unsolicited_response_byte_on_an_idle_connection_closes_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = FakePool()
        r = rig(tmp_path, pool)
        r.send(GET)
        await r.settle()
        [backend] = pool.made
        backend.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        assert pool.released == [backend]
        backend.data_received(b"HTTP/1.1 200 OK\r\n")  # nobody asked
        assert backend.closed and backend_transport(backend).closed

    run(scenario)


def test_silent_connections_waiting_for_a_handshake_are_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections that never send a ClientHello are held only up to the cap: the oldest silent
    one is dropped for each new one (real sockets on 127.0.0.1)."""
    monkeypatch.setattr(runtime, "MAX_HANDSHAKES", 3)

    async def scenario() -> list[bool]:
        r = rig(tmp_path)
        listening = socket.create_server(("127.0.0.1", 0))
        listening.setblocking(False)
        acceptor = runtime.HttpsAcceptor(listening, r.client.listener, r.client.services)
        loop = asyncio.get_running_loop()
        clients = []
        for _ in range(5):
            client = socket.create_connection(listening.getsockname())
            client.setblocking(False)
            clients.append(client)
            await asyncio.sleep(0.05)
        dropped = []
        for client in clients:
            try:
                dropped.append(await asyncio.wait_for(loop.sock_recv(client, 1), 0.2) == b"")
            except TimeoutError:
                dropped.append(False)
            client.close()
        acceptor.close()
        return dropped

    assert run_and_return(scenario) == [True, True, False, False, False]


def run_and_return(test: Callable[[], Awaitable[list[bool]]]) -> list[bool]:
    return asyncio.run(test())
