"""The rules of rewrite rule sets (Azure: rewrite-http-headers-url.md and its limits), checked
with the gateway's other rules by `model/validate.py`."""

from __future__ import annotations

from collections.abc import Callable

from appgw.model.checks import Checks
from appgw.model.enums import RuleType
from appgw.model.ids import parse_child_ref
from appgw.model.resource import (
    HeaderConfiguration,
    RewriteRule,
    RewriteRuleSet,
    SubResource,
)
from appgw.model.rewrite import (
    REQUEST_HEADER_NAME,
    Phase,
    Reference,
    RewriteSyntaxError,
    Template,
    compile_pattern,
    is_header_name,
    parse_template,
    parse_variable,
)

# Azure: header and URL configurations per rewrite set, and conditions per rewrite set.
MAX_ACTIONS_PER_SET = 40
MAX_CONDITIONS_PER_SET = 40
# Azure's portal offers a rule sequence of 1-1000 (lower runs first).
MAX_RULE_SEQUENCE = 1000
# Never rewritten: Azure refuses Connection and Upgrade; the framing and hop-by-hop headers
# are the gateway's own to state (a rewritten Content-Length would desynchronise the body).
NOT_REWRITABLE = {
    "connection": "Azure does not rewrite the Connection header",
    "upgrade": "Azure does not rewrite the Upgrade header",
    "content-length": "the gateway states the body's framing itself",
    "transfer-encoding": "the gateway states the body's framing itself",
    "keep-alive": "a hop-by-hop header, about the connection, not the message",
    "proxy-connection": "a hop-by-hop header, about the connection, not the message",
    "te": "a hop-by-hop header, about the connection, not the message",
    "trailer": "a hop-by-hop header, about the connection, not the message",
}
# Characters a header value (or URL) template may not hold: a header must never be split.
_FORBIDDEN_VALUE_CHARACTERS = {chr(c) for c in range(0x20) if c != 0x09} | {"\x7f"}


def check_rewrite_rule_sets(checks: Checks) -> None:
    props = checks.props
    for rule_set in props.rewrite_rule_sets:
        _check_set(checks, checks.rid("rewriteRuleSets", rule_set), rule_set)
    _check_attachments(checks)


def _check_set(checks: Checks, owner: str, rule_set: RewriteRuleSet) -> None:
    rules = rule_set.properties.rewrite_rules
    checks.require_v2(
        owner,
        "properties",
        "ApplicationGatewayRewriteRequiresV2Sku",
        "a rewrite rule set",
    )
    actions = conditions = 0
    names: set[str] = set()
    for index, rule in enumerate(rules):
        field = f"properties.rewriteRules[{index}]"
        if rule.name.casefold() in names:
            checks.add(
                "ApplicationGatewayRewriteRuleNameDuplicate",
                owner,
                field + ".name",
                f"'{rule.name}' names two rules of this set",
            )
        names.add(rule.name.casefold())
        sequence = rule.rule_sequence
        if sequence is None or not 1 <= sequence <= MAX_RULE_SEQUENCE:
            checks.add(
                "ApplicationGatewayRewriteRuleSequenceOutOfRange",
                owner,
                field + ".ruleSequence",
                f"'ruleSequence' must be 1-{MAX_RULE_SEQUENCE} (lower runs first); got {sequence}",
            )
        conditions += len(rule.conditions or [])
        action_set = rule.action_set
        if action_set is not None:
            actions += len(action_set.request_header_configurations or [])
            actions += len(action_set.response_header_configurations or [])
            actions += action_set.url_configuration is not None
        _check_rule(checks.add, owner, field, rule)
    for count, limit, what, code_field in (
        (actions, MAX_ACTIONS_PER_SET, "header and URL configurations", "actionSet"),
        (conditions, MAX_CONDITIONS_PER_SET, "conditions", "conditions"),
    ):
        if count > limit:
            checks.add(
                "ApplicationGatewayLimitExceeded",
                owner,
                "properties.rewriteRules",
                f"{count} {what} in this set ({code_field}); a rewrite rule set allows at most "
                f"{limit}",
            )


def _check_rule(
    add: Callable[[str, str, str, str], None], owner: str, field: str, rule: RewriteRule
) -> None:
    # Condition variable (as written) -> capture groups its pattern has; None: negated.
    captures: dict[str, int | None] = {}
    response_condition = False
    for index, condition in enumerate(rule.conditions or []):
        where = f"{field}.conditions[{index}]"
        try:
            variable = parse_variable(condition.variable)
        except RewriteSyntaxError as error:
            add("ApplicationGatewayRewriteInvalidVariable", owner, where + ".variable", str(error))
            continue
        response_condition |= variable.phase is Phase.RESPONSE
        try:
            pattern = compile_pattern(condition.pattern, ignore_case=bool(condition.ignore_case))
        except RewriteSyntaxError as error:
            add("ApplicationGatewayRewriteInvalidPattern", owner, where + ".pattern", str(error))
            continue
        groups = None if condition.negate else int(pattern.groups)
        if captures.get(variable.variable) is None:
            captures[variable.variable] = groups
    action_set = rule.action_set
    if action_set is None or not (
        action_set.request_header_configurations
        or action_set.response_header_configurations
        or action_set.url_configuration
    ):
        add(
            "ApplicationGatewayRewriteRuleActionSetEmpty",
            owner,
            field + ".actionSet",
            "a rewrite rule needs at least one request header, response header or URL action",
        )
        return
    request_side = bool(action_set.request_header_configurations or action_set.url_configuration)
    if request_side and response_condition:
        add(
            "ApplicationGatewayRewriteResponseVariableInRequest",
            owner,
            field + ".conditions",
            "a condition on the response (http_resp_*, var_http_status, var_sent_bytes) cannot "
            "decide a request header or URL rewrite, which happens before the response exists; "
            "put the request actions in a rule of their own",
        )

    def template(text: str, where: str, *, phase: Phase, header: bool) -> Template | None:
        bad = sorted({repr(c) for c in text if c in _FORBIDDEN_VALUE_CHARACTERS})
        if bad:
            add(
                "ApplicationGatewayRewriteInvalidHeaderValue"
                if header
                else "ApplicationGatewayRewriteInvalidUrl",
                owner,
                where,
                f"holds the control character(s) {', '.join(bad)}, which would split the message",
            )
            return None
        try:
            parts = parse_template(text)
        except RewriteSyntaxError as error:
            add("ApplicationGatewayRewriteInvalidVariable", owner, where, str(error))
            return None
        for part in parts:
            if isinstance(part, Reference):
                _check_reference(add, owner, where, part, phase, captures)
        return parts

    for collection, phase in (
        ("requestHeaderConfigurations", Phase.REQUEST),
        ("responseHeaderConfigurations", Phase.RESPONSE),
    ):
        headers: list[HeaderConfiguration] = (
            action_set.request_header_configurations
            if phase is Phase.REQUEST
            else action_set.response_header_configurations
        ) or []
        for index, header in enumerate(headers):
            where = f"{field}.actionSet.{collection}[{index}]"
            _check_header_name(add, owner, where + ".headerName", header, phase)
            if header.header_value:
                template(header.header_value, where + ".headerValue", phase=phase, header=True)
    url = action_set.url_configuration
    if url is not None:
        where = f"{field}.actionSet.urlConfiguration"
        if url.modified_path is None and url.modified_query_string is None:
            add(
                "ApplicationGatewayRewriteRuleActionSetEmpty",
                owner,
                where,
                "a URL configuration sets 'modifiedPath', 'modifiedQueryString' or both",
            )
        for name, value, refused in (
            ("modifiedPath", url.modified_path, "?#"),
            ("modifiedQueryString", url.modified_query_string, "#"),
        ):
            if value is None:
                continue
            if " " in value or any(c in value for c in refused):
                add(
                    "ApplicationGatewayRewriteInvalidUrl",
                    owner,
                    f"{where}.{name}",
                    f"'{value}' may not hold a space or any of {' '.join(refused)}",
                )
                continue
            template(value, f"{where}.{name}", phase=Phase.REQUEST, header=False)


def _check_header_name(
    add: Callable[[str, str, str, str], None],
    owner: str,
    where: str,
    header: HeaderConfiguration,
    phase: Phase,
) -> None:
    name = header.header_name
    valid = (
        REQUEST_HEADER_NAME.fullmatch(name) is not None
        if phase is Phase.REQUEST
        else is_header_name(name)
    )
    if not valid:
        allowed = "letters, digits and '-'" if phase is Phase.REQUEST else "RFC 9110 token"
        add(
            "ApplicationGatewayRewriteInvalidHeaderName",
            owner,
            where,
            f"'{name}' is not a header name ({allowed} characters)",
        )
        return
    reason = NOT_REWRITABLE.get(name.lower())
    if reason is not None:
        add(
            "ApplicationGatewayRewriteHeaderNotSupported",
            owner,
            where,
            f"the {name} header cannot be rewritten: {reason}",
        )
    elif phase is Phase.REQUEST and name.lower() == "host" and not header.header_value:
        add(
            "ApplicationGatewayRewriteHeaderNotSupported",
            owner,
            where,
            "the Host header cannot be deleted (as in Azure); give it a value",
        )


def _check_reference(
    add: Callable[[str, str, str, str], None],
    owner: str,
    where: str,
    reference: Reference,
    phase: Phase,
    captures: dict[str, int | None],
) -> None:
    shown = "{" + reference.variable + "}"
    if phase is Phase.REQUEST and reference.phase is Phase.RESPONSE:
        add(
            "ApplicationGatewayRewriteResponseVariableInRequest",
            owner,
            where,
            f"{shown} is known only once the response came; a request rewrite cannot use it",
        )
    if reference.group is None:
        return
    if reference.variable not in captures:
        add(
            "ApplicationGatewayRewriteCaptureWithoutCondition",
            owner,
            where,
            f"capture {reference.group} of '{reference.variable}' needs a condition of this rule "
            f"on '{reference.variable}' (spelled alike, case included)",
        )
        return
    groups = captures[reference.variable]
    if groups is None:
        add(
            "ApplicationGatewayRewriteCaptureWithoutCondition",
            owner,
            where,
            f"the condition on '{reference.variable}' is negated: it captures nothing",
        )
    elif reference.group > groups:
        add(
            "ApplicationGatewayRewriteCaptureWithoutCondition",
            owner,
            where,
            f"capture {reference.group} of '{reference.variable}': its condition's pattern has "
            f"{groups} group(s)",
        )


def _check_attachments(checks: Checks) -> None:
    """References to sets, and Azure's two loop rules for 'reroute' (re-evaluate the path
    map): never on a basic rule; on a path map, not every rule unconditional and rerouting."""
    props = checks.props
    sets = {rule_set.name.casefold(): rule_set for rule_set in props.rewrite_rule_sets}
    for rule in props.request_routing_rules:
        if rule.properties.rule_type != RuleType.BASIC or rule.properties.rewrite_rule_set is None:
            continue
        owner = checks.rid("requestRoutingRules", rule)
        rule_set = sets.get(_target(rule.properties.rewrite_rule_set))
        if rule_set is not None and any(_reroutes(r) for r in rule_set.properties.rewrite_rules):
            checks.add(
                "ApplicationGatewayRewriteRerouteOnBasicRule",
                owner,
                "properties.rewriteRuleSet",
                f"rewrite rule set '{rule_set.name}' re-evaluates the path map ('reroute'), which "
                "a basic rule does not have (Azure refuses it: it could only loop)",
            )
    for path_map in props.url_path_maps:
        p = path_map.properties
        owner = checks.rid("urlPathMaps", path_map)
        attached = [(owner, "properties.defaultRewriteRuleSet", p.default_rewrite_rule_set)] + [
            (
                checks.gid.path_rule(path_map.name, r.name),
                "properties.rewriteRuleSet",
                r.properties.rewrite_rule_set,
            )
            for r in p.path_rules
        ]
        for where, field, reference in attached:
            if checks.ref(where, field, reference, "rewriteRuleSets") is None:
                continue
            rule_set = sets.get(_target(reference))
            rules = rule_set.properties.rewrite_rules if rule_set is not None else []
            if (
                rule_set is not None
                and rules
                and all(_reroutes(r) and not r.conditions for r in rules)
            ):
                checks.add(
                    "ApplicationGatewayRewriteRerouteLoop",
                    where,
                    field,
                    f"every rule of rewrite rule set '{rule_set.name}' re-evaluates the path map "
                    "without a condition: at least one rule needs a condition or no 'reroute' "
                    "(Azure's rule against evaluation loops)",
                )


def _reroutes(rule: RewriteRule) -> bool:
    url = rule.action_set.url_configuration if rule.action_set else None
    return bool(url and url.reroute)


def _target(reference: SubResource | None) -> str:
    """The folded name a reference points at ("" when it is not a child id)."""
    target = parse_child_ref(reference.id) if reference is not None else None
    return target.name.casefold() if target is not None else ""
