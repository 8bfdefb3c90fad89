"""The rules of a WAF policy (ApplicationGatewayWebApplicationFirewallPolicies) beyond its shape:
Azure's values, ranges and limits, each refusal naming the field. What appgw's engine cannot do
(geo-match and rate-limit custom rules, Microsoft's own rule sets) is refused as such."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from typing import Any

import re2

from appgw.model.diagnostics import Diagnostic
from appgw.model.firewall_policy import (
    CustomRule,
    FirewallPolicy,
    ManagedRuleSet,
    MatchCondition,
    PolicySettings,
)
from appgw.model.firewall_policy_values import (
    ACTIONS,
    BLOCK_STATUSES,
    MODES,
    NUMERIC_OPERATORS,
    OPERATORS,
    SELECTOR_ALLOWED,
    SELECTOR_REQUIRED,
    STATES,
    TRANSFORMS,
    VARIABLES,
)
from appgw.model.ids import FirewallPolicyId
from appgw.model.rewrite import compile_re2, re2_reason
from appgw.model.validate import tag_problems
from appgw.model.validate_waf import (
    MAX_BODY_KB,
    MAX_UPLOAD_MB_V2,
    MIN_BODY_KB,
    check_exclusions,
)
from appgw.model.waf_rule_sets import REFUSED_VERSIONS, RULE_SET_VERSIONS, group_of_rule, groups_of

MAX_BLOCK_BODY = 32_768  # Azure: customBlockResponseBody is at most 32 KB of base64
MAX_CUSTOM_RULES = 100  # Azure: 100 custom rules per policy
MAX_PRIORITY = 100  # Azure: priorities 1-100, unique
MAX_CONDITIONS = 10  # Azure: match conditions per custom rule
MAX_MATCH_VALUES = 600  # Azure: IP ranges per IPMatch condition (and values per condition)
CUSTOM_RULE_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")  # Azure: letters, digits, '_'
# Azure's managed rule sets that are not the OWASP CRS: appgw's engine runs the CRS only.
OTHER_RULE_SETS = ("Microsoft_DefaultRuleSet", "Microsoft_BotManagerRuleSet")


def check_firewall_policy(policy: FirewallPolicy, policy_id: FirewallPolicyId) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    rid = str(policy_id)

    def add(code: str, field: str, text: str) -> None:
        found.append(Diagnostic(code, rid, field, text))

    if policy.name is not None and policy.name.casefold() != policy_id.name.casefold():
        add(
            "InvalidResourceName",
            "name",
            f"the body names '{policy.name}' but the URL names '{policy_id.name}'",
        )
    if not policy.location:
        add("LocationRequired", "location", "a location is required")
    found += tag_problems(policy.tags or {}, rid)
    props = policy.properties
    version = _managed_rule_sets(add, props.managed_rules.managed_rule_sets)
    _settings(add, props.policy_settings, version)
    _custom_rules(add, props.custom_rules or [])
    exclusions = [
        entry.model_dump(by_alias=True, exclude_none=True)
        for entry in props.managed_rules.exclusions or []
    ]
    check_exclusions(lambda code, field, text: add(code, f"{_MANAGED}.{field}", text), exclusions)
    for index, entry in enumerate(props.managed_rules.exclusions or []):
        for number, rule_set in enumerate(entry.exclusion_managed_rule_sets or []):
            where = f"{_MANAGED}.exclusions[{index}].exclusionManagedRuleSets[{number}]"
            if version is None:
                continue  # the managed rule set is refused already
            if (rule_set.rule_set_type, rule_set.rule_set_version) != ("OWASP", version):
                add(
                    "ApplicationGatewayFirewallExclusionInvalid",
                    where,
                    f"'{rule_set.rule_set_type} {rule_set.rule_set_version}' is not the "
                    f"policy's managed rule set (OWASP {version})",
                )
                continue
            for group_index, group in enumerate(rule_set.rule_groups or []):
                _group_rules(
                    add,
                    f"{where}.ruleGroups[{group_index}]",
                    group.rule_group_name,
                    [rule.rule_id for rule in group.rules or []],
                    version,
                )
    return found


_SETTINGS = "properties.policySettings"
_MANAGED = "properties.managedRules"
_CUSTOM = "properties.customRules"
Add = Callable[[str, str, str], None]


def _choice(add: Add, field: str, value: str | None, choices: tuple[str, ...], code: str) -> None:
    if value is not None and value not in choices:
        add(code, field, f"'{value}' is not one of {', '.join(choices)}")


def _settings(add: Add, settings: PolicySettings | None, version: str | None) -> None:
    if settings is None:
        return
    _choice(add, f"{_SETTINGS}.state", settings.state, STATES, "InvalidPolicySettingsState")
    _choice(add, f"{_SETTINGS}.mode", settings.mode, MODES, "ApplicationGatewayFirewallModeInvalid")
    upper = MAX_BODY_KB.get(version or "", MAX_BODY_KB["3.2"])
    for field, value in (
        ("maxRequestBodySizeInKb", settings.max_request_body_size_in_kb),
        ("requestBodyInspectLimitInKB", settings.request_body_inspect_limit_in_kb),
    ):
        if value is not None and not MIN_BODY_KB <= value <= upper:
            add(
                "ApplicationGatewayFirewallMaxRequestBodySizeOutOfRange",
                f"{_SETTINGS}.{field}",
                f"{value} KB is outside {MIN_BODY_KB}-{upper} KB, the request body limit of "
                f"OWASP {version or '3.x'}",
            )
    upload = settings.file_upload_limit_in_mb
    if upload is not None and not 1 <= upload <= MAX_UPLOAD_MB_V2:
        add(
            "ApplicationGatewayFirewallFileUploadLimitOutOfRange",
            f"{_SETTINGS}.fileUploadLimitInMb",
            f"{upload} MB is outside 1-{MAX_UPLOAD_MB_V2} MB",
        )
    status = settings.custom_block_response_status_code
    if status is not None and status not in BLOCK_STATUSES:
        add(
            "InvalidCustomBlockResponseStatusCode",
            f"{_SETTINGS}.customBlockResponseStatusCode",
            f"{status} is not one of {', '.join(map(str, BLOCK_STATUSES))}",
        )
    body = settings.custom_block_response_body
    if body is not None:
        field = f"{_SETTINGS}.customBlockResponseBody"
        if len(body) > MAX_BLOCK_BODY:
            add(
                "InvalidCustomBlockResponseBody",
                field,
                f"{len(body)} characters; at most {MAX_BLOCK_BODY} of base64",
            )
        else:
            try:
                base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                add("InvalidCustomBlockResponseBody", field, "the body must be base64-encoded")


def _managed_rule_sets(add: Add, rule_sets: list[ManagedRuleSet]) -> str | None:
    """Exactly one OWASP CRS 3.x set; its version (None when there is none)."""
    owasp = [(i, s) for i, s in enumerate(rule_sets) if s.rule_set_type == "OWASP"]
    for index, rule_set in enumerate(rule_sets):
        where = f"{_MANAGED}.managedRuleSets[{index}]"
        if rule_set.rule_set_type in OTHER_RULE_SETS:
            add(
                "FeatureNotSupported",
                f"{where}.ruleSetType",
                f"appgw's engine runs the OWASP Core Rule Set, not {rule_set.rule_set_type}; "
                "use ruleSetType OWASP",
            )
        elif rule_set.rule_set_type != "OWASP":
            add(
                "ApplicationGatewayFirewallRuleSetTypeNotSupported",
                f"{where}.ruleSetType",
                f"'{rule_set.rule_set_type}' is not a managed rule set; use OWASP",
            )
    if len(owasp) != 1:
        add(
            "ApplicationGatewayFirewallManagedRuleSetRequired"
            if not owasp
            else "ApplicationGatewayFirewallRuleSetDuplicate",
            f"{_MANAGED}.managedRuleSets",
            f"a WAF policy has exactly one OWASP managed rule set (found {len(owasp)})",
        )
    if not owasp:
        return None
    index, rule_set = owasp[0]
    where = f"{_MANAGED}.managedRuleSets[{index}]"
    version = rule_set.rule_set_version
    if version not in RULE_SET_VERSIONS:
        reason = REFUSED_VERSIONS.get(version, f"use one of {', '.join(RULE_SET_VERSIONS)}")
        add(
            "ApplicationGatewayFirewallRuleSetVersionNotSupported",
            f"{where}.ruleSetVersion",
            f"OWASP {version} is not supported: {reason}",
        )
        return None
    seen: set[str] = set()
    for number, group in enumerate(rule_set.rule_group_overrides or []):
        group_where = f"{where}.ruleGroupOverrides[{number}]"
        if group.rule_group_name.casefold() in seen:
            add(
                "ApplicationGatewayFirewallRuleGroupDuplicate",
                f"{group_where}.ruleGroupName",
                f"'{group.rule_group_name}' is listed twice; list a rule group once",
            )
        seen.add(group.rule_group_name.casefold())
        rules = group.rules or []
        _group_rules(add, group_where, group.rule_group_name, [r.rule_id for r in rules], version)
        for rule_index, rule in enumerate(rules):
            rule_where = f"{group_where}.rules[{rule_index}]"
            _choice(add, f"{rule_where}.state", rule.state, STATES, "InvalidManagedRuleState")
            if rule.action not in (None, "AnomalyScoring"):
                add(
                    "ApplicationGatewayFirewallRuleActionNotSupported",
                    f"{rule_where}.action",
                    f"'{rule.action}': the rules of OWASP {version} score anomalies (their "
                    "action is AnomalyScoring); to stop a rule, set its state to Disabled",
                )
    return version


def _group_rules(add: Add, where: str, group: str, rule_ids: list[str], version: str) -> None:
    """`group` is a rule group of `version`, and each rule id one of its rules."""
    known = {g.casefold(): g for g in groups_of(version)}
    name = known.get(group.casefold())
    if name is None:
        add(
            "ApplicationGatewayFirewallRuleGroupNotFound",
            f"{where}.ruleGroupName",
            f"'{group}' is not a rule group of OWASP {version}; use one of "
            f"{', '.join(known.values())}",
        )
        return
    seen: set[str] = set()
    for index, rule_id in enumerate(rule_ids):
        field = f"{where}.rules[{index}].ruleId"
        if not rule_id.isdigit():
            add(
                "ApplicationGatewayFirewallRuleIdInvalid",
                field,
                f"'{rule_id}' is not a rule id; a rule id is a number such as 942100",
            )
        elif group_of_rule(int(rule_id)) != name:
            add(
                "ApplicationGatewayFirewallRuleNotFound",
                field,
                f"rule {rule_id} is not in rule group {name}",
            )
        elif rule_id in seen:
            add(
                "ApplicationGatewayFirewallRuleIdDuplicate",
                field,
                f"rule {rule_id} is listed twice; list a rule once",
            )
        seen.add(rule_id)


def _custom_rules(add: Add, rules: list[CustomRule]) -> None:
    if len(rules) > MAX_CUSTOM_RULES:
        add(
            "ApplicationGatewayLimitExceeded",
            _CUSTOM,
            f"{len(rules)} custom rules; at most {MAX_CUSTOM_RULES} are allowed",
        )
    names: dict[str, int] = {}
    priorities: dict[int, str] = {}
    for index, rule in enumerate(rules):
        where = f"{_CUSTOM}[{index}]"
        if not rule.name:
            add("MissingRequiredProperty", f"{where}.name", "a custom rule needs a name")
        elif not CUSTOM_RULE_NAME.fullmatch(rule.name):
            add(
                "InvalidCustomRuleName",
                f"{where}.name",
                f"'{rule.name}': a custom rule name is 1-128 letters, digits and '_'",
            )
        elif rule.name.casefold() in names:
            add(
                "DuplicateCustomRuleName",
                f"{where}.name",
                f"'{rule.name}' is already the name of customRules[{names[rule.name.casefold()]}]",
            )
        else:
            names[rule.name.casefold()] = index
        if not 1 <= rule.priority <= MAX_PRIORITY:
            add(
                "InvalidCustomRulePriority",
                f"{where}.priority",
                f"{rule.priority} is outside 1-{MAX_PRIORITY}",
            )
        elif rule.priority in priorities:
            add(
                "DuplicateCustomRulePriority",
                f"{where}.priority",
                f"priority {rule.priority} is already rule '{priorities[rule.priority]}''s; "
                "each custom rule has its own",
            )
        else:
            priorities[rule.priority] = rule.name or ""
        if rule.rule_type == "RateLimitRule":
            add(
                "FeatureNotSupported",
                f"{where}.ruleType",
                "appgw does not implement rate-limit custom rules; use ruleType MatchRule",
            )
        else:
            _choice(add, f"{where}.ruleType", rule.rule_type, ("MatchRule",), "InvalidRuleType")
        if rule.action == "JSChallenge":
            add(
                "FeatureNotSupported",
                f"{where}.action",
                "appgw does not implement the JavaScript challenge; use Allow, Block or Log",
            )
        else:
            _choice(add, f"{where}.action", rule.action, ACTIONS, "InvalidCustomRuleAction")
        _choice(add, f"{where}.state", rule.state, STATES, "InvalidCustomRuleState")
        if not rule.match_conditions:
            add(
                "MissingRequiredProperty",
                f"{where}.matchConditions",
                "a custom rule needs at least one match condition",
            )
        elif len(rule.match_conditions) > MAX_CONDITIONS:
            add(
                "ApplicationGatewayLimitExceeded",
                f"{where}.matchConditions",
                f"{len(rule.match_conditions)} conditions; at most {MAX_CONDITIONS} per rule",
            )
        for number, condition in enumerate(rule.match_conditions):
            _condition(add, f"{where}.matchConditions[{number}]", condition)


def _condition(add: Add, where: str, condition: MatchCondition) -> None:
    operator = condition.operator
    if operator == "GeoMatch":
        add(
            "FeatureNotSupported",
            f"{where}.operator",
            "appgw has no geolocation database, so GeoMatch cannot be evaluated; match "
            "RemoteAddr with IPMatch instead",
        )
        return
    _choice(add, f"{where}.operator", operator, OPERATORS, "InvalidMatchConditionOperator")
    if not condition.match_variables:
        add(
            "MissingRequiredProperty",
            f"{where}.matchVariables",
            "a match condition needs at least one match variable",
        )
    for index, variable in enumerate(condition.match_variables):
        field = f"{where}.matchVariables[{index}]"
        name = variable.variable_name
        if name not in VARIABLES:
            add(
                "InvalidMatchVariable",
                f"{field}.variableName",
                f"'{name}' is not one of {', '.join(VARIABLES)}",
            )
        elif name in SELECTOR_REQUIRED and not variable.selector:
            add(
                "MissingRequiredProperty",
                f"{field}.selector",
                f"{name} needs a selector: the name of the "
                f"{'header' if name == 'RequestHeaders' else 'cookie'} to match",
            )
        elif name not in SELECTOR_ALLOWED and variable.selector:
            add(
                "InvalidMatchVariableSelector",
                f"{field}.selector",
                f"{name} has no selector; remove it",
            )
        if operator == "IPMatch" and name != "RemoteAddr":
            add(
                "InvalidMatchConditionOperator",
                f"{where}.operator",
                f"IPMatch matches RemoteAddr, not {name}",
            )
    values = condition.match_values
    field = f"{where}.matchValues"
    if len(values) > MAX_MATCH_VALUES:
        add(
            "ApplicationGatewayLimitExceeded",
            field,
            f"{len(values)} values; at most {MAX_MATCH_VALUES} per condition",
        )
    if operator == "Any":
        if values:
            add("InvalidMatchValues", field, "the Any operator takes no match values")
    elif operator in OPERATORS and not values:
        add("MissingRequiredProperty", field, f"the {operator} operator needs match values")
    for index, value in enumerate(values):
        problem = _value_problem(operator, value)
        if problem is not None:
            add("InvalidMatchValues", f"{field}[{index}]", f"'{value}': {problem}")
    for index, transform in enumerate(condition.transforms or []):
        _choice(add, f"{where}.transforms[{index}]", transform, TRANSFORMS, "InvalidTransform")


def _value_problem(operator: str, value: str) -> str | None:
    if operator == "IPMatch":
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return "not an IP address or CIDR range (such as 10.0.0.0/8)"
    elif operator in NUMERIC_OPERATORS:
        if not re.fullmatch(r"-?\d{1,18}", value):
            return f"{operator} compares numbers; give a whole number"
    elif operator == "Regex":
        # RE2's syntax, a subset that ModSecurity's PCRE reads the same way: a pattern such
        # as `\u0041`, which Python's re accepts and PCRE refuses, would leave the rule
        # silently matching nothing in the engine.
        try:
            compile_re2(value, ignore_case=False)
        except re2.error as error:
            return (
                f"not a pattern appgw can check ({re2_reason(error)}); custom rules take RE2's "
                "syntax, which ModSecurity reads the same way: no look-around or back references"
            )
    elif not value:
        return "an empty value matches everything; use the Any operator instead"
    return None


def policy_view_defaults(properties: dict[str, Any]) -> None:
    """Azure's defaults of a policy's settings, filled into a stored document's properties."""
    settings = properties.setdefault("policySettings", {})
    settings.setdefault("state", "Enabled")
    settings.setdefault("mode", "Detection")
    settings.setdefault("requestBodyCheck", True)
    settings.setdefault("maxRequestBodySizeInKb", 128)
    settings.setdefault("fileUploadLimitInMb", 100)
    properties.setdefault("customRules", [])
    properties["managedRules"].setdefault("exclusions", [])
