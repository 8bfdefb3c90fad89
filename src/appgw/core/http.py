"""HTTP/1.1 pieces of the proxy that need no I/O: header hygiene, framing, error pages.

Everything here is per request, so it works on bytes, avoids regexes, and builds each head in
one list joined once.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

Header = tuple[bytes, bytes]

# Limits (Azure: max URL 32 KB, max request header size 32 KB).
MAX_URL_BYTES = 32 * 1024
MAX_HEADER_BYTES = 32 * 1024
# A request may not have more header fields than this; bounds per-request work.
MAX_HEADER_COUNT = 200

# Hop-by-hop fields (RFC 9110 §7.6.1) plus the de-facto ones proxies strip.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# Headers the gateway sets itself; a client's copies are dropped so they cannot be spoofed.
GATEWAY_SET = frozenset(
    {
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-original-host",
        b"x-original-url",
        b"x-appgw-trace-id",
        b"content-length",
        b"host",
    }
)
# Letters, digits and '-': what bytes.translate deletes to find any other character in a name.
_TOKEN_NAME = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"

STATUS_TEXT = {
    100: b"Continue",
    101: b"Switching Protocols",
    200: b"OK",
    301: b"Moved Permanently",
    302: b"Found",
    303: b"See Other",
    307: b"Temporary Redirect",
    400: b"Bad Request",
    404: b"Not Found",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    414: b"URI Too Long",
    421: b"Misdirected Request",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


# Its own generator, seeded from the OS when the worker starts (workers are separate processes).
_random_bits = random.Random().getrandbits


def new_trace_id() -> str:
    """Azure's X-AppGW-Trace-Id: 32 hex characters, no dashes.

    A correlation id, not a secret: Python's generator (seeded from the OS) saves the
    getrandom system call per request that os.urandom costs.
    """
    return f"{_random_bits(128):032x}"


def connection_tokens(headers: Sequence[Header]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(token.strip().lower() for token in value.split(b","))
    return frozenset(tokens)


def forwardable_request_headers(headers: Sequence[Header]) -> list[Header]:
    """The client's headers minus hop-by-hop, gateway-set and oddly named ones.

    Azure drops request header names with characters other than letters, digits and '-';
    that also closes the underscore/space smuggling tricks some backends fall for.
    """
    listed = connection_tokens(headers)
    kept: list[Header] = []
    for name, value in headers:
        lower = name.lower()
        if (
            lower in HOP_BY_HOP
            or lower in GATEWAY_SET
            or lower in listed
            or name.translate(None, _TOKEN_NAME)  # a character other than those
        ):
            continue
        kept.append((name, value))
    return kept


def end_to_end_response_headers(
    headers: Sequence[Header],
) -> tuple[list[Header], bytes | None, bool]:
    """The backend's end-to-end headers (no hop-by-hop ones, none its Connection names, no
    Content-Length: the caller frames the body), plus what framing needs: the first
    Content-Length and whether a Transfer-Encoding says chunked."""
    listed = connection_tokens(headers)
    kept: list[Header] = []
    length: bytes | None = None
    chunked = False
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length":
            if length is None:
                length = value
        elif lower in HOP_BY_HOP:
            if lower == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        elif lower not in listed:
            kept.append((name, value))
    return kept, length, chunked


def forwardable_response_head(
    first_line: bytes, headers: Sequence[Header]
) -> tuple[list[bytes], bytes | None, bool]:
    """The status line and the backend's end-to-end headers as pieces of one HTTP/1.1 buffer,
    with end_to_end_response_headers' length and chunked."""
    kept, length, chunked = end_to_end_response_headers(headers)
    parts = [first_line, b"\r\n"]
    for name, value in kept:
        parts += (name, b": ", value, b"\r\n")
    return parts, length, chunked


def header_value(headers: Iterable[Header], wanted: bytes) -> bytes | None:
    for name, value in headers:
        if name.lower() == wanted:
            return value
    return None


def serialize_head(first_line: bytes, headers: Iterable[Header]) -> bytes:
    parts = [first_line, b"\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def status_line(status: int, reason: bytes | None = None) -> bytes:
    return b"HTTP/1.1 %d %s" % (status, reason or STATUS_TEXT.get(status, b"Unknown"))


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def error_page(status: int) -> bytes:
    """A small HTML page, in the style Azure's gateway answers with."""
    title = b"%d %s" % (status, STATUS_TEXT.get(status, b"Error"))
    return (
        b"<html>\r\n<head><title>" + title + b"</title></head>\r\n<body>\r\n<center><h1>"
        + title + b"</h1></center>\r\n<hr><center>appgw</center>\r\n</body>\r\n</html>\r\n"
    )  # fmt: skip


def error_response(status: int, *, close: bool, body: bytes | None = None) -> bytes:
    payload = error_page(status) if body is None else body
    headers: list[Header] = [
        (b"Content-Type", b"text/html"),
        (b"Content-Length", str(len(payload)).encode()),
    ]
    if close:
        headers.append((b"Connection", b"close"))
    return serialize_head(status_line(status), headers) + payload


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Request target -> (path, query without '?')."""
    path, _, query = target.partition(b"?")
    return path, query


def backend_path(path: bytes, override: str | None, matched_prefix: str) -> bytes:
    """Azure's path override (spec §7.1): basic rule '/home/' + override '/override/' ->
    '/override/home/'; a path rule '/pathrule*' strips its matched prefix first."""
    if override is None:
        return path
    rest = path
    if matched_prefix and path.lower().startswith(matched_prefix.lower().encode()):
        rest = path[len(matched_prefix) :]
    if not rest.startswith(b"/"):
        rest = b"/" + rest
    return override.rstrip("/").encode() + rest
