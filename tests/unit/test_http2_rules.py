"""The HTTP/2 decisions without I/O (core/http2.py) and the limits' option (core/limits.py)."""

from __future__ import annotations

import pytest

from appgw.core.http2 import (
    MAX_FIELD_BYTES,
    FloodGuard,
    response_fields,
    stream_request,
    trailer_section,
)
from appgw.core.limits import Http2Limits
from appgw.core.request import Framing, Reject, RequestHead

PSEUDO = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"h2.test:8443")]


def request(
    *extra: tuple[bytes, bytes], path: bytes = b"/a?b=1", end_stream: bool = True
) -> tuple[RequestHead, Framing] | Reject:
    return stream_request([*PSEUDO, (b":path", path), *extra], end_stream=end_stream)


def test_authority_becomes_host_and_the_head_is_http2() -> None:
    decided = request((b"accept", b"*/*"))
    assert not isinstance(decided, Reject)
    head, framing = decided
    assert isinstance(head, RequestHead)
    assert head.method == b"GET" and head.target == b"/a?b=1" and head.http_version == "2.0"
    assert head.headers[0] == (b"host", b"h2.test:8443")
    assert not framing.has_body


def test_a_host_header_sent_is_kept_as_is() -> None:
    decided = request((b"host", b"h2.test:8443"))
    assert not isinstance(decided, Reject)
    assert [v for n, v in decided[0].headers if n == b"host"] == [b"h2.test:8443"]


def test_a_body_without_length_is_chunked_to_the_backend_and_one_with_length_is_not() -> None:
    unknown = request(end_stream=False)
    known = request((b"content-length", b"12"), end_stream=False)
    assert not isinstance(unknown, Reject) and not isinstance(known, Reject)
    assert unknown[1].chunked and unknown[1].has_body
    assert not known[1].chunked and known[1].content_length == b"12"


@pytest.mark.parametrize(
    ("extra", "path", "status"),
    [
        ((b"x-big", b"v" * (MAX_FIELD_BYTES + 1)), b"/", 431),
        ((b"x", b"y"), b"/" + b"a" * (32 * 1024), 414),
        ((b"content-length", b"1x"), b"/", 400),
    ],
    ids=["field-over-8k", "path-over-32k", "bad-length"],
)
def test_limits_and_bad_lengths_are_refused_on_the_stream(
    extra: tuple[bytes, bytes], path: bytes, status: int
) -> None:
    decided = request(extra, path=path, end_stream=False)
    assert isinstance(decided, Reject) and decided.status == status and not decided.close


def test_two_different_content_lengths_and_plain_http_scheme_are_refused() -> None:
    twice = request((b"content-length", b"1"), (b"content-length", b"2"), end_stream=False)
    assert isinstance(twice, Reject) and twice.status == 400
    plain = stream_request(
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")],
        end_stream=True,
    )
    assert isinstance(plain, Reject) and plain.status == 400


def test_response_fields_drop_hop_by_hop_and_keep_a_stated_length() -> None:
    fields, no_body = response_fields(
        200,
        [
            (b"Content-Type", b"text/plain"),
            (b"Connection", b"X-Secret"),
            (b"X-Secret", b"1"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Content-Length", b"5"),
        ],
        set_cookie=[(b"Set-Cookie", b"ApplicationGatewayAffinity=x")],
        method=b"GET",
    )
    assert fields == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"ApplicationGatewayAffinity=x"),
        (b"content-length", b"5"),
    ]
    assert not no_body


def test_a_chunked_response_has_no_length_and_head_has_no_body() -> None:
    fields, _ = response_fields(
        200, [(b"Transfer-Encoding", b"chunked")], set_cookie=(), method=b"GET"
    )
    assert fields == [(b":status", b"200")]
    _, no_body = response_fields(200, [], set_cookie=(), method=b"HEAD")
    assert no_body


def test_trailers_keep_end_to_end_fields_only() -> None:
    section = trailer_section(
        [(b"x-checksum", b"abc"), (b"content-length", b"1"), (b"host", b"evil"), (b"te", b"x")]
    )
    assert section == b"x-checksum: abc\r\n"


def test_resets_are_a_flood_only_past_the_limit_and_past_completed_streams() -> None:
    guard = FloodGuard(Http2Limits(max_resets=3, flood_window=10))
    for _ in range(10):
        guard.count_completed(0.0)
    assert all(guard.count_reset(1.0) is None for _ in range(10))  # completes more than resets
    assert guard.count_reset(1.0) is not None  # 11 resets, 10 completed
    # A new window starts from nothing.
    assert all(guard.count_reset(20.0) is None for _ in range(3))
    assert guard.count_reset(20.0) is not None


def test_pings_settings_and_empty_frames_each_have_their_cap() -> None:
    guard = FloodGuard(Http2Limits(max_pings=2, max_settings=2, max_empty_frames=2))
    for count in (guard.count_ping, guard.count_settings, guard.count_empty):
        assert count(0.0) is None and count(0.0) is None
        assert count(0.0) is not None


def test_the_limits_option_round_trips_and_names_what_is_wrong() -> None:
    limits = Http2Limits.parse("max_concurrent_streams=8, flood_window=2.5")
    assert limits.max_concurrent_streams == 8 and limits.flood_window == 2.5
    assert Http2Limits.parse(limits.spec()) == limits
    assert Http2Limits.parse(Http2Limits().spec()) == Http2Limits()
    for spec, named in (
        ("streams=8", "'streams=8'"),
        ("max_resets", "'max_resets'"),
        ("max_resets=many", "max_resets wants a number"),
        ("max_pings=0", "max_pings must be positive"),
    ):
        with pytest.raises(ValueError, match=named):
            Http2Limits.parse(spec)
