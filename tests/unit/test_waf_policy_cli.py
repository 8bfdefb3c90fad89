"""`appgw waf-policy`'s plain helpers: which flag sets a field the API names, and what a
--waf-policy value links."""

from __future__ import annotations

import pytest
import typer

from appgw.cli.waf_policy import flag_of
from appgw.cli.waf_policy_link import policy_ref
from appgw.model.ids import GatewayId

GATEWAY = GatewayId("sub1", "rg1", "appgw")
POLICY = (
    "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/"
    "ApplicationGatewayWebApplicationFirewallPolicies/policy1"
)


@pytest.mark.parametrize(
    ("field", "flag"),
    [
        ("properties.policySettings.maxRequestBodySizeInKb", "--max-request-body-size-in-kb"),
        ("properties.policySettings.state", "--state"),
        ("properties.customRules[2].state", "--state"),
        (
            "properties.customRules[0].matchConditions[1].matchVariables[0].selector",
            "--match-variables",
        ),
        ("properties.customRules[0].matchConditions[0].negationConditon", "--negate"),
        (
            "properties.managedRules.managedRuleSets[0].ruleGroupOverrides[0].rules[1].state",
            "--rules",
        ),
        (
            "properties.managedRules.managedRuleSets[0].ruleGroupOverrides[0].ruleGroupName",
            "--group-name",
        ),
        ("properties.managedRules.exclusions[0].selector", "--selector"),
        ("properties.managedRules.managedRuleSets", "--type"),
        ("properties.somethingElse", None),
    ],
)
def test_the_flag_of_a_field(field: str, flag: str | None) -> None:
    assert flag_of(field) == flag


def test_a_waf_policy_value_is_a_name_or_an_id() -> None:
    assert policy_ref(GATEWAY, "policy1", "--waf-policy") == {"id": POLICY}
    linked = policy_ref(GATEWAY, POLICY.lower(), "--waf-policy")
    assert linked is not None and linked["id"].casefold() == POLICY.casefold()
    assert policy_ref(GATEWAY, "", "--waf-policy") is None
    with pytest.raises(typer.Exit):
        policy_ref(GATEWAY, "/subscriptions/sub1/nope", "--waf-policy")
