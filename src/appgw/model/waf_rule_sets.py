"""Azure's managed rule sets as the WAF configuration names them: the versions, the rule
groups and which group a rule id is in. Plain data (no pydantic): validation, the engine's
directives and the catalogue all read it."""

from __future__ import annotations

from typing import Any

from appgw.model.enums import SkuName

# Where the gateway keeps its inline WAF configuration (what errors and flags name).
WAF_CONFIGURATION_FIELD = "properties.webApplicationFirewallConfiguration"

# The CRS versions Azure offers for the inline configuration; 3.1 and 3.2 only on WAF_v2.
RULE_SET_VERSIONS = ("3.0", "3.1", "3.2")
V2_ONLY_VERSIONS = ("3.1", "3.2")
REFUSED_VERSIONS = {"2.2.9": "appgw's WAF engine runs the OWASP Core Rule Set 3.x; use 3.0-3.2"}
DEFAULT_RULE_SET_VERSION = "3.2"
# Azure's rule groups of CRS 3.x (applicationGatewayAvailableWafRuleSets); 944 from CRS 3.1.
RULE_GROUPS = (
    "REQUEST-911-METHOD-ENFORCEMENT",
    "REQUEST-913-SCANNER-DETECTION",
    "REQUEST-920-PROTOCOL-ENFORCEMENT",
    "REQUEST-921-PROTOCOL-ATTACK",
    "REQUEST-930-APPLICATION-ATTACK-LFI",
    "REQUEST-931-APPLICATION-ATTACK-RFI",
    "REQUEST-932-APPLICATION-ATTACK-RCE",
    "REQUEST-933-APPLICATION-ATTACK-PHP",
    "REQUEST-941-APPLICATION-ATTACK-XSS",
    "REQUEST-942-APPLICATION-ATTACK-SQLI",
    "REQUEST-943-APPLICATION-ATTACK-SESSION-FIXATION",
    "REQUEST-944-APPLICATION-ATTACK-JAVA",
    "General",
    "Known-CVEs",
)
GROUPS_FROM_3_1 = frozenset({"REQUEST-944-APPLICATION-ATTACK-JAVA"})


def groups_of(version: str | None) -> tuple[str, ...]:
    """The rule groups a CRS version has (all of 3.x's when the version is unknown)."""
    if version == "3.0":
        return tuple(g for g in RULE_GROUPS if g not in GROUPS_FROM_3_1)
    return RULE_GROUPS


# Azure's CRS groups by the number their rule ids start with; 200xxx are Azure's "General"
# rules and 800xxx its "Known-CVEs".
_GROUP_OF_PREFIX = {
    group.split("-")[1]: group for group in RULE_GROUPS if group.startswith("REQUEST-")
} | {"200": "General", "800": "Known-CVEs"}


def group_of_rule(rule: int) -> str | None:
    """The CRS rule group a rule id belongs to (942100: REQUEST-942-APPLICATION-ATTACK-SQLI)."""
    return _GROUP_OF_PREFIX.get(str(rule)[:3]) if 100000 <= rule <= 999999 else None


def default_configuration(sku: str) -> dict[str, Any]:
    """What appgw writes for a WAF SKU created without a configuration: on, detecting only."""
    return {
        "enabled": True,
        "firewallMode": "Detection",
        "ruleSetType": "OWASP",
        "ruleSetVersion": DEFAULT_RULE_SET_VERSION if sku == SkuName.WAF_V2.value else "3.0",
    }
