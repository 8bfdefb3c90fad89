"""Azure's rules for the gateway's inline WAF settings (`webApplicationFirewallConfiguration`)."""

from __future__ import annotations

from typing import Any

import pytest

from appgw.model.diagnostics import Diagnostic
from appgw.model.ids import GatewayId
from appgw.model.resource import ApplicationGateway
from appgw.model.validate import validate_gateway
from appgw.model.waf_rule_sets import default_configuration
from builders import GatewayBuilder

GID = GatewayId("sub1", "rg1", "appgw")
FIELD = "properties.webApplicationFirewallConfiguration"
V2 = {"name": "WAF_v2", "tier": "WAF_v2", "capacity": 1}
V1 = {"name": "WAF_Medium", "tier": "WAF", "capacity": 1}
STANDARD = {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 1}
ON = {
    "enabled": True,
    "firewallMode": "Prevention",
    "ruleSetType": "OWASP",
    "ruleSetVersion": "3.2",
}


def document(sku: dict[str, Any] = V2, config: dict[str, Any] | None = ON, **extra: Any) -> Any:
    builder = GatewayBuilder(v1=sku is V1).pool("pool", "127.0.0.1").settings("settings", 8080)
    builder.listener("listener", 8080, "Http")
    builder.rule("rule", "listener", pool="pool", settings="settings")
    built = builder.build()
    built["properties"]["sku"] = sku
    if config is not None:
        built["properties"]["webApplicationFirewallConfiguration"] = {**config, **extra}
    return built


def found(built: dict[str, Any]) -> list[Diagnostic]:
    return validate_gateway(ApplicationGateway.model_validate(built), GID)


def only(built: dict[str, Any], code: str, field: str, text: str) -> None:
    diagnostics = found(built)
    assert [(d.code, d.field) for d in diagnostics] == [(code, f"{FIELD}{field}")], diagnostics
    assert text in diagnostics[0].text


@pytest.mark.parametrize(
    "built",
    [
        document(),
        document(V1, {**ON, "ruleSetVersion": "3.0"}),
        document(V2, default_configuration("WAF_v2")),
        document(V1, default_configuration("WAF_Medium")),
        document(config={"enabled": False}),
        document(
            disabledRuleGroups=[
                {"ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI", "rules": [942100, 942110]},
                {"ruleGroupName": "General"},
            ],
            requestBodyCheck=True,
            maxRequestBodySizeInKb=2000,
            fileUploadLimitInMb=4000,
            exclusions=[
                {
                    "matchVariable": "RequestHeaderNames",
                    "selectorMatchOperator": "Equals",
                    "selector": "x-token",
                },
                {
                    "matchVariable": "RequestArgValues",
                    "selectorMatchOperator": "EqualsAny",
                    "selector": "*",
                },
            ],
        ),
    ],
)
def test_valid_configurations_pass(built: dict[str, Any]) -> None:
    assert found(built) == []


def test_a_configuration_needs_a_waf_sku() -> None:
    only(
        document(STANDARD, {"enabled": False}),
        "ApplicationGatewayFirewallCannotBeEnabledForSelectedSku",
        "",
        "needs a WAF SKU (WAF_v2, WAF_Medium, WAF_Large), not 'Standard_v2'",
    )


@pytest.mark.parametrize("sku", [V2, V1])
def test_a_waf_sku_needs_a_configuration(sku: dict[str, Any]) -> None:
    only(
        document(sku, None),
        "ApplicationGatewayWafConfigurationRequired",
        "",
        "a WAF SKU needs webApplicationFirewallConfiguration or a WAF policy (firewallPolicy)",
    )


POLICY = (
    "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/"
    "ApplicationGatewayWebApplicationFirewallPolicies/p"
)


def test_a_waf_policy_stands_in_for_the_configuration() -> None:
    built = document(config=None)
    built["properties"]["firewallPolicy"] = {"id": POLICY}
    assert found(built) == []


def test_policy_links_name_a_waf_policy_on_waf_v2_only() -> None:
    built = document(config=None)
    built["properties"]["firewallPolicy"] = {"id": POLICY.replace("WebApplicationFirewall", "")}
    built["properties"]["httpListeners"][0]["properties"]["firewallPolicy"] = {"id": POLICY}
    assert [(d.code, d.field) for d in found(built)] == [
        ("LinkedInvalidPropertyId", "properties.firewallPolicy")
    ]
    standard = document(sku={"name": "Standard_v2", "tier": "Standard_v2"}, config=None)
    standard["properties"]["httpListeners"][0]["properties"]["firewallPolicy"] = {"id": POLICY}
    diagnostics = found(standard)
    assert [(d.code, d.resource_id.rsplit("/", 2)[-2:]) for d in diagnostics] == [
        ("ApplicationGatewayFirewallPolicyNotSupportedForSku", ["httpListeners", "listener"])
    ]
    assert "WAF policies need the WAF_v2 SKU, not 'Standard_v2'" in diagnostics[0].text


def test_firewall_mode_is_required_when_enabled() -> None:
    only(
        document(config={"enabled": True, "ruleSetType": "OWASP", "ruleSetVersion": "3.2"}),
        "MissingRequiredProperty",
        ".firewallMode",
        "'firewallMode' is required when the firewall is enabled: one of Detection, Prevention",
    )


def test_firewall_mode_is_detection_or_prevention() -> None:
    only(
        document(firewallMode="Block"),
        "ApplicationGatewayFirewallModeInvalid",
        ".firewallMode",
        "'Block' is not one of Detection, Prevention",
    )


def test_rule_set_type_is_owasp() -> None:
    only(
        document(ruleSetType="Microsoft_DefaultRuleSet"),
        "ApplicationGatewayFirewallRuleSetTypeNotSupported",
        ".ruleSetType",
        "'Microsoft_DefaultRuleSet' is not one of OWASP",
    )


def test_crs_2_2_9_is_refused_as_the_engine_runs_crs_3() -> None:
    only(
        document(ruleSetVersion="2.2.9"),
        "ApplicationGatewayFirewallRuleSetVersionNotSupported",
        ".ruleSetVersion",
        "appgw's WAF engine runs the OWASP Core Rule Set 3.x",
    )


def test_unknown_rule_set_version() -> None:
    only(
        document(ruleSetVersion="4.0"),
        "ApplicationGatewayFirewallRuleSetVersionNotSupported",
        ".ruleSetVersion",
        "'4.0' is not one of 3.0, 3.1, 3.2",
    )


def test_crs_3_2_needs_waf_v2() -> None:
    only(
        document(V1),
        "ApplicationGatewayFirewallRuleSetVersionNotSupported",
        ".ruleSetVersion",
        "OWASP 3.2 needs the WAF_v2 SKU",
    )


def test_unknown_rule_group() -> None:
    only(
        document(disabledRuleGroups=[{"ruleGroupName": "REQUEST-999-NOPE"}]),
        "ApplicationGatewayFirewallRuleGroupNotFound",
        ".disabledRuleGroups[0].ruleGroupName",
        "'REQUEST-999-NOPE' is not a rule group of OWASP 3.2",
    )


def test_java_group_comes_with_crs_3_1() -> None:
    only(
        document(
            ruleSetVersion="3.0",
            disabledRuleGroups=[{"ruleGroupName": "REQUEST-944-APPLICATION-ATTACK-JAVA"}],
        ),
        "ApplicationGatewayFirewallRuleGroupNotFound",
        ".disabledRuleGroups[0].ruleGroupName",
        "(it comes with OWASP 3.1)",
    )


def test_rule_group_listed_twice() -> None:
    only(
        document(disabledRuleGroups=[{"ruleGroupName": "General"}, {"ruleGroupName": "general"}]),
        "ApplicationGatewayFirewallRuleGroupDuplicate",
        ".disabledRuleGroups[1].ruleGroupName",
        "'general' is listed twice",
    )


def test_rule_group_name_is_required() -> None:
    only(
        document(disabledRuleGroups=[{"rules": [942100]}]),
        "MissingRequiredProperty",
        ".disabledRuleGroups[0].ruleGroupName",
        "'ruleGroupName' is required",
    )


@pytest.mark.parametrize("rule", [0, -5, "942100", True])
def test_rule_ids_are_positive_numbers(rule: Any) -> None:
    only(
        document(disabledRuleGroups=[{"ruleGroupName": "General", "rules": [rule]}]),
        "ApplicationGatewayFirewallRuleIdInvalid",
        ".disabledRuleGroups[0].rules[0]",
        "a rule id is a positive whole number",
    )


def test_rule_id_listed_twice() -> None:
    only(
        document(
            disabledRuleGroups=[
                {"ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI", "rules": [942100]},
                {"ruleGroupName": "General", "rules": [942100]},
            ]
        ),
        "ApplicationGatewayFirewallRuleIdDuplicate",
        ".disabledRuleGroups[1].rules[0]",
        "rule 942100 is listed twice",
    )


@pytest.mark.parametrize(
    ("version", "size", "text"),
    [
        ("3.1", 129, "129 KB is outside 8-128 KB, the request body limit of OWASP 3.1"),
        ("3.2", 2001, "2001 KB is outside 8-2000 KB"),
        ("3.2", 7, "7 KB is outside 8-2000 KB"),
    ],
)
def test_request_body_limit(version: str, size: int, text: str) -> None:
    only(
        document(ruleSetVersion=version, maxRequestBodySizeInKb=size),
        "ApplicationGatewayFirewallMaxRequestBodySizeOutOfRange",
        ".maxRequestBodySizeInKb",
        text,
    )


@pytest.mark.parametrize(
    ("sku", "version", "limit", "text"),
    [
        (V2, "3.2", 4001, "4001 MB is outside 1-4000 MB, the file upload limit of WAF_v2"),
        (V1, "3.0", 101, "101 MB is outside 1-100 MB, the file upload limit of a v1 WAF SKU"),
        (V2, "3.2", 0, "0 MB is outside 1-4000 MB"),
    ],
)
def test_file_upload_limit(sku: dict[str, Any], version: str, limit: int, text: str) -> None:
    only(
        document(sku, ruleSetVersion=version, fileUploadLimitInMb=limit),
        "ApplicationGatewayFirewallFileUploadLimitOutOfRange",
        ".fileUploadLimitInMb",
        text,
    )


def exclusion(variable: str, operator: str, selector: str | None) -> dict[str, Any]:
    return {"matchVariable": variable, "selectorMatchOperator": operator, "selector": selector}


@pytest.mark.parametrize(
    ("entry", "code", "field", "text"),
    [
        (
            exclusion("RequestBody", "Equals", "a"),
            "ApplicationGatewayFirewallExclusionInvalid",
            ".exclusions[0].matchVariable",
            "'RequestBody' is not one of RequestHeaderNames, RequestCookieNames",
        ),
        (
            exclusion("RequestArgNames", "Regex", "a"),
            "ApplicationGatewayFirewallExclusionInvalid",
            ".exclusions[0].selectorMatchOperator",
            "'Regex' is not one of Equals, StartsWith, EndsWith, Contains, EqualsAny",
        ),
        (
            exclusion("RequestArgNames", "StartsWith", ""),
            "MissingRequiredProperty",
            ".exclusions[0].selector",
            "'selector' is required",
        ),
        (
            exclusion("RequestCookieNames", "EqualsAny", "session"),
            "ApplicationGatewayFirewallExclusionInvalid",
            ".exclusions[0].selector",
            "its selector is '*', not 'session'",
        ),
        (
            {"selectorMatchOperator": "Equals", "selector": "a"},
            "MissingRequiredProperty",
            ".exclusions[0].matchVariable",
            "'matchVariable' is required",
        ),
    ],
)
def test_exclusions(entry: dict[str, Any], code: str, field: str, text: str) -> None:
    only(document(exclusions=[entry]), code, field, text)


def test_at_most_100_exclusions() -> None:
    entries = [exclusion("RequestArgNames", "Equals", f"a{i}") for i in range(101)]
    only(
        document(exclusions=entries),
        "ApplicationGatewayLimitExceeded",
        ".exclusions",
        "101 exclusions; at most 100 are allowed",
    )
