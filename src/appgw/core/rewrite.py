"""Rewrite rules applied to one request and its response (Azure's rewrite rule sets).

Conditions are evaluated on the request as the client sent it (and the response as the backend
sent it), not on what earlier rules rewrote, so the order of rules changes which value wins but
never which rules apply. A rule applies when all its conditions match (a negated condition when
its pattern does not); an absent header matches no pattern, so a condition can test presence.
Rules run in `ruleSequence` order; for the same header the last applying rule wins.

Every value comes out as bytes checked for CR, LF, NUL and other control characters: a value
built from what a client sent can never split a header or a request line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from appgw.compile.rewrite import CompiledRewriteRule, HeaderAction, RewriteSet
from appgw.core.http import Header, header_value
from appgw.core.path import normalize_path
from appgw.core.request import Reject
from appgw.model.rewrite import COOKIE_PREFIX, Kind, Reference

# A reroute re-evaluates the path map, whose new path rule may have a rewrite set that reroutes
# again: Azure ends such a loop with a 500. Ten passes are far more than any real chain.
MAX_REWRITE_PASSES = 10
# Bytes a rewritten value may not hold: C0 controls but HTAB, and DEL (RFC 9110 §5.5).
_CONTROL = bytes(range(0x20)).replace(b"\t", b"") + b"\x7f"
_LOOP = Reject(500, "ERRORINFO_REWRITE_LOOP", close=False)
_BAD_VALUE = Reject(400, "ERRORINFO_REWRITE_INVALID_VALUE", close=False)


@dataclass(slots=True)
class RequestFacts:
    """What a rewrite may read about a request; filled by the exchange."""

    method: bytes
    target: bytes  # as received
    path: bytes  # normalized (what routing matched): var_uri_path
    query: bytes
    host: str  # normalized, without port
    headers: Sequence[Header]
    client_ip: str
    client_port: int
    server_port: int
    https: bool
    tls_version: str
    tls_cipher: str
    http_version: str
    received_bytes: int
    # The client certificate's variables (mutual TLS); without one, only the verification.
    client_certificate: dict[str, str] = field(
        default_factory=lambda: {"client_certificate_verification": "NONE"}
    )


@dataclass(slots=True)
class ResponseFacts:
    status: int
    headers: Sequence[Header]
    sent_bytes: int


@dataclass(slots=True)
class RequestRewrite:
    """What the request rules decided: header edits (lower-case name -> (name, value), value
    None to delete), and the URL when a rule rewrote it."""

    headers: dict[bytes, tuple[bytes, bytes | None]] = field(default_factory=dict)
    path: bytes | None = None
    query: bytes | None = None
    reroute: bool = False


Captures = dict[str, tuple[str | None, ...]]


def rewrite_request(rules: RewriteSet, facts: RequestFacts) -> RequestRewrite | Reject | None:
    """The request rules of `rules` applied to `facts`; None when none applied."""
    if not rules.request_rules:
        return None
    result: RequestRewrite | None = None
    for rule in rules.request_rules:
        captures = _matched(rule, facts, None)
        if captures is None:
            continue
        if result is None:
            result = RequestRewrite()
        edits = _header_edits(rule.request_headers, facts, None, captures)
        if edits is None:
            return _BAD_VALUE
        result.headers.update(edits)
        url = rule.url
        if url is None:
            continue
        if url.path is not None:
            path = _render(url.path, facts, None, captures)
            if path is None:
                return _BAD_VALUE
            normalized = normalize_path(path if path.startswith(b"/") else b"/" + path)
            if isinstance(normalized, Reject):
                return _BAD_VALUE
            result.path = normalized
        if url.query is not None:
            query = _render(url.query, facts, None, captures)
            if query is None or b"#" in query or b" " in query:
                return _BAD_VALUE
            result.query = query
        result.reroute |= url.reroute
    return result


def rewrite_and_route(
    rules: RewriteSet | None,
    facts: RequestFacts,
    route_again: Callable[[bytes, bytes], tuple[RewriteSet | None, bool]],
) -> RequestRewrite | Reject | None:
    """The request rules, and Azure's reroute: with a rewritten URL and 'reroute', the URL
    path map is evaluated again (`route_again(path, query)` routes the exchange anew and gives
    the new target's rewrite set, and whether it is a path rule), whose rules then apply to the
    rewritten request in turn. Header edits of every pass are kept, later ones winning."""
    total: RequestRewrite | None = None
    for _ in range(MAX_REWRITE_PASSES):
        if rules is None:
            return total
        outcome = rewrite_request(rules, facts)
        if outcome is None or isinstance(outcome, Reject):
            return outcome if outcome is not None else total
        if total is None:
            total = outcome
        else:
            total.headers.update(outcome.headers)
            total.path = outcome.path if outcome.path is not None else total.path
            total.query = outcome.query if outcome.query is not None else total.query
        if not outcome.reroute or (outcome.path is None and outcome.query is None):
            return total
        facts.path = total.path if total.path is not None else facts.path
        facts.query = total.query if total.query is not None else facts.query
        rules, path_based = route_again(facts.path, facts.query)
        if not path_based:
            return total
    return _LOOP


def rewrite_response(
    rules: RewriteSet, request: Callable[[], RequestFacts], response: ResponseFacts
) -> dict[bytes, tuple[bytes, bytes | None]] | None:
    """Response header edits; None when none applied. `request` gives the request's facts
    when a rule needs them (a rule of plain values without conditions does not). A value that
    would be unsafe is not set (the header is left out): it came from the backend, and the
    response is already on its way."""
    edits: dict[bytes, tuple[bytes, bytes | None]] | None = None
    for rule in rules.response_rules:
        if rule.static_response_edits is not None:
            edits = {**edits, **rule.static_response_edits} if edits else rule.static_response_edits
            continue
        facts = request()
        captures = _matched(rule, facts, response)
        if captures is None:
            continue
        edits = dict(edits) if edits else {}
        for action in rule.response_headers:
            if action.value is None:
                edits[action.lowered] = (action.name, None)
                continue
            value = _render(action.value, facts, response, captures)
            edits[action.lowered] = (action.name, value)  # unsafe: None, so deleted
    return edits


def edited_headers(
    headers: Sequence[Header], edits: dict[bytes, tuple[bytes, bytes | None]]
) -> list[Header]:
    """`headers` with the edits applied: a set header replaces every header of that name (at
    the first one's place), a deleted one goes; new ones are appended."""
    out: list[Header] = []
    placed: set[bytes] = set()
    for name, value in headers:
        lowered = name.lower()
        edit = edits.get(lowered)
        if edit is None:
            out.append((name, value))
        elif lowered not in placed:
            placed.add(lowered)
            if edit[1] is not None:
                out.append((edit[0], edit[1]))
    out += (
        (name, value)
        for lowered, (name, value) in edits.items()
        if lowered not in placed and value is not None
    )
    return out


# --- evaluation ------------------------------------------------------------------------------


def _matched(
    rule: CompiledRewriteRule, request: RequestFacts, response: ResponseFacts | None
) -> Captures | None:
    """The captures of the rule's conditions when all match, else None."""
    captures: Captures = {}
    for condition in rule.conditions:
        value = _value(condition.variable, request, response)
        found = condition.pattern.search(value) if value is not None else None
        if condition.negate:
            if found is not None:
                return None
            continue
        if found is None:
            return None
        captures.setdefault(condition.variable.variable, found.groups())
    return captures


def _header_edits(
    actions: tuple[HeaderAction, ...],
    request: RequestFacts,
    response: ResponseFacts | None,
    captures: Captures,
) -> dict[bytes, tuple[bytes, bytes | None]] | None:
    edits: dict[bytes, tuple[bytes, bytes | None]] = {}
    for action in actions:
        if action.value is None:
            edits[action.lowered] = (action.name, None)
            continue
        value = _render(action.value, request, response, captures)
        if value is None:
            return None
        edits[action.lowered] = (action.name, value)
    return edits


def _render(
    template: tuple[bytes | Reference, ...],
    request: RequestFacts,
    response: ResponseFacts | None,
    captures: Captures,
) -> bytes | None:
    """The template's bytes, or None when they would hold a control character."""
    parts: list[bytes] = []
    for part in template:
        if isinstance(part, bytes):
            parts.append(part)
            continue
        if part.group is not None:
            groups = captures.get(part.variable, ())
            text = groups[part.group - 1] if part.group <= len(groups) else None
        else:
            text = _value(part, request, response)
        if text:
            parts.append(_encode(text))
    rendered = b"".join(parts)
    if rendered.translate(None, _CONTROL) != rendered:
        return None
    return rendered


def _encode(text: str) -> bytes:
    """Values taken from the message were decoded as latin-1: back to their own bytes."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


def _value(
    reference: Reference, request: RequestFacts, response: ResponseFacts | None
) -> str | None:
    """The variable's value as text (None: an absent header)."""
    if reference.kind is Kind.REQUEST_HEADER:
        return _header(request.headers, reference.name)
    if reference.kind is Kind.RESPONSE_HEADER:
        return _header(response.headers, reference.name) if response is not None else None
    name = reference.name
    if name.startswith(COOKIE_PREFIX):
        return _cookie(request.headers, name[len(COOKIE_PREFIX) :])
    if response is not None:
        if name == "http_status":
            return str(response.status)
        if name == "sent_bytes":
            return str(response.sent_bytes)
    return _SERVER_VARIABLES[name](request)


def _header(headers: Sequence[Header], name: str) -> str | None:
    value = header_value(headers, name.lower().encode("latin-1"))
    return value.decode("latin-1") if value is not None else None


def _cookie(headers: Sequence[Header], wanted: str) -> str:
    for name, value in headers:
        if name.lower() != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            key, _, cookie = pair.strip().partition("=")
            if key == wanted:
                return cookie
    return ""


def _forwarded_for_proxy(facts: RequestFacts) -> str:
    sent = [v.decode("latin-1") for n, v in facts.headers if n.lower() == b"x-forwarded-for"]
    return ", ".join([*sent, facts.client_ip])


_SERVER_VARIABLES: dict[str, Callable[[RequestFacts], str]] = {
    "add_x_forwarded_for_proxy": _forwarded_for_proxy,
    "ciphers_used": lambda f: f.tls_cipher,
    "client_ip": lambda f: f.client_ip,
    "client_port": lambda f: str(f.client_port),
    "client_user": lambda f: "",
    "host": lambda f: f.host,
    "http_method": lambda f: f.method.decode("latin-1"),
    "http_version": lambda f: f"HTTP/{f.http_version}",
    "query_string": lambda f: f.query.decode("latin-1"),
    "request_query": lambda f: f.query.decode("latin-1"),
    "received_bytes": lambda f: str(f.received_bytes),
    "request_scheme": lambda f: "https" if f.https else "http",
    "request_uri": lambda f: f.target.decode("latin-1"),
    "server_port": lambda f: str(f.server_port),
    "ssl_connection_protocol": lambda f: f.tls_version,
    "ssl_enabled": lambda f: "On" if f.https else "",
    "uri_path": lambda f: f.path.decode("latin-1"),
    # Before the response: what is known then (Azure's nginx gives the same).
    "http_status": lambda f: "",
    "sent_bytes": lambda f: "0",
}


def _client_certificate(name: str) -> Callable[[RequestFacts], str]:
    return lambda facts: facts.client_certificate.get(name, "")


for _name in (
    "client_certificate",
    "client_certificate_end_date",
    "client_certificate_fingerprint",
    "client_certificate_issuer",
    "client_certificate_serial",
    "client_certificate_start_date",
    "client_certificate_subject",
    "client_certificate_verification",
):
    _SERVER_VARIABLES[_name] = _client_certificate(_name)
