"""Request routing lookups of the data plane: listener by host, certificate by SNI, rule by path.

Every class here does its work in the constructor (dicts by name, by suffix and by prefix) so
that the per-request `match()`/`select()` costs a few dict lookups, however many listeners and
path rules there are (one per distinct pattern length), plus one precompiled regex call only for
unusual wildcards ('?', or '*' elsewhere than in front).
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "CertificateSelector",
    "HostMatcher",
    "PathMatch",
    "PathMatcher",
    "normalize_host",
]

T = TypeVar("T")

# DNS: a name is at most 253 characters in text form (RFC 1035 §2.3.4, without the root dot).
_MAX_HOST_LENGTH = 253
# TCP ports are 16-bit.
_MAX_PORT = 65535

# RFC 3986 host[:port], restricted to what a DNS name or an IP literal can be: labels of 1-63
# characters (RFC 1035) of letters, digits, '-' and '_' ('_' is common in internal names and
# harmless: no listener pattern can contain it, so such hosts only reach basic listeners).
_HOST_AND_PORT = re.compile(
    r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]"
    r"|(?P<name>[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?))"
    r"(?::(?P<port>[0-9]{0,5}))?"
)
# Leading/trailing whitespace a header parser may leave (RFC 9110 OWS).
_OPTIONAL_WHITESPACE = " \t"

# Azure's wildcard alphabet (spec §2.2): '*' is a run of one or more, '?' exactly one.
_WILDCARD_RUN = "[a-z0-9.-]+"
_WILDCARD_ONE = "[a-z0-9.-]"
_WILDCARD_RUN_PATTERN = re.compile(_WILDCARD_RUN)

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def normalize_host(raw: str | bytes) -> str | None:
    """Host header / SNI value -> lower-case name without port and trailing dot; IPv6 literal
    without brackets (canonical compressed form). None for an empty or syntactically invalid
    host (caller answers 400)."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    else:
        text = raw
    parsed = _HOST_AND_PORT.fullmatch(text.strip(_OPTIONAL_WHITESPACE))
    if parsed is None:
        return None
    port = parsed["port"]
    if port and int(port) > _MAX_PORT:
        return None
    name = parsed["name"]
    if name is None:
        try:
            return str(ipaddress.IPv6Address(parsed["ipv6"]))
        except ValueError:
            return None
    if name.endswith("."):
        name = name[:-1]
    if len(name) > _MAX_HOST_LENGTH:
        return None
    return name.lower()


def _fold_pattern(pattern: str) -> str:
    """Patterns compare like normalized hosts: lower case, no trailing dot."""
    folded = pattern.lower()
    return folded[:-1] if folded.endswith(".") else folded


def _is_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def _wildcard_expression(pattern: str) -> str:
    return "".join(
        _WILDCARD_RUN if char == "*" else _WILDCARD_ONE if char == "?" else re.escape(char)
        for char in pattern
    )


class _HostPatterns:
    """Host patterns of entries in evaluation order: exact names in a dict; wildcards of the
    usual form '*' + a literal suffix ('*.contoso.com') in a dict by suffix, looked up once per
    distinct suffix length, so the cost does not grow with the number of listeners; any other
    wildcard in one combined regex whose alternatives are in entry order (Python's alternation
    takes the first alternative that matches, so the regex answers with the earliest such entry).
    """

    __slots__ = (
        "exact",
        "first_wildcard",
        "suffix_lengths",
        "suffixes",
        "wildcard_entry",
        "wildcards",
    )

    def __init__(self, patterns_per_entry: Sequence[tuple[str, ...]]) -> None:
        self.exact: dict[str, int] = {}
        self.suffixes: dict[str, int] = {}
        expressions: list[str] = []
        # Group g of the combined regex belongs to entry wildcard_entry[g]; group 0 is unused.
        entry_of_group: list[int] = [-1]
        first_wildcard = len(patterns_per_entry)
        for index, patterns in enumerate(patterns_per_entry):
            for pattern in map(_fold_pattern, patterns):
                if not _is_wildcard(pattern):
                    self.exact.setdefault(pattern, index)
                    continue
                first_wildcard = min(first_wildcard, index)
                if pattern.startswith("*") and not _is_wildcard(pattern[1:]):
                    self.suffixes.setdefault(pattern[1:], index)
                else:
                    expressions.append(f"({_wildcard_expression(pattern)})")
                    entry_of_group.append(index)
        self.suffix_lengths = tuple(sorted({len(suffix) for suffix in self.suffixes}))
        self.wildcard_entry = tuple(entry_of_group)
        self.first_wildcard = first_wildcard
        self.wildcards = re.compile("|".join(expressions)) if expressions else None

    def first_wildcard_match(self, host: str) -> int | None:
        best: int | None = None
        end = len(host)
        for length in self.suffix_lengths:
            if length >= end:
                break  # '*' needs at least one character before the suffix
            index = self.suffixes.get(host[end - length :])
            if (
                index is not None
                and (best is None or index < best)
                and _WILDCARD_RUN_PATTERN.fullmatch(host, 0, end - length) is not None
            ):
                best = index
        if self.wildcards is not None:
            found = self.wildcards.fullmatch(host)
            if found is not None:
                # Every alternative is one capturing group, so a match always sets lastindex.
                index = self.wildcard_entry[found.lastindex or 0]
                if best is None or index < best:
                    best = index
        return best


class HostMatcher(Generic[T]):
    """Azure listener selection on one frontend IP:port.

    Entries are in evaluation order (v1: rule list order; v2: rule priority). Each entry has
    host patterns; an empty tuple is a basic listener that takes every host. `match(host)`
    returns the value of the FIRST entry in order whose patterns match, or None (v2 answers
    404). Patterns are Azure's: exact names, and wildcards where '*' matches one or more of
    [a-z0-9-.] (so it spans labels: '*.contoso.com' matches 'a.b.contoso.com' but not
    'contoso.com') and '?' exactly one such character; case-insensitive.
    """

    __slots__ = ("_basic", "_exact", "_first_wildcard", "_patterns", "_values")

    def __init__(self, entries: Sequence[tuple[tuple[str, ...], T]]) -> None:
        # Entries after the first basic listener can never win: it takes every host.
        self._basic = next(
            (index for index, (patterns, _value) in enumerate(entries) if not patterns),
            len(entries),
        )
        self._patterns = _HostPatterns([patterns for patterns, _value in entries[: self._basic]])
        self._exact = self._patterns.exact
        self._first_wildcard = self._patterns.first_wildcard
        # The extra None is the answer for "no entry" (index len(entries)).
        self._values: tuple[T | None, ...] = (*(value for _patterns, value in entries), None)

    def match(self, host: str) -> T | None:
        """`host` must already be normalized (normalize_host)."""
        index = self._exact.get(host, self._basic)
        if self._first_wildcard < index:
            wildcard = self._patterns.first_wildcard_match(host)
            if wildcard is not None and wildcard < index:
                index = wildcard
        return self._values[index]


class CertificateSelector(Generic[T]):
    """Which certificate (value T) to present for a TLS ClientHello on one IP:port (spec §2.3).

    Entries are the HTTPS listeners in evaluation order: (host patterns, requires SNI, value).
    With SNI: an exact host-name match of any listener wins, then the first wildcard match in
    evaluation order, then the basic listener. Without SNI, or when nothing matched: the basic
    listener's certificate; else v2 presents the first listener's, v1 resets the connection
    (None) when every listener requires SNI and otherwise presents the first listener that does
    not (v1 binds those certificates as the IP:port default).
    """

    __slots__ = ("_exact", "_fallback", "_patterns", "_values")

    def __init__(self, entries: Sequence[tuple[tuple[str, ...], bool, T]], *, sku_v1: bool) -> None:
        self._patterns = _HostPatterns([patterns for patterns, _require_sni, _value in entries])
        self._exact = self._patterns.exact
        self._values = tuple(value for _patterns, _require_sni, value in entries)
        basic = next(
            (i for i, (patterns, _sni, _value) in enumerate(entries) if not patterns), None
        )
        fallback: T | None = None
        if basic is not None:
            fallback = entries[basic][2]
        elif entries and not sku_v1:
            fallback = entries[0][2]
        elif entries:
            fallback = next((value for _p, require_sni, value in entries if not require_sni), None)
        self._fallback = fallback

    def select(self, server_name: str | None) -> T | None:
        """`server_name` must already be normalized (normalize_host); None = no SNI."""
        if server_name is not None:
            index = self._exact.get(server_name)
            if index is None:
                index = self._patterns.first_wildcard_match(server_name)
            if index is not None:
                return self._values[index]
        return self._fallback


@dataclass(frozen=True, slots=True)
class PathMatch(Generic[T]):
    value: T
    rule_index: int | None  # None: the path map's default
    # The literal part of the matched pattern ("" for the default), as written in the pattern;
    # it is as long as the part of the request path it matched, so path[len(prefix):] is the rest.
    matched_prefix: str


class PathMatcher(Generic[T]):
    """Azure URL path map: path rules in the order listed, FIRST match wins, else the default.

    Patterns (already validated): '/exact' matches only that path; '/prefix/*' matches paths
    starting with '/prefix/'; (v2) '/prefix*' matches paths starting with '/prefix'; '/*'
    matches every path. Case-insensitive (ASCII). The input is the request path without the
    query string.
    """

    __slots__ = ("_default", "_exact", "_prefix_lengths", "_prefixes")

    def __init__(self, rules: Sequence[tuple[Sequence[str], T]], default: T) -> None:
        self._default = PathMatch(default, None, "")
        self._exact: dict[str, PathMatch[T]] = {}
        # Prefix literal -> (position among all patterns as listed, its match). A path is looked
        # up once per distinct literal length, so 100 path rules cost what a few do.
        self._prefixes: dict[str, tuple[int, PathMatch[T]]] = {}
        position = 0
        for index, (patterns, value) in enumerate(rules):
            for pattern in patterns:
                literal = pattern.removesuffix("*")
                result = PathMatch(value, index, literal)
                if literal == pattern:
                    self._exact.setdefault(_fold_path(pattern), result)
                else:
                    self._prefixes.setdefault(_fold_path(literal), (position, result))
                position += 1
        self._prefix_lengths = tuple(sorted({len(literal) for literal in self._prefixes}))

    def match(self, path: str) -> PathMatch[T]:
        folded = _fold_path(path)
        exact = self._exact.get(folded)
        prefix: tuple[int, PathMatch[T]] | None = None
        for length in self._prefix_lengths:
            if length > len(folded):
                break
            found = self._prefixes.get(folded[:length])
            if found is not None and (prefix is None or found[0] < prefix[0]):
                prefix = found
        if prefix is not None and (exact is None or _rule_order(prefix[1]) < _rule_order(exact)):
            return prefix[1]
        return exact if exact is not None else self._default


def _fold_path(path: str) -> str:
    # ASCII-only folding keeps the length, so a matched prefix's length applies to the original.
    return path.lower() if path.isascii() else path.translate(_ASCII_LOWER)


def _rule_order(result: PathMatch[T]) -> int:
    # Only matches built from rules are compared; they always carry an index.
    return result.rule_index if result.rule_index is not None else -1
