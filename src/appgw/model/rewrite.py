"""The language of rewrite rule sets, as Azure's: variables, value templates and patterns.

A condition checks one variable: a server variable (`var_uri_path`), a request header
(`http_req_User-Agent`) or a response header (`http_resp_Location`). A header value or a URL
part is a template: text with references in braces to the same three kinds, optionally with the
number of a capture group of the rule's condition on that variable (`{var_uri_path_1}`,
`{http_resp_Location_2}`). Patterns are RE2 (Azure: "use RE2 compatible expressions"): matching
takes time linear in the input, so no pattern a user writes can stall a worker.

Parsed here once, for the validation and the compile alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

import re2


class Phase(Enum):
    """When a variable has its value: with the request, or only once the response came."""

    REQUEST = "request"
    RESPONSE = "response"


class Kind(Enum):
    SERVER = "var_"
    REQUEST_HEADER = "http_req_"
    RESPONSE_HEADER = "http_resp_"


# Azure's server variables (rewrite-http-headers-url.md) that appgw provides, with when each is
# known. Not provided: ciphers_supported (the client's offer is not kept after the handshake)
# and client_tcp_rtt (no TCP_INFO read per request); a rule naming them is refused by name.
SERVER_VARIABLES: dict[str, Phase] = {
    "add_x_forwarded_for_proxy": Phase.REQUEST,
    "ciphers_used": Phase.REQUEST,
    "client_ip": Phase.REQUEST,
    "client_port": Phase.REQUEST,
    "client_user": Phase.REQUEST,  # the gateway does no HTTP authentication: always empty
    "host": Phase.REQUEST,
    "http_method": Phase.REQUEST,
    "http_version": Phase.REQUEST,
    "query_string": Phase.REQUEST,
    "received_bytes": Phase.REQUEST,
    "request_query": Phase.REQUEST,
    "request_scheme": Phase.REQUEST,
    "request_uri": Phase.REQUEST,
    "server_port": Phase.REQUEST,
    "ssl_connection_protocol": Phase.REQUEST,
    "ssl_enabled": Phase.REQUEST,
    "uri_path": Phase.REQUEST,
    "client_certificate": Phase.REQUEST,
    "client_certificate_end_date": Phase.REQUEST,
    "client_certificate_fingerprint": Phase.REQUEST,
    "client_certificate_issuer": Phase.REQUEST,
    "client_certificate_serial": Phase.REQUEST,
    "client_certificate_start_date": Phase.REQUEST,
    "client_certificate_subject": Phase.REQUEST,
    "client_certificate_verification": Phase.REQUEST,
    "http_status": Phase.RESPONSE,
    "sent_bytes": Phase.RESPONSE,
}
NOT_PROVIDED = {
    "ciphers_supported": "the client's cipher offer is not kept after the TLS handshake",
    "client_tcp_rtt": "appgw does not read the connection's TCP_INFO per request",
}
COOKIE_PREFIX = "cookie_"  # var_cookie_<name>: the value of that request cookie
# RFC 9110 tchar: what a header name may hold.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Azure forwards request header names of letters, digits and '-' only (others are dropped).
REQUEST_HEADER_NAME = re.compile(r"[0-9A-Za-z-]+")
_CAPTURE = re.compile(r"^(?P<base>.+)_(?P<group>[0-9]+)$")
_REFERENCE = re.compile(r"\{((?:var_|http_req_|http_resp_)[^{}\s]+)\}")
# RE2's own memory bound for one compiled pattern (its default is 8 MiB); 1 MiB holds any
# pattern a rewrite needs and bounds what 40 conditions x 400 sets may take.
PATTERN_MAX_MEMORY = 1 << 20


@dataclass(frozen=True, slots=True)
class Reference:
    """A variable, as a condition names it or a template refers to it."""

    kind: Kind
    name: str  # a server variable's name, or a header's name as written
    group: int | None = None  # the capture group of the rule's condition on this variable

    @property
    def variable(self) -> str:
        """As a condition names it (`var_uri_path`): captures are keyed by this spelling."""
        return self.kind.value + self.name

    @property
    def phase(self) -> Phase:
        if self.kind is Kind.RESPONSE_HEADER:
            return Phase.RESPONSE
        if self.kind is Kind.SERVER:
            return SERVER_VARIABLES.get(self.name, Phase.REQUEST)
        return Phase.REQUEST


Template = tuple[str | Reference, ...]


class RewriteSyntaxError(ValueError):
    """What is wrong with a variable, a template or a pattern, in one sentence."""


def parse_variable(text: str) -> Reference:
    """A condition's variable; no capture group."""
    return _reference(text, allow_group=False)


def parse_template(text: str) -> Template:
    """Text and references; `{` not opening a known kind of reference is text."""
    parts: list[str | Reference] = []
    position = 0
    for found in _REFERENCE.finditer(text):
        if found.start() > position:
            parts.append(text[position : found.start()])
        parts.append(_reference(found[1], allow_group=True))
        position = found.end()
    if position < len(text):
        parts.append(text[position:])
    return tuple(parts)


def compile_pattern(pattern: str, *, ignore_case: bool) -> Any:
    """The RE2 pattern, or RewriteSyntaxError with RE2's reason (a look-around or a back
    reference: constructs whose matching time can explode, which RE2 leaves out)."""
    try:
        return compile_re2(pattern, ignore_case=ignore_case)
    except re2.error as error:
        raise RewriteSyntaxError(
            f"'{pattern}' is not an RE2 regular expression ({re2_reason(error)}); Azure's "
            "patterns are RE2: no look-ahead, look-behind or back references"
        ) from None


def re2_reason(error: Exception) -> str:
    """RE2's reason for refusing a pattern, as text."""
    reason = error.args[0] if error.args else error
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def compile_re2(pattern: str, *, ignore_case: bool) -> Any:
    """The RE2 pattern; raises re2.error."""
    options = re2.Options()
    options.log_errors = False  # the reason goes into the diagnostic, not to stderr
    options.case_sensitive = not ignore_case
    options.max_mem = PATTERN_MAX_MEMORY
    return re2.compile(pattern, options=options)


def is_header_name(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None


def _reference(text: str, *, allow_group: bool) -> Reference:
    for kind in (Kind.SERVER, Kind.REQUEST_HEADER, Kind.RESPONSE_HEADER):
        if text.startswith(kind.value):
            name = text[len(kind.value) :]
            break
    else:
        raise RewriteSyntaxError(
            f"'{text}' is not a variable: use var_<server variable>, http_req_<header> or "
            "http_resp_<header>"
        )
    group = None
    if allow_group:
        captured = _CAPTURE.match(name)
        if captured is not None and (kind is not Kind.SERVER or _is_server_variable(captured[1])):
            name, group = captured["base"], int(captured["group"])
    if kind is Kind.SERVER:
        if name in NOT_PROVIDED:
            raise RewriteSyntaxError(
                f"the server variable '{name}' is not available in appgw: {NOT_PROVIDED[name]}"
            )
        if not _is_server_variable(name):
            raise RewriteSyntaxError(
                f"'{name}' is not a server variable; known: "
                + ", ".join(sorted(SERVER_VARIABLES))
                + ", cookie_<name>"
            )
    elif not is_header_name(name):
        raise RewriteSyntaxError(f"'{name}' is not a header name (RFC 9110 token characters)")
    return Reference(kind, name, group)


def _is_server_variable(name: str) -> bool:
    return name in SERVER_VARIABLES or (
        name.startswith(COOKIE_PREFIX) and len(name) > len(COOKIE_PREFIX)
    )
