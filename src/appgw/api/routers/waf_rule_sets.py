"""applicationGatewayAvailableWafRuleSets: the managed rule sets a WAF configuration may name,
with their groups and rules (read from the installed Core Rule Set)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from appgw.api.common import NETWORK, SUBSCRIPTION, ApiVersion, Authenticated
from appgw.waf.catalogue import RULE_SET_VERSIONS, rule_groups

WAF_RULE_SETS = SUBSCRIPTION + "/providers/Microsoft.Network/applicationGatewayAvailableWafRuleSets"

router = APIRouter(tags=["WafRuleSets"])


@router.get(WAF_RULE_SETS, response_model=None)
def available_waf_rule_sets(
    subscription_id: str, _v: ApiVersion, _c: Authenticated
) -> dict[str, Any]:
    groups = [
        {
            "ruleGroupName": group.name,
            "description": group.description,
            "rules": [
                {"ruleId": rule.rule_id, "description": rule.description} for rule in group.rules
            ],
        }
        for group in rule_groups()
    ]
    return {
        "value": [
            {
                "id": f"/subscriptions/{subscription_id}/providers/{NETWORK}/"
                f"applicationGatewayAvailableWafRuleSets/OWASP_{version}",
                "name": f"OWASP_{version}",
                "type": f"{NETWORK}/applicationGatewayAvailableWafRuleSets",
                "properties": {
                    "provisioningState": "Succeeded",
                    "ruleSetType": "OWASP",
                    "ruleSetVersion": version,
                    # CRS 3.0 has no Java group (REQUEST-944), as in Azure.
                    "ruleGroups": [
                        group
                        for group in groups
                        if version != "3.0"
                        or group["ruleGroupName"] != "REQUEST-944-APPLICATION-ATTACK-JAVA"
                    ],
                },
            }
            for version in RULE_SET_VERSIONS
        ]
    }
