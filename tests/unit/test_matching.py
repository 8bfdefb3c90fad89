"""Listener, certificate and path-rule selection (appgw.compile.matching): spec §2.2, §2.3, §8."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from appgw.compile.matching import CertificateSelector, HostMatcher, PathMatcher, normalize_host

# --- normalize_host -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("www.contoso.com", "www.contoso.com"),
        ("WWW.Contoso.COM", "www.contoso.com"),
        ("www.contoso.com:8080", "www.contoso.com"),
        ("www.contoso.com.", "www.contoso.com"),
        ("www.contoso.com.:443", "www.contoso.com"),
        ("www.contoso.com:", "www.contoso.com"),  # RFC 3986: the port may be empty
        (" www.contoso.com\t", "www.contoso.com"),
        (b"Www.Contoso.com:443", "www.contoso.com"),
        ("localhost", "localhost"),
        ("internal_name.corp", "internal_name.corp"),
        ("10.0.0.1", "10.0.0.1"),
        ("10.0.0.1:80", "10.0.0.1"),
        ("[::1]", "::1"),
        ("[::1]:8443", "::1"),
        ("[2001:DB8:0:0::1]", "2001:db8::1"),
        (b"[fe80::1]:80", "fe80::1"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        (".".join(["a" * 63] * 3) + "." + "b" * 61, ".".join(["a" * 63] * 3) + "." + "b" * 61),
    ],
)
def test_normalize_host(raw: str | bytes, expected: str) -> None:
    assert normalize_host(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        b"",
        " ",
        ":80",
        ".",
        "..",
        ".contoso.com",
        "www..contoso.com",
        "www.contoso.com..",
        "www contoso.com",
        "www.contoso.com/path",
        "user@www.contoso.com",
        "www.contoso.com:http",
        "www.contoso.com:65536",
        "www.contoso.com:123456",
        "www.contoso.com:80:80",
        "*.contoso.com",
        "w?w.contoso.com",
        "::1",
        "[::1",
        "[::1]x",
        "[not:an:address]",
        "[10.0.0.1]",
        "[fe80::1%25eth0]",
        "bücher.de",
        b"\xff.example",
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 3) + "." + "b" * 62,  # 254 characters
    ],
)
def test_normalize_host_rejects(raw: str | bytes) -> None:
    assert normalize_host(raw) is None


# --- HostMatcher ----------------------------------------------------------------------------------

HostEntries = list[tuple[tuple[str, ...], str]]

BASIC_FIRST: HostEntries = [((), "basic"), (("www.contoso.com",), "www")]
MULTI_SITE_FIRST: HostEntries = [(("www.contoso.com",), "www"), ((), "basic")]
# v2: the caller hands the entries over in priority order.
PRIORITY_ORDER: HostEntries = [
    (("shop.contoso.com",), "shop"),
    (("*.contoso.com", "contoso.org"), "wildcard"),
    ((), "basic"),
]
WILDCARD_BEFORE_EXACT: HostEntries = [
    (("*.contoso.com",), "wildcard"),
    (("shop.contoso.com",), "shop"),
]
QUESTION_MARKS: HostEntries = [(("w??.contoso.com",), "three")]
TWO_STARS: HostEntries = [(("*.contoso.*",), "any-tld")]
MIXED_CASE: HostEntries = [(("WWW.Contoso.COM.",), "www")]
NO_BASIC: HostEntries = [(("www.contoso.com",), "www"), (("api.contoso.com",), "api")]


@pytest.mark.parametrize(
    ("entries", "host", "expected"),
    [
        # v1: a basic listener listed first swallows the multi-site one behind it.
        (BASIC_FIRST, "www.contoso.com", "basic"),
        (BASIC_FIRST, "other.org", "basic"),
        (MULTI_SITE_FIRST, "www.contoso.com", "www"),
        (MULTI_SITE_FIRST, "other.org", "basic"),
        (PRIORITY_ORDER, "shop.contoso.com", "shop"),
        (PRIORITY_ORDER, "a.contoso.com", "wildcard"),
        (PRIORITY_ORDER, "customer1.b2b.contoso.com", "wildcard"),  # '*' spans labels
        (PRIORITY_ORDER, "contoso.org", "wildcard"),  # an exact name of a wildcard listener
        (PRIORITY_ORDER, "contoso.com", "basic"),  # the apex is not matched by '*.contoso.com'
        (PRIORITY_ORDER, "xcontoso.com", "basic"),
        (PRIORITY_ORDER, "shop.contoso.com.evil.org", "basic"),
        (WILDCARD_BEFORE_EXACT, "shop.contoso.com", "wildcard"),  # order, not specificity
        (WILDCARD_BEFORE_EXACT, "contoso.com", None),
        (QUESTION_MARKS, "www.contoso.com", "three"),
        (QUESTION_MARKS, "w-1.contoso.com", "three"),
        (QUESTION_MARKS, "w.x.contoso.com", "three"),  # '?' is any allowed character, '.' too
        (QUESTION_MARKS, "ww.contoso.com", None),
        (QUESTION_MARKS, "wwww.contoso.com", None),
        (TWO_STARS, "www.contoso.com", "any-tld"),
        (TWO_STARS, "a.b.contoso.co.uk", "any-tld"),
        (TWO_STARS, "contoso.com", None),
        (TWO_STARS, "www.contoso.", None),
        (MIXED_CASE, "www.contoso.com", "www"),
        (NO_BASIC, "api.contoso.com", "api"),
        (NO_BASIC, "other.org", None),  # v2 answers 404
        ([], "www.contoso.com", None),
    ],
)
def test_host_matcher(entries: HostEntries, host: str, expected: str | None) -> None:
    assert HostMatcher(entries).match(host) == expected


def test_host_matcher_with_many_exact_names() -> None:
    entries: HostEntries = [((f"site{i}.contoso.com",), f"site{i}") for i in range(2000)]
    matcher = HostMatcher([*entries, (("*.contoso.com",), "wildcard")])
    assert matcher.match("site1999.contoso.com") == "site1999"
    assert matcher.match("site2000.contoso.com") == "wildcard"


def test_host_matcher_with_many_wildcards_takes_the_first_in_order() -> None:
    # Leading-'*' wildcards are looked up by suffix; order still decides, not specificity.
    entries: HostEntries = [((f"*.site{i}.contoso.com",), f"site{i}") for i in range(500)]
    entries += [(("*.contoso.com",), "outer"), (("*.site7.contoso.com", "*x.org"), "late")]
    matcher = HostMatcher([(("*.site9.contoso.com",), "early"), *entries])
    assert matcher.match("a.b.site499.contoso.com") == "site499"
    assert matcher.match("x.site9.contoso.com") == "early"
    assert matcher.match("x.site7.contoso.com") == "site7"
    assert matcher.match("site7.contoso.com") == "outer"  # '*' needs one or more characters
    assert matcher.match("contoso.com") is None
    assert matcher.match("a_b.contoso.com") is None  # '_' is outside Azure's wildcard alphabet
    assert matcher.match("box.org") == "late"
    assert matcher.match("x.org") is None


def _glob_matches(pattern: str, host: str) -> bool:
    """Independent reference for Azure's wildcards: plain recursion, no regular expressions."""
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-.")
    if not pattern:
        return not host
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        return any(
            set(host[:length]) <= allowed and _glob_matches(rest, host[length:])
            for length in range(1, len(host) + 1)
        )
    if not host:
        return False
    if head == "?":
        return host[0] in allowed and _glob_matches(rest, host[1:])
    return head == host[0] and _glob_matches(rest, host[1:])


def _linear_scan(entries: HostEntries, host: str) -> str | None:
    for patterns, value in entries:
        if not patterns or any(_glob_matches(p.lower().rstrip("."), host) for p in patterns):
            return value
    return None


_LABELS = st.sampled_from(["a", "b", "ab", "c-d", "1", "A", "e_f"])
_WILDCARD_LABELS = st.sampled_from(["*", "a*", "*b", "?", "a?", "??", "*-d"])
_PATTERNS = st.lists(_LABELS | _WILDCARD_LABELS, min_size=1, max_size=4).map(".".join)
_HOSTS = st.lists(_LABELS.map(str.lower), min_size=1, max_size=5).map(".".join)


@settings(max_examples=300, deadline=None)
@given(
    entries=st.lists(st.lists(_PATTERNS, max_size=3).map(tuple), max_size=8).map(
        lambda pattern_lists: [(patterns, f"entry{i}") for i, patterns in enumerate(pattern_lists)]
    ),
    hosts=st.lists(_HOSTS, min_size=1, max_size=5),
)
def test_host_matcher_equals_linear_scan(entries: HostEntries, hosts: list[str]) -> None:
    matcher = HostMatcher(entries)
    for host in hosts:
        assert matcher.match(host) == _linear_scan(entries, host), (entries, host)


# --- CertificateSelector (spec §2.3) --------------------------------------------------------------

CertEntries = list[tuple[tuple[str, ...], bool, str]]

ALL_REQUIRE_SNI: CertEntries = [(("a.test",), True, "A"), (("b.test",), True, "B")]
WITH_BASIC: CertEntries = [(("a.test",), True, "A"), ((), False, "BASIC")]
ONE_WITHOUT_SNI: CertEntries = [(("a.test",), True, "A"), (("b.test",), False, "B")]
WILDCARD_FIRST: CertEntries = [(("*.test",), True, "WILDCARD"), (("a.test",), True, "A")]
NESTED_WILDCARDS: CertEntries = [(("*.test",), True, "OUTER"), (("*.a.test",), True, "INNER")]


@pytest.mark.parametrize(
    ("entries", "server_name", "v1", "v2"),
    [
        # Row 1: SNI given, every multi-site listener requires SNI.
        (ALL_REQUIRE_SNI, "b.test", "B", "B"),
        (ALL_REQUIRE_SNI, "unknown.test", None, "A"),  # v1 resets, v2: first listener's
        # Row 2: no SNI, every multi-site listener requires SNI.
        (ALL_REQUIRE_SNI, None, None, "A"),
        # Row 3: no SNI and a basic HTTPS listener exists.
        (WITH_BASIC, None, "BASIC", "BASIC"),
        (WITH_BASIC, "unknown.test", "BASIC", "BASIC"),
        (WITH_BASIC, "a.test", "A", "A"),
        # A multi-site listener without requireServerNameIndication is v1's IP:port default.
        (ONE_WITHOUT_SNI, None, "B", "A"),
        (ONE_WITHOUT_SNI, "unknown.test", "B", "A"),
        # An exact name beats an earlier wildcard; among wildcards the first in order wins.
        (WILDCARD_FIRST, "a.test", "A", "A"),
        (WILDCARD_FIRST, "b.test", "WILDCARD", "WILDCARD"),
        (WILDCARD_FIRST, "x.a.test", "WILDCARD", "WILDCARD"),
        (NESTED_WILDCARDS, "x.a.test", "OUTER", "OUTER"),
        (list(reversed(NESTED_WILDCARDS)), "x.a.test", "INNER", "INNER"),
        ([], "a.test", None, None),
        ([], None, None, None),
    ],
)
def test_certificate_selector(
    entries: CertEntries, server_name: str | None, v1: str | None, v2: str | None
) -> None:
    assert CertificateSelector(entries, sku_v1=True).select(server_name) == v1
    assert CertificateSelector(entries, sku_v1=False).select(server_name) == v2


def test_certificate_selector_v2_fallback_follows_the_given_priority_order() -> None:
    by_priority: CertEntries = [(("b.test",), True, "B"), (("a.test",), True, "A")]
    assert CertificateSelector(by_priority, sku_v1=False).select(None) == "B"
    assert CertificateSelector(by_priority, sku_v1=False).select("c.test") == "B"


# --- PathMatcher ----------------------------------------------------------------------------------

PATH_RULES: list[tuple[list[str], str]] = [
    (["/images/*"], "images"),
    (["/api/v1/status"], "status"),
    (["/api*"], "api"),
    (["/video/*", "/media/*"], "media"),
    (["/"], "root"),
]


@pytest.mark.parametrize(
    ("path", "value", "rule_index", "prefix"),
    [
        ("/images/a.png", "images", 0, "/images/"),
        ("/images/", "images", 0, "/images/"),
        ("/IMAGES/A.PNG", "images", 0, "/images/"),
        ("/images", "default", None, ""),  # '/images/*' needs the slash
        ("/imagesx/a", "default", None, ""),
        ("/api/v1/status", "status", 1, "/api/v1/status"),  # listed before '/api*'
        ("/API/V1/Status", "status", 1, "/api/v1/status"),
        ("/api/v1/status/more", "api", 2, "/api"),  # exact means exact
        ("/apiary", "api", 2, "/api"),  # v2 '/prefix*' without a slash
        ("/api", "api", 2, "/api"),
        ("/media/x", "media", 3, "/media/"),
        ("/video/x/y", "media", 3, "/video/"),
        ("/", "root", 4, "/"),
        ("/other", "default", None, ""),
        ("", "default", None, ""),
    ],
)
def test_path_matcher(path: str, value: str, rule_index: int | None, prefix: str) -> None:
    found = PathMatcher(PATH_RULES, "default").match(path)
    assert (found.value, found.rule_index, found.matched_prefix) == (value, rule_index, prefix)


@pytest.mark.parametrize(
    ("rules", "path", "expected"),
    [
        ([(["/*"], "all"), (["/images/*"], "images")], "/images/x", "all"),
        ([(["/images/*"], "images"), (["/*"], "all")], "/images/x", "images"),
        ([(["/images/*"], "images"), (["/*"], "all")], "/x", "all"),
        ([(["/a*"], "prefix"), (["/abc"], "exact")], "/abc", "prefix"),
        ([(["/abc"], "exact"), (["/a*"], "prefix")], "/abc", "exact"),
        ([(["/a/*"], "short"), (["/a/b/*"], "long")], "/a/b/c", "short"),  # first, not longest
        ([], "/anything", "default"),
    ],
)
def test_path_matcher_first_match_wins(
    rules: list[tuple[list[str], str]], path: str, expected: str
) -> None:
    assert PathMatcher(rules, "default").match(path).value == expected


def test_path_match_prefix_keeps_the_pattern_spelling_and_the_request_length() -> None:
    found = PathMatcher([(["/Images/*"], "images")], "default").match("/IMAGES/cat.png")
    assert found.matched_prefix == "/Images/"
    assert "/IMAGES/cat.png"[len(found.matched_prefix) :] == "cat.png"


def test_path_matcher_folds_ascii_only() -> None:
    # Non-ASCII paths fold ASCII letters only, so a prefix's length still fits the request.
    matcher = PathMatcher([(["/Straße/*"], "street")], "default")
    found = matcher.match("/STRAßE/x")
    assert (found.value, "/STRAßE/x"[len(found.matched_prefix) :]) == ("street", "x")
    assert matcher.match("/STRASSE/x").value == "default"


def test_path_matcher_answers_prebuilt_results() -> None:
    matcher = PathMatcher(PATH_RULES, "default")
    assert matcher.match("/images/a") is matcher.match("/images/b")
    assert matcher.match("/nothing") is matcher.match("/else")


def _first_rule_scan(rules: list[tuple[list[str], str]], path: str) -> tuple[str, str]:
    """Independent reference: rules in order, patterns in order, exact before a prefix of the
    same rule (the value and the matched literal)."""
    folded = path.lower()
    for patterns, value in rules:
        for pattern in patterns:
            if not pattern.endswith("*") and folded == pattern.lower():
                return value, pattern
        for pattern in patterns:
            if pattern.endswith("*") and folded.startswith(pattern[:-1].lower()):
                return value, pattern[:-1]
    return "default", ""


_SEGMENTS = st.sampled_from(["a", "b", "ab", "A", "img"])
_PATH_PATTERNS = st.builds(
    lambda segments, ending: "/" + "/".join(segments) + ending,
    st.lists(_SEGMENTS, max_size=3),
    st.sampled_from(["", "/*", "*"]),
)


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(st.lists(_PATH_PATTERNS, min_size=1, max_size=3), max_size=8),
    paths=st.lists(
        st.lists(_SEGMENTS, max_size=4).map(lambda segments: "/" + "/".join(segments)),
        min_size=1,
        max_size=5,
    ),
)
def test_path_matcher_equals_first_rule_scan(patterns: list[list[str]], paths: list[str]) -> None:
    rules = [(rule_patterns, f"rule{i}") for i, rule_patterns in enumerate(patterns)]
    matcher = PathMatcher(rules, "default")
    for path in paths:
        found = matcher.match(path)
        assert (found.value, found.matched_prefix) == _first_rule_scan(rules, path), (rules, path)


def test_path_matcher_with_many_rules() -> None:
    rules = [([f"/p{i:03d}/*"], f"p{i}") for i in range(100)] + [(["/hit/*"], "hit")]
    matcher = PathMatcher(rules, "default")
    assert matcher.match("/hit/x").value == "hit"
    assert matcher.match("/P099/x").value == "p99"
    assert matcher.match("/p100/x").value == "default"
