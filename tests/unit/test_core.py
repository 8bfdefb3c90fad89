"""The data plane's decisions, called directly: no sockets, no event loop (appgw.core)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from appgw.compile.gateway import upstream_specs
from appgw.compile.matching import HostMatcher, PathMatcher
from appgw.compile.snapshot import (
    BackendMember,
    BackendSettings,
    Endpoint,
    ForwardTarget,
    ListenerTls,
    PathRoute,
    RedirectTarget,
    Site,
    Snapshot,
)
from appgw.core.balancer import Balancer
from appgw.core.forward import backend_request_head, client_address
from appgw.core.path import normalize_path
from appgw.core.request import Framing, Reject, RequestHead, admit, framing
from appgw.core.response import interim_head, response_head, upgrade_head
from appgw.core.retry import Attempt, Failure, Retry, after_failure
from appgw.core.routing import Forward, Redirect, redirect_location, route
from appgw.tls.trust import BackendTrust
from snapshots import PLAIN_SETTINGS, forward_target

SETTINGS = PLAIN_SETTINGS
MEMBERS = (BackendMember("10.0.0.1", False), BackendMember("10.0.0.2", False))


def target(name: str = "rule", settings: BackendSettings = SETTINGS) -> ForwardTarget:
    return forward_target(MEMBERS, settings, name)


def head(
    method: bytes = b"GET", target_: bytes = b"/", *headers: tuple[bytes, bytes]
) -> RequestHead:
    return RequestHead(method=method, target=target_, headers=list(headers))


def snapshot(endpoint: Endpoint | None = None) -> Snapshot:
    endpoints = {endpoint.key: endpoint} if endpoint else {}
    return Snapshot(
        seq=1, gateway_id="/gw", version=1, running=True, sku_v1=False, endpoints=endpoints
    )


# --- request checks ---------------------------------------------------------------------------


def test_admit_gives_the_normalized_host_or_a_reject() -> None:
    assert admit(head(b"GET", b"/", (b"Host", b"WWW.Contoso.com:443"))) == "www.contoso.com"
    assert admit(head(b"GET", b"/")) == Reject(400, "ERRORINFO_HTTP_NO_HOST_HEADER")
    http10 = head(b"GET", b"/")
    http10.http_version = "1.0"
    assert admit(http10) == ""
    two = head(b"GET", b"/", (b"Host", b"a"), (b"host", b"a"))
    assert admit(two) == Reject(400, "ERRORINFO_INVALID_HOST")
    assert admit(head(b"GET", b"/", (b"Host", b"a b"))) == Reject(400, "ERRORINFO_INVALID_HOST")
    trace = admit(head(b"TRACE", b"/", (b"Host", b"a")))
    assert trace == Reject(400, "ERRORINFO_INVALID_METHOD_TRACE")
    relative = admit(head(b"GET", b"index.html", (b"Host", b"a")))
    assert relative == Reject(400, "ERRORINFO_REQUEST_URI_INVALID")


def test_framing_of_bodies_and_upgrades() -> None:
    chunked = framing(head(b"POST", b"/", (b"Transfer-Encoding", b"chunked")), upgrade=False)
    assert chunked == Framing(chunked=True, content_length=None, has_body=True, websocket=False)
    sized = framing(head(b"POST", b"/", (b"Content-Length", b"5")), upgrade=False)
    assert isinstance(sized, Framing) and sized.content_length == b"5" and sized.has_body
    empty = framing(head(b"POST", b"/", (b"Content-Length", b"0")), upgrade=False)
    assert isinstance(empty, Framing) and not empty.has_body
    websocket = framing(head(b"GET", b"/", (b"Upgrade", b"WebSocket")), upgrade=True)
    assert isinstance(websocket, Framing) and websocket.websocket
    h2c = framing(head(b"GET", b"/", (b"Upgrade", b"h2c")), upgrade=True)
    assert isinstance(h2c, Framing) and not h2c.websocket
    both = head(b"GET", b"/", (b"Upgrade", b"websocket"), (b"Transfer-Encoding", b"chunked"))
    assert framing(both, upgrade=True) == Reject(400, "ERRORINFO_INVALID_REQUEST")
    old = head()
    old.http_version = "0.9"
    assert framing(old, upgrade=False) == Reject(400, "ERRORINFO_INVALID_VERSION")


# --- routing ----------------------------------------------------------------------------------


def endpoint_with(site: Site) -> Endpoint:
    return Endpoint(
        bind_host="127.0.0.1",
        port=80,
        https=False,
        sites=HostMatcher([(("www.contoso.com",), site)]),
        certificates=None,
        tls_policy=None,
    )


def test_route_by_host_then_path_keeps_the_matched_prefix() -> None:
    api, default = target("api"), target("default")
    paths = PathMatcher([(("/api/*",), api)], default)
    site = Site("listener", PathRoute("rule", paths))
    endpoint = endpoint_with(site)
    decision = route(endpoint, "www.contoso.com", b"/API/items", b"x=1")
    assert decision == Forward(site, api, "/api/")
    assert route(endpoint, "www.contoso.com", b"/other", b"") == Forward(site, default, "")
    assert route(endpoint, "www.fabrikam.com", b"/", b"") == Reject(
        404, "ERRORINFO_INVALID_HOST", close=False
    )


def test_redirects_to_a_listener_or_a_url() -> None:
    to_https = RedirectTarget("r", 301, None, "https", None, 443, True, True)
    assert redirect_location(to_https, "www.contoso.com", b"/a", b"q=1") == (
        b"https://www.contoso.com/a?q=1"
    )
    to_port = RedirectTarget("r", 302, None, "https", "secure.contoso.com", 8443, False, False)
    assert redirect_location(to_port, "x", b"/a", b"q=1") == b"https://secure.contoso.com:8443/"
    to_url = RedirectTarget("r", 307, "https://bing.com/", None, None, None, True, False)
    assert redirect_location(to_url, "x", b"/search", b"") == b"https://bing.com/search"
    site = Site("listener", to_https)
    decision = route(endpoint_with(site), "www.contoso.com", b"/a", b"")
    assert isinstance(decision, Redirect) and decision.location == b"https://www.contoso.com/a"


# --- balancer ---------------------------------------------------------------------------------


def test_choose_round_robins_skips_unhealthy_and_the_excluded_member() -> None:
    balancer, snap, forward = Balancer(), snapshot(), target()
    first = balancer.choose(snap, forward, [])
    second = balancer.choose(snap, forward, [])
    assert first and second and {first.member, second.member} == set(MEMBERS)
    avoided = balancer.choose(snap, forward, [], exclude=MEMBERS[0])
    assert avoided is not None and avoided.member == MEMBERS[1]
    balancer.unhealthy = frozenset({snap.health_key(forward, MEMBERS[1])})
    picks = {c.member for c in (balancer.choose(snap, forward, []) for _ in range(4)) if c}
    assert picks == {MEMBERS[0]}
    assert balancer.choose(snap, forward, [], exclude=MEMBERS[0]) is None


def test_affinity_cookie_sticks_and_is_set() -> None:
    balancer, snap = Balancer(), snapshot()
    sticky = target(settings=replace(SETTINGS, affinity_cookie="A"))
    chosen = balancer.choose(snap, sticky, [])
    assert chosen is not None and len(chosen.set_cookie) == 2
    cookie = chosen.set_cookie[0][1].split(b";")[0]
    for _ in range(3):
        again = balancer.choose(snap, sticky, [(b"Cookie", cookie)])
        assert again is not None and again.member == chosen.member and again.set_cookie == ()


# --- heads ------------------------------------------------------------------------------------


def test_backend_request_head_restates_framing_and_adds_azure_headers() -> None:
    request = head(
        b"POST",
        b"/api/items?x=1",
        (b"Host", b"www.contoso.com"),
        (b"Connection", b"keep-alive, X-Secret"),
        (b"X-Secret", b"drop me"),
        (b"X-Forwarded-For", b"203.0.113.9"),
        (b"Bad_Name", b"dropped"),
        (b"Content-Length", b"3"),
    )
    sized = framing(request, upgrade=False)
    assert isinstance(sized, Framing)
    built = backend_request_head(
        request,
        sized,
        path=b"/api/items",
        query=b"x=1",
        host_header=b"backend.internal",
        path_override="/v2/",
        matched_prefix="/api/",
        client=client_address("::1", 5000),
        https=True,
        port=443,
        trace_id="abc",
    )
    lines = built.split(b"\r\n")
    assert lines[0] == b"POST /v2/items?x=1 HTTP/1.1"
    assert b"Host: backend.internal" in lines
    assert b"X-Forwarded-For: 203.0.113.9, [::1]:5000" in lines
    assert b"X-Forwarded-Proto: https" in lines and b"X-Forwarded-Port: 443" in lines
    assert b"X-Original-Host: www.contoso.com" in lines
    assert b"X-Original-URL: /api/items?x=1" in lines
    assert b"Content-Length: 3" in lines
    assert not any(line.startswith((b"X-Secret", b"Bad_Name", b"Connection")) for line in lines)
    assert built.endswith(b"\r\n\r\n")


def test_response_framing_follows_the_request() -> None:
    headers = [(b"Content-Type", b"text/plain"), (b"Transfer-Encoding", b"chunked")]
    common = {"set_cookie": (), "method": b"GET", "keep_alive": True, "close_after": False}
    v11 = response_head(200, b"OK", headers, http_version="1.1", **common)
    assert v11.chunked and not v11.close and b"Transfer-Encoding: chunked" in v11.head
    v10 = response_head(200, b"OK", headers, http_version="1.0", **common)
    assert v10.close and not v10.chunked and b"Connection: close" in v10.head
    sized = response_head(
        200,
        b"OK",
        [(b"Content-Length", b"5")],
        http_version="1.1",
        **common,
    )
    assert b"Content-Length: 5" in sized.head and not sized.chunked
    head_request = {**common, "method": b"HEAD"}
    no_body = response_head(
        204,
        b"",
        [(b"Content-Length", b"5")],
        http_version="1.1",
        **head_request,
    )
    assert b"Content-Length" not in no_body.head
    assert interim_head(100, b"", [], "1.1") == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert interim_head(100, b"", [], "1.0") is None
    link = [(b"Link", b"</a.css>"), (b"Connection", b"x")]
    hints = interim_head(103, b"Early Hints", link, "1.1")
    assert hints == b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    switched = upgrade_head(101, b"Switching Protocols", [(b"Upgrade", b"websocket")], ())
    assert switched.endswith(b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")


# --- retry policy -----------------------------------------------------------------------------


def attempt(**changes: object) -> Attempt:
    values: dict[str, object] = {
        "method": b"GET",
        "body_sent": False,
        "retried": False,
        "reused": True,
        "members": 2,
        **changes,
    }
    return Attempt(**values)


def test_a_stale_pooled_connection_is_retried_once_for_idempotent_requests() -> None:
    lost = Failure.CONNECTION_LOST
    closed = "ERRORINFO_UPSTREAM_CLOSED_CONNECTION"
    assert after_failure(lost, attempt(), sku_v1=False, error_info=closed) == Retry(False)
    for refused in (
        attempt(method=b"POST"),
        attempt(body_sent=True),
        attempt(retried=True),
        attempt(reused=False),
    ):
        assert after_failure(lost, refused, sku_v1=False, error_info=closed) == Reject(
            502, closed, close=False
        )


def test_a_timeout_retries_another_member_on_v2_only() -> None:
    timeout = Failure.TIMEOUT
    info = "ERRORINFO_UPSTREAM_TIMED_OUT"
    assert after_failure(timeout, attempt(), sku_v1=False, error_info=info) == Retry(True)
    assert after_failure(timeout, attempt(members=1), sku_v1=False, error_info=info) == Reject(
        504, info, close=False
    )
    assert after_failure(timeout, attempt(), sku_v1=True, error_info=info) == Reject(
        502, info, close=False
    )


def test_a_connection_that_cannot_be_made_is_not_retried() -> None:
    connect = Failure.CONNECT
    info = "ERRORINFO_UPSTREAM_TIMED_OUT"
    assert after_failure(connect, attempt(), sku_v1=False, error_info=info).status == 504
    refused = "ERRORINFO_UPSTREAM_CONNECT_FAILED"
    assert after_failure(connect, attempt(), sku_v1=False, error_info=refused) == Reject(
        502, refused, close=False
    )


def test_upstream_specs_precompile_all_but_the_request_named_case() -> None:
    https = replace(SETTINGS, https=True, trust=BackendTrust(False))
    specs = upstream_specs(https, (BackendMember("10.0.0.1", False),), sku_v1=False)
    spec = specs["10.0.0.1"]
    assert spec.key is None and spec.identity.from_request
    key = spec.key_for("www.contoso.com")
    assert (key.sni, key.verify_name, key.address) == ("www.contoso.com",) * 2 + ("10.0.0.1",)
    named = upstream_specs(https, (BackendMember("b.internal", True),), sku_v1=False)
    assert named["b.internal"].key is not None
    assert named["b.internal"].key.sni == "b.internal"


# --- hostile input: framing, paths, misdirected requests (issue 12) --------------------------


@pytest.mark.parametrize(
    ("headers", "version", "expected"),
    [
        ([(b"Transfer-Encoding", b"chunked")], "1.1", None),
        ([(b"Transfer-Encoding", b"Chunked ")], "1.1", None),
        ([(b"Transfer-Encoding", b"gzip, chunked")], "1.1", 501),
        ([(b"Transfer-Encoding", b"xchunked")], "1.1", 400),
        ([(b"Transfer-Encoding", b"chunked, identity")], "1.1", 400),
        ([(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")], "1.1", 400),
        ([(b"Transfer-Encoding", b"chunked\x0b")], "1.1", 400),
        ([(b"Transfer-Encoding", b"chunked")], "1.0", 400),
        ([(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"3")], "1.1", 400),
        ([(b"Content-Length", b"3"), (b"Content-Length", b"3")], "1.1", 400),
        ([(b"Content-Length", b"3, 3")], "1.1", 400),
        ([(b"Content-Length", b"+3")], "1.1", 400),
        ([(b"Content-Length", b"1" * 20)], "1.1", 400),
        ([(b"Content-Length", b" 3\t")], "1.1", None),
    ],
)
def test_framing_accepts_one_clear_length_only(
    headers: list[tuple[bytes, bytes]], version: str, expected: int | None
) -> None:
    request = head(b"POST", b"/", *headers)
    request.http_version = version
    decided = framing(request, upgrade=False)
    if expected is None:
        assert isinstance(decided, Framing) and decided.has_body
    else:
        assert isinstance(decided, Reject) and decided.status == expected and decided.close


def test_absolute_form_must_name_the_host() -> None:
    same = head(b"GET", b"http://WWW.contoso.com/a?b", (b"Host", b"www.contoso.com"))
    assert admit(same) == "www.contoso.com" and same.target == b"/a?b"
    other = head(b"GET", b"http://www.fabrikam.com/a", (b"Host", b"www.contoso.com"))
    assert admit(other) == Reject(400, "ERRORINFO_INVALID_HOST")
    star = head(b"OPTIONS", b"*", (b"Host", b"a"))
    assert admit(star) == "a"
    assert admit(head(b"GET", b"*", (b"Host", b"a"))) == Reject(
        400, "ERRORINFO_REQUEST_URI_INVALID"
    )


@pytest.mark.parametrize(
    ("received", "routed"),
    [
        (b"/api/../web/x", b"/web/x"),
        (b"/%61pi/x", b"/api/x"),
        (b"/api/./x", b"/api/x"),
        (b"/api%2fx", b"/api%2Fx"),
        (b"/a/b/..", b"/a/"),
        (b"/web//x", b"/web//x"),
        (b"/a/../../x", None),
        (b"/%2e%2e/x", None),
        (b"/%zz", None),
        (b"/%", None),
        (b"/%0", None),
        (b"/%00", None),
        (b"/x#f", None),
        (b"/x\\y", None),
    ],
)
def test_normalize_path_table(received: bytes, routed: bytes | None) -> None:
    normalized = normalize_path(received)
    if routed is None:
        assert isinstance(normalized, Reject) and normalized.status == 400
    else:
        assert normalized == routed


SEGMENTS = st.lists(st.sampled_from(["api", "web", "a", "b", ".", "..", "x-y", "~z"]), max_size=6)


@st.composite
def spelled(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A path and one of its spellings: unreserved characters percent-encoded at random,
    hex in either case."""
    path = "/" + "/".join(draw(SEGMENTS))
    out = []
    for char in path:
        if char != "/" and draw(st.booleans()):
            code = f"%{ord(char):02x}"
            out.append(code.upper() if draw(st.booleans()) else code)
        else:
            out.append(char)
    return path.encode(), "".join(out).encode()


@settings(max_examples=400, deadline=None)
@given(spelled())
def test_every_spelling_of_a_path_routes_where_its_normal_form_does(
    pair: tuple[bytes, bytes],
) -> None:
    plain, encoded = pair
    assert normalize_path(encoded) == normalize_path(plain)
    normal = normalize_path(plain)
    if isinstance(normal, bytes):
        assert b"/./" not in normal + b"/" and b"/../" not in normal + b"/"
        api, web = target("api"), target("web")
        site = Site("listener", PathRoute("rule", PathMatcher([(("/api/*",), api)], web)))
        routed = route(endpoint_with(site), "www.contoso.com", normal, b"")
        assert isinstance(routed, Forward)
        assert (routed.target is api) == normal.lower().startswith(b"/api/")


def test_a_host_whose_listener_presents_another_certificate_is_misdirected() -> None:
    site_b = Site("b", target(), certificate="certb")
    endpoint = endpoint_with(site_b)
    assert route(endpoint, "www.contoso.com", b"/", b"", ListenerTls("certa", None)) == Reject(
        421, "ERRORINFO_MISDIRECTED_REQUEST", close=False
    )
    negotiated = ListenerTls("certb", None)
    assert isinstance(route(endpoint, "www.contoso.com", b"/", b"", negotiated), Forward)
    assert isinstance(route(endpoint, "www.contoso.com", b"/", b"", None), Forward)


def test_a_host_whose_listener_has_another_ssl_profile_is_misdirected() -> None:
    """Same certificate, another SSL profile: a connection that was not asked for a client
    certificate cannot reach a listener that requires one."""
    site = Site("mutual", target(), certificate="cert", ssl_profile="mutual")
    endpoint = endpoint_with(site)
    assert route(endpoint, "www.contoso.com", b"/", b"", ListenerTls("cert", None)) == Reject(
        421, "ERRORINFO_MISDIRECTED_REQUEST", close=False
    )
    negotiated = ListenerTls("cert", "mutual")
    assert isinstance(route(endpoint, "www.contoso.com", b"/", b"", negotiated), Forward)
