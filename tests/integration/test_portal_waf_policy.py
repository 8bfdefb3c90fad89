"""Portal WAF policies (Azure's "Web Application Firewall policies (WAF)"): created from the
list, its blades edited the way a browser without JavaScript posts them, associated with a
WAF_v2 gateway from the gateway's Web application firewall blade, every outcome checked through
the REST API; refusals shown next to the field they name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import API_VERSION, RG, SUB, Api, Pfx, skeleton
from portal_forms import (
    Browser,
    error_only_at,
    field_error,
    general_error,
    is_checked,
    selected,
    signed_in_portal,
    stored,
    value_of,
)

POLICY_TYPE = "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies"
POLICY_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{POLICY_TYPE}/shop-policy"
PAGES = f"/portal/wafpolicies/{SUB}/{RG}/shop-policy"
SQLI = "REQUEST-942-APPLICATION-ATTACK-SQLI"
WAF = f"/portal/gateways/{SUB}/{RG}/appgw/waf"
LISTENER = f"/portal/gateways/{SUB}/{RG}/appgw/listeners/appGatewayHttpListener"


def waf_gateway(pfx: Pfx, root_cer: str) -> dict[str, Any]:
    """A WAF_v2 gateway with the inline configuration the WAF blade starts from."""
    document = skeleton(pfx, root_cer)
    document["properties"]["sku"].update(name="WAF_v2", tier="WAF_v2")
    document["properties"]["webApplicationFirewallConfiguration"] = {
        "enabled": True,
        "firewallMode": "Detection",
        "ruleSetType": "OWASP",
        "ruleSetVersion": "3.2",
    }
    return document


@pytest.fixture
def portal(tmp_path: Path, pfx: Pfx, root_cer: str) -> Iterator[tuple[Api, Browser]]:
    with signed_in_portal(tmp_path / "data", waf_gateway(pfx, root_cer)) as signed_in:
        yield signed_in


def policy(api: Api) -> dict[str, Any]:
    response = api.client.get(f"{POLICY_ID}?api-version={API_VERSION}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def listener(api: Api) -> dict[str, Any]:
    found = stored(api)["properties"]["httpListeners"]
    return next(item["properties"] for item in found if item["name"] == "appGatewayHttpListener")


def saved(answer: httpx.Response, blade: str) -> None:
    assert answer.status_code == 303, general_error(answer.text) or answer.text
    assert answer.headers["location"] == f"{PAGES}/{blade}"


def test_a_policy_is_created_edited_associated_and_kept_while_linked(
    portal: tuple[Api, Browser],
) -> None:
    api, browser = portal
    resources = browser.get("/portal/resources")
    assert "Web Application Firewall policies" in resources and "No WAF policies yet." in resources

    # Create: from the list, in the gateway's subscription and resource group.
    create = f"/portal/wafpolicies/create?subscription={SUB}&resource_group={RG}"
    page = browser.get(create)
    for words in ("Policy name", "Policy mode", "Policy state", "OWASP 3.2", "OWASP 3.0"):
        assert words in page, words
    refused = browser.submit(page, "/portal/wafpolicies/create", policy_name="bad/name")
    assert refused.status_code == 400 and field_error(refused.text, "policy_name")
    saved(
        browser.submit(
            page, "/portal/wafpolicies/create", policy_name="shop-policy", location="westeurope"
        ),
        "settings",
    )
    created = policy(api)
    assert created["location"] == "westeurope"
    assert created["properties"]["policySettings"]["mode"] == "Detection"
    assert created["properties"]["managedRules"]["managedRuleSets"] == [
        {"ruleSetType": "OWASP", "ruleSetVersion": "3.2"}
    ]
    listed = browser.get("/portal/wafpolicies")
    assert f'href="{PAGES}/settings">shop-policy</a>' in listed
    again = browser.submit(page, "/portal/wafpolicies/create", policy_name="shop-policy")
    error_only_at(again.text, "policy_name", "already exists")

    # Policy settings: Prevention, limits and the block response.
    page = browser.get(f"{PAGES}/settings")
    assert is_checked(page, "mode", "Detection") and value_of(page, "max_body_kb") == "128"
    refused = browser.submit(page, f"{PAGES}/settings", max_body_kb="5000")
    error_only_at(refused.text, "max_body_kb", "5000 KB is outside 8-2000 KB")
    saved(
        browser.submit(
            page,
            f"{PAGES}/settings",
            mode="Prevention",
            upload_mb="200",
            block_status="429",
            block_body="blocked by policy",
        ),
        "settings",
    )
    settings = policy(api)["properties"]["policySettings"]
    assert settings["mode"] == "Prevention" and settings["fileUploadLimitInMb"] == 200
    assert settings["customBlockResponseStatusCode"] == 429
    assert settings["customBlockResponseBody"] == "YmxvY2tlZCBieSBwb2xpY3k="
    page = browser.get(f"{PAGES}/settings")
    assert is_checked(page, "mode", "Prevention") and "blocked by policy</textarea>" in page

    # Custom rules: a second condition row added and removed (nothing saved), a bad IP named
    # under its field, then the rule added.
    custom = f"{PAGES}/custom/add"
    page = browser.get(custom)
    assert selected(page, "c0_variable") == "RemoteAddr" and value_of(page, "rule_priority") == "1"
    page = browser.submit(page, custom, op="add_condition", rule_name="BlockOffice").text
    assert selected(page, "c1_variable") == "RemoteAddr" and value_of(page, "rule_name") == (
        "BlockOffice"
    )
    page = browser.submit(page, custom, op="remove_condition:1").text
    assert 'name="c1_variable"' not in page
    form = {
        "rule_name": "BlockOffice",
        "rule_priority": "10",
        "rule_action": "Block",
        "c0_variable": "RemoteAddr",
        "c0_operator": "IPMatch",
    }
    refused = browser.submit(page, custom, **form, c0_values="10.0.0.0/8\n10.0.0.300")
    assert refused.status_code == 400
    error_only_at(refused.text, "c0_values", "'10.0.0.300': not an IP address")
    assert policy(api)["properties"]["customRules"] == []
    saved(
        browser.submit(refused.text, custom, **form, c0_values="10.0.0.0/8, 192.0.2.7"),
        "custom",
    )
    assert policy(api)["properties"]["customRules"] == [
        {
            "name": "BlockOffice",
            "priority": 10,
            "ruleType": "MatchRule",
            "action": "Block",
            "state": "Enabled",
            "matchConditions": [
                {
                    "matchVariables": [{"variableName": "RemoteAddr"}],
                    "operator": "IPMatch",
                    "negationConditon": False,
                    "matchValues": ["10.0.0.0/8", "192.0.2.7"],
                }
            ],
        }
    ]
    page = browser.get(f"{PAGES}/custom")
    assert "BlockOffice" in page and "RemoteAddr IPMatch 10.0.0.0/8, 192.0.2.7" in page

    # Managed rules: a rule of the SQLI group turned off, then an exclusion added.
    page = browser.get(f"{PAGES}/managed")
    sqli = f"off{page.count('<tr><td>REQUEST-', 0, page.index(SQLI))}"
    refused = browser.submit(page, f"{PAGES}/managed", **{sqli: "942100 913100"})
    error_only_at(refused.text, sqli, "rule 913100 is not in rule group " + SQLI)
    saved(browser.submit(page, f"{PAGES}/managed", **{sqli: "942100"}), "managed")
    rule_set = policy(api)["properties"]["managedRules"]["managedRuleSets"][0]
    assert rule_set["ruleGroupOverrides"] == [
        {"ruleGroupName": SQLI, "rules": [{"ruleId": "942100", "state": "Disabled"}]}
    ]
    page = browser.get(f"{PAGES}/managed")
    assert value_of(page, sqli) == "942100"
    add = f"{PAGES}/managed/exclusions/add"
    refused = browser.submit(page, add, ex_variable="RequestHeaderNames", ex_selector="")
    error_only_at(refused.text, "ex_selector", "'selector' is required")
    saved(
        browser.submit(page, add, ex_variable="RequestHeaderNames", ex_selector="x-token"),
        "managed",
    )
    assert policy(api)["properties"]["managedRules"]["exclusions"] == [
        {
            "matchVariable": "RequestHeaderNames",
            "selectorMatchOperator": "Equals",
            "selector": "x-token",
        }
    ]

    # The gateway's WAF blade associates the policy.
    page = browser.get(WAF)
    assert selected(page, "firewall_policy") == "" and "shop-policy (rg1)" in page
    answer = browser.submit(page, WAF, firewall_policy=POLICY_ID)
    assert answer.status_code == 303, general_error(answer.text) or answer.text
    assert stored(api)["properties"]["firewallPolicy"] == {"id": POLICY_ID}
    assert selected(browser.get(WAF), "firewall_policy") == POLICY_ID
    refused = browser.submit(page, WAF, firewall_policy=POLICY_ID.replace("shop", "none"))
    assert refused.status_code == 400 and field_error(refused.text, "firewall_policy")

    # A listener links it too, from its editor on the Listeners blade.
    edit = f"{LISTENER}/edit"
    page = browser.get(edit)
    assert selected(page, "waf_policy") == ""
    answer = browser.submit(page, edit, waf_policy=POLICY_ID)
    assert answer.status_code == 303, general_error(answer.text) or answer.text
    assert listener(api)["firewallPolicy"] == {"id": POLICY_ID}
    assert selected(browser.get(edit), "waf_policy") == POLICY_ID

    # ... which the policy's Associations blade shows, and which keeps it from being deleted.
    page = browser.get(f"{PAGES}/associations")
    assert "Application gateway" in page and ">appgw</a>" in page
    assert "Listener" in page and ">appGatewayHttpListener</a>" in page
    page = browser.get(f"{PAGES}/delete")
    refused = browser.submit(page, f"{PAGES}/delete")
    assert refused.status_code == 400
    problem = general_error(refused.text)
    assert "'shop-policy' was not deleted" in problem and "is linked by" in problem
    assert policy(api)["name"] == "shop-policy"

    # Unlinked, it goes.
    answer = browser.submit(browser.get(edit), edit, waf_policy="")
    assert answer.status_code == 303 and "firewallPolicy" not in listener(api)
    answer = browser.submit(browser.get(WAF), WAF, firewall_policy="")
    assert answer.status_code == 303 and "firewallPolicy" not in stored(api)["properties"]
    answer = browser.submit(browser.get(f"{PAGES}/delete"), f"{PAGES}/delete")
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/wafpolicies"
    assert "No WAF policies yet." in browser.get("/portal/wafpolicies")
