"""The `Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies` resource (a WAF
policy) with Azure's JSON names exactly: its settings, custom rules and managed rules. A
gateway, a listener or a path rule links one by `firewallPolicy: {id}`.

Shape only, as in resource.py; the rules that span fields are in validate_firewall_policy.py.
Read-only fields (the associations, provisioningState) are accepted on input, as Azure's tools
send a GET result back, and replaced by the server."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from appgw.model.resource import SubResource, WireModel


class PolicySettings(WireModel):
    state: str | None = None  # Enabled, Disabled
    mode: str | None = None  # Prevention, Detection
    request_body_check: bool | None = None
    request_body_inspect_limit_in_kb: int | None = Field(
        default=None, alias="requestBodyInspectLimitInKB"
    )
    request_body_enforcement: bool | None = None
    max_request_body_size_in_kb: int | None = None
    file_upload_enforcement: bool | None = None
    file_upload_limit_in_mb: int | None = None
    custom_block_response_status_code: int | None = None
    custom_block_response_body: str | None = None  # base64
    log_scrubbing: dict[str, Any] | None = None
    js_challenge_cookie_expiration_in_mins: int | None = None


class MatchVariable(WireModel):
    variable_name: str
    selector: str | None = None


class MatchCondition(WireModel):
    match_variables: list[MatchVariable]
    operator: str
    # Azure's spelling (sic): the ARM schema names it so.
    negation_conditon: bool | None = Field(default=None, alias="negationConditon")
    match_values: list[str]
    transforms: list[str] | None = None


class CustomRule(WireModel):
    name: str | None = None
    etag: str | None = None
    priority: int
    rule_type: str
    action: str
    state: str | None = None  # Enabled (default), Disabled
    match_conditions: list[MatchCondition]
    rate_limit_duration: str | None = None
    rate_limit_threshold: int | None = None
    group_by_user_session: list[dict[str, Any]] | None = None


class ManagedRuleOverride(WireModel):
    rule_id: str
    state: str | None = None  # Enabled, Disabled
    action: str | None = None
    sensitivity: str | None = None


class ManagedRuleGroupOverride(WireModel):
    rule_group_name: str
    rules: list[ManagedRuleOverride] | None = None


class ManagedRuleSet(WireModel):
    rule_set_type: str
    rule_set_version: str
    rule_group_overrides: list[ManagedRuleGroupOverride] | None = None
    computed_disabled_rules: list[dict[str, Any]] | None = None  # read-only


class ExclusionManagedRule(WireModel):
    rule_id: str


class ExclusionManagedRuleGroup(WireModel):
    rule_group_name: str
    rules: list[ExclusionManagedRule] | None = None


class ExclusionManagedRuleSet(WireModel):
    rule_set_type: str
    rule_set_version: str
    rule_groups: list[ExclusionManagedRuleGroup] | None = None


class OwaspCrsExclusionEntry(WireModel):
    match_variable: str
    selector_match_operator: str
    selector: str
    exclusion_managed_rule_sets: list[ExclusionManagedRuleSet] | None = None


class ManagedRulesDefinition(WireModel):
    managed_rule_sets: list[ManagedRuleSet]
    exclusions: list[OwaspCrsExclusionEntry] | None = None


class FirewallPolicyProperties(WireModel):
    policy_settings: PolicySettings | None = None
    custom_rules: list[CustomRule] | None = None
    managed_rules: ManagedRulesDefinition
    # read-only
    provisioning_state: str | None = None
    resource_state: str | None = None
    application_gateways: list[SubResource] | None = None
    http_listeners: list[SubResource] | None = None
    path_based_rules: list[SubResource] | None = None


class FirewallPolicy(WireModel):
    id: str | None = None
    name: str | None = None
    type: str | None = None
    location: str | None = None
    tags: dict[str, str] | None = None
    etag: str | None = None
    properties: FirewallPolicyProperties


READ_ONLY_PROPERTIES = (
    "provisioningState",
    "resourceState",
    "applicationGateways",
    "httpListeners",
    "pathBasedRules",
)
