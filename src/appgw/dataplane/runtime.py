"""Applies snapshots: listening sockets reconciled by address and port, pools pruned.

Unchanged listeners keep their sockets and connections; only what they serve is swapped (one
reference assignment). Removed listeners stop accepting and their connections close once their
in-flight response is done. A TLS policy change needs a new socket: the new one is bound
(SO_REUSEPORT) before the old one closes, so the port never refuses connections.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

from appgw.compile.matching import normalize_host
from appgw.compile.snapshot import Endpoint, Snapshot
from appgw.dataplane.downstream import ClientConnection
from appgw.dataplane.services import Listener, Services
from appgw.dataplane.sni import dispatcher_context
from appgw.tasks import spawn

log = logging.getLogger("appgw.dataplane")

LISTEN_BACKLOG = 1024  # pending connections per socket; SOMAXCONN-sized bursts are common
ACCEPTS_PER_WAKEUP = 64  # bounds the work one readiness event does, so other I/O keeps flowing
# A client that connects but sends no first byte (or no finished handshake) in this time is
# dropped: slowloris on the handshake.
TLS_HANDSHAKE_TIMEOUT = 10.0
TLS_RECORD_HANDSHAKE = 0x16  # first byte of every TLS ClientHello record
# Connections of one HTTPS port not yet through their TLS handshake (before any connection cap
# counts them): a real client sends its ClientHello at once, so this many waiting is a flood;
# the oldest waiting one is dropped for a new one, a new one is refused while all handshake.
MAX_HANDSHAKES = 4096


class HttpsAcceptor:
    """Accepts on an HTTPS port and looks at the first byte before choosing TLS.

    A TLS ClientHello starts with 0x16; anything else is plain HTTP sent to an HTTPS port,
    which Azure answers with 400 rather than a TLS alert the client cannot read.
    """

    def __init__(self, sock: socket.socket, listener: Listener, services: Services) -> None:
        self.sock = sock
        self.listener = listener
        self.services = services
        self.loop = asyncio.get_running_loop()
        self.waiting: dict[int, tuple[socket.socket, asyncio.TimerHandle]] = {}
        self.handshaking = 0
        self.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                connection, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # EMFILE and friends: keep serving who we have
                log.error("accept failed on %s:%d: %s", *self.listener.key, error)
                return
            if len(self.waiting) + self.handshaking >= MAX_HANDSHAKES:
                if not self.waiting:
                    connection.close()
                    continue
                self._drop(next(iter(self.waiting)))  # the oldest silent one
            connection.setblocking(False)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # The ClientHello often arrives with the connection: then no wait is armed at all.
            first = _peek(connection)
            if first is not None:
                self._start(connection, first)
                continue
            fd = connection.fileno()
            timer = self.loop.call_later(TLS_HANDSHAKE_TIMEOUT, self._drop, fd)
            self.waiting[fd] = (connection, timer)
            self.loop.add_reader(fd, self._first_byte, fd)

    def _first_byte(self, fd: int) -> None:
        connection, timer = self.waiting[fd]
        first = _peek(connection)
        if first is None:
            return  # a spurious wake-up
        self.loop.remove_reader(fd)
        timer.cancel()
        del self.waiting[fd]
        self._start(connection, first)

    def _start(self, connection: socket.socket, first: bytes) -> None:
        if not first:
            connection.close()
            return
        spawn(self._serve(connection, first[0] == TLS_RECORD_HANDSHAKE))

    def _drop(self, fd: int) -> None:
        connection, _timer = self.waiting.pop(fd)
        self.loop.remove_reader(fd)
        connection.close()

    async def _serve(self, connection: socket.socket, tls: bool) -> None:
        listener = self.listener
        self.handshaking += 1
        try:
            await self.loop.connect_accepted_socket(
                lambda: ClientConnection(listener, self.services, plain_on_tls=not tls),
                connection,
                ssl=listener.tls_context if tls else None,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if tls else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError):
            # A failed handshake (unknown SNI on v1, bad client, timeout) ends here, quietly.
            connection.close()
        finally:
            self.handshaking -= 1

    def close(self) -> None:
        # Take what the kernel already queued for this socket: closing it would reset them.
        self._accept()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for fd, (connection, timer) in list(self.waiting.items()):
            timer.cancel()
            self.loop.remove_reader(fd)
            connection.close()
        self.waiting.clear()


class Runtime:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.snapshots: dict[str, Snapshot] = {}
        self.listeners: dict[tuple[str, int], Listener] = {}

    async def apply(self, gateway_key: str, snapshot: Snapshot | None) -> None:
        """Serve `snapshot` for the gateway (None: the gateway was deleted)."""
        previous = self.snapshots.pop(gateway_key, None)
        if snapshot is not None:
            self.snapshots[gateway_key] = snapshot
        if previous is not None:
            self.services.balancer.drain_removed(previous, snapshot)
        desired: dict[tuple[str, int], tuple[Snapshot, Endpoint]] = {}
        for key in sorted(self.snapshots):
            current = self.snapshots[key]
            if not current.running:
                continue
            for endpoint_key, endpoint in current.endpoints.items():
                owner = desired.get(endpoint_key)
                if owner is not None:
                    log.error(
                        "%s:%d is served by gateway %s; gateway %s cannot use it too",
                        *endpoint_key,
                        owner[0].gateway_id,
                        current.gateway_id,
                    )
                    continue
                desired[endpoint_key] = (current, endpoint)
        for endpoint_key, listener in list(self.listeners.items()):
            wanted = desired.get(endpoint_key)
            if wanted is None or not _compatible(listener, wanted[1]):
                if wanted is not None:
                    replacement = await self._open(wanted)
                    self._close(listener)
                    if replacement is not None:
                        self.listeners[endpoint_key] = replacement
                    else:
                        del self.listeners[endpoint_key]
                else:
                    self._close(listener)
                    del self.listeners[endpoint_key]
            else:
                listener.state = wanted
        for endpoint_key, wanted in desired.items():
            if endpoint_key not in self.listeners:
                opened = await self._open(wanted)
                if opened is not None:
                    self.listeners[endpoint_key] = opened
        addresses = {
            address for snap in self.snapshots.values() for address in snap.backend_addresses
        }
        self.services.pool.retain_only(lambda key: (key.address, key.port) in addresses)

    async def _open(self, wanted: tuple[Snapshot, Endpoint]) -> Listener | None:
        snapshot, endpoint = wanted
        listener = Listener(key=endpoint.key, https=endpoint.https, state=wanted)
        if endpoint.https:
            assert endpoint.tls_policy is not None
            listener.tls_context = dispatcher_context(
                endpoint.tls_policy, lambda name: _choose_certificate(listener, name)
            )
        family = socket.AF_INET6 if ":" in endpoint.bind_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Every worker binds the same address; the kernel spreads connections among them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((endpoint.bind_host, endpoint.port))
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError as error:
            sock.close()
            log.error(
                "gateway %s: cannot listen on %s:%d: %s",
                snapshot.gateway_id,
                endpoint.bind_host,
                endpoint.port,
                error.strerror or error,
            )
            return None
        if endpoint.https:
            listener.acceptor = HttpsAcceptor(sock, listener, self.services)
        else:
            loop = asyncio.get_running_loop()
            listener.server = await loop.create_server(
                lambda: ClientConnection(listener, self.services), sock=sock, backlog=LISTEN_BACKLOG
            )
        return listener

    def _close(self, listener: Listener) -> None:
        if listener.server is not None:
            listener.server.close()
        if listener.acceptor is not None:
            listener.acceptor.close()
        for connection in list(listener.connections):
            if connection.active is None:
                connection.close()
            else:
                connection.closing = True

    async def close(self) -> None:
        for listener in self.listeners.values():
            self._close(listener)
        self.listeners.clear()
        self.services.pool.close_all()


def _peek(connection: socket.socket) -> bytes | None:
    """The connection's first byte without taking it; b"": closed or failed; None: not yet."""
    try:
        return connection.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def _compatible(listener: Listener, endpoint: Endpoint) -> bool:
    """Can the open socket serve `endpoint` as is? (Protocol and TLS policy are per socket.)"""
    if listener.https != endpoint.https:
        return False
    current = listener.state[1]
    return current.tls_policy == endpoint.tls_policy


def _choose_certificate(listener: Listener, server_name: str | None) -> ssl.SSLContext | None:
    selector = listener.state[1].certificates
    if selector is None:
        return None
    return selector.select(normalize_host(server_name) if server_name else None)
