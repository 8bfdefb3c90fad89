"""One request and its response: the I/O between the client connection and a backend.

The decisions come from `appgw.core` (admit, route, choose a member, build the heads, retry);
this class carries their results across the event loop: it takes or makes the backend
connection, streams both bodies with backpressure, arms the backend timeout, and writes the
access-log line and metrics once the exchange ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from appgw.compile.rewrite import RewriteSet
from appgw.compile.snapshot import (
    BackendMember,
    Endpoint,
    FirewallScope,
    ForwardTarget,
    ListenerTls,
    PathRoute,
    Site,
    Snapshot,
    UpstreamKey,
    backend_where,
)
from appgw.core.forward import backend_request_head
from appgw.core.http import (
    LAST_CHUNK,
    Header,
    chunk,
    error_response,
    header_value,
    new_trace_id,
    serialize_head,
    split_target,
    status_line,
)
from appgw.core.path import normalize_path
from appgw.core.request import NO_BODY, Framing, Reject, RequestHead, admit
from appgw.core.response import interim_head, response_head, upgrade_head
from appgw.core.retry import Attempt, Failure, Retry, after_failure
from appgw.core.rewrite import (
    RequestFacts,
    ResponseFacts,
    edited_headers,
    rewrite_and_route,
    rewrite_response,
)
from appgw.core.routing import Decision, Forward, Redirect, route
from appgw.dataplane.access_log import AccessRecord, utc_timestamp
from appgw.dataplane.deadline import Deadline
from appgw.dataplane.firewall_log import report as firewall_report
from appgw.dataplane.services import Services
from appgw.dataplane.upstream import BackendTlsRejected, UpstreamConnection, UpstreamError
from appgw.tasks import spawn
from appgw.tls.client_auth import NO_CERTIFICATE, ClientAuth, ClientVerdict
from appgw.tls.trust import describe_rejection
from appgw.waf.engine import Inspected

log = logging.getLogger("appgw.dataplane")

# Request bytes held while the backend connection is being made; past this the client waits.
MAX_BUFFERED_REQUEST_BODY = 256 * 1024


class ClientSide(Protocol):
    """What an exchange needs of the client it answers: an HTTP/1.1 connection
    (downstream.ClientConnection) or one HTTP/2 stream (http2.Http2Stream)."""

    services: Services
    loop: asyncio.AbstractEventLoop
    client_ip: str
    client_port: int
    client_address: bytes  # "ip:port" as X-Forwarded-For carries it
    tls_version: str
    tls_cipher: str
    tls_certificate: ListenerTls | None
    client_verdict: ClientVerdict | None
    sent: int  # bytes written to the client so far
    write_paused: bool
    closing: bool
    backend_deadline: Deadline
    active: Exchange | None
    tunnel: UpstreamConnection | None

    def write(self, data: bytes) -> None: ...
    def hold_writes(self) -> None: ...
    def flush_writes(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def exchange_done(self, exchange: Exchange, *, close: bool) -> None: ...
    def start_tunnel(self, upstream: UpstreamConnection, early: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


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
        "client",
        "connect_seconds",
        "early_tunnel_data",
        "endpoint",
        "error_info",
        "finished",
        "first_byte_at",
        "forward",
        "framing",
        "gone",
        "head",
        "host",
        "last_byte_at",
        "member",
        "path",
        "query",
        "refused",
        "request_edits",
        "response_chunked",
        "response_close",
        "response_started",
        "retried",
        "rewrite_facts",
        "rule_name",
        "sent_at_start",
        "server_routed",
        "server_status",
        "set_cookie",
        "site",
        "snapshot",
        "started",
        "status",
        "trace_id",
        "upstream",
        "upstream_reused",
        "waf",
        "waf_mode",
        "waf_seconds",
        "waiting",
    )

    def __init__(self, client: ClientSide, snapshot: Snapshot, endpoint: Endpoint) -> None:
        self.client = client
        self.snapshot = snapshot
        self.endpoint = endpoint
        self.started = time.monotonic()
        self.head = RequestHead(headers=[])
        self.framing: Framing = NO_BODY
        self.body_buffer: list[bytes] = []
        self.buffered = 0
        self.body_done = False
        self.body_sent = False  # some request body went to a backend: no retry any more
        self.body_bytes = 0
        self.early_tunnel_data = b""
        self.upstream: UpstreamConnection | None = None
        self.upstream_reused = False
        self.response_started = False
        self.response_chunked = False
        self.response_close = False
        self.finished = False
        self.gone = False
        self.retried = False
        self.refused: Reject | None = None  # the connection refused this request as parsed
        self.path = b""  # normalized: what routing matched and the backend receives
        self.query = b""
        # for the access log
        self.trace_id = new_trace_id()
        self.site: Site | None = None
        self.forward: Forward | None = None
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
        self.sent_at_start = client.sent
        self.set_cookie: tuple[Header, ...] = ()
        # Rewrite rule sets: the request header edits, and what the rules read of the request.
        self.request_edits: dict[bytes, tuple[bytes, bytes | None]] | None = None
        self.rewrite_facts: RequestFacts | None = None
        # The WAF: the routing decision held while the body it inspects arrives; the access
        # log's WAFEvaluationTime and WAFMode.
        self.waiting: Decision | None = None
        self.waf: FirewallScope | None = None  # the WAF of the decision's rule or path rule
        self.waf_seconds: float | None = None
        self.waf_mode = ""

    # --- request side -----------------------------------------------------------------------------

    def begin(self) -> None:
        """The request became the connection's active one: admit it, route it, send it."""
        if self.refused is not None:
            self.answer(self.refused.status, self.refused.error_info, close=True)
            return
        host = admit(self.head)
        if isinstance(host, Reject):
            self.answer(host.status, host.error_info, close=host.close)
            return
        self.host = host
        path, query = split_target(self.head.target)
        normalized = b"*" if path == b"*" else normalize_path(path)
        if isinstance(normalized, Reject):
            self.answer(normalized.status, normalized.error_info, close=normalized.close)
            return
        self.path, self.query = normalized, query
        decision = route(
            self.endpoint,
            host,
            b"/" if path == b"*" else normalized,
            query,
            self.client.tls_certificate,
        )
        if not isinstance(decision, Reject) and decision.site.client_auth is not None:
            refused = self._client_certificate_refused(decision.site.client_auth)
            if refused is not None:
                self.site = decision.site
                self.answer(refused.status, refused.error_info, close=refused.close)
                return
        if not isinstance(decision, Reject) and (waf := decision.target.waf) is not None:
            # Azure's WAF sees the request as received, before rewrites and redirects.
            self.site = decision.site
            self.waf = waf
            settings = waf.firewall.settings
            if self.framing.has_body and settings.request_body_check:
                self.waiting = decision  # the body arrives first (request_body/_complete)
                if self.body_done or self.buffered > settings.max_request_body_bytes:
                    self._inspect_waiting()
                return
            if self._firewall_blocks(waf, b""):
                return
        self._go(decision)

    def _go(self, decision: Decision) -> None:
        """Rewrite, then redirect or forward (or refuse)."""
        if isinstance(decision, Forward) and decision.target.rewrite is not None:
            decision = self._rewrite_request(decision)
        if isinstance(decision, Reject):
            self.answer(decision.status, decision.error_info, close=decision.close)
            return
        self.site = decision.site
        self.rule_name = decision.target.rule_name
        if isinstance(decision, Redirect):
            self.redirect(decision)
            return
        self.forward = decision
        self.send_to_backend()

    def _client_certificate_refused(self, auth: ClientAuth) -> Reject | None:
        """Azure: a listener with client authentication answers 400 to a request whose
        connection brought no certificate, or one that was refused (Passthrough: any)."""
        if not auth.verify_chain:
            return None
        verdict = self.client.client_verdict or NO_CERTIFICATE
        if verdict.ok:
            return None
        return Reject(400, verdict.error_info, close=False)

    def _rewrite_request(self, decision: Forward) -> Decision:
        """The target's rewrite rule set on the request: header edits kept for the backend's
        head, a rewritten URL, and Azure's reroute (the path map evaluated again)."""
        facts = self._facts()
        final: list[Decision] = [decision]

        def route_again(path: bytes, query: bytes) -> tuple[RewriteSet | None, bool]:
            site = final[-1].site if not isinstance(final[-1], Reject) else None
            again = route(self.endpoint, self.host, path, query, self.client.tls_certificate)
            final.append(again)
            rerouted = isinstance(site.route, PathRoute) if site is not None else False
            if isinstance(again, Forward):
                return again.target.rewrite, rerouted
            return None, False

        assert decision.target.rewrite is not None
        outcome = rewrite_and_route(decision.target.rewrite, facts, route_again)
        if isinstance(outcome, Reject):
            return outcome
        if outcome is not None:
            self.request_edits = outcome.headers or None
            if outcome.path is not None:
                self.path = outcome.path
            if outcome.query is not None:
                self.query = outcome.query
        return final[-1]

    def _facts(self) -> RequestFacts:
        facts = self.rewrite_facts
        if facts is None:
            head, client = self.head, self.client
            facts = self.rewrite_facts = RequestFacts(
                method=head.method,
                target=head.target,
                path=self.path,
                query=self.query,
                host=self.host,
                headers=head.headers,
                client_ip=client.client_ip,
                client_port=client.client_port,
                server_port=self.endpoint.port,
                https=self.endpoint.https,
                tls_version=client.tls_version,
                tls_cipher=client.tls_cipher,
                http_version=head.http_version,
                received_bytes=self._received_bytes(),
            )
            if client.client_verdict is not None:
                facts.client_certificate = client.client_verdict.variables
        return facts

    def request_body(self, data: bytes) -> None:
        if self.gone or self.finished:
            return  # answered already (e.g. an error); the rest of the body is dropped
        self.body_bytes += len(data)
        if self.upstream is not None:
            self.body_sent = True
            self.upstream.write(chunk(data) if self.framing.chunked else data)
            return
        self.body_buffer.append(data)
        self.buffered += len(data)
        if self.waiting is not None:
            assert self.waf is not None
            if self.buffered > self.waf.firewall.settings.max_request_body_bytes:
                self._inspect_waiting()  # as much as the WAF inspects is here
            return
        if self.buffered > MAX_BUFFERED_REQUEST_BODY:
            self.client.pause_reading()

    def request_complete(self) -> None:
        self.body_done = True
        if self.waiting is not None:
            self._inspect_waiting()
            return
        if self.upstream is not None and self.framing.chunked and not self.finished:
            self.upstream.write(self._last_chunk())

    # --- the web application firewall -------------------------------------------------------------

    def _inspect_waiting(self) -> None:
        """The body the WAF inspects is here (all of it, or its limit's worth): judge, then go
        on with the routing decision held meanwhile."""
        decision, self.waiting = self.waiting, None
        waf = self.waf
        if decision is None or waf is None or self.gone or self.finished:
            return
        settings = waf.firewall.settings
        body = b"".join(self.body_buffer)
        if len(body) > settings.max_request_body_bytes:
            if settings.prevention and settings.enforce_body_limit:
                # Azure: a body over maxRequestBodySizeInKb is refused when it is checked.
                self.waf_mode = "Prevention"
                self.answer(413, "ERRORINFO_WAF_REQUEST_BODY_TOO_LARGE", close=True)
                return
            body = body[: settings.max_request_body_bytes]
        if self._firewall_blocks(waf, body):
            return
        self._go(decision)

    def _firewall_blocks(self, waf: FirewallScope, body: bytes) -> bool:
        """Inspect; log each match (firewall log, metrics); answer the policy's block status
        (403 by default) when Prevention blocks."""
        head, client = self.head, self.client
        verdict = waf.firewall.inspect(
            Inspected(
                client.client_ip,
                client.client_port,
                self.endpoint.port,
                head.method.decode("latin-1"),
                head.target.decode("latin-1"),
                head.http_version,
                head.headers,
                body,
            )
        )
        settings = waf.firewall.settings
        self.waf_seconds = verdict.seconds
        self.waf_mode = "Prevention" if settings.prevention else "Detection"
        services = client.services
        firewall_report(
            verdict,
            waf,
            log=services.firewall_log,
            metrics=services.waf_metrics,
            gateway_id=self.snapshot.gateway_id,
            resource_id=self.snapshot.gateway_id_upper,
            instance_id=services.instance_id,
            client_ip=client.client_ip,
            client_port=client.client_port,
            request_uri=head.target.decode("latin-1"),
            hostname=self.host,
            transaction_id=self.trace_id,
        )
        if verdict.blocked:
            self.answer(waf.block_status, "ERRORINFO_WAF_BLOCKED", close=False, page=waf.block_body)
            return True
        return False

    def _last_chunk(self) -> bytes:
        """The end of a chunked request body (and its trailer section, where one came)."""
        return LAST_CHUNK

    def request_broken(self, reject: Reject) -> None:
        """The body turned out malformed after the head went to a backend: that backend
        connection has an unfinished request on it and is dropped, never reused."""
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()
        self._cancel_timer()
        if self.finished or self.gone:
            return
        if not self.response_started:
            self.answer(reject.status, reject.error_info, close=True)
            return
        self.error_info = reject.error_info
        self._log()
        self.finished = True
        self.client.abort()

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

    def send_to_backend(self, avoid: BackendMember | None = None) -> None:
        """Send now on an idle pooled connection; connect first (a task) only when none is."""
        forward = self.forward
        if self.gone or self.finished or forward is None:
            return  # a deferred retry for a client that left meanwhile
        target = forward.target
        choice = self.client.services.balancer.choose(
            self.snapshot, target, self.head.headers, avoid
        )
        if choice is None:
            self.answer(502, "ERRORINFO_UPSTREAM_NO_LIVE", close=False)
            return
        member = self.member = choice.member
        self.set_cookie = choice.set_cookie
        spec = target.upstream(member, sku_v1=self.snapshot.sku_v1)
        key = spec.key or spec.key_for(self.host)
        self.server_routed = f"{member.address}:{target.settings.port}"
        self.backend_started = time.monotonic()
        self.connect_seconds = None
        self.first_byte_at = 0.0
        upstream = self.client.services.pool.take_idle(key)
        if upstream is not None:
            self._start_upstream(upstream, True, spec.host_header)
            return
        spawn(self._connect(key, target, spec.host_header))

    async def _connect(
        self, key: UpstreamKey, target: ForwardTarget, host_header: bytes | None
    ) -> None:
        pool = self.client.services.pool
        try:
            upstream = await pool.connect(key, target.settings.request_timeout)
        except UpstreamError as error:
            self._backend_unusable(key, target, error)
            self._failed(Failure.CONNECT, error.error_info)
            return
        if self.gone or self.finished:
            pool.release(upstream)
            return
        self.connect_seconds = time.monotonic() - self.backend_started
        self._start_upstream(upstream, False, host_header)

    def _start_upstream(
        self, upstream: UpstreamConnection, reused: bool, host_header: bytes | None
    ) -> None:
        forward = self.forward
        assert forward is not None
        settings = forward.target.settings
        self.upstream = upstream
        self.upstream_reused = reused
        websocket_key = (
            header_value(self.head.headers, b"sec-websocket-key")
            if self.framing.websocket
            else None
        )
        upstream.start(self, head_only=self.head.method == b"HEAD", websocket_key=websocket_key)
        if self.client.write_paused:
            upstream.pause_reading()
        if host_header is None:
            host_header = header_value(self.head.headers, b"host") or upstream.key.address.encode()
        # The head and whatever of the body is here go out as one write (one TLS record).
        pieces = [
            backend_request_head(
                self.head,
                self.framing,
                path=self.path,
                query=self.query,
                host_header=host_header,
                path_override=settings.path_override,
                matched_prefix=forward.matched_prefix,
                client=self.client.client_address,
                https=self.endpoint.https,
                port=self.endpoint.port,
                trace_id=self.trace_id,
                edits=self.request_edits,
            )
        ]
        if self.body_buffer:
            self.body_sent = True
            body = b"".join(self.body_buffer)
            self.body_buffer.clear()
            pieces.append(chunk(body) if self.framing.chunked and body else body)
            self.client.resume_reading()
        if self.body_done and self.framing.chunked:
            pieces.append(self._last_chunk())
        upstream.write_all(pieces)
        self.client.backend_deadline.set(settings.request_timeout, self._request_timed_out)

    def _backend_unusable(self, key: UpstreamKey, target: ForwardTarget, error: Exception) -> None:
        where = self._where(target, key.address)
        if isinstance(error, BackendTlsRejected):
            log.error("%s rejected: %s", where, describe_rejection(error.verdict, key.sni))
            if self.member is not None:
                member_key = self.snapshot.health_key(target, self.member)
                self.client.services.traffic.record(member_key, key, error.verdict)
        elif isinstance(error, UpstreamError):
            log.error("%s unusable: %s", where, error.message)

    def _where(self, target: ForwardTarget, address: str) -> str:
        return backend_where(
            self.snapshot.gateway_id,
            target.pool.name,
            target.settings,
            address,
            target.settings.port,
            target.rule_name,
        )

    def _failed(self, failure: Failure, error_info: str, give_up_message: str = "") -> None:
        """The backend failed before a response started: retry once, or answer (and log
        `give_up_message`, when given, only then)."""
        forward = self.forward
        if forward is None or self.gone or self.finished:
            return
        attempt = Attempt(
            method=self.head.method,
            body_sent=self.body_sent,
            retried=self.retried,
            reused=self.upstream_reused,
            members=len(forward.target.pool.members),
        )
        decision = after_failure(
            failure, attempt, sku_v1=self.snapshot.sku_v1, error_info=error_info
        )
        if isinstance(decision, Retry):
            self.retried = True
            avoid = self.member if decision.avoid_failed_member else None
            self.client.loop.call_soon(self.send_to_backend, avoid)
            return
        if give_up_message and self.member is not None:
            where = self._where(forward.target, self.member.address)
            log.error("%s failed: %s", where, give_up_message)
        self.answer(decision.status, decision.error_info, close=decision.close)

    # --- from the backend (ResponseConsumer) -----------------------------------------------------

    def hold_output(self) -> None:
        self.client.hold_writes()

    def flush_output(self) -> None:
        self.client.flush_writes()

    def response_head(self, status: int, headers: list[Header], upgrade: bool) -> None:
        if self.gone:
            return
        if 100 <= status < 200 and not upgrade:
            self._send_interim(status, headers)
            return
        self._cancel_timer()
        self.first_byte_at = time.monotonic()
        self.server_status = status
        self.status = status
        self.response_started = True
        reason = self.upstream.reason if self.upstream is not None else b""
        if upgrade and self.framing.websocket:
            self.client.write(upgrade_head(status, reason, headers, self.set_cookie))
            upstream = self.upstream
            assert upstream is not None
            self._log()
            self.finished = True
            self.client.active = None
            self.client.start_tunnel(upstream, self.early_tunnel_data)
            return
        rewrite = self.forward.target.rewrite if self.forward is not None else None
        if rewrite is not None and rewrite.response_rules:
            edits = rewrite_response(
                rewrite,
                self._facts,
                ResponseFacts(status, headers, self.client.sent - self.sent_at_start),
            )
            if edits is not None:
                headers = edited_headers(headers, edits)
        self._send_head(status, reason, headers)

    # --- the client's framing: HTTP/1.1 here, HTTP/2 frames in http2.Http2Exchange -------------

    def _send_interim(self, status: int, headers: list[Header]) -> None:
        reason = self.upstream.reason if self.upstream is not None else b""
        interim = interim_head(status, reason, headers, self.head.http_version)
        if interim is not None:
            self.client.write(interim)

    def _send_head(self, status: int, reason: bytes, headers: list[Header]) -> None:
        framed = response_head(
            status,
            reason,
            headers,
            set_cookie=self.set_cookie,
            method=self.head.method,
            http_version=self.head.http_version,
            keep_alive=self.head.keep_alive,
            close_after=self.framing.websocket or self.client.closing,
        )
        self.response_chunked = framed.chunked
        self.response_close = framed.close
        self.client.write(framed.head)

    def _send_body(self, data: bytes) -> None:
        self.client.write(chunk(data) if self.response_chunked else data)

    def _send_end(self) -> None:
        if self.response_chunked:
            self.client.write(LAST_CHUNK)

    def _send_redirect(self, status: int, location: bytes) -> None:
        keep_alive = self.head.keep_alive
        self.client.write(
            serialize_head(
                status_line(status),
                [(b"Location", location), (b"Content-Length", b"0")]
                + ([(b"Connection", b"close")] if not keep_alive else []),
            )
        )

    def _send_error(self, status: int, page: bytes | None, *, close: bool) -> None:
        self.client.write(error_response(status, close=close, body=page))

    def response_body(self, data: bytes) -> None:
        if self.gone or not data:
            return
        if self.client.tunnel is not None:
            self.client.write(data)
            return
        self._send_body(data)

    def response_end(self, reusable: bool) -> None:
        if self.gone:
            return
        self.last_byte_at = time.monotonic()
        if self.client.tunnel is not None:
            self.client.close()
            return
        self._send_end()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            if reusable and self.body_done:
                self.client.services.pool.release(upstream)
            else:
                upstream.close()
        self._finish(close=self.response_close or (self.framing.has_body and not self.body_done))

    def upstream_lost(self, error: UpstreamError) -> None:
        self.upstream = None
        self._cancel_timer()
        if self.gone or self.finished:
            return
        if self.response_started:
            # Headers are out; the only honest signal left is an aborted connection.
            self.error_info = error.error_info
            self._log()
            self.finished = True
            self.client.abort()
            return
        self._failed(Failure.CONNECTION_LOST, error.error_info, error.message)

    def upstream_paused(self, paused: bool) -> None:
        if paused:
            self.client.pause_reading()
        else:
            self.client.resume_reading()

    # --- timeouts --------------------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        self.client.backend_deadline.clear(self._request_timed_out)

    def _request_timed_out(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()
        if self.finished or self.gone:
            return
        if self.response_started:
            self.error_info = "ERRORINFO_UPSTREAM_TIMED_OUT"
            self._log()
            self.finished = True
            self.client.close()
            return
        forward = self.forward
        if forward is not None and self.member is not None:
            log.error(
                "%s did not answer within %gs (the settings' request timeout)",
                self._where(forward.target, self.member.address),
                forward.target.settings.request_timeout,
            )
        self._failed(Failure.TIMEOUT, "ERRORINFO_UPSTREAM_TIMED_OUT")

    # --- answers from the gateway itself ---------------------------------------------------------

    def redirect(self, decision: Redirect) -> None:
        keep_alive = self.head.keep_alive
        self.status = decision.target.status
        self.response_started = True
        self._send_redirect(decision.target.status, decision.location)
        self._finish(close=not keep_alive or (self.framing.has_body and not self.body_done))

    def answer(
        self, status: int, error_info: str, *, close: bool, page: bytes | None = None
    ) -> None:
        """The gateway's own error response: `page`, or the site's or gateway's custom page
        for the status if any."""
        if self.finished or self.gone:
            return
        self.status = status
        self.error_info = error_info
        self.response_started = True
        close = close or not self.head.keep_alive or (self.framing.has_body and not self.body_done)
        if page is None:
            url = (self.site.custom_errors.get(status) if self.site else None) or (
                self.snapshot.custom_errors.get(status)
            )
            page = self.client.services.error_pages.get(url)
        self._send_error(status, page, close=close)
        self._finish(close=close)

    def _finish(self, *, close: bool) -> None:
        if self.finished:
            return
        self.finished = True
        self._cancel_timer()
        self._log()
        self.client.exchange_done(self, close=close)

    def _received_bytes(self) -> int:
        """Request line + headers + body as received so far (chunk framing not counted)."""
        head = self.head
        return len(head.method) + len(head.target) + 12 + head.header_bytes + 2 + self.body_bytes

    def _log(self) -> None:
        now = time.monotonic()
        head = self.head
        path, query = split_target(head.target)
        target = self.forward.target if self.forward is not None else None
        pool = target.pool.name if target else ""
        settings = target.settings.name if target else ""
        received = self._received_bytes()
        client = self.client
        sent = client.sent - self.sent_at_start
        listener = self.site.listener_name if self.site else ""
        services = client.services
        gateway = self.snapshot.gateway_id
        if client.tls_version:
            services.metrics.tls_handshake(gateway, listener, client.tls_version)
        started = self.backend_started
        first_byte = self.first_byte_at - started if started and self.first_byte_at else None
        last_byte = self.last_byte_at - started if started and self.last_byte_at else None
        services.metrics.request_finished(
            gateway=gateway,
            listener=listener,
            pool=pool,
            settings=settings,
            server=self.server_routed,
            status=self.status,
            server_status=self.server_status or None,
            bytes_received=received,
            bytes_sent=sent,
            total_seconds=now - self.started,
            connect_seconds=self.connect_seconds,
            first_byte_seconds=first_byte,
            last_byte_seconds=last_byte,
        )
        services.access_log.write(
            AccessRecord(
                utc_timestamp(),
                self.snapshot.gateway_id_upper,
                listener,
                self.rule_name,
                pool,
                settings,
                services.instance_id,
                client.client_ip,
                client.client_port,
                head.method.decode("latin-1"),
                head.target.decode("latin-1"),
                path.decode("latin-1"),
                query.decode("latin-1"),
                (header_value(head.headers, b"user-agent") or b"").decode("latin-1"),
                self.status,
                f"HTTP/{head.http_version}",
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
                (header_value(head.headers, b"host") or b"").decode("latin-1"),
                self.host,
                self.error_info,
                *_client_certificate_fields(client.client_verdict),
                "" if self.waf_seconds is None else f"{self.waf_seconds:.6f}",
                self.waf_mode,
            )
        )


def _client_certificate_fields(verdict: ClientVerdict | None) -> tuple[str, str, str]:
    """The access log's sslClientVerify, sslClientCertificateFingerprint and
    sslClientCertificateIssuerName."""
    if verdict is None:
        return ("", "", "")
    variables = verdict.variables
    return (
        verdict.verification,
        variables.get("client_certificate_fingerprint", ""),
        variables.get("client_certificate_issuer", ""),
    )
