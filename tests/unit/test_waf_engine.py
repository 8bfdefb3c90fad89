"""ModSecurity with the OWASP CRS (waf/engine.py) on requests of each attack family, in both
modes, and Azure's disabled groups, disabled rules and exclusions (waf/seclang.py)."""

from __future__ import annotations

import pytest

from appgw.waf.engine import Inspected, WafVerdict, firewall_for
from appgw.waf.seclang import Exclusion, WafSettings, exclusion_targets, group_of

PREVENTION = WafSettings(prevention=True, rule_set_version="3.2")
DETECTION = WafSettings(prevention=False, rule_set_version="3.2")
BROWSER = [
    (b"Host", b"shop.contoso.test"),
    (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"),
    (b"Accept", b"text/html,application/xhtml+xml"),
    (b"Accept-Language", b"en-US,en;q=0.5"),
]


def inspect(
    settings: WafSettings,
    uri: str,
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> WafVerdict:
    extra = headers or []
    if body:
        extra = [*extra, (b"Content-Length", str(len(body)).encode())]
    return firewall_for(settings).inspect(
        Inspected("192.0.2.7", 50000, 443, method, uri, "1.1", [*BROWSER, *extra], body)
    )


def rule_ids(verdict: WafVerdict) -> set[int]:
    return {match.rule_id for match in verdict.matches}


# One sample per family Azure's managed rules name, each with the CRS rule that must catch it.
ATTACKS = [
    ("sqli", "/products?id=1%27%20OR%20%271%27%3D%271", 942100),
    ("xss", "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", 941100),
    ("lfi", "/download?file=..%2F..%2F..%2Fetc%2Fpasswd", 930100),
    ("rfi", "/page?include=http%3A%2F%2F203.0.113.9%2Fshell.txt%3F", 931100),
    ("rce", "/ping?host=127.0.0.1%3Bcat%20%2Fetc%2Fpasswd", 932100),
    ("php", "/index.php?x=%3C%3Fphp%20system(%24_GET%5Bc%5D)%3B%20%3F%3E", 933100),
    ("java", "/app?x=java.lang.Runtime.getRuntime().exec(%22id%22)", 944100),
]


@pytest.mark.parametrize(("family", "uri", "rule"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_each_family_is_blocked_in_prevention_and_only_logged_in_detection(
    family: str, uri: str, rule: int
) -> None:
    blocked = inspect(PREVENTION, uri)
    assert blocked.blocked and blocked.status == 403, (family, blocked)
    assert rule in rule_ids(blocked) and 949110 in rule_ids(blocked)
    detected = inspect(DETECTION, uri)
    assert not detected.blocked and rule in rule_ids(detected)


def test_protocol_violations_are_scored_by_their_severity() -> None:
    """A NUL byte in an argument is critical (920270: blocked alone); a numeric Host is a
    warning (920350: matched and logged, but one warning does not reach the threshold)."""
    nul = inspect(PREVENTION, "/file?name=report%00.php")
    assert nul.blocked and 920270 in rule_ids(nul)
    numeric = inspect(PREVENTION, "/", headers=[(b"Host", b"203.0.113.9")])
    assert 920350 in rule_ids(numeric) and not numeric.blocked
    assert all(group_of(m.rule_id) == "REQUEST-920-PROTOCOL-ENFORCEMENT" for m in numeric.matches)


def test_a_clean_request_matches_nothing() -> None:
    verdict = inspect(PREVENTION, "/products?id=42&sort=price")
    assert not verdict.blocked and not verdict.matches


def test_a_body_attack_is_found_in_a_form_body() -> None:
    verdict = inspect(
        PREVENTION,
        "/login",
        method="POST",
        headers=[(b"Content-Type", b"application/x-www-form-urlencoded")],
        body=b"user=admin&password=x%27%20OR%201%3D1--",
    )
    assert verdict.blocked and any(m.rule_id // 1000 == 942 for m in verdict.matches)


SQLI_VALUE = "1' OR '1'='1"
MULTIPART = b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\n%s\r\n--XX--\r\n'


@pytest.mark.parametrize(
    ("content_type", "attack", "clean"),
    [
        (
            b"application/json",
            b'{"user": "admin", "q": "%s"}' % SQLI_VALUE.encode(),
            b'{"user": "admin", "q": "hello"}',
        ),
        (
            b"application/xml",
            b"<a><q>%s</q></a>" % SQLI_VALUE.encode(),
            b"<a><q>hello</q></a>",
        ),
        (
            b"multipart/form-data; boundary=XX",
            MULTIPART % SQLI_VALUE.encode(),
            MULTIPART % b"hello",
        ),
    ],
    ids=["json", "xml", "multipart"],
)
def test_json_xml_and_multipart_bodies_are_parsed_and_their_values_inspected(
    content_type: bytes, attack: bytes, clean: bytes
) -> None:
    headers = [(b"Content-Type", content_type)]
    verdict = inspect(PREVENTION, "/api", method="POST", headers=headers, body=attack)
    assert verdict.blocked and 942100 in rule_ids(verdict)
    assert not inspect(PREVENTION, "/api", method="POST", headers=headers, body=clean).blocked


def test_a_body_that_does_not_parse_is_refused_by_the_general_group() -> None:
    headers = [(b"Content-Type", b"application/json")]
    broken = inspect(PREVENTION, "/api", method="POST", headers=headers, body=b'{"q": ')
    assert broken.blocked and rule_ids(broken) == {200002}
    assert group_of(200002) == "General"
    # Turning the group off keeps the parsing (attacks inside are still found) ...
    general_off = WafSettings(prevention=True, rule_set_version="3.2", disabled_groups=("General",))
    assert not inspect(general_off, "/api", method="POST", headers=headers, body=b'{"q": ').blocked
    attack = b'{"q": "%s"}' % SQLI_VALUE.encode()
    assert inspect(general_off, "/api", method="POST", headers=headers, body=attack).blocked


def test_body_inspection_off_does_not_see_the_body() -> None:
    settings = WafSettings(prevention=True, rule_set_version="3.2", request_body_check=False)
    verdict = inspect(
        settings,
        "/login",
        method="POST",
        headers=[(b"Content-Type", b"application/x-www-form-urlencoded")],
        body=b"user=admin&password=x%27%20OR%201%3D1--",
    )
    assert not verdict.blocked


# A forum about SQL: a user's comment quotes a query (CRS 942100, libinjection, says SQLi).
FALSE_POSITIVE = "/forum/post?comment=select%20*%20from%20users%20where%20id%3D1"


def test_a_false_positive_goes_with_an_exclusion_or_a_disabled_rule_or_group() -> None:
    flagged = inspect(PREVENTION, FALSE_POSITIVE)
    assert flagged.blocked, flagged
    excluded = WafSettings(
        prevention=True,
        rule_set_version="3.2",
        exclusions=(Exclusion("RequestArgNames", "Equals", "comment"),),
    )
    assert not inspect(excluded, FALSE_POSITIVE).blocked
    starts = WafSettings(
        prevention=True,
        rule_set_version="3.2",
        exclusions=(Exclusion("RequestArgNames", "StartsWith", "comm"),),
    )
    assert not inspect(starts, FALSE_POSITIVE).blocked
    sqli = {m.rule_id for m in flagged.matches if m.rule_id // 1000 == 942}
    without_rules = WafSettings(
        prevention=True, rule_set_version="3.2", disabled_rules=tuple(sorted(sqli))
    )
    assert not inspect(without_rules, FALSE_POSITIVE).blocked
    without_group = WafSettings(
        prevention=True,
        rule_set_version="3.2",
        disabled_groups=("REQUEST-942-APPLICATION-ATTACK-SQLI",),
    )
    assert not inspect(without_group, FALSE_POSITIVE).blocked
    # The exclusion is narrow: the same words in another argument are still blocked.
    assert inspect(excluded, FALSE_POSITIVE.replace("comment", "other")).blocked


def test_exclusion_targets_use_literal_keys_or_anchored_patterns() -> None:
    assert exclusion_targets(Exclusion("RequestHeaderNames", "Equals", "X-Token")) == [
        "REQUEST_HEADERS:X-Token"
    ]
    assert exclusion_targets(Exclusion("RequestCookieNames", "EndsWith", "sid")) == [
        "REQUEST_COOKIES:/sid$/"
    ]
    assert exclusion_targets(Exclusion("RequestArgNames", "EqualsAny", "*")) == [
        "ARGS",
        "ARGS_NAMES",
    ]


def test_matches_on_bytes_that_are_not_utf8_are_kept() -> None:
    # %bc decodes to a lone byte that ModSecurity quotes in the match data: the binding's
    # strict UTF-8 once dropped those matches (and could lose the blocking rule).
    verdict = inspect(PREVENTION, "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%bc%ff")
    assert verdict.blocked and {941100, 949110} <= rule_ids(verdict)
    assert any("\ufffd" in match.data for match in verdict.matches)
