"""The rules of the gateway's own web application firewall settings
(`webApplicationFirewallConfiguration`, Azure's inline WAF configuration), checked with the
gateway's other rules by `model/validate.py`.

appgw's engine runs the OWASP Core Rule Set 3.x (docs/waf.md), so CRS 2.2.9 is refused. Links
to WAF policies (`firewallPolicy` of the gateway, a listener or a path rule) are checked here
for their shape and SKU; that the policy exists is the service's check (it reads the store)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from appgw.model.enums import FirewallMode, SkuName, WafRuleSetType
from appgw.model.ids import FIREWALL_POLICY_TYPE, FirewallPolicyId, GatewayId
from appgw.model.resource import (
    ApplicationGatewayProperties,
    SubResource,
    WebApplicationFirewallConfiguration,
)
from appgw.model.waf_rule_sets import (
    GROUPS_FROM_3_1,
    REFUSED_VERSIONS,
    RULE_SET_VERSIONS,
    V2_ONLY_VERSIONS,
    WAF_CONFIGURATION_FIELD,
    groups_of,
)

FIELD = WAF_CONFIGURATION_FIELD
WAF_SKUS = frozenset({SkuName.WAF_MEDIUM, SkuName.WAF_LARGE, SkuName.WAF_V2})
FIREWALL_MODES = tuple(mode.value for mode in FirewallMode)
RULE_SET_TYPES = tuple(kind.value for kind in WafRuleSetType)
# Azure's body limits: 8-128 KB for CRS 3.0/3.1, up to 2000 KB for CRS 3.2; file uploads up
# to 100 MB on v1 and 4000 MB on WAF_v2.
MIN_BODY_KB = 8
MAX_BODY_KB = {"3.0": 128, "3.1": 128, "3.2": 2000}
MAX_UPLOAD_MB_V1 = 100
MAX_UPLOAD_MB_V2 = 4000
EXCLUSION_VARIABLES = (
    "RequestHeaderNames",
    "RequestCookieNames",
    "RequestArgNames",
    "RequestHeaderKeys",
    "RequestHeaderValues",
    "RequestCookieKeys",
    "RequestCookieValues",
    "RequestArgKeys",
    "RequestArgValues",
)
EXCLUSION_OPERATORS = ("Equals", "StartsWith", "EndsWith", "Contains", "EqualsAny")
EQUALS_ANY = "EqualsAny"
MAX_EXCLUSIONS = 100

NEEDS_CONFIGURATION = (
    "a WAF SKU needs webApplicationFirewallConfiguration or a WAF policy (firewallPolicy); set "
    "one (e.g. `appgw waf-config set --enabled true --firewall-mode Detection`, or "
    "`appgw update --waf-policy <policy id>`) or choose Standard_v2"
)
POLICY_FIELD = "properties.firewallPolicy"


class Checks(Protocol):
    """What these rules need of model/validate.py's checker (and of the CLI's own check,
    which runs them before it writes, to name its flags)."""

    props: ApplicationGatewayProperties
    gid: GatewayId

    def add(self, code: str, resource_id: str, field: str, text: str) -> None: ...


def policy_links(
    props: ApplicationGatewayProperties, gid: GatewayId
) -> list[tuple[str, SubResource]]:
    """(owner id, reference) of every firewallPolicy link: the gateway's, its listeners' and
    its path rules'."""
    links = [(str(gid), props.firewall_policy)]
    links += (
        (gid.child("httpListeners", item.name), item.properties.firewall_policy)
        for item in props.http_listeners
    )
    links += (
        (gid.path_rule(path_map.name, rule.name), rule.properties.firewall_policy)
        for path_map in props.url_path_maps
        for rule in path_map.properties.path_rules
    )
    return [(owner, reference) for owner, reference in links if reference is not None]


def check_policy_links(checks: Checks) -> None:
    """Each link names a WAF policy resource, and only WAF_v2 gateways link one (Azure)."""
    sku = checks.props.sku.name if checks.props.sku is not None else None
    for owner, reference in policy_links(checks.props, checks.gid):
        if FirewallPolicyId.parse(reference.id) is None:
            checks.add(
                "LinkedInvalidPropertyId",
                owner,
                POLICY_FIELD,
                f"'{reference.id}' is not the id of a WAF policy; expected "
                "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/"
                f"{FIREWALL_POLICY_TYPE}/{{name}}",
            )
        elif sku is not None and sku != SkuName.WAF_V2:
            checks.add(
                "ApplicationGatewayFirewallPolicyNotSupportedForSku",
                owner,
                POLICY_FIELD,
                f"WAF policies need the WAF_v2 SKU, not '{sku.value}'; change the SKU or "
                "remove 'firewallPolicy'",
            )


def check_waf_configuration(checks: Checks) -> None:
    check_policy_links(checks)
    props = checks.props
    sku = props.sku.name if props.sku is not None else None
    config = props.web_application_firewall_configuration
    gid = str(checks.gid)
    if sku is None:
        return
    if sku not in WAF_SKUS:
        if config is not None:
            checks.add(
                "ApplicationGatewayFirewallCannotBeEnabledForSelectedSku",
                gid,
                FIELD,
                f"the web application firewall needs a WAF SKU (WAF_v2, WAF_Medium, WAF_Large), "
                f"not '{sku.value}'; remove 'webApplicationFirewallConfiguration'",
            )
        return
    if config is None:
        if props.firewall_policy is None:
            checks.add(
                "ApplicationGatewayWafConfigurationRequired", gid, FIELD, NEEDS_CONFIGURATION
            )
        return
    _Config(checks, gid, config, v2=sku == SkuName.WAF_V2).check()


class _Config:
    def __init__(
        self, checks: Checks, gid: str, config: WebApplicationFirewallConfiguration, *, v2: bool
    ) -> None:
        self.checks = checks
        self.gid = gid
        self.config = config
        self.v2 = v2
        self.version: str | None = None

    def add(self, code: str, field: str, text: str) -> None:
        self.checks.add(code, self.gid, f"{FIELD}.{field}", text)

    def check(self) -> None:
        self._rule_set()
        self._rule_groups()
        self._limits()
        self._exclusions()

    def _choice(self, field: str, value: str | None, choices: tuple[str, ...], code: str) -> None:
        if value is None:
            if self.config.enabled:
                self.add(
                    "MissingRequiredProperty",
                    field,
                    f"'{field}' is required when the firewall is enabled: "
                    f"one of {', '.join(choices)}",
                )
        elif value not in choices:
            self.add(code, field, f"'{value}' is not one of {', '.join(choices)}")

    def _rule_set(self) -> None:
        config = self.config
        self._choice(
            "firewallMode",
            config.firewall_mode,
            FIREWALL_MODES,
            "ApplicationGatewayFirewallModeInvalid",
        )
        self._choice(
            "ruleSetType",
            config.rule_set_type,
            RULE_SET_TYPES,
            "ApplicationGatewayFirewallRuleSetTypeNotSupported",
        )
        version = config.rule_set_version
        if version in REFUSED_VERSIONS:
            self.add(
                "ApplicationGatewayFirewallRuleSetVersionNotSupported",
                "ruleSetVersion",
                f"OWASP {version} is not supported: {REFUSED_VERSIONS[version]}",
            )
            return
        self._choice(
            "ruleSetVersion",
            version,
            RULE_SET_VERSIONS,
            "ApplicationGatewayFirewallRuleSetVersionNotSupported",
        )
        if version not in RULE_SET_VERSIONS:
            return
        if version in V2_ONLY_VERSIONS and not self.v2:
            self.add(
                "ApplicationGatewayFirewallRuleSetVersionNotSupported",
                "ruleSetVersion",
                f"OWASP {version} needs the WAF_v2 SKU; a v1 WAF gateway runs OWASP 3.0",
            )
        self.version = version

    def _rule_groups(self) -> None:
        known = {g.casefold(): g for g in groups_of(self.version)}
        seen_groups: set[str] = set()
        seen_rules: set[int] = set()
        for index, entry in enumerate(self.config.disabled_rule_groups or []):
            where = f"disabledRuleGroups[{index}]"
            name = entry.get("ruleGroupName") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name:
                self.add(
                    "MissingRequiredProperty",
                    f"{where}.ruleGroupName",
                    "'ruleGroupName' is required: the CRS rule group to turn off (or whose "
                    "'rules' to turn off)",
                )
                continue
            if name.casefold() not in known:
                later = " (it comes with OWASP 3.1)" if name in GROUPS_FROM_3_1 else ""
                self.add(
                    "ApplicationGatewayFirewallRuleGroupNotFound",
                    f"{where}.ruleGroupName",
                    f"'{name}' is not a rule group of OWASP {self.version or '3.x'}{later}; "
                    f"use one of {', '.join(known.values())}",
                )
            elif name.casefold() in seen_groups:
                self.add(
                    "ApplicationGatewayFirewallRuleGroupDuplicate",
                    f"{where}.ruleGroupName",
                    f"'{name}' is listed twice; list a rule group once",
                )
            seen_groups.add(name.casefold())
            rules = entry.get("rules")
            if rules is None:
                continue
            if not isinstance(rules, list):
                self.add(
                    "InvalidRequestFormat", f"{where}.rules", "'rules' must be a list of rule ids"
                )
                continue
            for number, rule in enumerate(rules):
                if isinstance(rule, bool) or not isinstance(rule, int) or rule <= 0:
                    self.add(
                        "ApplicationGatewayFirewallRuleIdInvalid",
                        f"{where}.rules[{number}]",
                        f"{rule!r} is not a rule id; a rule id is a positive whole number "
                        "such as 942100",
                    )
                elif rule in seen_rules:
                    self.add(
                        "ApplicationGatewayFirewallRuleIdDuplicate",
                        f"{where}.rules[{number}]",
                        f"rule {rule} is listed twice; list a rule once",
                    )
                else:
                    seen_rules.add(rule)

    def _limits(self) -> None:
        upper = MAX_BODY_KB.get(self.version or "", MAX_BODY_KB["3.2"])
        for field, value in (
            ("maxRequestBodySizeInKb", self.config.max_request_body_size_in_kb),
            ("maxRequestBodySize", self.config.max_request_body_size),
        ):
            if value is not None and not MIN_BODY_KB <= value <= upper:
                self.add(
                    "ApplicationGatewayFirewallMaxRequestBodySizeOutOfRange",
                    field,
                    f"{value} KB is outside {MIN_BODY_KB}-{upper} KB, the request body limit "
                    f"of OWASP {self.version or '3.x'}"
                    + (" (3.2 allows up to 2000 KB)" if upper < MAX_BODY_KB["3.2"] else ""),
                )
        upload = self.config.file_upload_limit_in_mb
        upload_max = MAX_UPLOAD_MB_V2 if self.v2 else MAX_UPLOAD_MB_V1
        if upload is not None and not 1 <= upload <= upload_max:
            sku = "WAF_v2" if self.v2 else "a v1 WAF SKU"
            self.add(
                "ApplicationGatewayFirewallFileUploadLimitOutOfRange",
                "fileUploadLimitInMb",
                f"{upload} MB is outside 1-{upload_max} MB, the file upload limit of {sku}",
            )

    def _exclusions(self) -> None:
        check_exclusions(self.add, self.config.exclusions or [])


def check_exclusions(add: Callable[[str, str, str], None], exclusions: list[Any]) -> None:
    """Azure's exclusion entries (as JSON objects), `add(code, field, text)` per problem; the
    inline configuration's and a WAF policy's managedRules.exclusions share the rules."""
    if len(exclusions) > MAX_EXCLUSIONS:
        add(
            "ApplicationGatewayLimitExceeded",
            "exclusions",
            f"{len(exclusions)} exclusions; at most {MAX_EXCLUSIONS} are allowed",
        )
    for index, entry in enumerate(exclusions):
        where = f"exclusions[{index}]"
        item: dict[str, Any] = entry if isinstance(entry, dict) else {}
        variable = item.get("matchVariable")
        operator = item.get("selectorMatchOperator")
        selector = item.get("selector")
        for field, value, choices in (
            ("matchVariable", variable, EXCLUSION_VARIABLES),
            ("selectorMatchOperator", operator, EXCLUSION_OPERATORS),
        ):
            if value is None:
                add(
                    "MissingRequiredProperty",
                    f"{where}.{field}",
                    f"'{field}' is required: one of {', '.join(choices)}",
                )
            elif value not in choices:
                add(
                    "ApplicationGatewayFirewallExclusionInvalid",
                    f"{where}.{field}",
                    f"'{value}' is not one of {', '.join(choices)}",
                )
        if selector is not None and not isinstance(selector, str):
            add("InvalidRequestFormat", f"{where}.selector", "'selector' must be a string")
        elif operator == EQUALS_ANY:
            if selector not in (None, "", "*"):
                add(
                    "ApplicationGatewayFirewallExclusionInvalid",
                    f"{where}.selector",
                    f"EqualsAny excludes every {variable or 'match variable'}: its selector "
                    f"is '*', not '{selector}'",
                )
        elif not selector:
            add(
                "MissingRequiredProperty",
                f"{where}.selector",
                "'selector' is required: the name (or part of it) to exclude",
            )
