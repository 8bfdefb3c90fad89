"""The real `appgw waf-policy ...` against a real `appgw serve`: a policy built up with az's
commands (settings, a custom rule and its conditions, a rule override, an exclusion), linked
to a WAF_v2 gateway and a listener with --waf-policy, and refusals that name the flag, whether
the CLI or the API found the problem."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backends import free_port
from helpers import Pfx, ServeProcess, cli_ok, cli_refused, fresh_gateway, gateway_url

pytestmark = pytest.mark.slow

TYPE = "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies"
AT = ("-g", "rg1", "--subscription", "sub1")
POLICY = (*AT, "--policy-name", "pol1")
SQLI = "REQUEST-942-APPLICATION-ATTACK-SQLI"


def policy_id(name: str) -> str:
    return f"/subscriptions/sub1/resourceGroups/rg1/providers/{TYPE}/{name}"


@pytest.fixture
def api(server: ServeProcess, pfx: Pfx, root_cer: str) -> Iterator[httpx.Client]:
    """A fresh Standard_v2 gateway, and no policy pol1."""
    with fresh_gateway(server.base_url, pfx, root_cer, free_port()) as client:
        client.delete(f"{policy_id('pol1')}?api-version=2024-05-01")
        yield client


def stored_policy(api: httpx.Client, name: str = "pol1") -> dict[str, Any]:
    answer = api.get(f"{policy_id(name)}?api-version=2024-05-01")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_a_policy_built_with_the_cli_and_linked_to_a_gateway_and_a_listener(
    server: ServeProcess, api: httpx.Client
) -> None:
    created = cli_ok(server, "waf-policy", "create", *AT, "-n", "pol1", "--tags", "env=test")
    assert created["policySettings"]["state"] == "Enabled"  # az's defaults; flattened as az
    assert created["policySettings"]["mode"] == "Detection"
    assert created["managedRules"]["managedRuleSets"] == [
        {"ruleSetType": "OWASP", "ruleSetVersion": "3.2"}
    ]
    assert created["tags"] == {"env": "test"}

    body = base64.b64encode(b"blocked by policy").decode()
    settings = cli_ok(
        server, "waf-policy", "policy-setting", "update", *POLICY, "--mode", "prevention",
        "--request-body-check", "true", "--max-request-body-size-in-kb", "2000",
        "--file-upload-limit-in-mb", "500", "--custom-status", "429", "--custom-body", body,
    )  # fmt: skip
    assert settings == stored_policy(api)["properties"]["policySettings"]
    assert settings["mode"] == "Prevention" and settings["maxRequestBodySizeInKb"] == 2000
    assert settings["customBlockResponseStatusCode"] == 429
    assert settings["customBlockResponseBody"] == body

    rule = cli_ok(
        server, "waf-policy", "custom-rule", "create", *POLICY, "-n", "BlockEvil",
        "--priority", "10", "--action", "block", "--match-variables", "RequestHeaders.X-Tenant",
        "--operator", "equal", "--values", "evil", "--transforms", "Lowercase", "trim",
    )  # fmt: skip
    assert rule["ruleType"] == "MatchRule" and rule["action"] == "Block"
    conditions = cli_ok(
        server, "waf-policy", "custom-rule", "match-condition", "add", *POLICY, "-n", "blockevil",
        "--match-variables", "RemoteAddr", "--operator", "IPMatch",
        "--values", "10.0.0.0/8", "192.168.0.0/16", "--negate", "true",
    )  # fmt: skip
    assert conditions == [
        {
            "matchVariables": [{"variableName": "RequestHeaders", "selector": "X-Tenant"}],
            "operator": "Equal",
            "matchValues": ["evil"],
            "transforms": ["Lowercase", "Trim"],
        },
        {
            "matchVariables": [{"variableName": "RemoteAddr"}],
            "operator": "IPMatch",
            "negationConditon": True,
            "matchValues": ["10.0.0.0/8", "192.168.0.0/16"],
        },
    ]

    sets = cli_ok(
        server, "waf-policy", "managed-rule", "rule-set", "update", *POLICY, "--type", "OWASP",
        "--version", "3.2", "--group-name", SQLI.lower(), "--rules", "942100", "942110",
    )  # fmt: skip
    assert sets[0]["ruleGroupOverrides"] == [
        {
            "ruleGroupName": SQLI,
            "rules": [
                {"ruleId": "942100", "state": "Disabled"},
                {"ruleId": "942110", "state": "Disabled"},
            ],
        }
    ]
    exclusion = (
        "--match-variable", "RequestHeaderNames", "--selector-match-operator", "Equals",
        "--selector", "x-token",
    )  # fmt: skip
    cli_ok(server, "waf-policy", "managed-rule", "exclusion", "add", *POLICY, *exclusion)
    exclusions = cli_ok(
        server, "waf-policy", "managed-rule", "exclusion", "rule-set", "add", *POLICY, *exclusion,
        "--version", "3.2", "--group-name", SQLI, "--rule-ids", "942100",
    )  # fmt: skip
    assert exclusions == [
        {
            "matchVariable": "RequestHeaderNames",
            "selectorMatchOperator": "Equals",
            "selector": "x-token",
            "exclusionManagedRuleSets": [
                {
                    "ruleSetType": "OWASP",
                    "ruleSetVersion": "3.2",
                    "ruleGroups": [{"ruleGroupName": SQLI, "rules": [{"ruleId": "942100"}]}],
                }
            ],
        }
    ]

    # Linked by name (the gateway's resource group) and by id.
    gateway = cli_ok(
        server, "update", "-g", "rg1", "-n", "appgw", "--subscription", "sub1",
        "--sku", "WAF_v2", "--waf-policy", "pol1",
    )  # fmt: skip
    assert gateway["firewallPolicy"]["id"].casefold() == policy_id("pol1").casefold()
    listener = cli_ok(
        server, "http-listener", "update", "-g", "rg1", "--gateway-name", "appgw",
        "--subscription", "sub1", "-n", "appGatewayHttpListener",
        "--waf-policy", policy_id("pol1"),
    )  # fmt: skip
    assert listener["firewallPolicy"]["id"].casefold() == policy_id("pol1").casefold()
    document = api.get(gateway_url()).json()["properties"]
    assert document["httpListeners"][0]["properties"]["firewallPolicy"] == {
        "id": listener["firewallPolicy"]["id"]
    }

    on_gateway = ("-g", "rg1", "--gateway-name", "appgw", "--subscription", "sub1")
    cli_ok(
        server, "url-path-map", "create", *on_gateway, "-n", "paths", "--paths", "/api/*",
        "--address-pool", "appGatewayBackendPool", "--http-settings",
        "appGatewayBackendHttpSettings", "--rule-name", "api", "--no-wait",
    )  # fmt: skip
    path_rule = cli_ok(
        server, "url-path-map", "rule", "update", *on_gateway, "--path-map-name", "paths",
        "-n", "api", "--waf-policy", "pol1",
    )  # fmt: skip
    assert path_rule["firewallPolicy"]["id"].casefold() == policy_id("pol1").casefold()

    shown = cli_ok(server, "waf-policy", "show", *AT, "-n", "pol1")
    gateway_id = gateway["id"].casefold()
    assert [link["id"].casefold() for link in shown["applicationGateways"]] == [gateway_id]
    assert [link["id"].casefold() for link in shown["httpListeners"]] == [
        f"{gateway_id}/httplisteners/appgatewayhttplistener"
    ]
    assert [link["id"].casefold() for link in shown["pathBasedRules"]] == [
        f"{gateway_id}/urlpathmaps/paths/pathrules/api"
    ]
    assert [r["name"] for r in shown["customRules"]] == ["BlockEvil"]

    refused = cli_refused(server, "waf-policy", "delete", *AT, "-n", "pol1")
    assert "InUseWebApplicationFirewallPolicyCannotBeDeleted" in refused
    assert stored_policy(api)["properties"]["customRules"][0]["name"] == "BlockEvil"

    # A gateway created with the policy (az's `create --waf-policy`): no inline configuration.
    created = cli_ok(
        server, "create", *AT, "-n", "second", "--sku", "WAF_v2", "--servers", "127.0.0.1",
        "--frontend-port", str(free_port()), "--priority", "100", "--waf-policy", "pol1",
    )  # fmt: skip
    assert created["firewallPolicy"]["id"].casefold() == policy_id("pol1").casefold()
    assert "webApplicationFirewallConfiguration" not in created
    cli_ok(server, "delete", *AT, "-n", "second")


def test_refusals_name_the_flag(server: ServeProcess, api: httpx.Client) -> None:
    answer = api.put(
        f"{policy_id('pol1')}?api-version=2024-05-01",
        json={
            "location": "local",
            "properties": {
                "managedRules": {
                    "managedRuleSets": [{"ruleSetType": "OWASP", "ruleSetVersion": "3.1"}]
                }
            },
        },
    )
    assert answer.status_code == 201, answer.text
    before = stored_policy(api)

    # Found by the CLI, before any request.
    assert "--mode: 'Block' is not one of: Prevention, Detection" in cli_refused(
        server, "waf-policy", "policy-setting", "update", *POLICY, "--mode", "Block"
    )
    refused = cli_refused(
        server, "waf-policy", "managed-rule", "rule-set", "update", *POLICY, "--version", "3.1",
        "--group-name", SQLI, "--rules", "941100",
    )  # fmt: skip
    assert "--rules: 941100 is a rule of REQUEST-941-APPLICATION-ATTACK-XSS, not of" in refused
    refused = cli_refused(
        server, "waf-policy", "custom-rule", "create", *POLICY, "-n", "r1", "--priority", "1",
        "--action", "Deny", "--match-variables", "RemoteAddr", "--operator", "IPMatch",
        "--values", "10.0.0.0/8",
    )  # fmt: skip
    assert "--action: 'Deny' is not one of: Allow, Block, Log" in refused
    # Found by the API: the fields it names are shown as the flags that set them.
    refused = cli_refused(
        server, "waf-policy", "policy-setting", "update", *POLICY,
        "--max-request-body-size-in-kb", "2000",
    )  # fmt: skip
    assert "--max-request-body-size-in-kb: 2000 KB is outside 8-128 KB" in refused
    assert "properties.policySettings.maxRequestBodySizeInKb" in refused
    refused = cli_refused(
        server, "waf-policy", "custom-rule", "create", *POLICY, "-n", "r1", "--priority", "1",
        "--action", "Block", "--match-variables", "RequestHeaders", "--operator", "Equal",
        "--values", "x",
    )  # fmt: skip
    assert "--match-variables: " in refused
    assert stored_policy(api) == before  # nothing was written

    updated = cli_ok(
        server, "waf-policy", "update", *AT, "-n", "pol1", "--set",
        "policySettings.mode=Prevention", "--tags", "team=web",
    )  # fmt: skip
    assert updated["policySettings"]["mode"] == "Prevention" and updated["tags"] == {"team": "web"}
    assert "pol1" in cli_ok(server, "waf-policy", "list", *AT, "--query", "[].name")

    refused = cli_refused(
        server, "update", "-g", "rg1", "-n", "appgw", "--subscription", "sub1",
        "--sku", "WAF_v2", "--waf-policy", "nope",
    )  # fmt: skip
    assert policy_id("nope").casefold() in refused.casefold(), refused
    assert "(InvalidResourceReference)" in refused and "'properties.firewallPolicy'" in refused
    refused = cli_refused(
        server, "update", "-g", "rg1", "-n", "appgw", "--subscription", "sub1",
        "--waf-policy", "/subscriptions/sub1/resourceGroups/rg1/nope",
    )  # fmt: skip
    assert "--waf-policy '/subscriptions/sub1/resourceGroups/rg1/nope': not the id" in refused
