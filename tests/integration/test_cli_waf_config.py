"""The real `appgw waf-config set/show` against a real `appgw serve`: az's flags, what is
stored, and refusals that name the flag (checked before anything is written)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backends import free_port
from helpers import Pfx, ServeProcess, cli_ok, cli_refused, fresh_gateway, gateway_url

pytestmark = pytest.mark.slow

GW = ("-g", "rg1", "--gateway-name", "appgw", "--subscription", "sub1")


@pytest.fixture
def api(server: ServeProcess, pfx: Pfx, root_cer: str) -> Iterator[httpx.Client]:
    """A fresh WAF_v2 gateway (with the default WAF configuration) for each test."""
    with fresh_gateway(server.base_url, pfx, root_cer, free_port()) as client:
        document = client.get(gateway_url()).json()
        document["properties"]["sku"].update(name="WAF_v2", tier="WAF_v2")
        document["properties"]["webApplicationFirewallConfiguration"] = {
            "enabled": True,
            "firewallMode": "Detection",
            "ruleSetType": "OWASP",
            "ruleSetVersion": "3.2",
        }
        answer = client.put(gateway_url(), json=document, headers={"If-Match": document["etag"]})
        assert answer.status_code in (200, 201), answer.text
        yield client


def stored(api: httpx.Client) -> dict[str, Any]:
    config: dict[str, Any] = api.get(gateway_url()).json()["properties"][
        "webApplicationFirewallConfiguration"
    ]
    return config


def test_set_replaces_the_configuration_and_show_prints_it(
    server: ServeProcess, api: httpx.Client
) -> None:
    printed = cli_ok(
        server, "waf-config", "set", *GW, "--enabled", "true", "--firewall-mode", "prevention",
        "--disabled-rule-groups", "REQUEST-913-SCANNER-DETECTION",
        "--disabled-rules", "942100", "942110", "920300", "913100",
        "--request-body-check", "true", "--max-request-body-size", "2000",
        "--file-upload-limit", "500",
        "--exclusion", "RequestHeaderNames", "Equals", "x-token",
        "--exclusion", "RequestArgNames", "StartsWith", "debug_",
    )  # fmt: skip
    assert printed == stored(api)
    assert printed["firewallMode"] == "Prevention" and printed["ruleSetVersion"] == "3.2"
    # 913100 is in a group turned off whole; the others are filed under their groups.
    assert printed["disabledRuleGroups"] == [
        {"ruleGroupName": "REQUEST-913-SCANNER-DETECTION"},
        {"ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI", "rules": [942100, 942110]},
        {"ruleGroupName": "REQUEST-920-PROTOCOL-ENFORCEMENT", "rules": [920300]},
    ]
    assert printed["maxRequestBodySizeInKb"] == 2000 and printed["fileUploadLimitInMb"] == 500
    assert printed["exclusions"][1] == {
        "matchVariable": "RequestArgNames",
        "selectorMatchOperator": "StartsWith",
        "selector": "debug_",
    }
    # set replaces the whole configuration: what is left out goes back to the defaults.
    cli_ok(server, "waf-config", "set", *GW, "--enabled", "false")
    assert cli_ok(server, "waf-config", "show", *GW) == {
        "enabled": False,
        "firewallMode": "Detection",
        "ruleSetType": "OWASP",
        "ruleSetVersion": "3.2",
    }


def test_refusals_name_the_flag(server: ServeProcess, api: httpx.Client) -> None:
    before = stored(api)
    body = cli_refused(
        server, "waf-config", "set", *GW, "--enabled", "true", "--rule-set-version", "3.1",
        "--max-request-body-size", "500", "--disabled-rule-groups", "REQUEST-999-NOPE",
        "--exclusion", "RequestHeaderNames", "Equals",
    )  # fmt: skip
    assert "--exclusion takes three values: VARIABLE OPERATOR SELECTOR" in body
    body = cli_refused(
        server, "waf-config", "set", *GW, "--enabled", "true", "--rule-set-version", "2.2.9",
        "--disabled-rules", "123",
    )  # fmt: skip
    assert "--disabled-rules: 123 is not a rule of the OWASP Core Rule Set 3.x" in body
    body = cli_refused(
        server, "waf-config", "set", *GW, "--enabled", "true", "--rule-set-version", "3.1",
        "--max-request-body-size", "500", "--disabled-rule-groups", "REQUEST-999-NOPE",
    )  # fmt: skip
    assert "--max-request-body-size: 500 KB is outside 8-128 KB" in body
    assert "--disabled-rule-groups: 'REQUEST-999-NOPE' is not a rule group of OWASP 3.1" in body
    assert "--firewall-mode" in cli_refused(
        server, "waf-config", "set", *GW, "--enabled", "true", "--firewall-mode", "Block"
    )
    assert stored(api) == before  # nothing was written


def test_the_rule_sets_on_offer_list_the_installed_crs_rules(
    server: ServeProcess, api: httpx.Client
) -> None:
    """applicationGatewayAvailableWafRuleSets (and az's list-rule-sets on it): 3.0 to 3.2,
    Azure's groups, and the CRS's rules with their descriptions."""
    sets = api.get(
        "/subscriptions/sub1/providers/Microsoft.Network/applicationGatewayAvailableWafRuleSets"
        "?api-version=2024-05-01"
    ).json()["value"]
    assert [s["name"] for s in sets] == ["OWASP_3.0", "OWASP_3.1", "OWASP_3.2"]
    groups = {g["ruleGroupName"]: g for g in sets[2]["properties"]["ruleGroups"]}
    assert "REQUEST-944-APPLICATION-ATTACK-JAVA" not in {
        g["ruleGroupName"] for g in sets[0]["properties"]["ruleGroups"]
    }
    sqli = {
        rule["ruleId"]: rule["description"]
        for rule in groups["REQUEST-942-APPLICATION-ATTACK-SQLI"]["rules"]
    }
    assert sqli[942100] == "SQL Injection Attack Detected via libinjection"
    listed = cli_ok(
        server,
        "waf-config",
        "list-rule-sets",
        "--subscription",
        "sub1",
        "--version",
        "3.2",
        "--group",
        "REQUEST-941-APPLICATION-ATTACK-XSS",
    )
    assert len(listed) == 1
    (xss,) = listed[0]["ruleGroups"]  # az flattens properties
    assert any(rule["ruleId"] == 941100 for rule in xss["rules"])
