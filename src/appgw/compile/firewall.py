"""Which web application firewall inspects which requests, as loaded rules: the gateway's
inline `webApplicationFirewallConfiguration` or its WAF policy, and the policies that listeners
and path rules link (Azure: the most specific wins; a policy whose state is Disabled turns
inspection off where it applies).

A gateway version keeps the content of each policy it links in its secrets, under
LINKED_POLICIES, as it was when the version was committed (the API writes it; a policy's PUT
commits a new version of every gateway that links it): a version compiles the same everywhere
and at any later time, from what the version itself holds."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from appgw.compile.snapshot import FirewallScope
from appgw.model.diagnostics import Diagnostic
from appgw.model.firewall_policy import FirewallPolicy, FirewallPolicyProperties
from appgw.model.resource import SubResource, WebApplicationFirewallConfiguration
from appgw.model.waf_rule_sets import WAF_CONFIGURATION_FIELD
from appgw.waf.catalogue import rule_groups
from appgw.waf.engine import RuleSetUnavailable, firewall_for
from appgw.waf.seclang import Condition, CustomRule, Exclusion, WafSettings

# Where a version's secrets keep the policies it links: folded policy id -> the policy's
# canonical document (name and properties).
LINKED_POLICIES = "firewallPolicies"
DEFAULT_BODY_KB = 128  # Azure's default maxRequestBodySizeInKb
DEFAULT_UPLOAD_MB = 100  # Azure's default fileUploadLimitInMb
GLOBAL = "Global"


def linked_policies(secrets: Mapping[str, Any]) -> Mapping[str, Any]:
    found = secrets.get(LINKED_POLICIES)
    return found if isinstance(found, Mapping) else {}


def waf_settings(config: WebApplicationFirewallConfiguration) -> WafSettings:
    """Azure's webApplicationFirewallConfiguration (validated) as the engine's settings. A
    disabled rule group without rules disables the group; with rules, just those."""
    groups: list[str] = []
    rules: list[int] = []
    for entry in config.disabled_rule_groups or ():
        listed = entry.get("rules") or []
        if listed:
            rules += (int(rule) for rule in listed)
        else:
            groups.append(str(entry.get("ruleGroupName", "")))
    exclusions = tuple(
        Exclusion(
            str(item.get("matchVariable", "")),
            str(item.get("selectorMatchOperator") or "EqualsAny"),
            str(item.get("selector") or ""),
        )
        for item in config.exclusions or ()
    )
    kb = config.max_request_body_size_in_kb or config.max_request_body_size or DEFAULT_BODY_KB
    return WafSettings(
        prevention=(config.firewall_mode or "Detection") == "Prevention",
        rule_set_version=config.rule_set_version or "3.2",
        disabled_groups=tuple(groups),
        disabled_rules=tuple(sorted(set(rules))),
        exclusions=exclusions,
        request_body_check=config.request_body_check is not False,
        max_request_body_bytes=kb * 1024,
        file_upload_limit_bytes=(config.file_upload_limit_in_mb or DEFAULT_UPLOAD_MB) * 1024 * 1024,
    )


def policy_waf_settings(policy: FirewallPolicyProperties) -> WafSettings | None:
    """A (validated) WAF policy as the engine's settings; None when its state is Disabled."""
    settings = policy.policy_settings
    if settings is not None and settings.state == "Disabled":
        return None
    managed = policy.managed_rules.managed_rule_sets[0]
    disabled = sorted(
        {
            int(rule.rule_id)
            for group in managed.rule_group_overrides or ()
            for rule in group.rules or ()
            if rule.state == "Disabled"
        }
    )
    exclusions = tuple(
        Exclusion(
            entry.match_variable,
            entry.selector_match_operator,
            entry.selector,
            _excluded_rules(entry.exclusion_managed_rule_sets or ()),
        )
        for entry in policy.managed_rules.exclusions or ()
    )
    custom = tuple(
        CustomRule(
            rule.name or f"rule{rule.priority}",
            rule.action,
            tuple(
                Condition(
                    tuple((v.variable_name, v.selector) for v in condition.match_variables),
                    condition.operator,
                    bool(condition.negation_conditon),
                    tuple(condition.match_values),
                    tuple(condition.transforms or ()),
                )
                for condition in rule.match_conditions
            ),
        )
        for rule in sorted(policy.custom_rules or (), key=lambda rule: rule.priority)
        if rule.state != "Disabled"
    )
    s = settings
    inspect_kb = (
        (s.request_body_inspect_limit_in_kb or s.max_request_body_size_in_kb) if s else None
    )
    return WafSettings(
        prevention=s is not None and s.mode == "Prevention",
        rule_set_version=managed.rule_set_version,
        disabled_rules=tuple(disabled),
        exclusions=exclusions,
        request_body_check=s is None or s.request_body_check is not False,
        max_request_body_bytes=(inspect_kb or DEFAULT_BODY_KB) * 1024,
        enforce_body_limit=s is None or s.request_body_enforcement is not False,
        file_upload_limit_bytes=((s.file_upload_limit_in_mb if s else None) or DEFAULT_UPLOAD_MB)
        * 1024
        * 1024,
        custom_rules=custom,
    )


def _excluded_rules(rule_sets: Any) -> tuple[int, ...]:
    """The rule ids an exclusion names: its rules, and every rule of the groups it names
    without rules (from the installed CRS)."""
    groups = {group.name.casefold(): group for group in rule_groups()}
    ids: set[int] = set()
    for rule_set in rule_sets:
        for group in rule_set.rule_groups or ():
            known = groups.get(group.rule_group_name.casefold())
            if group.rules:
                ids.update(int(rule.rule_id) for rule in group.rules)
            elif known is not None:
                ids.update(rule.rule_id for rule in known.rules)
    return tuple(sorted(ids))


class Firewalls:
    """The firewall scopes of one gateway version being compiled; problems (a policy the
    version does not hold, a rule set that cannot load) go to `problems`."""

    def __init__(
        self,
        gateway_id: str,
        config: WebApplicationFirewallConfiguration | None,
        gateway_policy: SubResource | None,
        secrets: Mapping[str, Any],
        problems: list[Diagnostic],
    ) -> None:
        self.gateway_id = gateway_id
        self.policies = linked_policies(secrets)
        self.problems = problems
        # folded policy id -> (its settings, None when Disabled; block status; block body)
        self.parsed: dict[str, tuple[WafSettings | None, int, bytes | None]] = {}
        if gateway_policy is not None:
            self.gateway = self._policy(gateway_policy, GLOBAL, GLOBAL, gateway_id)
        elif config is not None and config.enabled:
            self.gateway = self._scope(
                waf_settings(config),
                "default",
                GLOBAL,
                GLOBAL,
                gateway_id,
                WAF_CONFIGURATION_FIELD,
                403,
                None,
            )
        else:
            self.gateway = None

    def listener(
        self, reference: SubResource | None, name: str, owner: str
    ) -> FirewallScope | None:
        if reference is None:
            return self.gateway
        return self._policy(reference, "Listener", name, owner)

    def path_rule(
        self, reference: SubResource | None, name: str, owner: str, inherited: FirewallScope | None
    ) -> FirewallScope | None:
        if reference is None:
            return inherited
        return self._policy(reference, "Location", name, owner)

    def _policy(
        self, reference: SubResource, scope: str, scope_name: str, owner: str
    ) -> FirewallScope | None:
        field = "properties.firewallPolicy"
        stored = self.policies.get(reference.id.casefold())
        if stored is None:
            self.problems.append(
                Diagnostic(
                    "ApplicationGatewayFirewallPolicyNotFound",
                    owner,
                    field,
                    f"the WAF policy '{reference.id}' is not part of this version",
                )
            )
            return None
        key = reference.id.casefold()
        if key not in self.parsed:  # once per policy, however many listeners and paths link it
            policy = FirewallPolicy.model_validate(stored).properties
            custom = policy.policy_settings
            body = custom.custom_block_response_body if custom else None
            self.parsed[key] = (
                policy_waf_settings(policy),
                (custom.custom_block_response_status_code if custom else None) or 403,
                base64.b64decode(body) if body else None,
            )
        settings, status, block_body = self.parsed[key]
        if settings is None:
            return None
        return self._scope(
            settings, reference.id, scope, scope_name, owner, field, status, block_body
        )

    def _scope(
        self,
        settings: WafSettings,
        policy_id: str,
        scope: str,
        scope_name: str,
        owner: str,
        field: str,
        status: int,
        body: bytes | None,
    ) -> FirewallScope | None:
        try:
            firewall = firewall_for(settings)
        except RuleSetUnavailable as error:
            self.problems.append(
                Diagnostic(
                    "ApplicationGatewayWafRuleSetUnavailable",
                    owner,
                    field,
                    f"the web application firewall cannot start: {error}",
                )
            )
            return None
        return FirewallScope(firewall, policy_id, scope, scope_name, status, body)
