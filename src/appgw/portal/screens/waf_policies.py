"""Portal WAF policies (Azure's "Web Application Firewall policies (WAF)"): the list with
Create, and a policy's blades (Policy settings, Managed rules, Custom rules, Associations,
Delete). A thin adapter over control/firewall_policies.py: every save is a PUT of the policy
If-Match the version the page was built from, the service's problems shown by their fields."""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from appgw.control.firewall_policies import FirewallPolicies
from appgw.control.service import STORE_UNAVAILABLE, ServiceError
from appgw.model.firewall_policy_values import (
    ACTIONS,
    BLOCK_STATUSES,
    OPERATORS,
    SELECTOR_ALLOWED,
    STATES,
    TRANSFORMS,
    VARIABLES,
)
from appgw.model.ids import (
    FIREWALL_POLICY_NAME,
    RESOURCE_GROUP_NAME,
    SUBSCRIPTION_ID,
    FirewallPolicyId,
    GatewayId,
    parse_child_ref,
)
from appgw.model.validate_waf import EQUALS_ANY, EXCLUSION_OPERATORS, EXCLUSION_VARIABLES
from appgw.model.waf_rule_sets import RULE_GROUPS, RULE_SET_VERSIONS
from appgw.portal.common import (
    CHANGED,
    FieldMapping,
    FormErrors,
    PageNotFound,
    Portal,
    caller_of,
    form_status,
    gateway_url,
    place_problems,
    redirect,
    text,
)
from appgw.portal.screens.rules import number_or_text
from appgw.portal.sessions import Session

LIST_PATH = "/portal/wafpolicies"
POLICY_PATH = "/portal/wafpolicies/{subscription}/{resource_group}/{name}"
POLICY_MENU = (
    ("settings", "Policy settings"),
    ("managed", "Managed rules"),
    ("custom", "Custom rules"),
    ("associations", "Associations"),
    ("delete", "Delete"),
)
ON, OFF = "On", "Off"
DEFAULT_SUBSCRIPTION = "default"
DEFAULT_LOCATION = "local"
# Operators offered for a custom rule's condition (GeoMatch is refused by appgw's engine).
CONDITION_OPERATORS = tuple(o for o in OPERATORS if o != "GeoMatch")
MAX_CONDITION_ROWS = 10
_VALUE_SEPARATORS = re.compile(r"[,\n\r]+")
_RULE_SEPARATORS = re.compile(r"[\s,;]+")
_SETTINGS = "properties.policySettings."
_SETTING_FIELDS = {
    "state": "state",
    "mode": "mode",
    "requestBodyCheck": "body_check",
    "maxRequestBodySizeInKb": "max_body_kb",
    "fileUploadLimitInMb": "upload_mb",
    "customBlockResponseStatusCode": "block_status",
    "customBlockResponseBody": "block_body",
}
_RULE_SET = re.compile(r"properties\.managedRules\.managedRuleSets\[\d+\]\.ruleSetVersion$")
_OVERRIDE = re.compile(
    r"properties\.managedRules\.managedRuleSets\[\d+\]\.ruleGroupOverrides\[(\d+)\]"
)
_EXCLUSION = re.compile(r"properties\.managedRules\.exclusions\[(\d+)\]\.(\w+)")
_EXCLUSION_FIELDS = {
    "matchVariable": "ex_variable",
    "selectorMatchOperator": "ex_operator",
    "selector": "ex_selector",
}
_CUSTOM = re.compile(r"properties\.customRules\[(\d+)\](.*)$")
_CONDITION = re.compile(r"\.matchConditions\[(\d+)\]\.(\w+)")
_RULE_FIELDS = {
    ".name": "rule_name",
    ".priority": "rule_priority",
    ".action": "rule_action",
    ".state": "rule_state",
}
_CONDITION_FIELDS = {
    "matchVariables": "variable",
    "operator": "operator",
    "negationConditon": "negate",
    "matchValues": "values",
    "transforms": "transforms",
}


def policy_url(policy_id: FirewallPolicyId, blade: str = "") -> str:
    parts = (policy_id.subscription, policy_id.resource_group, policy_id.name)
    base = f"{LIST_PATH}/" + "/".join(quote(part, safe="") for part in parts)
    return f"{base}/{blade}" if blade else base


def policy_options(portal: Portal, subscription: str) -> list[tuple[str, str]]:
    """(id, label) of the WAF policies of a subscription, for a gateway's select."""
    options = []
    for view in FirewallPolicies(portal.service).list_policies(subscription, None):
        parsed = FirewallPolicyId.parse(str(view["id"]))
        group = parsed.resource_group if parsed is not None else ""
        options.append((str(view["id"]), f"{view['name']} ({group})"))
    return options


# --- the policy the page is about --------------------------------------------------------------


class PolicyPage:
    """A request to one of a policy's blades: the operator and the policy as loaded."""

    def __init__(
        self,
        portal: Portal,
        request: Request,
        session: Session,
        policy_id: FirewallPolicyId,
        view: dict[str, Any],
        blade: str,
    ) -> None:
        self.portal = portal
        self.request = request
        self.session = session
        self.policy_id = policy_id
        self.view = view
        self.blade = blade

    @property
    def url(self) -> str:
        return policy_url(self.policy_id, self.blade)

    def render(
        self,
        template: str,
        *,
        errors: FormErrors | None = None,
        status: int | None = None,
        **context: Any,
    ) -> HTMLResponse:
        status, unavailable = form_status(errors, status)
        return self.portal.render(
            self.request,
            template,
            self.session,
            status=status,
            policy=self.view,
            policy_id=self.policy_id,
            policy_menu=POLICY_MENU,
            policy_base=policy_url(self.policy_id) + "/",
            screen=self.blade,
            blade_title=dict(POLICY_MENU).get(self.blade, ""),
            errors=errors,
            etag=context.pop("etag", self.view["etag"]),
            store_unavailable=unavailable,
            **context,
        )

    def save(self, document: dict[str, Any], etag: str, mapping: FieldMapping) -> FormErrors:
        """PUT the policy If-Match `etag`; the problems by form field."""
        errors = FormErrors()
        try:
            FirewallPolicies(self.portal.service).put(
                self.policy_id,
                document,
                caller_of(self.session, self.request),
                if_match=etag,
            )
        except ServiceError as error:
            _refusal(errors, error, mapping)
        return errors

    def reloaded(self) -> PolicyPage:
        view = load(self.portal, self.policy_id)
        return PolicyPage(self.portal, self.request, self.session, self.policy_id, view, self.blade)

    def done(self, message: str, blade: str | None = None) -> Response:
        self.session.flash.append(message)
        return redirect(policy_url(self.policy_id, blade or self.blade))


def _refusal(errors: FormErrors, error: ServiceError, mapping: FieldMapping) -> None:
    if error.status == 412:
        errors.stale = True
        errors.add(None, CHANGED.replace("application gateway", "WAF policy"))
    elif error.code == STORE_UNAVAILABLE:
        errors.unavailable = error.message
    else:
        place_problems(errors, error, mapping)


def load(portal: Portal, policy_id: FirewallPolicyId) -> dict[str, Any]:
    try:
        return FirewallPolicies(portal.service).get(policy_id)
    except ServiceError as error:
        if error.status == 404 or error.code == "InvalidResourceName":
            raise PageNotFound(
                f"There is no WAF policy '{policy_id.name}' in '{policy_id.resource_group}'."
            ) from None
        raise


def _document(view: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(view)


def _own(policy_id: FirewallPolicyId, mapping: Callable[[str], str | None]) -> FieldMapping:
    """A mapping for problems of this policy only (others go above the form)."""

    def field(resource: str, path: str) -> str | None:
        return mapping(path) if resource.casefold() == str(policy_id).casefold() else None

    return field


# --- the list and Create -------------------------------------------------------------------------


def _summary(view: dict[str, Any]) -> dict[str, Any]:
    policy_id = FirewallPolicyId.parse(view["id"])
    assert policy_id is not None
    props = view["properties"]
    settings = props.get("policySettings") or {}
    linked = sum(len(props.get(kind) or []) for kind in _ASSOCIATION_KINDS)
    return {
        "name": policy_id.name,
        "resource_group": policy_id.resource_group,
        "subscription": policy_id.subscription,
        "location": view.get("location", ""),
        "mode": settings.get("mode", ""),
        "state": settings.get("state", ""),
        "associations": linked,
        "url": policy_url(policy_id, "settings"),
    }


def subscriptions(portal: Portal, *more: str) -> list[str]:
    """The subscriptions the portal knows of: its gateways' and those asked for."""
    found = {summary.gateway_id.subscription for summary in portal.service.all_gateways()}
    found.update(m for m in more if m)
    return sorted(found) or [DEFAULT_SUBSCRIPTION]


def all_policies(
    portal: Portal, subscription: str = "", resource_group: str = ""
) -> list[dict[str, Any]]:
    service = FirewallPolicies(portal.service)
    chosen = [subscription] if subscription else subscriptions(portal)
    return [
        _summary(view)
        for sub in chosen
        for view in service.list_policies(sub, resource_group or None)
    ]


_CREATE_DEFAULTS = {
    "subscription": DEFAULT_SUBSCRIPTION,
    "resource_group": "",
    "policy_name": "",
    "location": DEFAULT_LOCATION,
    "mode": "Detection",
    "state": "Enabled",
    "version": "3.2",
}
_CREATE_FIELDS = {
    "name": "policy_name",
    "location": "location",
    "properties.policySettings.mode": "mode",
    "properties.policySettings.state": "state",
}


def _create(portal: Portal, request: Request, session: Session, form: FormData) -> Response:
    values = {key: text(form, key, default) or default for key, default in _CREATE_DEFAULTS.items()}
    values["resource_group"] = text(form, "resource_group")
    values["policy_name"] = text(form, "policy_name")
    errors = FormErrors()
    for field, rule in (
        ("subscription", SUBSCRIPTION_ID),
        ("resource_group", RESOURCE_GROUP_NAME),
        ("policy_name", FIREWALL_POLICY_NAME),
    ):
        problem = rule.problem(values[field])
        if problem is not None:
            errors.add(field, problem)
    if not errors:
        policy_id = FirewallPolicyId(
            values["subscription"], values["resource_group"], values["policy_name"]
        )
        body = {
            "location": values["location"],
            "properties": {
                "policySettings": {"state": values["state"], "mode": values["mode"]},
                "managedRules": {
                    "managedRuleSets": [
                        {"ruleSetType": "OWASP", "ruleSetVersion": values["version"]}
                    ]
                },
            },
        }

        def mapping(path: str) -> str | None:
            if _RULE_SET.match(path):
                return "version"
            return _CREATE_FIELDS.get(path)

        try:
            FirewallPolicies(portal.service).put(
                policy_id, body, caller_of(session, request), if_none_match="*"
            )
        except ServiceError as error:
            if error.status == 412:
                errors.add(
                    "policy_name",
                    f"A WAF policy named '{policy_id.name}' already exists in "
                    f"'{policy_id.resource_group}'; choose another name.",
                )
            else:
                _refusal(errors, error, _own(policy_id, mapping))
        if not errors:
            session.flash.append(f"WAF policy '{policy_id.name}' created.")
            return redirect(policy_url(policy_id, "settings"))
    return _create_page(portal, request, session, values, errors)


def _create_page(
    portal: Portal,
    request: Request,
    session: Session,
    values: dict[str, str],
    errors: FormErrors | None = None,
) -> HTMLResponse:
    status = 503 if errors and errors.unavailable else 400 if errors else 200
    return portal.render(
        request,
        "wafpolicy_create.html",
        session,
        status=status,
        values=values,
        errors=errors,
        store_unavailable=errors.unavailable if errors else None,
        modes=[(m, m) for m in ("Detection", "Prevention")],
        states=[(s, s) for s in STATES],
        versions=[(v, f"OWASP {v}") for v in reversed(RULE_SET_VERSIONS)],
    )


# --- Policy settings ----------------------------------------------------------------------------


def _settings_values(view: dict[str, Any]) -> dict[str, str]:
    settings = view["properties"].get("policySettings") or {}
    body = settings.get("customBlockResponseBody")
    shown = ""
    if body:
        try:
            shown = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            shown = body
    status = settings.get("customBlockResponseStatusCode")
    return {
        "state": settings.get("state") or "Enabled",
        "mode": settings.get("mode") or "Detection",
        "body_check": OFF if settings.get("requestBodyCheck") is False else ON,
        "max_body_kb": str(settings.get("maxRequestBodySizeInKb", "")),
        "upload_mb": str(settings.get("fileUploadLimitInMb", "")),
        "block_status": str(status) if status is not None else "",
        "block_body": shown,
    }


def _settings_of_form(form: FormData) -> dict[str, str]:
    values = {key: text(form, key) for key in _SETTING_FIELDS.values()}
    raw = form.get("block_body")
    values["block_body"] = raw if isinstance(raw, str) else ""
    return values


def _apply_settings(document: dict[str, Any], values: dict[str, str]) -> None:
    settings = dict(document["properties"].get("policySettings") or {})
    settings.update(
        state=values["state"],
        mode=values["mode"],
        requestBodyCheck=values["body_check"] != OFF,
    )
    for key, field in (
        ("maxRequestBodySizeInKb", "max_body_kb"),
        ("fileUploadLimitInMb", "upload_mb"),
        ("customBlockResponseStatusCode", "block_status"),
    ):
        number = number_or_text(values[field])
        if number is None:
            settings.pop(key, None)
        else:
            settings[key] = number
    if values["block_body"]:
        encoded = base64.b64encode(values["block_body"].encode("utf-8")).decode("ascii")
        settings["customBlockResponseBody"] = encoded
    else:
        settings.pop("customBlockResponseBody", None)
    document["properties"]["policySettings"] = settings


def _settings_field(path: str) -> str | None:
    if path.startswith(_SETTINGS):
        return _SETTING_FIELDS.get(path.removeprefix(_SETTINGS))
    return None


def _settings_page(
    page: PolicyPage, values: dict[str, str], errors: FormErrors | None = None, **more: Any
) -> HTMLResponse:
    return page.render(
        "wafpolicy_settings.html",
        errors=errors,
        values=values,
        states=[(s, s) for s in STATES],
        modes=[(m, m) for m in ("Detection", "Prevention")],
        body_checks=[(ON, ON), (OFF, OFF)],
        block_statuses=[("", "Default (403)")] + [(str(s), str(s)) for s in BLOCK_STATUSES],
        **more,
    )


# --- Managed rules --------------------------------------------------------------------------------


def _owasp(document: dict[str, Any]) -> dict[str, Any]:
    sets = document["properties"]["managedRules"]["managedRuleSets"]
    for rule_set in sets:
        if rule_set.get("ruleSetType") == "OWASP":
            return rule_set  # type: ignore[no-any-return]
    return sets[0]  # type: ignore[no-any-return]


def _managed_values(view: dict[str, Any]) -> dict[str, str]:
    rule_set = _owasp(view)
    values = {"version": str(rule_set.get("ruleSetVersion", "3.2"))}
    by_group = {g.casefold(): i for i, g in enumerate(RULE_GROUPS)}
    for override in rule_set.get("ruleGroupOverrides") or []:
        index = by_group.get(str(override.get("ruleGroupName", "")).casefold())
        if index is None:
            continue
        ids = [
            str(rule["ruleId"])
            for rule in override.get("rules") or []
            if rule.get("state") == "Disabled"
        ]
        values[f"off{index}"] = " ".join(ids)
    return values


def _managed_of_form(form: FormData) -> dict[str, str]:
    values = {"version": text(form, "version", "3.2")}
    for index in range(len(RULE_GROUPS)):
        values[f"off{index}"] = text(form, f"off{index}")
    return values


def _apply_managed(document: dict[str, Any], values: dict[str, str]) -> list[int]:
    """Writes the version and the disabled rules; the form row of each override written."""
    rule_set = _owasp(document)
    rule_set["ruleSetVersion"] = values["version"]
    kept: dict[str, list[dict[str, Any]]] = {}
    for override in rule_set.get("ruleGroupOverrides") or []:
        others = [r for r in override.get("rules") or [] if r.get("state") != "Disabled"]
        if others:
            kept[str(override["ruleGroupName"]).casefold()] = others
    overrides: list[dict[str, Any]] = []
    rows: list[int] = []
    for index, group in enumerate(RULE_GROUPS):
        ids = [w for w in _RULE_SEPARATORS.split(values.get(f"off{index}", "")) if w]
        disabled_ids = set(ids)
        rules = [
            r for r in kept.pop(group.casefold(), []) if str(r.get("ruleId")) not in disabled_ids
        ]
        rules += [{"ruleId": rule_id, "state": "Disabled"} for rule_id in ids]
        if rules:
            overrides.append({"ruleGroupName": group, "rules": rules})
            rows.append(index)
    if overrides:
        rule_set["ruleGroupOverrides"] = overrides
    else:
        rule_set.pop("ruleGroupOverrides", None)
    return rows


def _managed_page(
    page: PolicyPage,
    values: dict[str, str],
    errors: FormErrors | None = None,
    exclusion: dict[str, str] | None = None,
    **more: Any,
) -> HTMLResponse:
    return page.render(
        "wafpolicy_managed.html",
        errors=errors,
        values=values,
        versions=[(v, f"OWASP {v}") for v in RULE_SET_VERSIONS],
        groups=list(enumerate(RULE_GROUPS)),
        exclusions=page.view["properties"]["managedRules"].get("exclusions") or [],
        exclusion=exclusion or {"ex_variable": "", "ex_operator": "", "ex_selector": ""},
        variables=[(v, v) for v in EXCLUSION_VARIABLES],
        operators=[(o, o) for o in EXCLUSION_OPERATORS],
        **more,
    )


# --- Custom rules ---------------------------------------------------------------------------------


def _blank_condition() -> dict[str, Any]:
    return {
        "variable": "RemoteAddr",
        "selector": "",
        "operator": "IPMatch",
        "negate": False,
        "values": "",
        "transforms": [],
    }


def _rule_of_form(form: FormData) -> dict[str, Any]:
    shown = text(form, "condition_count")
    count = min(int(shown), MAX_CONDITION_ROWS) if shown.isdigit() else 1
    conditions = [
        {
            "variable": text(form, f"c{i}_variable"),
            "selector": text(form, f"c{i}_selector"),
            "operator": text(form, f"c{i}_operator"),
            "negate": text(form, f"c{i}_negate") == "on",
            "values": _raw(form, f"c{i}_values"),
            "transforms": [t for t in form.getlist(f"c{i}_transforms") if isinstance(t, str)],
        }
        for i in range(count)
    ]
    return {
        "name": text(form, "rule_name"),
        "priority": text(form, "rule_priority"),
        "action": text(form, "rule_action", "Block"),
        "state": text(form, "rule_state", "Enabled"),
        "conditions": conditions,
    }


def _raw(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _rule_rows(posted: FormData, rule: dict[str, Any]) -> bool:
    op = text(posted, "op", "save")
    if op == "add_condition":
        if len(rule["conditions"]) < MAX_CONDITION_ROWS:
            rule["conditions"].append(_blank_condition())
        return True
    verb, _, where = op.partition(":")
    if verb == "remove_condition":
        if where.isdigit() and int(where) < len(rule["conditions"]):
            del rule["conditions"][int(where)]
        return True
    return False


def _custom_rule(rule: dict[str, Any]) -> dict[str, Any]:
    conditions = []
    for row in rule["conditions"]:
        variable: dict[str, str] = {"variableName": row["variable"]}
        if row["selector"] and row["variable"] in SELECTOR_ALLOWED:
            variable["selector"] = row["selector"]
        values = [v.strip() for v in _VALUE_SEPARATORS.split(row["values"]) if v.strip()]
        condition: dict[str, Any] = {
            "matchVariables": [variable],
            "operator": row["operator"],
            "negationConditon": row["negate"],
            "matchValues": values,
        }
        if row["transforms"]:
            condition["transforms"] = row["transforms"]
        conditions.append(condition)
    return {
        "name": rule["name"],
        "priority": number_or_text(rule["priority"]),
        "ruleType": "MatchRule",
        "action": rule["action"],
        "state": rule["state"],
        "matchConditions": conditions,
    }


def _custom_field(index: int) -> Callable[[str], str | None]:
    def mapping(path: str) -> str | None:
        found = _CUSTOM.match(path)
        if found is None or int(found[1]) != index:
            return None
        rest = found[2]
        if rest in _RULE_FIELDS:
            return _RULE_FIELDS[rest]
        condition = _CONDITION.match(rest)
        if condition is not None:
            column = _CONDITION_FIELDS.get(condition[2])
            if column == "variable" and rest.endswith(".selector"):
                column = "selector"
            return f"c{condition[1]}_{column}" if column else None
        return None

    return mapping


def _rule_editor(
    page: PolicyPage, rule: dict[str, Any], etag: str, errors: FormErrors | None = None
) -> HTMLResponse:
    return page.render(
        "wafpolicy_custom_edit.html",
        errors=errors,
        etag=etag,
        rule=rule,
        rule_actions=[(a, a) for a in ACTIONS],
        states=[(s, s) for s in STATES],
        variables=[(v, v) for v in VARIABLES],
        operators=[(o, o) for o in CONDITION_OPERATORS],
        transforms=TRANSFORMS,
    )


def _conditions_text(rule: dict[str, Any]) -> list[str]:
    lines = []
    for condition in rule.get("matchConditions") or []:
        variables = ", ".join(
            v["variableName"] + (f"[{v['selector']}]" if v.get("selector") else "")
            for v in condition.get("matchVariables") or []
        )
        negate = "not " if condition.get("negationConditon") else ""
        values = ", ".join(condition.get("matchValues") or [])
        lines.append(f"{variables} {negate}{condition.get('operator', '')} {values}".strip())
    return lines


# --- Associations ---

_ASSOCIATION_KINDS = ("applicationGateways", "httpListeners", "pathBasedRules")


def associations(view: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    props = view["properties"]
    for kind, label in zip(
        _ASSOCIATION_KINDS, ("Application gateway", "Listener", "Path-based rule"), strict=True
    ):
        for reference in props.get(kind) or []:
            owner = str(reference.get("id", ""))
            gateway = GatewayId.parse(owner)
            child = parse_child_ref(owner)
            name, gateway_name, url = owner, "", ""
            if gateway is not None:
                name, gateway_name, url = gateway.name, gateway.name, gateway_url(gateway, "waf")
            elif child is not None:
                owner_gateway = _gateway_of(owner)
                name = child.name
                if child.collection.startswith("urlPathMaps/"):
                    name = f"{child.collection.split('/')[1]} / {child.name}"
                if owner_gateway is not None:
                    gateway_name = owner_gateway.name
                    screen = "listeners" if kind == "httpListeners" else "rules"
                    url = gateway_url(owner_gateway, screen)
            rows.append(
                {"kind": label, "name": name, "gateway": gateway_name, "url": url, "id": owner}
            )
    return rows


def _gateway_of(child_id: str) -> GatewayId | None:
    parts = child_id.split("/")
    for end in range(len(parts), 0, -1):
        found = GatewayId.parse("/".join(parts[:end]))
        if found is not None:
            return found
    return None


# --- routes ---


def register(router: APIRouter, portal: Portal) -> None:
    def opened(
        request: Request, subscription: str, resource_group: str, name: str, blade: str
    ) -> PolicyPage:
        session = portal.session(request)
        policy_id = FirewallPolicyId(subscription, resource_group, name)
        return PolicyPage(portal, request, session, policy_id, load(portal, policy_id), blade)

    async def submitted(
        request: Request, subscription: str, resource_group: str, name: str, blade: str
    ) -> tuple[PolicyPage, FormData]:
        session = portal.session(request)
        form = await portal.form(request, session)
        policy_id = FirewallPolicyId(subscription, resource_group, name)
        view = await run_in_threadpool(load, portal, policy_id)
        return PolicyPage(portal, request, session, policy_id, view, blade), form

    @router.get(LIST_PATH, name="portal-wafpolicies")
    def list_page(request: Request, subscription: str = "", resource_group: str = "") -> Response:
        session = portal.session(request)
        return portal.render(
            request,
            "wafpolicies.html",
            session,
            policies=all_policies(portal, subscription, resource_group),
            subscription=subscription,
            resource_group=resource_group,
        )

    @router.get(f"{LIST_PATH}/create", name="portal-wafpolicies-create")
    def create_page(request: Request, subscription: str = "", resource_group: str = "") -> Response:
        session = portal.session(request)
        values = dict(_CREATE_DEFAULTS)
        values["subscription"] = subscription or subscriptions(portal)[0]
        values["resource_group"] = resource_group
        return _create_page(portal, request, session, values)

    @router.post(f"{LIST_PATH}/create")
    async def create(request: Request) -> Response:
        session = portal.session(request)
        form = await portal.form(request, session)
        return await run_in_threadpool(_create, portal, request, session, form)

    @router.get(POLICY_PATH, name="portal-wafpolicy")
    def policy_root(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page = opened(request, subscription, resource_group, name, "settings")
        return redirect(page.url)

    # Policy settings

    @router.get(f"{POLICY_PATH}/settings", name="portal-wafpolicy-settings")
    def settings_page(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page = opened(request, subscription, resource_group, name, "settings")
        return _settings_page(page, _settings_values(page.view))

    def save_settings(page: PolicyPage, posted: FormData) -> Response:
        values = _settings_of_form(posted)
        etag = text(posted, "etag") or page.view["etag"]
        document = _document(page.view)
        _apply_settings(document, values)
        errors = page.save(document, etag, _own(page.policy_id, _settings_field))
        if errors.stale:
            current = page.reloaded()
            return _settings_page(current, values, errors, status=412)
        if errors:
            return _settings_page(page, values, errors, etag=etag)
        return page.done("Saved the policy settings.")

    @router.post(f"{POLICY_PATH}/settings")
    async def settings_save(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page, posted = await submitted(request, subscription, resource_group, name, "settings")
        return await run_in_threadpool(save_settings, page, posted)

    # Managed rules

    @router.get(f"{POLICY_PATH}/managed", name="portal-wafpolicy-managed")
    def managed_page(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page = opened(request, subscription, resource_group, name, "managed")
        return _managed_page(page, _managed_values(page.view))

    def save_managed(page: PolicyPage, posted: FormData) -> Response:
        values = _managed_of_form(posted)
        etag = text(posted, "etag") or page.view["etag"]
        document = _document(page.view)
        rows = _apply_managed(document, values)

        def mapping(path: str) -> str | None:
            if _RULE_SET.match(path):
                return "version"
            found = _OVERRIDE.match(path)
            if found is not None and int(found[1]) < len(rows):
                return f"off{rows[int(found[1])]}"
            return None

        errors = page.save(document, etag, _own(page.policy_id, mapping))
        if errors.stale:
            return _managed_page(page.reloaded(), values, errors, status=412)
        if errors:
            return _managed_page(page, values, errors, etag=etag)
        return page.done("Saved the managed rules.")

    @router.post(f"{POLICY_PATH}/managed")
    async def managed_save(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page, posted = await submitted(request, subscription, resource_group, name, "managed")
        return await run_in_threadpool(save_managed, page, posted)

    def add_exclusion(page: PolicyPage, posted: FormData) -> Response:
        shown = {key: text(posted, key) for key in _EXCLUSION_FIELDS.values()}
        etag = text(posted, "etag") or page.view["etag"]
        document = _document(page.view)
        exclusions = document["properties"]["managedRules"].setdefault("exclusions", [])
        index = len(exclusions)
        exclusions.append(
            {
                "matchVariable": shown["ex_variable"],
                "selectorMatchOperator": shown["ex_operator"],
                "selector": "*" if shown["ex_operator"] == EQUALS_ANY else shown["ex_selector"],
            }
        )

        def mapping(path: str) -> str | None:
            found = _EXCLUSION.match(path)
            if found is not None and int(found[1]) == index:
                return _EXCLUSION_FIELDS.get(found[2])
            return None

        errors = page.save(document, etag, _own(page.policy_id, mapping))
        values = _managed_values(page.view)
        if errors.stale:
            return _managed_page(page.reloaded(), values, errors, shown, status=412)
        if errors:
            return _managed_page(page, values, errors, shown, etag=etag)
        return page.done("Exclusion added.")

    @router.post(f"{POLICY_PATH}/managed/exclusions/add")
    async def exclusion_add(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page, posted = await submitted(request, subscription, resource_group, name, "managed")
        return await run_in_threadpool(add_exclusion, page, posted)

    def remove_exclusion(page: PolicyPage, posted: FormData, index: int) -> Response:
        etag = text(posted, "etag") or page.view["etag"]
        document = _document(page.view)
        exclusions = document["properties"]["managedRules"].get("exclusions") or []
        if not 0 <= index < len(exclusions):
            raise PageNotFound(f"There is no exclusion {index + 1} in this WAF policy.")
        del exclusions[index]
        errors = page.save(document, etag, _own(page.policy_id, lambda _path: None))
        values = _managed_values(page.view)
        if errors.stale:
            return _managed_page(page.reloaded(), values, errors, status=412)
        if errors:
            return _managed_page(page, values, errors)
        return page.done("Exclusion removed.")

    @router.post(f"{POLICY_PATH}/managed/exclusions/{{index}}/delete")
    async def exclusion_remove(
        request: Request, subscription: str, resource_group: str, name: str, index: int
    ) -> Response:
        page, posted = await submitted(request, subscription, resource_group, name, "managed")
        return await run_in_threadpool(remove_exclusion, page, posted, index)

    # Custom rules

    @router.get(f"{POLICY_PATH}/custom", name="portal-wafpolicy-custom")
    def custom_page(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page = opened(request, subscription, resource_group, name, "custom")
        rules = sorted(
            page.view["properties"].get("customRules") or [],
            key=lambda rule: int(rule.get("priority", 0)),
        )
        shown = [{"rule": rule, "conditions": _conditions_text(rule)} for rule in rules]
        return page.render("wafpolicy_custom.html", rules=shown)

    @router.get(f"{POLICY_PATH}/custom/add", name="portal-wafpolicy-custom-add")
    def custom_add_page(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page = opened(request, subscription, resource_group, name, "custom")
        taken = {
            int(r.get("priority", 0)) for r in page.view["properties"].get("customRules") or []
        }
        free = next((p for p in range(1, 101) if p not in taken), 100)
        rule = {
            "name": "",
            "priority": str(free),
            "action": "Block",
            "state": "Enabled",
            "conditions": [_blank_condition()],
        }
        return _rule_editor(page, rule, page.view["etag"])

    def save_rule(page: PolicyPage, posted: FormData) -> Response:
        rule = _rule_of_form(posted)
        etag = text(posted, "etag") or page.view["etag"]
        if _rule_rows(posted, rule):
            return _rule_editor(page, rule, etag)
        errors = FormErrors()
        if not rule["conditions"]:
            errors.add(None, "Add a match condition: a custom rule needs at least one.")
        if not errors:
            document = _document(page.view)
            rules = document["properties"].setdefault("customRules", [])
            rules.append(_custom_rule(rule))
            errors = page.save(document, etag, _own(page.policy_id, _custom_field(len(rules) - 1)))
        if errors.stale:
            current = page.reloaded()
            return _rule_editor(current, rule, current.view["etag"], errors)
        if errors:
            return _rule_editor(page, rule, etag, errors)
        return page.done(f"Custom rule '{rule['name']}' added.", "custom")

    @router.post(f"{POLICY_PATH}/custom/add")
    async def custom_add(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page, posted = await submitted(request, subscription, resource_group, name, "custom")
        return await run_in_threadpool(save_rule, page, posted)

    def delete_rule(page: PolicyPage, posted: FormData, rule_name: str) -> Response:
        etag = text(posted, "etag") or page.view["etag"]
        document = _document(page.view)
        rules = document["properties"].get("customRules") or []
        kept = [r for r in rules if str(r.get("name", "")).casefold() != rule_name.casefold()]
        if len(kept) == len(rules):
            raise PageNotFound(f"There is no custom rule '{rule_name}' in this WAF policy.")
        document["properties"]["customRules"] = kept
        errors = page.save(document, etag, _own(page.policy_id, lambda _path: None))
        if errors:
            page.session.flash.extend(
                [f"Custom rule '{rule_name}' was not deleted.", *errors.general]
            )
            return redirect(page.url)
        return page.done(f"Custom rule '{rule_name}' deleted.")

    @router.post(f"{POLICY_PATH}/custom/{{rule}}/delete")
    async def custom_delete(
        request: Request, subscription: str, resource_group: str, name: str, rule: str
    ) -> Response:
        page, posted = await submitted(request, subscription, resource_group, name, "custom")
        return await run_in_threadpool(delete_rule, page, posted, rule)

    # Associations

    @router.get(f"{POLICY_PATH}/associations", name="portal-wafpolicy-associations")
    def associations_page(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page = opened(request, subscription, resource_group, name, "associations")
        return page.render("wafpolicy_associations.html", rows=associations(page.view))

    # Delete

    @router.get(f"{POLICY_PATH}/delete", name="portal-wafpolicy-delete")
    def delete_page(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page = opened(request, subscription, resource_group, name, "delete")
        return page.render("wafpolicy_delete.html", rows=associations(page.view))

    def delete_policy(page: PolicyPage, posted: FormData) -> Response:
        etag = text(posted, "etag") or page.view["etag"]
        errors = FormErrors()
        try:
            FirewallPolicies(portal.service).delete(
                page.policy_id, caller_of(page.session, page.request), if_match=etag
            )
        except ServiceError as error:
            _refusal(errors, error, _own(page.policy_id, lambda _path: None))
        if errors.stale:
            current = page.reloaded()
            return current.render(
                "wafpolicy_delete.html", errors=errors, rows=associations(current.view), status=412
            )
        if errors:
            errors.general.insert(0, f"WAF policy '{page.policy_id.name}' was not deleted.")
            return page.render("wafpolicy_delete.html", errors=errors, rows=associations(page.view))
        page.session.flash.append(f"WAF policy '{page.policy_id.name}' deleted.")
        return redirect(LIST_PATH)

    @router.post(f"{POLICY_PATH}/delete")
    async def delete(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        page, posted = await submitted(request, subscription, resource_group, name, "delete")
        return await run_in_threadpool(delete_policy, page, posted)
