"""Web application firewall blade (WAF tiers): the gateway's inline WAF configuration
(`webApplicationFirewallConfiguration`) as Azure's blade has it: status, mode, rule set, body
inspection and limits, exclusions (rows added and removed by submit buttons, no JavaScript)
and the rules turned off (a checkbox per rule group, and rule ids typed). Other tiers get a
page that says the firewall needs a WAF tier."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData

from appgw.model.ids import FirewallPolicyId, GatewayId
from appgw.model.validate_waf import (
    EQUALS_ANY,
    EXCLUSION_OPERATORS,
    EXCLUSION_VARIABLES,
    FIELD,
    MAX_EXCLUSIONS,
    POLICY_FIELD,
    WAF_SKUS,
)
from appgw.model.waf_rule_sets import (
    RULE_GROUPS,
    RULE_SET_VERSIONS,
    default_configuration,
    group_of_rule,
)
from appgw.portal.common import FieldMapping, FormErrors, GatewayScreen, Portal, text
from appgw.portal.screens.rules import number_or_text
from appgw.portal.screens.waf_policies import policy_options, policy_url

CONFIG = "webApplicationFirewallConfiguration"
ENABLED = "Enabled"
DISABLED = "Disabled"
ON = "On"
OFF = "Off"
MODES = ("Detection", "Prevention")
_RULE_SEPARATORS = re.compile(r"[\s,;]+")
# Azure's portal writes these when the firewall is first configured from the blade.
DEFAULT_BODY_KB = 128
DEFAULT_UPLOAD_MB = 100
# More exclusion rows than Azure allows are never read back from a form.
MAX_ROWS = MAX_EXCLUSIONS + 1


@dataclass
class ExclusionRow:
    variable: str = EXCLUSION_VARIABLES[0]
    operator: str = EXCLUSION_OPERATORS[0]
    selector: str = ""


@dataclass
class WafForm:
    status: str = ENABLED
    mode: str = "Detection"
    version: str = "3.2"
    body_check: str = ON
    max_body_kb: str = ""
    upload_mb: str = ""
    exclusions: list[ExclusionRow] = field(default_factory=list)
    disabled_groups: list[str] = field(default_factory=list)
    disabled_rules: str = ""
    # The WAF policy the gateway links (its id; "" for none).
    policy: str = ""
    # Where the stored rule ids are filed (a rule stays in its group when saved again).
    rule_groups: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of_view(cls, view: dict[str, Any]) -> WafForm:
        props = view["properties"]
        sku = str((props.get("sku") or {}).get("name", ""))
        config = props.get(CONFIG) or default_configuration(sku)
        groups: list[str] = []
        rules: dict[int, str] = {}
        for entry in config.get("disabledRuleGroups") or []:
            if entry.get("rules"):
                rules.update((rule, entry["ruleGroupName"]) for rule in entry["rules"])
            else:
                groups.append(entry["ruleGroupName"])
        body = config.get("maxRequestBodySizeInKb", config.get("maxRequestBodySize"))
        return cls(
            status=ENABLED if config.get("enabled") else DISABLED,
            mode=config.get("firewallMode") or "Detection",
            version=config.get("ruleSetVersion") or "3.2",
            body_check=OFF if config.get("requestBodyCheck") is False else ON,
            max_body_kb=str(body if body is not None else DEFAULT_BODY_KB),
            upload_mb=str(config.get("fileUploadLimitInMb", DEFAULT_UPLOAD_MB)),
            exclusions=[
                ExclusionRow(
                    e.get("matchVariable", ""),
                    e.get("selectorMatchOperator", ""),
                    e.get("selector") or "",
                )
                for e in config.get("exclusions") or []
            ],
            disabled_groups=groups,
            disabled_rules=" ".join(str(rule) for rule in rules),
            rule_groups=rules,
            policy=str((props.get("firewallPolicy") or {}).get("id", "")),
        )

    @classmethod
    def of_form(cls, form: FormData, view: dict[str, Any]) -> WafForm:
        stored = cls.of_view(view)
        shown = text(form, "exclusion_count")
        count = min(int(shown), MAX_ROWS) if shown.isdigit() else 0
        rows = [
            ExclusionRow(
                text(form, f"ex{i}_variable"),
                text(form, f"ex{i}_operator"),
                text(form, f"ex{i}_selector"),
            )
            for i in range(count)
        ]
        return cls(
            status=_one_of(text(form, "waf_status"), (ENABLED, DISABLED), stored.status),
            mode=_one_of(text(form, "waf_mode"), MODES, stored.mode),
            version=text(form, "rule_set_version", stored.version),
            body_check=_one_of(text(form, "body_check"), (ON, OFF), stored.body_check),
            max_body_kb=text(form, "max_body_kb"),
            upload_mb=text(form, "upload_mb"),
            exclusions=rows,
            disabled_groups=[g for g in form.getlist("disabled_groups") if isinstance(g, str)],
            disabled_rules=text(form, "disabled_rules"),
            rule_groups=stored.rule_groups,
            policy=text(form, "firewall_policy", stored.policy),
        )

    def rule_ids(self) -> list[str]:
        return [word for word in _RULE_SEPARATORS.split(self.disabled_rules) if word]

    def apply(self, document: dict[str, Any]) -> None:
        props = document["properties"]
        config: dict[str, Any] = dict(props.get(CONFIG) or {})
        config.update(
            enabled=self.status == ENABLED,
            firewallMode=self.mode,
            ruleSetType="OWASP",
            ruleSetVersion=self.version,
            requestBodyCheck=self.body_check == ON,
        )
        config.pop("maxRequestBodySize", None)  # the older field; the blade writes the KB one
        for key, value in (
            ("maxRequestBodySizeInKb", self.max_body_kb),
            ("fileUploadLimitInMb", self.upload_mb),
        ):
            number = number_or_text(value)
            if number is None:
                config.pop(key, None)
            else:
                config[key] = number
        whole = {g.casefold() for g in self.disabled_groups}
        disabled: list[dict[str, Any]] = [{"ruleGroupName": g} for g in self.disabled_groups]
        by_group: dict[str, list[int]] = {}
        for word in self.rule_ids():
            rule = int(word)
            group = self.rule_groups.get(rule) or group_of_rule(rule) or ""
            if group.casefold() not in whole:
                by_group.setdefault(group, []).append(rule)
        disabled += [{"ruleGroupName": g, "rules": rules} for g, rules in by_group.items()]
        exclusions = [
            {
                "matchVariable": row.variable,
                "selectorMatchOperator": row.operator,
                "selector": "*" if row.operator == EQUALS_ANY else row.selector,
            }
            for row in self.exclusions
        ]
        # Empty lists are left out, as Azure's portal leaves them.
        lists: dict[str, list[Any]] = {"disabledRuleGroups": disabled, "exclusions": exclusions}
        for key, items in lists.items():
            if items:
                config[key] = items
            else:
                config.pop(key, None)
        props[CONFIG] = config
        if self.policy:
            props["firewallPolicy"] = {"id": self.policy}
        else:
            props.pop("firewallPolicy", None)


def _one_of(value: str, choices: tuple[str, ...], otherwise: str) -> str:
    return value if value in choices else otherwise


def _problems(form: WafForm) -> FormErrors:
    errors = FormErrors()
    for word in form.rule_ids():
        if not word.isdigit() or int(word) <= 0:
            errors.add(
                "disabled_rules", f"'{word}' is not a rule id: enter numbers such as 942100."
            )
        elif int(word) not in form.rule_groups and group_of_rule(int(word)) is None:
            errors.add(
                "disabled_rules",
                f"{word} is not a rule of the OWASP Core Rule Set 3.x (rule ids have six digits, "
                "e.g. 942100).",
            )
    return errors


def _rows(posted: FormData, form: WafForm) -> bool:
    op = text(posted, "op", "save")
    if op == "add_exclusion":
        form.exclusions.append(ExclusionRow())
        return True
    verb, _, where = op.partition(":")
    if verb == "remove_exclusion":
        if where.isdigit() and int(where) < len(form.exclusions):
            del form.exclusions[int(where)]
        return True
    return False


_SIMPLE_FIELDS = {
    "": None,
    ".enabled": "waf_status",
    ".firewallMode": "waf_mode",
    ".ruleSetType": "rule_set_version",
    ".ruleSetVersion": "rule_set_version",
    ".requestBodyCheck": "body_check",
    ".maxRequestBodySizeInKb": "max_body_kb",
    ".maxRequestBodySize": "max_body_kb",
    ".fileUploadLimitInMb": "upload_mb",
}
_EXCLUSION = re.compile(r"\.exclusions\[(\d+)\]\.(matchVariable|selectorMatchOperator|selector)")
_EXCLUSION_FIELDS = {
    "matchVariable": "variable",
    "selectorMatchOperator": "operator",
    "selector": "selector",
}


def _fields(gateway_id: GatewayId) -> FieldMapping:
    def mapping(resource: str, path: str) -> str | None:
        if resource.casefold() != str(gateway_id).casefold():
            return None
        if path.startswith(POLICY_FIELD):
            return "firewall_policy"
        if not path.startswith(FIELD):
            return None
        rest = path.removeprefix(FIELD)
        if rest in _SIMPLE_FIELDS:
            return _SIMPLE_FIELDS[rest]
        if rest.startswith(".disabledRuleGroups"):
            return "disabled_rules" if ".rules" in rest else "disabled_groups"
        found = _EXCLUSION.match(rest)
        if found:
            return f"ex{found[1]}_{_EXCLUSION_FIELDS[found[2]]}"
        return None

    return mapping


def _context(view: dict[str, Any], form: WafForm) -> dict[str, Any]:
    sku = str((view["properties"].get("sku") or {}).get("name", ""))
    return {
        "waf": form,
        "waf_tier": sku in {s.value for s in WAF_SKUS},
        "statuses": [(ENABLED, ENABLED), (DISABLED, DISABLED)],
        "modes": [(m, m) for m in MODES],
        "versions": [(v, f"OWASP {v}") for v in RULE_SET_VERSIONS],
        "body_checks": [(ON, ON), (OFF, OFF)],
        "variables": [(v, v) for v in EXCLUSION_VARIABLES],
        "operators": [(o, o) for o in EXCLUSION_OPERATORS],
        "groups": RULE_GROUPS,
        "disabled": {g.casefold() for g in form.disabled_groups},
    }


def _blade(portal: Portal) -> GatewayScreen[WafForm]:
    def context(view: dict[str, Any], form: WafForm) -> dict[str, Any]:
        gateway_id = GatewayId.parse(str(view["id"]))
        options = policy_options(portal, gateway_id.subscription) if gateway_id else []
        if form.policy and form.policy.casefold() not in {o.casefold() for o, _ in options}:
            options.append((form.policy, form.policy))  # linked, but not (any more) listed
        linked = FirewallPolicyId.parse(form.policy) if form.policy else None
        return {
            **_context(view, form),
            "policies": [("", "None"), *options],
            "policy_link": policy_url(linked, "settings") if linked else "",
        }

    return GatewayScreen(
        screen="waf",
        saved="Saved the web application firewall configuration.",
        form_of_view=WafForm.of_view,
        form_of_post=WafForm.of_form,
        context=context,
        apply=lambda document, form: form.apply(document),
        fields=_fields,
        rows=_rows,
        problems=_problems,
    )


def register(router: APIRouter, portal: Portal) -> None:
    _blade(portal).register(router, portal)
