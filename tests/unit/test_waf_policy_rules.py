"""WAF policies below the API: a policy's custom rules, overrides and exclusions as the engine
runs them (compile/firewall.py -> waf/seclang.py -> ModSecurity), and the policy's validation
(model/validate_firewall_policy.py) naming each field with Azure's codes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from appgw.compile.firewall import policy_waf_settings
from appgw.model.firewall_policy import FirewallPolicy
from appgw.model.ids import FirewallPolicyId
from appgw.model.validate_firewall_policy import check_firewall_policy
from appgw.waf.engine import Inspected, WafVerdict, firewall_for
from appgw.waf.seclang import WafSettings, custom_rules_seclang

PID = FirewallPolicyId("sub1", "rg1", "policy")
HEAD = [(b"Host", b"shop.contoso.test"), (b"User-Agent", b"Mozilla/5.0 Firefox/128.0")]


def body(**properties: Any) -> dict[str, Any]:
    return {
        "location": "westeurope",
        "properties": {
            "policySettings": {"state": "Enabled", "mode": "Prevention"},
            "managedRules": {
                "managedRuleSets": [{"ruleSetType": "OWASP", "ruleSetVersion": "3.2"}]
            },
            **properties,
        },
    }


def rule(name: str, priority: int, action: str, *conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "priority": priority,
        "ruleType": "MatchRule",
        "action": action,
        "matchConditions": list(conditions),
    }


def cond(variable: str, operator: str, *values: str, **extra: Any) -> dict[str, Any]:
    name, _, selector = variable.partition(".")
    return {
        "matchVariables": [{"variableName": name, **({"selector": selector} if selector else {})}],
        "operator": operator,
        "matchValues": list(values),
        **extra,
    }


def settings_of(document: dict[str, Any]) -> WafSettings:
    settings = policy_waf_settings(FirewallPolicy.model_validate(document).properties)
    assert settings is not None
    return settings


def inspect(
    settings: WafSettings,
    uri: str = "/",
    *,
    ip: str = "203.0.113.5",
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    payload: bytes = b"",
) -> WafVerdict:
    extra = list(headers or [])
    if payload:
        extra += [
            (b"Content-Type", b"application/x-www-form-urlencoded"),
            (b"Content-Length", str(len(payload)).encode()),
        ]
    return firewall_for(settings).inspect(
        Inspected(ip, 50000, 443, method, uri, "1.1", [*HEAD, *extra], payload)
    )


def custom(verdict: WafVerdict, settings: WafSettings) -> list[tuple[str, bool]]:
    return [
        (found.name, match.disruptive)
        for match in verdict.matches
        if (found := settings.custom_rule(match.rule_id)) is not None
    ]


CUSTOM = body(
    customRules=[
        rule(
            "BlockRange",
            3,
            "Block",
            cond("RemoteAddr", "IPMatch", "198.51.100.0/24", "2001:db8::/32"),
        ),
        rule("AllowPartner", 1, "Allow", cond("RequestHeaders.X-Partner", "Equal", 'say "yes"')),
        rule(
            "NoDeleteOnOrders",
            2,
            "Block",
            cond("RequestMethod", "Equal", "DELETE", "PATCH"),
            cond("RequestUri", "Regex", r"^/orders/\d+$"),
        ),
        rule(
            "LogBots",
            4,
            "Log",
            cond("RequestHeaders.User-Agent", "Contains", "bot", transforms=["Lowercase"]),
        ),
        rule(
            "BigUploads",
            5,
            "Block",
            cond("RequestHeaders.X-Count", "GreaterThan", "1000", "5000"),
        ),
        rule("Cookie", 6, "Block", cond("RequestCookies.session", "BeginsWith", "stolen-")),
        rule("Body", 7, "Block", cond("PostArgs.comment", "Contains", "buy now")),
        rule("Off", 8, "Block", cond("RequestUri", "Any")) | {"state": "Disabled"},
    ]
)


def test_custom_rules_match_ip_headers_uri_method_cookies_and_body() -> None:
    settings = settings_of(CUSTOM)
    assert [r.name for r in settings.custom_rules] == [
        "AllowPartner",
        "NoDeleteOnOrders",
        "BlockRange",
        "LogBots",
        "BigUploads",
        "Cookie",
        "Body",
    ]  # priority order, the Disabled rule left out
    cases = [
        ({"ip": "198.51.100.77"}, [("BlockRange", True)], True),
        ({"ip": "2001:db8::1"}, [("BlockRange", True)], True),
        ({"ip": "198.51.101.1"}, [], False),
        ({"method": "DELETE", "uri": "/orders/42"}, [("NoDeleteOnOrders", True)], True),
        # Not this rule's; the CRS refuses DELETE itself (911100, allowed methods).
        ({"method": "DELETE", "uri": "/orders/42/items"}, [], True),
        ({"method": "GET", "uri": "/orders/42"}, [], False),
        ({"headers": [(b"User-Agent", b"GoogleBOT/2.1")]}, [("LogBots", False)], False),
        ({"headers": [(b"X-Count", b"1001")]}, [("BigUploads", True)], True),
        ({"headers": [(b"X-Count", b"999")]}, [], False),
        ({"headers": [(b"Cookie", b"session=stolen-abc")]}, [("Cookie", True)], True),
        ({"headers": [(b"Cookie", b"session=fine")]}, [], False),
        ({"method": "POST", "payload": b"comment=please+buy+now"}, [("Body", True)], True),
        ({"method": "POST", "payload": b"comment=hello"}, [], False),
    ]
    for request, expected, blocked in cases:
        verdict = inspect(settings, **request)
        assert custom(verdict, settings) == expected, request
        assert verdict.blocked is blocked, request


def test_an_allow_rule_skips_every_later_rule_and_the_managed_ones() -> None:
    settings = settings_of(CUSTOM)
    attack = "/?id=1%27%20OR%20%271%27%3D%271"
    assert inspect(settings, attack).blocked
    allowed = inspect(settings, attack, ip="198.51.100.1", headers=[(b"X-Partner", b'say "yes"')])
    assert not allowed.blocked and custom(allowed, settings) == [("AllowPartner", False)]
    # The selector matches the header's name without regard to case; the value exactly.
    assert not inspect(settings, attack, headers=[(b"x-partner", b'say "yes"')]).blocked
    assert inspect(settings, attack, headers=[(b"X-Partner", b'say "YES"')]).blocked


def test_detection_logs_a_block_rule_without_blocking() -> None:
    document = copy.deepcopy(CUSTOM)
    document["properties"]["policySettings"]["mode"] = "Detection"
    settings = settings_of(document)
    verdict = inspect(settings, ip="198.51.100.77")
    assert not verdict.blocked and ("BlockRange", False) in custom(verdict, settings)


def test_values_cannot_break_out_of_the_directive() -> None:
    hostile = 'x" "id:1,phase:1,allow'
    settings = settings_of(
        body(customRules=[rule("Q", 1, "Block", cond("RequestUri", "Contains", hostile))])
    )
    text = custom_rules_seclang(settings)
    # One operator and one action list: the value stayed inside the operator.
    assert text.count('"') == 4 and text.split('"')[3].startswith("id:10000,phase:1,deny,")
    # The value is matched literally (in the URI as ModSecurity decodes it), quotes and all.
    assert inspect(settings, "/a?q=" + hostile.replace(" ", "%20").replace('"', "%22")).blocked
    assert not inspect(settings, "/a?q=x%20id:1,phase:1,allow").blocked


def test_overrides_and_scoped_exclusions() -> None:
    false_positive = "/forum?comment=select%20*%20from%20users%20where%20id%3D1"
    plain = settings_of(body())
    assert inspect(plain, false_positive).blocked
    excluded = settings_of(
        body(
            managedRules={
                "managedRuleSets": [{"ruleSetType": "OWASP", "ruleSetVersion": "3.2"}],
                "exclusions": [
                    {
                        "matchVariable": "RequestArgNames",
                        "selectorMatchOperator": "Equals",
                        "selector": "comment",
                        "exclusionManagedRuleSets": [
                            {
                                "ruleSetType": "OWASP",
                                "ruleSetVersion": "3.2",
                                "ruleGroups": [
                                    {"ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI"}
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    assert len(excluded.exclusions[0].rule_ids) > 20  # the group's rules, from the CRS files
    assert not inspect(excluded, false_positive).blocked
    assert inspect(excluded, false_positive.replace("comment", "note")).blocked
    # A rule override turning off the rule that matched.
    disabled = settings_of(
        body(
            managedRules={
                "managedRuleSets": [
                    {
                        "ruleSetType": "OWASP",
                        "ruleSetVersion": "3.2",
                        "ruleGroupOverrides": [
                            {
                                "ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI",
                                "rules": [{"ruleId": "942100", "state": "Disabled"}],
                            }
                        ],
                    }
                ],
            }
        )
    )
    assert disabled.disabled_rules == (942100,)
    assert not inspect(disabled, false_positive).blocked


def test_a_disabled_policy_inspects_nothing() -> None:
    document = body()
    document["properties"]["policySettings"]["state"] = "Disabled"
    assert policy_waf_settings(FirewallPolicy.model_validate(document).properties) is None


def problems(document: dict[str, Any]) -> dict[str, str]:
    found = check_firewall_policy(FirewallPolicy.model_validate(document), PID)
    return {d.field: d.code for d in found}


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        (
            {"policySettings": {"mode": "Block"}},
            "properties.policySettings.mode",
            "ApplicationGatewayFirewallModeInvalid",
        ),
        (
            {"policySettings": {"state": "On"}},
            "properties.policySettings.state",
            "InvalidPolicySettingsState",
        ),
        (
            {"policySettings": {"maxRequestBodySizeInKb": 4}},
            "properties.policySettings.maxRequestBodySizeInKb",
            "ApplicationGatewayFirewallMaxRequestBodySizeOutOfRange",
        ),
        (
            {"policySettings": {"fileUploadLimitInMb": 5000}},
            "properties.policySettings.fileUploadLimitInMb",
            "ApplicationGatewayFirewallFileUploadLimitOutOfRange",
        ),
        (
            {"policySettings": {"customBlockResponseStatusCode": 418}},
            "properties.policySettings.customBlockResponseStatusCode",
            "InvalidCustomBlockResponseStatusCode",
        ),
        (
            {"policySettings": {"customBlockResponseBody": "not base64!"}},
            "properties.policySettings.customBlockResponseBody",
            "InvalidCustomBlockResponseBody",
        ),
        (
            {
                "managedRules": {
                    "managedRuleSets": [{"ruleSetType": "OWASP", "ruleSetVersion": "2.2.9"}]
                }
            },
            "properties.managedRules.managedRuleSets[0].ruleSetVersion",
            "ApplicationGatewayFirewallRuleSetVersionNotSupported",
        ),
        (
            {
                "managedRules": {
                    "managedRuleSets": [
                        {"ruleSetType": "OWASP", "ruleSetVersion": "3.2"},
                        {"ruleSetType": "Microsoft_DefaultRuleSet", "ruleSetVersion": "2.1"},
                    ]
                }
            },
            "properties.managedRules.managedRuleSets[1].ruleSetType",
            "FeatureNotSupported",
        ),
        (
            {
                "managedRules": {
                    "managedRuleSets": [
                        {
                            "ruleSetType": "OWASP",
                            "ruleSetVersion": "3.2",
                            "ruleGroupOverrides": [
                                {
                                    "ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI",
                                    "rules": [{"ruleId": "941100"}],
                                }
                            ],
                        }
                    ]
                }
            },
            "properties.managedRules.managedRuleSets[0].ruleGroupOverrides[0].rules[0].ruleId",
            "ApplicationGatewayFirewallRuleNotFound",
        ),
        (
            {
                "managedRules": {
                    "managedRuleSets": [
                        {
                            "ruleSetType": "OWASP",
                            "ruleSetVersion": "3.2",
                            "ruleGroupOverrides": [
                                {
                                    "ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI",
                                    "rules": [{"ruleId": "942100", "action": "Block"}],
                                }
                            ],
                        }
                    ]
                }
            },
            "properties.managedRules.managedRuleSets[0].ruleGroupOverrides[0].rules[0].action",
            "ApplicationGatewayFirewallRuleActionNotSupported",
        ),
        (
            {
                "managedRules": {
                    "managedRuleSets": [{"ruleSetType": "OWASP", "ruleSetVersion": "3.2"}],
                    "exclusions": [
                        {
                            "matchVariable": "RequestBody",
                            "selectorMatchOperator": "Equals",
                            "selector": "x",
                        }
                    ],
                }
            },
            "properties.managedRules.exclusions[0].matchVariable",
            "ApplicationGatewayFirewallExclusionInvalid",
        ),
        (
            {"customRules": [rule("R", 1, "Block", cond("RemoteAddr", "GeoMatch", "DE"))]},
            "properties.customRules[0].matchConditions[0].operator",
            "FeatureNotSupported",
        ),
        (
            {"customRules": [rule("R", 1, "Block", cond("RemoteAddr", "IPMatch", "10.0.0.300"))]},
            "properties.customRules[0].matchConditions[0].matchValues[0]",
            "InvalidMatchValues",
        ),
        (
            {"customRules": [rule("R", 1, "Block", cond("RequestUri", "IPMatch", "10.0.0.1"))]},
            "properties.customRules[0].matchConditions[0].operator",
            "InvalidMatchConditionOperator",
        ),
        (
            {"customRules": [rule("R", 1, "Block", cond("RequestHeaders", "Equal", "x"))]},
            "properties.customRules[0].matchConditions[0].matchVariables[0].selector",
            "MissingRequiredProperty",
        ),
        (
            {"customRules": [rule("R", 1, "Block", cond("RequestUri", "Regex", "(unclosed"))]},
            "properties.customRules[0].matchConditions[0].matchValues[0]",
            "InvalidMatchValues",
        ),
        (
            {"customRules": [rule("R", 1, "Block", cond("RequestUri", "LessThan", "ten"))]},
            "properties.customRules[0].matchConditions[0].matchValues[0]",
            "InvalidMatchValues",
        ),
        (
            {
                "customRules": [
                    rule("R", 1, "Block", cond("RequestUri", "Equal", "x", transforms=["Rot13"]))
                ]
            },
            "properties.customRules[0].matchConditions[0].transforms[0]",
            "InvalidTransform",
        ),
        (
            {"customRules": [rule("R", 1, "Deny", cond("RequestUri", "Any"))]},
            "properties.customRules[0].action",
            "InvalidCustomRuleAction",
        ),
        (
            {"customRules": [rule("R", 101, "Block", cond("RequestUri", "Any"))]},
            "properties.customRules[0].priority",
            "InvalidCustomRulePriority",
        ),
        (
            {
                "customRules": [
                    rule("R", 1, "Block", cond("RequestUri", "Any")) | {"ruleType": "RateLimitRule"}
                ]
            },
            "properties.customRules[0].ruleType",
            "FeatureNotSupported",
        ),
        (
            {
                "customRules": [
                    rule("R", 1, "Block", cond("RequestUri", "Any")),
                    rule("r", 2, "Block", cond("RequestUri", "Any")),
                ]
            },
            "properties.customRules[1].name",
            "DuplicateCustomRuleName",
        ),
        (
            {"customRules": [rule("R", 1, "Block")]},
            "properties.customRules[0].matchConditions",
            "MissingRequiredProperty",
        ),
        (
            {"customRules": [rule("R", 1, "Block", cond("RequestUri", "Regex", r"\u0041dmin"))]},
            "properties.customRules[0].matchConditions[0].matchValues[0]",
            "InvalidMatchValues",
        ),
        (
            {"customRules": [rule("R", 1, "Block", cond("RequestUri", "Regex", "(?=x)y"))]},
            "properties.customRules[0].matchConditions[0].matchValues[0]",
            "InvalidMatchValues",
        ),
    ],
)
def test_each_refusal_names_the_field(change: dict[str, Any], field: str, code: str) -> None:
    document = body()
    for key, value in change.items():
        if key == "policySettings":
            document["properties"][key].update(value)
        else:
            document["properties"][key] = value
    assert problems(document) == {field: code}


def test_a_good_policy_passes() -> None:
    assert problems(CUSTOM) == {}
