"""The request path as routing sees it, and as the backend receives it (hardening.md §1.8).

One normal form, so a path rule cannot be bypassed by spelling: percent-encodings of
unreserved characters are decoded (`%61` is `a`, `%2e` is `.`), the others keep their meaning
and get upper-case hex (`%2f` -> `%2F`: an encoded slash is a character, not a separator), and
dot-segments are removed (RFC 3986 §5.2.4). What cannot be normalized safely is refused with
400: an invalid or truncated percent-encoding, an encoded NUL, a fragment, a backslash (some
servers take it for a slash), and dot-segments that climb above the root. Empty segments (`//`)
are kept: collapsing them would change what the backend sees. The query is not touched.

| received | routed and forwarded |
| --- | --- |
| `/api/../web/x` | `/web/x` |
| `/%61pi/x`, `/api/./x` | `/api/x` |
| `/api%2fx` | `/api%2Fx` (no separator) |
| `/a/../../x`, `/%2e%2e/x` | 400 |
| `/%zz`, `/%`, `/%0`, `/%00`, `/x#f`, `/x\\y` | 400 |
"""

from __future__ import annotations

import functools

from appgw.core.request import Reject

# Unreserved characters (RFC 3986 §2.3): their encoding means nothing and is decoded.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset(b"0123456789ABCDEFabcdef")
_INVALID = Reject(400, "ERRORINFO_REQUEST_URI_INVALID")


@functools.lru_cache(maxsize=4096)  # paths repeat; a request costs a dict lookup then
def normalize_path(path: bytes) -> bytes | Reject:
    if b"%" not in path and b"." not in path:
        return path if b"#" not in path and b"\\" not in path else _INVALID
    decoded = _decode_unreserved(path)
    if decoded is None:
        return _INVALID
    return _remove_dot_segments(decoded)


def _decode_unreserved(path: bytes) -> bytes | None:
    if b"#" in path or b"\\" in path:
        return None
    out = bytearray()
    index, size = 0, len(path)
    while index < size:
        byte = path[index]
        if byte != 0x25:  # '%'
            out.append(byte)
            index += 1
            continue
        pair = path[index + 1 : index + 3]
        if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            return None
        value = int(pair, 16)
        if value == 0:
            return None
        if value in _UNRESERVED:
            out.append(value)
        else:
            out += b"%" + pair.upper()
        index += 3
    return bytes(out)


def _remove_dot_segments(path: bytes) -> bytes | Reject:
    segments = path.split(b"/")
    kept: list[bytes] = []
    for position, segment in enumerate(segments[1:], start=1):
        last = position == len(segments) - 1
        if segment == b".":
            if last:
                kept.append(b"")
            continue
        if segment == b"..":
            if not kept:
                return _INVALID  # above the root
            kept.pop()
            if last:
                kept.append(b"")
            continue
        kept.append(segment)
    return b"/" + b"/".join(kept)
