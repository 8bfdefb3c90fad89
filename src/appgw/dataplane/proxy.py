"""The client side of the proxy: one protocol per client connection, one exchange per request.

Bodies stream both ways and are never buffered whole: a slow reader pauses the writer's side
(transport pause_reading / resume_reading), in both directions. Requests are parsed strictly by
llhttp (httptools); anything ambiguous is a 400 and the connection closes.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

from appgw.compile.matching import normalize_host
from appgw.compile.snapshot import (
    BackendMember,
    Endpoint,
    ForwardTarget,
    PathRoute,
    RedirectTarget,
    Site,
    Snapshot,
    Target,
)
from appgw.dataplane.access_log import AccessLog, AccessRecord, utc_timestamp
from appgw.dataplane.deadline import Deadline
from appgw.dataplane.error_pages import ErrorPages
from appgw.dataplane.http import (
    LAST_CHUNK,
    MAX_HEADER_BYTES,
    MAX_HEADER_COUNT,
    MAX_URL_BYTES,
    Header,
    backend_path,
    chunk,
    error_response,
    forwardable_request_headers,
    forwardable_response_head,
    header_value,
    new_trace_id,
    serialize_head,
    split_target,
    status_line,
)
from appgw.dataplane.upstream import (
    BackendTlsRejected,
    UpstreamConnection,
    UpstreamError,
    UpstreamKey,
    UpstreamPool,
)
from appgw.hostnames import is_ip_address
from appgw.observability import RequestMetrics
from appgw.tls.trust import describe_rejection

log = logging.getLogger("appgw.dataplane")

# Parsing an address costs more than the rest of choosing the connection; the names seen are
# few (configured ones and the gateway's own host names), the bound only caps odd Host values.
_is_ip_address = functools.lru_cache(maxsize=1024)(is_ip_address)

# Request bytes held while the backend connection is being made; past this the client waits.
MAX_BUFFERED_REQUEST_BODY = 256 * 1024
# Time to read one request's head and body once it started (Azure answers 408 after 60 s).
CLIENT_READ_TIMEOUT = 60.0
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})
# Held writes up to this size are joined into one buffer (one TLS record); larger ones are
# passed as a list, which costs no copy. 16 KiB is TLS's maximum record payload.
JOIN_WRITES_BELOW = 16 * 1024


@dataclass
class Listener:
    """A bound endpoint and what it serves now; the runtime swaps `state` on every version."""

    key: tuple[str, int]
    https: bool
    state: tuple[Snapshot, Endpoint]
    server: asyncio.AbstractServer | None = None
    acceptor: Any = None  # the runtime's HttpsAcceptor on HTTPS ports
    tls_context: ssl.SSLContext | None = None
    connections: set[ClientConnection] = field(default_factory=set)


class Balancer:
    """Round robin per pool, cookie affinity by a one-way hash of the member.

    A member removed from its pool drains: for the settings' drain timeout, requests that carry
    its affinity cookie still go to it (Azure), while new sessions go to the remaining members.
    Everything is kept per gateway (its case-folded id): gateways made with Azure's default
    names all have a pool "appGatewayBackendPool", and one's members must never serve another.
    """

    def __init__(self) -> None:
        self._next: dict[tuple[str, str], int] = {}
        self._cookies: dict[tuple[str, str, str, int], str] = {}
        self._draining: dict[tuple[str, str, int], list[tuple[BackendMember, float]]] = {}

    def drain(
        self, gateway: str, pool_name: str, port: int, member: BackendMember, seconds: float
    ) -> None:
        self._draining.setdefault((gateway, pool_name, port), []).append(
            (member, time.monotonic() + seconds)
        )

    def stop_draining(self, gateway: str, pool_name: str, port: int, member: BackendMember) -> None:
        entries = self._draining.get((gateway, pool_name, port), [])
        entries[:] = [(m, until) for m, until in entries if m != member]

    def pick(
        self,
        gateway: str,
        pool_name: str,
        members: tuple[BackendMember, ...],
        exclude: BackendMember | None,
    ) -> BackendMember | None:
        candidates = [m for m in members if m != exclude] if exclude is not None else members
        if not candidates:
            return None
        key = (gateway, pool_name)
        index = self._next.get(key, 0)
        self._next[key] = index + 1
        return candidates[index % len(candidates)]

    def cookie_value(self, gateway: str, target: ForwardTarget, member: BackendMember) -> str:
        key = (gateway, target.pool.name, member.address, target.settings.port)
        value = self._cookies.get(key)
        if value is None:
            value = hashlib.sha256(f"{key}".encode()).hexdigest()[:32]
            self._cookies[key] = value
        return value

    def by_cookie(self, gateway: str, target: ForwardTarget, value: bytes) -> BackendMember | None:
        text = value.decode("latin-1")
        for member in target.pool.members:
            if self.cookie_value(gateway, target, member) == text:
                return member
        draining = self._draining.get((gateway, target.pool.name, target.settings.port))
        if draining:
            now = time.monotonic()
            draining[:] = [(m, until) for m, until in draining if until > now]
            for member, _until in draining:
                if self.cookie_value(gateway, target, member) == text:
                    return member
        return None


@dataclass
class Services:
    pool: UpstreamPool
    balancer: Balancer
    access_log: AccessLog
    instance_id: str
    error_pages: ErrorPages = field(default_factory=ErrorPages)
    metrics: RequestMetrics = field(default_factory=RequestMetrics)
    # (gateway key, pool, settings, member address, probe fingerprint) out of rotation, from
    # the health board; the fingerprint keeps a verdict about an older configuration from
    # applying to a newer one
    unhealthy: frozenset[tuple[str, str, str, str, str]] = frozenset()
    # (gateway key, pool, settings) -> (the `unhealthy` and members tuple it was computed from,
    # the members in rotation); recomputed when either object changes
    healthy_members: dict[
        tuple[str, str, str],
        tuple[
            frozenset[tuple[str, str, str, str, str]],
            tuple[BackendMember, ...],
            tuple[BackendMember, ...],
        ],
    ] = field(default_factory=dict)


class ClientConnection(asyncio.Protocol):
    def __init__(
        self, listener: Listener, services: Services, *, plain_on_tls: bool = False
    ) -> None:
        self.listener = listener
        self.services = services
        self.plain_on_tls = plain_on_tls  # plain HTTP that arrived on an HTTPS port
        # The gateway that owned the port when the client connected: the connection metrics
        # count it there until it closes, even if the port changes hands meanwhile.
        self.gateway_id = listener.state[0].gateway_id
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.client_port = 0
        self.tls_version = ""
        self.tls_cipher = ""
        self.parser = httptools.HttpRequestParser(self)
        self.parsing: Exchange | None = None
        self.active: Exchange | None = None
        self.queued: deque[Exchange] = deque()
        self.closing = False
        self.tunnel: UpstreamConnection | None = None
        # (exchange, bytes left) while reading the body of a declined upgrade by hand
        self.plain_body: tuple[Exchange, int] | None = None
        self.read_paused = False
        self.write_paused = False
        # The connection's own timeouts (keep-alive, reading a request) and the active
        # exchange's backend timeout; moved on every request, so lazily re-armed (Deadline).
        self.deadline = Deadline(self.loop)
        self.backend_deadline = Deadline(self.loop)
        self.sent = 0
        # While a backend's bytes are processed, what they produce for the client is held and
        # written once at the end: a response's head and body become one TLS record and one
        # send instead of several.
        self.held: list[bytes] | None = None

    # --- connection lifecycle -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client_ip, self.client_port = str(peer[0]), int(peer[1])
        self.listener.connections.add(self)
        self.services.metrics.connection_opened(self.gateway_id)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls_version = ssl_object.version() or ""
            cipher = ssl_object.cipher()
            self.tls_cipher = cipher[0] if cipher else ""
        self._arm_timer(self._snapshot().keep_alive_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.services.metrics.connection_closed(self.gateway_id)
        self.closing = True
        self.listener.connections.discard(self)
        self.deadline.close()
        if self.tunnel is not None:
            self.tunnel.close()
        for exchange in (self.active, *self.queued):
            if exchange is not None:
                exchange.client_gone()
        self.backend_deadline.close()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self.plain_on_tls:
            self.reject(400, "ERRORINFO_HTTP_TO_HTTPS_PORT")
            return
        if self.plain_body is not None:
            data = self._take_plain_body(data)
            if not data:
                return
        if self.active is None:
            self._arm_timer(CLIENT_READ_TIMEOUT)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            exchange = self.active or (self.queued[-1] if self.queued else None)
            if exchange is not None and exchange.upgrade:
                exchange.early_tunnel_data += data[offset:]
                self.pause_reading()
            else:
                # An upgrade we do not offer (h2c, ...) is served as plain HTTP/1.1. llhttp
                # stopped at its head: its Content-Length body is read here, and what follows
                # is the next request, for a fresh parser.
                self.parser = httptools.HttpRequestParser(self)
                if exchange is not None and exchange.has_body:
                    length = header_value(exchange.headers, b"content-length") or b"0"
                    exchange.body_done = False
                    self.plain_body = (exchange, int(length))
                if offset < len(data):
                    self.data_received(data[offset:])
        except httptools.HttpParserError as error:
            code = "ERRORINFO_INVALID_REQUEST"
            if isinstance(error, httptools.HttpParserInvalidMethodError):
                code = "ERRORINFO_INVALID_METHOD"
            elif isinstance(error, httptools.HttpParserInvalidURLError):
                code = "ERRORINFO_REQUEST_URI_INVALID"
            self.reject(400, code)
        except _Rejected:
            pass

    def _take_plain_body(self, data: bytes) -> bytes:
        """Pass a declined upgrade's body through; return the bytes after it."""
        assert self.plain_body is not None
        exchange, remaining = self.plain_body
        piece, rest = data[:remaining], data[remaining:]
        if piece:
            exchange.request_body(piece)
        remaining -= len(piece)
        if remaining == 0:
            self.plain_body = None
            exchange.request_complete()
        else:
            self.plain_body = (exchange, remaining)
        return rest

    def eof_received(self) -> bool | None:
        # The client finished sending; let an active exchange finish its response first.
        return self.active is not None

    def pause_writing(self) -> None:
        self.write_paused = True
        upstream = self.active.upstream if self.active is not None else self.tunnel
        if upstream is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        upstream = self.active.upstream if self.active is not None else self.tunnel
        if upstream is not None:
            upstream.resume_reading()

    # --- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        snapshot, endpoint = self.listener.state
        self.parsing = Exchange(self, snapshot, endpoint)

    def on_url(self, url: bytes) -> None:
        exchange = self.parsing
        assert exchange is not None
        exchange.target += url
        if len(exchange.target) > MAX_URL_BYTES:
            self.reject(414, "ERRORINFO_REQUEST_URI_INVALID")
            raise _Rejected

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.parsing
        assert exchange is not None
        exchange.headers.append((name, value))
        exchange.header_bytes += len(name) + len(value) + 4
        if exchange.header_bytes > MAX_HEADER_BYTES or len(exchange.headers) > MAX_HEADER_COUNT:
            self.reject(431, "ERRORINFO_INVALID_REQUEST")
            raise _Rejected

    def on_headers_complete(self) -> None:
        exchange = self.parsing
        assert exchange is not None
        parser = self.parser
        exchange.method = parser.get_method()
        exchange.http_version = parser.get_http_version()
        exchange.keep_alive = parser.should_keep_alive()
        if exchange.http_version not in ("1.0", "1.1"):
            self.reject(400, "ERRORINFO_INVALID_VERSION")
            raise _Rejected
        exchange.chunked = _has_chunked(exchange.headers)
        length = header_value(exchange.headers, b"content-length")
        exchange.has_body = exchange.chunked or (length is not None and length.strip() != b"0")
        if parser.should_upgrade() and exchange.chunked:
            # llhttp stops parsing at an upgrade request's head; a chunked body after it
            # cannot be told from the next request safely, so refuse (no real upgrade has one).
            self.reject(400, "ERRORINFO_INVALID_REQUEST")
            raise _Rejected
        # WebSocket is the one protocol switch the gateway offers (as Azure does).
        upgrade = header_value(exchange.headers, b"upgrade")
        exchange.upgrade = (
            parser.should_upgrade()
            and upgrade is not None
            and upgrade.strip().lower() == b"websocket"
        )
        if self.active is None:
            self.active = exchange
            exchange.begin()
        else:
            self.queued.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.request_body(body)

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.request_complete()
            self.parsing = None
        if self.active is not None:
            self._cancel_timer()

    # --- used by exchanges ----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.sent += len(data)
            if self.held is not None:
                self.held.append(data)
            else:
                self.transport.write(data)

    def hold_writes(self) -> None:
        if self.held is None:
            self.held = []

    def flush_writes(self) -> None:
        held, self.held = self.held, None
        if not held or self.transport is None or self.transport.is_closing():
            return
        if len(held) == 1:
            self.transport.write(held[0])
        elif sum(map(len, held)) <= JOIN_WRITES_BELOW:
            self.transport.write(b"".join(held))
        else:
            self.transport.writelines(held)  # large bodies: no copy

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.read_paused = False
            self.transport.resume_reading()

    def reject(self, status: int, error_info: str) -> None:
        """Answer a malformed request and close; nothing is forwarded."""
        exchange = self.parsing or self.active or Exchange(self, *self.listener.state)
        if not exchange.response_started:
            exchange.respond_error(status, error_info, close=True)
        self.close()

    def exchange_done(self, exchange: Exchange, *, close: bool) -> None:
        if exchange is self.active:
            self.active = None
        if close or self.closing:
            self.close()
            return
        if self.queued:
            self.active = self.queued.popleft()
            self.active.begin()
            return
        self.resume_reading()
        self._arm_timer(exchange.snapshot.keep_alive_timeout)

    def start_tunnel(self, upstream: UpstreamConnection, early: bytes) -> None:
        self.tunnel = upstream
        self._cancel_timer()
        if early:
            upstream.write(early)
        self.resume_reading()

    def close(self) -> None:
        self.closing = True
        self._cancel_timer()
        self.flush_writes()
        if self.transport is not None:
            self.transport.close()

    def _snapshot(self) -> Snapshot:
        return self.listener.state[0]

    def _arm_timer(self, seconds: float) -> None:
        self.deadline.set(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        self.deadline.clear()

    def _timed_out(self) -> None:
        if self.parsing is not None and self.active is None:
            self.reject(408, "ERRORINFO_CLIENT_READ_TIMEOUT")
            return
        if self.active is None:
            self.close()


class _Rejected(Exception):
    """Stops llhttp's callbacks after a request was refused."""


def _has_chunked(headers: list[Header]) -> bool:
    for name, value in headers:
        if name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False


class Exchange:
    """One request and its response."""

    # Slots: one of these per request; no per-instance dict to build.
    __slots__ = (
        "backend_started",
        "body_buffer",
        "body_bytes",
        "body_done",
        "body_sent",
        "buffered",
        "chunked",
        "client",
        "connect_seconds",
        "early_tunnel_data",
        "endpoint",
        "error_info",
        "finished",
        "first_byte_at",
        "forward",
        "gone",
        "has_body",
        "header_bytes",
        "headers",
        "host",
        "http_version",
        "keep_alive",
        "last_byte_at",
        "member",
        "method",
        "response_chunked",
        "response_close",
        "response_started",
        "retried",
        "rule_name",
        "sent_at_start",
        "server_routed",
        "server_status",
        "set_cookie",
        "site",
        "snapshot",
        "started",
        "status",
        "target",
        "trace_id",
        "upgrade",
        "upstream",
        "upstream_reused",
    )

    def __init__(self, client: ClientConnection, snapshot: Snapshot, endpoint: Endpoint) -> None:
        self.client = client
        self.snapshot = snapshot
        self.endpoint = endpoint
        self.started = time.monotonic()
        self.target = b""
        self.headers: list[Header] = []
        self.header_bytes = 0
        self.method = b""
        self.http_version = "1.1"
        self.keep_alive = True
        self.upgrade = False
        self.chunked = False
        self.has_body = False
        self.body_buffer: list[bytes] = []
        self.buffered = 0
        self.body_done = False
        self.body_sent = False  # some request body went to a backend: no retry any more
        self.early_tunnel_data = b""
        self.upstream: UpstreamConnection | None = None
        self.upstream_reused = False
        self.response_started = False
        self.response_chunked = False
        self.response_close = False
        self.finished = False
        self.gone = False
        self.retried = False
        # for the access log
        self.trace_id = new_trace_id()
        self.site: Site | None = None
        self.forward: ForwardTarget | None = None
        self.rule_name = ""
        self.member: BackendMember | None = None
        self.host = ""
        self.status = 0
        self.server_status = 0
        self.server_routed = ""
        self.first_byte_at = 0.0
        self.backend_started = 0.0
        self.connect_seconds: float | None = None
        self.last_byte_at = 0.0
        self.error_info = "ERRORINFO_NO_ERROR"
        self.body_bytes = 0
        self.sent_at_start = client.sent
        self.set_cookie: list[Header] = []

    # --- request side -----------------------------------------------------------------------------

    def begin(self) -> None:
        host_header = header_value(self.headers, b"host")
        if host_header is None:
            if self.http_version == "1.0":
                host_header = b""
            else:
                self.respond_error(400, "ERRORINFO_HTTP_NO_HOST_HEADER", close=True)
                return
        host = normalize_host(host_header) if host_header else ""
        if host is None:
            self.respond_error(400, "ERRORINFO_INVALID_HOST", close=True)
            return
        if len([1 for name, _ in self.headers if name.lower() == b"host"]) > 1:
            self.respond_error(400, "ERRORINFO_INVALID_HOST", close=True)
            return
        self.host = host
        if self.method in (b"TRACE", b"CONNECT"):
            error = (
                "ERRORINFO_INVALID_METHOD_TRACE"
                if self.method == b"TRACE"
                else "ERRORINFO_INVALID_METHOD"
            )
            self.respond_error(400, error, close=True)
            return
        if not self.target.startswith(b"/") and self.target != b"*":
            self.respond_error(400, "ERRORINFO_REQUEST_URI_INVALID", close=True)
            return
        site = self.endpoint.sites.match(host)
        if site is None:
            self.respond_error(404, "ERRORINFO_INVALID_HOST", close=False)
            return
        self.site = site
        route = site.route
        path, _query = split_target(self.target)
        matched_prefix = ""
        target: Target
        if isinstance(route, PathRoute):
            match = route.paths.match(path.decode("latin-1"))
            target = match.value
            matched_prefix = match.matched_prefix
        else:
            target = route
        self.rule_name = target.rule_name
        if isinstance(target, RedirectTarget):
            self.redirect(target)
            return
        self.forward = target
        self.send_to_backend(target, matched_prefix)

    def request_body(self, data: bytes) -> None:
        if self.gone or self.finished:
            return  # answered already (e.g. an error); the rest of the body is dropped
        self.body_bytes += len(data)
        if self.upstream is not None:
            self.body_sent = True
            self.upstream.write(chunk(data) if self.chunked else data)
            return
        self.body_buffer.append(data)
        self.buffered += len(data)
        if self.buffered > MAX_BUFFERED_REQUEST_BODY:
            self.client.pause_reading()

    def request_complete(self) -> None:
        self.body_done = True
        if self.upstream is not None and self.chunked and not self.finished:
            self.upstream.write(LAST_CHUNK)

    def client_gone(self) -> None:
        self.gone = True
        self._cancel_timer()
        if self.upstream is not None:
            self.upstream.abort()
            self.upstream = None
        if not self.finished:
            self.status = self.status or 499
            self.error_info = "ERRORINFO_CLIENT_CLOSED_REQUEST"
            self._log()
            self.finished = True

    # --- to the backend ---------------------------------------------------------------------------

    def pick_member(
        self, target: ForwardTarget, exclude: BackendMember | None
    ) -> BackendMember | None:
        balancer = self.client.services.balancer
        gateway = self.snapshot.gateway_key
        cookie_name = target.settings.affinity_cookie
        if cookie_name is not None and exclude is None:
            value = _cookie(self.headers, cookie_name.encode())
            if value is not None:
                member = balancer.by_cookie(gateway, target, value)
                if member is not None and self._healthy(target, member):
                    return member
        member = balancer.pick(gateway, target.pool.name, self._healthy_members(target), exclude)
        if member is not None and cookie_name is not None:
            value_text = balancer.cookie_value(gateway, target, member)
            self.set_cookie = [
                (b"Set-Cookie", f"{cookie_name}={value_text}; Path=/".encode()),
                (
                    b"Set-Cookie",
                    f"{cookie_name}CORS={value_text}; Path=/; SameSite=None; Secure".encode(),
                ),
            ]
        return member

    def _healthy_members(self, target: ForwardTarget) -> tuple[BackendMember, ...]:
        # Filtered once per health-board change, not per request: a pool has up to 1,200
        # members (Azure), and scanning them on every request cost most of the throughput.
        services = self.client.services
        members = target.pool.members
        if not services.unhealthy:
            return members
        key = (self.snapshot.gateway_key, target.pool.name, target.settings.name)
        cached = services.healthy_members.get(key)
        if cached is not None and cached[0] is services.unhealthy and cached[1] is members:
            return cached[2]
        healthy = tuple(m for m in members if self._healthy(target, m))
        services.healthy_members[key] = (services.unhealthy, members, healthy)
        return healthy

    def _healthy(self, target: ForwardTarget, member: BackendMember) -> bool:
        unhealthy = self.client.services.unhealthy
        if not unhealthy:
            return True
        pair = (target.pool.name, target.settings.name)
        probe = self.snapshot.probe_fingerprints.get(pair, "")
        return (self.snapshot.gateway_key, *pair, member.address, probe) not in unhealthy

    def upstream_key(
        self, target: ForwardTarget, member: BackendMember
    ) -> tuple[UpstreamKey, bytes]:
        """The connection identity and the Host header, by Azure's rules (spec §2.4, §2.5)."""
        settings = target.settings
        if settings.host_override:
            host_header = settings.host_override
        elif settings.pick_host_from_member:
            host_header = member.address
        else:
            received = header_value(self.headers, b"host")
            host_header = received.decode("latin-1") if received else member.address
        sni: str | None = None
        verify_name: str | None = None
        if settings.trust is not None:
            if self.snapshot.sku_v1:
                sni = member.address if member.is_fqdn else None
                verify_name = sni
            else:
                candidates = (
                    settings.sni_name,
                    settings.host_override,
                    member.address if member.is_fqdn else None,
                    self.host or None,
                )
                name = next((c for c in candidates if c), None)
                sni = name if name is not None and not _is_ip_address(name) else None
                verify_name = name
        key = UpstreamKey(
            address=member.address,
            port=settings.port,
            sni=sni,
            verify_name=verify_name,
            trust=settings.trust,
        )
        return key, host_header.encode("latin-1")

    def send_to_backend(
        self, target: ForwardTarget, matched_prefix: str, exclude: BackendMember | None = None
    ) -> None:
        """Send now on an idle pooled connection; connect first (a task) only when none is."""
        if self.gone or self.finished:
            return  # a deferred retry for a client that left meanwhile
        member = self.pick_member(target, exclude)
        if member is None:
            self.respond_error(502, "ERRORINFO_UPSTREAM_NO_LIVE", close=False)
            return
        self.member = member
        key, host_header = self.upstream_key(target, member)
        self.server_routed = f"{member.address}:{target.settings.port}"
        self.backend_started = time.monotonic()
        self.connect_seconds = None
        self.first_byte_at = 0.0
        upstream = self.client.services.pool.take_idle(key)
        if upstream is not None:
            self._start_upstream(upstream, True, target, matched_prefix, host_header)
            return
        self.client.loop.create_task(self._connect(key, target, matched_prefix, host_header))

    async def _connect(
        self, key: UpstreamKey, target: ForwardTarget, matched_prefix: str, host_header: bytes
    ) -> None:
        pool = self.client.services.pool
        try:
            upstream = await pool.connect(key, target.settings.request_timeout)
        except UpstreamError as error:
            self._log_backend_failure(key, target, error)
            timed_out = error.error_info == "ERRORINFO_UPSTREAM_TIMED_OUT"
            status = 504 if timed_out and not self.snapshot.sku_v1 else 502
            self.respond_error(status, error.error_info, close=False)
            return
        if self.gone or self.finished:
            pool.release(upstream)
            return
        self.connect_seconds = time.monotonic() - self.backend_started
        self._start_upstream(upstream, False, target, matched_prefix, host_header)

    def _start_upstream(
        self,
        upstream: UpstreamConnection,
        reused: bool,
        target: ForwardTarget,
        matched_prefix: str,
        host_header: bytes,
    ) -> None:
        self.upstream = upstream
        self.upstream_reused = reused
        upstream.start(self, head_only=self.method == b"HEAD")
        if self.client.write_paused:
            upstream.pause_reading()
        upstream.write(self._request_head(target, matched_prefix, host_header))
        if self.body_buffer:
            self.body_sent = True
            body = b"".join(self.body_buffer)
            self.body_buffer.clear()
            upstream.write(chunk(body) if self.chunked and body else body)
            self.client.resume_reading()
        if self.body_done and self.chunked:
            upstream.write(LAST_CHUNK)
        self._start_timer(target.settings.request_timeout)

    def _log_backend_failure(
        self, key: UpstreamKey, target: ForwardTarget, error: UpstreamError
    ) -> None:
        where = (
            f"backend {key.describe()} (pool '{target.pool.name}', settings "
            f"'{target.settings.name}', rule '{target.rule_name}')"
        )
        if isinstance(error, BackendTlsRejected):
            log.error("%s rejected: %s", where, describe_rejection(error.verdict, key.sni))
        else:
            log.error("%s unusable: %s", where, error.message)

    def _request_head(self, target: ForwardTarget, matched_prefix: str, host: bytes) -> bytes:
        """The request head for the backend, written into one list of pieces joined once."""
        path, query = split_target(self.target)
        path = backend_path(path, target.settings.path_override, matched_prefix)
        forwarded_for = f"{self.client_ip_text()}:{self.client.client_port}".encode()
        parts = [self.method, b" ", path, b"?" if query else b"", query, b" HTTP/1.1\r\n"]
        parts += (b"Host: ", host, b"\r\n")
        for name, value in forwardable_request_headers(self.headers):
            if name.lower() == b"x-forwarded-for":
                forwarded_for = value + b", " + forwarded_for
            else:
                parts += (name, b": ", value, b"\r\n")
        parts += (
            b"X-Forwarded-For: ",
            forwarded_for,
            _forwarded_port_lines(self.endpoint.https, self.endpoint.port),
            b"X-Original-Host: ",
            header_value(self.headers, b"host") or b"",
            b"\r\nX-Original-URL: ",
            self.target,
            b"\r\nX-AppGW-Trace-Id: ",
            self.trace_id.encode(),
            b"\r\n",
        )
        if self.upgrade:
            upgrade = header_value(self.headers, b"upgrade") or b"websocket"
            parts += (b"Connection: Upgrade\r\nUpgrade: ", upgrade, b"\r\n")
        elif self.chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        else:
            length = header_value(self.headers, b"content-length")
            if length is not None:
                parts += (b"Content-Length: ", length.strip(), b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def client_ip_text(self) -> str:
        ip = self.client.client_ip
        return f"[{ip}]" if ":" in ip else ip

    # --- from the backend (ResponseConsumer) -----------------------------------------------------

    def hold_output(self) -> None:
        self.client.hold_writes()

    def flush_output(self) -> None:
        self.client.flush_writes()

    def response_head(self, status: int, headers: list[Header], upgrade: bool) -> None:
        if self.gone:
            return
        if 100 <= status < 200 and not upgrade:
            if self.http_version != "1.0":
                self.client.write(serialize_head(status_line(status), []))
            return
        self._cancel_timer()
        self.first_byte_at = time.monotonic()
        self.server_status = status
        self.status = status
        self.response_started = True
        reason = self.upstream.reason if self.upstream is not None else b""
        parts, length, chunked = forwardable_response_head(status_line(status, reason), headers)
        for name, value in self.set_cookie:
            parts += (name, b": ", value, b"\r\n")
        if upgrade and self.upgrade:
            upgrade_to = header_value(headers, b"upgrade") or b"websocket"
            parts += (b"Connection: Upgrade\r\nUpgrade: ", upgrade_to, b"\r\n\r\n")
            self.client.write(b"".join(parts))
            upstream = self.upstream
            assert upstream is not None
            self._log()
            self.finished = True
            self.client.active = None
            self.client.start_tunnel(upstream, self.early_tunnel_data)
            return
        no_body = self.method == b"HEAD" or status in (204, 304)
        if no_body:
            if length is not None and status != 204:
                parts += (b"Content-Length: ", length, b"\r\n")
        elif length is not None and not chunked:
            parts += (b"Content-Length: ", length, b"\r\n")
        elif self.http_version == "1.1":
            self.response_chunked = True
            parts.append(b"Transfer-Encoding: chunked\r\n")
        else:
            self.response_close = True
        if not self.keep_alive or self.response_close or self.upgrade or self.client.closing:
            self.response_close = True
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        self.client.write(b"".join(parts))

    def response_body(self, data: bytes) -> None:
        if self.gone or not data:
            return
        if self.client.tunnel is not None:
            self.client.write(data)
            return
        self.client.write(chunk(data) if self.response_chunked else data)

    def response_end(self, reusable: bool) -> None:
        if self.gone:
            return
        self.last_byte_at = time.monotonic()
        if self.client.tunnel is not None:
            self.client.close()
            return
        if self.response_chunked:
            self.client.write(LAST_CHUNK)
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            if reusable and self.body_done:
                self.client.services.pool.release(upstream)
            else:
                upstream.close()
        self._finish(close=self.response_close or (self.has_body and not self.body_done))

    def upstream_lost(self, error: UpstreamError) -> None:
        upstream, self.upstream = self.upstream, None
        self._cancel_timer()
        if self.gone or self.finished:
            return
        if self.response_started:
            # Headers are out; the only honest signal left is an aborted connection.
            self.error_info = error.error_info
            self._log()
            self.finished = True
            if self.client.transport is not None:
                self.client.transport.abort()
            return
        target = self.forward
        if (
            target is not None
            and self.upstream_reused
            and not self.body_sent
            and self.method in IDEMPOTENT
            and not self.retried
        ):
            # A pooled connection the backend had closed: try a fresh one, once.
            self.retried = True
            self.client.loop.call_soon(self._retry_same, target)
            return
        del upstream
        log.error("backend %s failed: %s", self.server_routed, error.message)
        self.respond_error(502, error.error_info, close=False)

    def _retry_same(self, target: ForwardTarget) -> None:
        path, _ = split_target(self.target)
        prefix = ""
        route = self.site.route if self.site is not None else None
        if isinstance(route, PathRoute):
            prefix = route.paths.match(path.decode("latin-1")).matched_prefix
        self.send_to_backend(target, prefix)

    def upstream_paused(self, paused: bool) -> None:
        if paused:
            self.client.pause_reading()
        else:
            self.client.resume_reading()

    # --- timeouts --------------------------------------------------------------------------------

    def _start_timer(self, seconds: float) -> None:
        self.client.backend_deadline.set(seconds, self._request_timed_out)

    def _cancel_timer(self) -> None:
        self.client.backend_deadline.clear(self._request_timed_out)

    def _request_timed_out(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()
        if self.finished or self.gone or self.response_started:
            if self.response_started and not self.finished:
                self.error_info = "ERRORINFO_UPSTREAM_TIMED_OUT"
                self._log()
                self.finished = True
                self.client.close()
            return
        log.error(
            "backend %s did not answer within %ss (settings %s)",
            self.server_routed,
            self.forward.settings.request_timeout if self.forward else "?",
            self.forward.settings.name if self.forward else "?",
        )
        target = self.forward
        if (
            not self.snapshot.sku_v1
            and target is not None
            and not self.retried
            and not self.body_sent
            and self.method in IDEMPOTENT
            and len(target.pool.members) > 1
        ):
            # v2: one retry on another member, then 504.
            self.retried = True
            failed = self.member
            path, _ = split_target(self.target)
            route = self.site.route if self.site is not None else None
            prefix = (
                route.paths.match(path.decode("latin-1")).matched_prefix
                if isinstance(route, PathRoute)
                else ""
            )
            self.client.loop.call_soon(self.send_to_backend, target, prefix, failed)
            return
        self.respond_error(
            502 if self.snapshot.sku_v1 else 504, "ERRORINFO_UPSTREAM_TIMED_OUT", close=False
        )

    # --- answers from the gateway itself ---------------------------------------------------------

    def redirect(self, target: RedirectTarget) -> None:
        path, query = split_target(self.target)
        if target.target_url is not None:
            location = target.target_url.encode()
            if target.include_path:
                location = location.rstrip(b"/") + path
        else:
            scheme = (target.target_scheme or "https").encode()
            host = (target.target_host or self.host).encode()
            default_port = 443 if scheme == b"https" else 80
            port = target.target_port
            location = scheme + b"://" + host
            if port is not None and port != default_port:
                location += b":%d" % port
            location += path if target.include_path else b"/"
        if target.include_query and query:
            location += b"?" + query
        self.status = target.status
        self.response_started = True
        self.client.write(
            serialize_head(
                status_line(target.status),
                [(b"Location", location), (b"Content-Length", b"0")]
                + ([(b"Connection", b"close")] if not self.keep_alive else []),
            )
        )
        self._finish(close=not self.keep_alive or (self.has_body and not self.body_done))

    def respond_error(self, status: int, error_info: str, *, close: bool) -> None:
        if self.finished or self.gone:
            return
        self.status = status
        self.error_info = error_info
        self.response_started = True
        close = close or not self.keep_alive or (self.has_body and not self.body_done)
        url = (self.site.custom_errors.get(status) if self.site else None) or (
            self.snapshot.custom_errors.get(status)
        )
        page = self.client.services.error_pages.get(url)
        self.client.write(error_response(status, close=close, body=page))
        self._finish(close=close)

    def _finish(self, *, close: bool) -> None:
        if self.finished:
            return
        self.finished = True
        self._cancel_timer()
        self._log()
        self.client.exchange_done(self, close=close)

    def _log(self) -> None:
        now = time.monotonic()
        path, query = split_target(self.target)
        forward = self.forward
        site = self.site
        # request line + headers + body as received (chunk framing not counted)
        received = (
            len(self.method) + len(self.target) + 12 + self.header_bytes + 2 + self.body_bytes
        )
        sent = self.client.sent - self.sent_at_start
        listener = site.listener_name if site else ""
        metrics = self.client.services.metrics
        gateway = self.snapshot.gateway_id
        if self.client.tls_version:
            metrics.tls_handshake(gateway, listener, self.client.tls_version)
        started = self.backend_started
        metrics.request_finished(
            gateway=gateway,
            listener=listener,
            pool=forward.pool.name if forward else "",
            settings=forward.settings.name if forward else "",
            server=self.server_routed,
            status=self.status,
            server_status=self.server_status or None,
            bytes_received=received,
            bytes_sent=sent,
            total_seconds=now - self.started,
            connect_seconds=self.connect_seconds,
            first_byte_seconds=self.first_byte_at - started
            if started and self.first_byte_at
            else None,
            last_byte_seconds=self.last_byte_at - started
            if started and self.last_byte_at
            else None,
        )
        client = self.client
        self.client.services.access_log.write(
            AccessRecord(
                utc_timestamp(),
                _upper(self.snapshot.gateway_id),
                listener,
                self.rule_name,
                forward.pool.name if forward else "",
                forward.settings.name if forward else "",
                client.services.instance_id,
                client.client_ip,
                client.client_port,
                self.method.decode("latin-1"),
                self.target.decode("latin-1"),
                path.decode("latin-1"),
                query.decode("latin-1"),
                (header_value(self.headers, b"user-agent") or b"").decode("latin-1"),
                self.status,
                f"HTTP/{self.http_version}",
                received,
                sent,
                round(now - self.started, 6),
                self.trace_id,
                "on" if self.endpoint.https else "off",
                client.tls_cipher,
                client.tls_version,
                self.server_routed,
                str(self.server_status) if self.server_status else "",
                round(self.first_byte_at - self.started, 6) if self.first_byte_at else None,
                (header_value(self.headers, b"host") or b"").decode("latin-1"),
                self.host,
                self.error_info,
            )
        )


@functools.lru_cache(maxsize=256)
def _forwarded_port_lines(https: bool, port: int) -> bytes:
    """The end of the X-Forwarded-For line and the two lines fixed per listener."""
    scheme = b"https" if https else b"http"
    return b"\r\nX-Forwarded-Proto: %s\r\nX-Forwarded-Port: %d\r\n" % (scheme, port)


# The access log's resourceId is the upper-cased gateway id; a worker serves few gateways.
_upper = functools.lru_cache(maxsize=64)(str.upper)


def _cookie(headers: list[Header], name: bytes) -> bytes | None:
    for header, value in headers:
        if header.lower() != b"cookie":
            continue
        for part in value.split(b";"):
            key, _, cookie_value = part.strip().partition(b"=")
            if key == name:
                return cookie_value
    return None
