"""Portal Web application firewall blade: the gateway's inline WAF configuration edited the way
a browser without JavaScript posts it (exclusion rows added and removed by submit buttons, rule
groups ticked, rule ids typed), every outcome checked through the REST API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import RG, SUB, Api, Pfx, skeleton
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

PORTAL = f"/portal/gateways/{SUB}/{RG}/appgw"
WAF = f"{PORTAL}/waf"
SQLI = "REQUEST-942-APPLICATION-ATTACK-SQLI"
SCANNER = "REQUEST-913-SCANNER-DETECTION"


def waf_gateway(pfx: Pfx, root_cer: str) -> dict[str, Any]:
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


def config(api: Api) -> dict[str, Any]:
    return stored(api)["properties"]["webApplicationFirewallConfiguration"]  # type: ignore[no-any-return]


def saved(answer: httpx.Response) -> None:
    assert answer.status_code == 303, general_error(answer.text) or answer.text
    assert answer.headers["location"] == WAF


def test_the_blade_edits_the_waf_configuration(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    page = browser.get(WAF)
    for words in (
        "Web application firewall",
        "Firewall status",
        "Firewall mode",
        "Rule set",
        "OWASP 3.2",
        "Inspect request body",
        "Max request body size (KB)",
        "File upload limit (MB)",
        "Exclusions",
        "+ Add exclusion",
        SQLI,
        "Disabled rules",
    ):
        assert words in page, words
    assert is_checked(page, "waf_mode", "Detection") and selected(page, "rule_set_version") == "3.2"
    assert value_of(page, "max_body_kb") == "128" and value_of(page, "upload_mb") == "100"

    # Two rows added (nothing saved), the first removed again.
    page = browser.submit(page, WAF, op="add_exclusion").text
    page = browser.submit(page, WAF, op="add_exclusion", ex0_selector="first").text
    assert value_of(page, "ex0_selector") == "first" and value_of(page, "ex1_selector") == ""
    page = browser.submit(page, WAF, op="remove_exclusion:0", ex1_selector="x-token").text
    assert value_of(page, "ex0_selector") == "x-token" and value_of(page, "ex1_selector") is None
    assert "exclusions" not in config(api)

    saved(
        browser.submit(
            page,
            WAF,
            waf_mode="Prevention",
            max_body_kb="2000",
            upload_mb="500",
            body_check="Off",
            ex0_variable="RequestHeaderNames",
            ex0_operator="Equals",
            disabled_groups=[SCANNER],
            disabled_rules="942100, 942110 913100",
        )
    )
    assert config(api) == {
        "enabled": True,
        "firewallMode": "Prevention",
        "ruleSetType": "OWASP",
        "ruleSetVersion": "3.2",
        "requestBodyCheck": False,
        "maxRequestBodySizeInKb": 2000,
        "fileUploadLimitInMb": 500,
        "disabledRuleGroups": [
            {"ruleGroupName": SCANNER},
            {"ruleGroupName": SQLI, "rules": [942100, 942110]},
        ],
        "exclusions": [
            {
                "matchVariable": "RequestHeaderNames",
                "selectorMatchOperator": "Equals",
                "selector": "x-token",
            }
        ],
    }
    page = browser.get(WAF)
    assert is_checked(page, "disabled_groups", SCANNER)
    assert not is_checked(page, "disabled_groups", SQLI)
    assert value_of(page, "disabled_rules") == "942100 942110"

    # The service's refusals land under their fields; the form's own before anything is sent.
    refused = browser.submit(page, WAF, rule_set_version="3.1")
    assert refused.status_code == 400
    error_only_at(refused.text, "max_body_kb", "2000 KB is outside 8-128 KB")
    refused = browser.submit(page, WAF, ex0_selector="")
    error_only_at(refused.text, "ex0_selector", "'selector' is required")
    refused = browser.submit(page, WAF, disabled_rules="942100 abc 123")
    problems = field_error(refused.text, "disabled_rules")
    assert "'abc' is not a rule id" in problems and "123 is not a rule" in problems
    # Turned off: the rest of the configuration is kept.
    saved(browser.submit(page, WAF, waf_status="Disabled"))
    assert config(api)["enabled"] is False and config(api)["fileUploadLimitInMb"] == 500


def test_other_tiers_are_told_the_firewall_needs_a_waf_tier(
    tmp_path: Path, pfx: Pfx, root_cer: str
) -> None:
    with signed_in_portal(tmp_path / "data", skeleton(pfx, root_cer)) as (_api, browser):
        page = browser.get(WAF)
    assert "needs a WAF tier" in page and 'action="' + WAF not in page
