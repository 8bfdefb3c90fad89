"""Rules blade: request routing rules with their listener and backend targets.

One form covers what Azure's "Add a routing rule" blade does: a Basic rule to a backend pool, a
redirection (a `redirectConfigurations` entry named after the rule) or, with path targets, a
path-based rule (a `urlPathMaps` entry named after the rule, its defaults being the rule's
main target).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.datastructures import FormData

from appgw.model.ids import GatewayId
from appgw.model.validate import MAX_PRIORITY
from appgw.portal.common import (
    ChildScreen,
    FieldMapping,
    find_child,
    is_v2,
    name_of,
    ref,
    text,
)

RULES = "requestRoutingRules"
PATH_MAPS = "urlPathMaps"
REDIRECTS = "redirectConfigurations"
POOLS = "backendAddressPools"
SETTINGS = "backendHttpSettingsCollection"
LISTENERS = "httpListeners"
REWRITE_SETS = "rewriteRuleSets"

BACKEND_POOL = "BackendPool"
REDIRECTION = "Redirection"
TARGET_TYPES = ((BACKEND_POOL, "Backend pool"), (REDIRECTION, "Redirection"))
REDIRECT_TYPES = (
    ("Permanent", "Permanent"),
    ("Found", "Found"),
    ("SeeOther", "See other"),
    ("Temporary", "Temporary"),
)
TO_LISTENER = "Listener"
TO_EXTERNAL_SITE = "ExternalSite"
REDIRECT_TARGETS = ((TO_LISTENER, "Listener"), (TO_EXTERNAL_SITE, "External site"))
YES_NO = (("Yes", "Yes"), ("No", "No"))
# A path target may also redirect (an existing redirect configuration); its select value says so.
REDIRECT_OPTION = "redirect:"
MIN_PATH_ROWS = 5
SPARE_PATH_ROWS = 2

_TARGET_FIELDS = ("backendAddressPool", "backendHttpSettings", "redirectConfiguration")
_DEFAULT_FIELDS = (
    "defaultBackendAddressPool",
    "defaultBackendHttpSettings",
    "defaultRedirectConfiguration",
)


# --- who uses what -------------------------------------------------------------------------------


def _targets_of(view: dict[str, Any], rule: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(collection, name) of every pool, settings and redirect a rule sends to."""
    collections = (POOLS, SETTINGS, REDIRECTS)
    props = rule["properties"]
    for collection, key in zip(collections, _TARGET_FIELDS, strict=True):
        if props.get(key):
            yield collection, name_of(props[key])
    path_map = find_child(view, PATH_MAPS, name_of(props.get("urlPathMap")))
    if path_map is None:
        return
    for collection, key in zip(collections, _DEFAULT_FIELDS, strict=True):
        if path_map["properties"].get(key):
            yield collection, name_of(path_map["properties"][key])
    for path_rule in path_map["properties"].get("pathRules", []):
        for collection, key in zip(collections, _TARGET_FIELDS, strict=True):
            if path_rule["properties"].get(key):
                yield collection, name_of(path_rule["properties"][key])


def rules_using(view: dict[str, Any], collection: str, name: str) -> list[str]:
    """Names of the rules that listen on that listener, or send to that pool / settings /
    redirect, directly or by path."""
    wanted = name.casefold()

    def uses(rule: dict[str, Any]) -> bool:
        if collection == LISTENERS:
            return name_of(rule["properties"].get("httpListener")).casefold() == wanted
        return any(c == collection and n.casefold() == wanted for c, n in _targets_of(view, rule))

    return [rule["name"] for rule in view["properties"].get(RULES, []) if uses(rule)]


def refused_while_used(collection: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    """A child blade's reason why the service refused to delete a child: the rules using it."""

    def reason(view: dict[str, Any], child: dict[str, Any]) -> str:
        users = rules_using(view, collection, child["name"])
        return f" Rules using it: {', '.join(users)}; change or delete them first." if users else ""

    return reason


def _is_referenced(document: dict[str, Any], collection: str, name: str) -> bool:
    """Does any rule or path map of the document still point at that redirect / path map?"""
    props = document["properties"]
    holders: list[tuple[dict[str, Any], str]] = []
    if collection == PATH_MAPS:
        holders += [(rule["properties"], "urlPathMap") for rule in props.get(RULES, [])]
    else:
        holders += [(rule["properties"], "redirectConfiguration") for rule in props.get(RULES, [])]
        for path_map in props.get(PATH_MAPS, []):
            holders.append((path_map["properties"], "defaultRedirectConfiguration"))
            holders += [
                (path_rule["properties"], "redirectConfiguration")
                for path_rule in path_map["properties"].get("pathRules", [])
            ]
    return any(name_of(holder.get(key)).casefold() == name.casefold() for holder, key in holders)


# --- the form ------------------------------------------------------------------------------------


@dataclass
class PathRow:
    paths: str = ""  # comma-separated, as typed
    name: str = ""
    settings: str = ""
    target: str = ""  # a pool name, or REDIRECT_OPTION + a redirect configuration name
    rewrite_set: str = ""

    def blank(self) -> bool:
        return not (self.paths or self.name or self.settings or self.target or self.rewrite_set)


@dataclass
class RuleForm:
    name: str = ""
    priority: str = ""
    listener: str = ""
    target_type: str = BACKEND_POOL
    pool: str = ""
    settings: str = ""
    redirect_type: str = "Permanent"
    redirect_target: str = TO_LISTENER
    target_listener: str = ""
    target_url: str = ""
    include_path: bool = True
    include_query_string: bool = True
    rows: list[PathRow] = field(default_factory=list)
    # The rewrite set of the rule (of a path-based rule: of its default target). The form of a
    # v1 gateway has no such field: then what is stored is left as it is.
    rewrite_set: str = ""
    rewrite_shown: bool = True

    @classmethod
    def of_rule(cls, view: dict[str, Any], rule: dict[str, Any]) -> RuleForm:
        props = rule["properties"]
        path_map = find_child(view, PATH_MAPS, name_of(props.get("urlPathMap")))
        holder, keys = (props, _TARGET_FIELDS)
        rows: list[PathRow] = []
        if path_map is not None:
            holder, keys = (path_map["properties"], _DEFAULT_FIELDS)
            for path_rule in path_map["properties"].get("pathRules", []):
                p = path_rule["properties"]
                target = name_of(p.get("backendAddressPool"))
                if p.get("redirectConfiguration"):
                    target = REDIRECT_OPTION + name_of(p["redirectConfiguration"])
                rows.append(
                    PathRow(
                        ", ".join(p.get("paths", [])),
                        path_rule["name"],
                        name_of(p.get("backendHttpSettings")),
                        target,
                        name_of(p.get("rewriteRuleSet")),
                    )
                )
        form = cls(
            name=rule["name"],
            priority="" if props.get("priority") is None else str(props["priority"]),
            listener=name_of(props.get("httpListener")),
            pool=name_of(holder.get(keys[0])),
            settings=name_of(holder.get(keys[1])),
            rows=rows,
            rewrite_set=name_of(
                holder.get("defaultRewriteRuleSet" if path_map else "rewriteRuleSet")
            ),
        )
        redirect_config = find_child(view, REDIRECTS, name_of(holder.get(keys[2])))
        if redirect_config is not None:
            r = redirect_config["properties"]
            form.target_type = REDIRECTION
            form.redirect_type = r.get("redirectType", "Permanent")
            form.redirect_target = TO_EXTERNAL_SITE if r.get("targetUrl") else TO_LISTENER
            form.target_listener = name_of(r.get("targetListener"))
            form.target_url = r.get("targetUrl", "")
            form.include_path = bool(r.get("includePath"))
            form.include_query_string = bool(r.get("includeQueryString"))
        return form

    @classmethod
    def of_form(cls, form: FormData, name: str | None) -> RuleForm:
        rows: list[PathRow] = []
        index = 0
        while f"path_{index}" in form:
            rows.append(
                PathRow(
                    text(form, f"path_{index}"),
                    text(form, f"path_name_{index}"),
                    text(form, f"path_settings_{index}"),
                    text(form, f"path_target_{index}"),
                    text(form, f"path_rewrite_set_{index}"),
                )
            )
            index += 1
        return cls(
            name=name if name is not None else text(form, "rule_name"),
            priority=text(form, "priority"),
            listener=text(form, "listener"),
            target_type=text(form, "target_type", BACKEND_POOL),
            pool=text(form, "backend_pool"),
            settings=text(form, "backend_settings"),
            redirect_type=text(form, "redirect_type"),
            redirect_target=text(form, "redirect_target", TO_LISTENER),
            target_listener=text(form, "target_listener"),
            target_url=text(form, "target_url"),
            include_path=text(form, "include_path") == "Yes",
            include_query_string=text(form, "include_query_string") == "Yes",
            rows=rows,
            rewrite_set=text(form, "rewrite_set"),
            rewrite_shown="rewrite_set" in form,
        )

    def filled_rows(self) -> list[int]:
        return [index for index, row in enumerate(self.rows) if not row.blank()]

    def padded(self) -> RuleForm:
        spare = max(MIN_PATH_ROWS - len(self.rows), SPARE_PATH_ROWS)
        return replace(self, rows=self.rows + [PathRow() for _ in range(spare)])


def number_or_text(value: str) -> int | str | None:
    """A number field's value: an integer if the text is one, otherwise the text itself, so the
    service's shape check names the problem in its own words; None when left empty."""
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return value


@dataclass
class _Applied:
    """Where the form's parts landed in the document, to put the service's problems back."""

    rule_index: int
    redirect_name: str | None = None
    redirect_index: int = -1
    path_map_name: str | None = None
    path_map_index: int = -1
    row_of_path_rule: dict[int, int] = field(default_factory=dict)  # path rule index -> form row


def _claim(document: dict[str, Any], collection: str, name: str, owned: bool) -> dict[str, Any]:
    """The entry to (re)write: this rule's own one, an unused one of that name, or a new one.

    A new entry whose name is taken by something in use is appended anyway: the service then
    says the name is a duplicate, instead of the portal silently taking over another's entry."""
    children: list[dict[str, Any]] = document["properties"].setdefault(collection, [])
    existing = find_child(document, collection, name)
    if existing is not None and (owned or not _is_referenced(document, collection, name)):
        existing.setdefault("properties", {})
        return existing
    entry: dict[str, Any] = {"name": name, "properties": {}}
    children.append(entry)
    return entry


def _apply(
    document: dict[str, Any],
    gateway_id: GatewayId,
    rule_form: RuleForm,
    previous: dict[str, Any] | None,
    v2: bool,
) -> _Applied:
    """Write the form's rule (and its redirect / path map) into the gateway document."""
    props_all = document["properties"]
    rules: list[dict[str, Any]] = props_all.setdefault(RULES, [])
    if previous is None:
        rule: dict[str, Any] = {"name": rule_form.name, "properties": {}}
        # Appended: a rule of that name already there is the service's duplicate, not a merge.
        rules.append(rule)
        old_redirect, old_path_map = "", ""
    else:
        rule = next(r for r in rules if r["name"].casefold() == previous["name"].casefold())
        old_path_map = name_of(previous["properties"].get("urlPathMap"))
        old_map = find_child(document, PATH_MAPS, old_path_map)
        holder = old_map["properties"] if old_map else previous["properties"]
        old_redirect = name_of(
            holder.get("defaultRedirectConfiguration" if old_map else "redirectConfiguration")
        )
    applied = _Applied(rule_index=next(i for i, r in enumerate(rules) if r is rule))
    props = rule["properties"]
    for key in (*_TARGET_FIELDS, "urlPathMap", "httpListener"):
        props.pop(key, None)
    if v2:
        priority = number_or_text(rule_form.priority)
        if priority is None:
            props.pop("priority", None)
        else:
            props["priority"] = priority
    if rule_form.listener:
        props["httpListener"] = ref(gateway_id, LISTENERS, rule_form.listener)

    path_based = bool(rule_form.filled_rows())
    props["ruleType"] = "PathBasedRouting" if path_based else "Basic"
    holder, keys = props, _TARGET_FIELDS
    if path_based:
        applied.path_map_name = old_path_map or rule_form.name
        path_map = _claim(document, PATH_MAPS, applied.path_map_name, bool(old_path_map))
        applied.path_map_index = _index(props_all[PATH_MAPS], path_map)
        props["urlPathMap"] = ref(gateway_id, PATH_MAPS, path_map["name"])
        holder, keys = path_map["properties"], _DEFAULT_FIELDS
        for key in keys:
            holder.pop(key, None)
        holder["pathRules"] = _path_rules(gateway_id, rule_form, path_map, applied)
    if rule_form.rewrite_shown:
        # A basic rule holds its set; a path-based rule's default target is its path map's.
        props.pop("rewriteRuleSet", None)
        _set_or_drop(
            gateway_id,
            holder,
            "defaultRewriteRuleSet" if path_based else "rewriteRuleSet",
            rule_form.rewrite_set,
        )

    if rule_form.target_type == REDIRECTION:
        applied.redirect_name = old_redirect or rule_form.name
        config = _claim(document, REDIRECTS, applied.redirect_name, bool(old_redirect))
        applied.redirect_index = _index(props_all[REDIRECTS], config)
        config["properties"] = _redirect_properties(gateway_id, rule_form)
        holder[keys[2]] = ref(gateway_id, REDIRECTS, config["name"])
    else:
        if rule_form.pool:
            holder[keys[0]] = ref(gateway_id, POOLS, rule_form.pool)
        if rule_form.settings:
            holder[keys[1]] = ref(gateway_id, SETTINGS, rule_form.settings)

    # What the rule no longer uses goes with it, as when Azure's blade switches target type.
    _drop_unused(document, old_redirect, old_path_map)
    return applied


def _set_or_drop(gateway_id: GatewayId, holder: dict[str, Any], key: str, rewrite_set: str) -> None:
    if rewrite_set:
        holder[key] = ref(gateway_id, REWRITE_SETS, rewrite_set)
    else:
        holder.pop(key, None)


def _index(children: list[dict[str, Any]], child: dict[str, Any]) -> int:
    return next(i for i, c in enumerate(children) if c is child)


def _drop_unused(document: dict[str, Any], redirect_name: str, path_map_name: str) -> None:
    props = document["properties"]
    # Path map first: it may hold the last reference to the redirect.
    for collection, name in ((PATH_MAPS, path_map_name), (REDIRECTS, redirect_name)):
        if name and not _is_referenced(document, collection, name):
            props[collection] = [
                c for c in props.get(collection, []) if c["name"].casefold() != name.casefold()
            ]


def _redirect_properties(gateway_id: GatewayId, rule_form: RuleForm) -> dict[str, Any]:
    props: dict[str, Any] = {
        "redirectType": rule_form.redirect_type or None,
        "includePath": rule_form.include_path,
        "includeQueryString": rule_form.include_query_string,
    }
    if rule_form.redirect_target == TO_EXTERNAL_SITE:
        props["targetUrl"] = rule_form.target_url or None
    elif rule_form.target_listener:
        props["targetListener"] = ref(gateway_id, LISTENERS, rule_form.target_listener)
    return {key: value for key, value in props.items() if value is not None}


def _path_rules(
    gateway_id: GatewayId, rule_form: RuleForm, path_map: dict[str, Any], applied: _Applied
) -> list[dict[str, Any]]:
    existing = {r["name"].casefold(): r for r in path_map["properties"].get("pathRules", [])}
    result: list[dict[str, Any]] = []
    for row_index in rule_form.filled_rows():
        row = rule_form.rows[row_index]
        # Keep what the form does not show (e.g. a firewall policy set through the API).
        path_rule = copy.deepcopy(existing.get(row.name.casefold(), {"properties": {}}))
        path_rule["name"] = row.name
        for key in ("id", "etag", "type"):
            path_rule.pop(key, None)
        p = path_rule.setdefault("properties", {})
        for key in _TARGET_FIELDS:
            p.pop(key, None)
        p["paths"] = [path.strip() for path in row.paths.split(",") if path.strip()]
        if row.target.startswith(REDIRECT_OPTION):
            p["redirectConfiguration"] = ref(
                gateway_id, REDIRECTS, row.target.removeprefix(REDIRECT_OPTION)
            )
        else:
            if row.target:
                p["backendAddressPool"] = ref(gateway_id, POOLS, row.target)
            if row.settings:
                p["backendHttpSettings"] = ref(gateway_id, SETTINGS, row.settings)
        if rule_form.rewrite_shown:
            _set_or_drop(gateway_id, p, "rewriteRuleSet", row.rewrite_set)
        applied.row_of_path_rule[len(result)] = row_index
        result.append(path_rule)
    return result


# --- service problems -> form fields -------------------------------------------------------------

_RULE_FIELDS = {
    "name": "rule_name",
    "properties.priority": "priority",
    "properties.httpListener": "listener",
    "properties.backendAddressPool": "backend_pool",
    "properties.backendHttpSettings": "backend_settings",
    "properties.redirectConfiguration": "target_type",
    "properties.urlPathMap": "path_0",
    "properties.rewriteRuleSet": "rewrite_set",
    "properties": "backend_pool",  # "needs a backend pool and settings, or a redirect"
}
_PATH_MAP_FIELDS = {
    "name": "rule_name",
    "properties.defaultBackendAddressPool": "backend_pool",
    "properties.defaultBackendHttpSettings": "backend_settings",
    "properties.defaultRedirectConfiguration": "target_type",
    "properties.defaultRewriteRuleSet": "rewrite_set",
    "properties": "backend_pool",
}
_REDIRECT_FIELDS = {
    "name": "rule_name",
    "properties.redirectType": "redirect_type",
    "properties.targetListener": "target_listener",
    "properties.targetUrl": "target_url",
    "properties.includePath": "include_path",
    "properties.includeQueryString": "include_query_string",
}
_PATH_RULE_FIELDS = {
    "name": "path_name_{row}",
    "properties.backendAddressPool": "path_target_{row}",
    "properties.backendHttpSettings": "path_settings_{row}",
    "properties.redirectConfiguration": "path_target_{row}",
    "properties.rewriteRuleSet": "path_rewrite_set_{row}",
    "properties": "path_target_{row}",
}


def _rule_fields(
    gateway_id: GatewayId, document: dict[str, Any], rule_form: RuleForm, applied: _Applied
) -> FieldMapping:
    def ids(collection: str, name: str | None, index: int) -> set[str]:
        # A child whose name is invalid is reported under its position, e.g. ".../[3]".
        found = {gateway_id.child(collection, f"[{index}]").casefold()}
        if name:
            found.add(gateway_id.child(collection, name).casefold())
        return found

    rule_ids = ids(RULES, rule_form.name, applied.rule_index)
    redirect_ids = ids(REDIRECTS, applied.redirect_name, applied.redirect_index)
    map_ids = ids(PATH_MAPS, applied.path_map_name, applied.path_map_index)
    path_rules: dict[str, int] = {}
    if applied.path_map_name:
        path_map = document["properties"][PATH_MAPS][applied.path_map_index]
        for index, path_rule in enumerate(path_map["properties"]["pathRules"]):
            row = applied.row_of_path_rule[index]
            for label in (path_rule["name"], f"[{index}]"):
                for map_label in (path_map["name"], f"[{applied.path_map_index}]"):
                    path_rules[gateway_id.path_rule(map_label, label).casefold()] = row

    def duplicate_row() -> str:
        seen: set[str] = set()
        for row_index in rule_form.filled_rows():
            folded = rule_form.rows[row_index].name.casefold()
            if folded in seen:
                return f"path_name_{row_index}"
            seen.add(folded)
        return "path_name_0"

    # Azure reports a clash (same listener, same priority) on the later rule of the list, which
    # may be another rule than the one edited: the clash still belongs next to this form's field.
    clashes: dict[str, str] = {}
    for index, other in enumerate(document["properties"][RULES]):
        if index == applied.rule_index:
            continue
        other_id = gateway_id.child(RULES, other["name"]).casefold()
        p = other["properties"]
        if rule_form.listener and name_of(p.get("httpListener")).casefold() == (
            rule_form.listener.casefold()
        ):
            clashes[f"{other_id}#properties.httpListener"] = "listener"
        if rule_form.priority and str(p.get("priority")) == rule_form.priority:
            clashes[f"{other_id}#properties.priority"] = "priority"

    def mapping(resource: str, path: str) -> str | None:
        folded = resource.casefold()
        if f"{folded}#{path}" in clashes:
            return clashes[f"{folded}#{path}"]
        if folded == str(gateway_id).casefold():
            collection = path.removeprefix("properties.")
            if collection in (RULES, REDIRECTS, PATH_MAPS):
                return "rule_name"
            return None
        if folded in rule_ids:
            return _RULE_FIELDS.get(path)
        if folded in redirect_ids:
            return _REDIRECT_FIELDS.get(path, "redirect_target" if path == "properties" else None)
        if folded in map_ids:
            if path == "properties.pathRules":
                return duplicate_row()
            return _PATH_MAP_FIELDS.get(path)
        if folded in path_rules:
            row = path_rules[folded]
            if path.startswith("properties.paths"):
                return f"path_{row}"
            template = _PATH_RULE_FIELDS.get(path)
            return template.format(row=row) if template else None
        return None

    return mapping


# --- routes --------------------------------------------------------------------------------------


def _list_context(view: dict[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in view["properties"].get(RULES, []):
        props = rule["properties"]
        targets = list(_targets_of(view, rule))
        rules.append(
            {
                "name": rule["name"],
                "priority": props.get("priority"),
                "listener": name_of(props.get("httpListener")),
                "path_based": props.get("ruleType") == "PathBasedRouting",
                "pools": sorted({n for c, n in targets if c == POOLS}),
                "redirects": sorted({n for c, n in targets if c == REDIRECTS}),
            }
        )
    if is_v2(view):
        # Azure evaluates v2 rules by priority; v1 rules in list order.
        rules.sort(key=lambda r: (r["priority"] is None, r["priority"] or 0))
    return {"rules": rules}


def _editor_context(view: dict[str, Any], rule_form: RuleForm, adding: bool) -> dict[str, Any]:
    props = view["properties"]
    owner = {}
    for rule in props.get(RULES, []):
        listener = name_of(rule["properties"].get("httpListener"))
        if listener and rule["name"].casefold() != rule_form.name.casefold():
            owner[listener.casefold()] = rule["name"]
    listeners = [
        (
            listener["name"],
            listener["name"]
            + (
                f" (used by rule {owner[listener['name'].casefold()]})"
                if listener["name"].casefold() in owner
                else ""
            ),
        )
        for listener in props.get(LISTENERS, [])
    ]
    if adding and not rule_form.listener:
        free = [name for name, label in listeners if name.casefold() not in owner]
        rule_form.listener = free[0] if free else ""
    pools = [(p["name"], p["name"]) for p in props.get(POOLS, [])]
    settings = [(s["name"], s["name"]) for s in props.get(SETTINGS, [])]
    path_targets = pools + [
        (REDIRECT_OPTION + r["name"], f"Redirection '{r['name']}'")
        for r in props.get(REDIRECTS, [])
    ]
    return {
        "rule": rule_form.padded(),
        "listeners": listeners,
        "pools": pools,
        "settings": settings,
        "path_targets": path_targets,
        "rewrite_sets": [(r["name"], r["name"]) for r in props.get(REWRITE_SETS, [])],
        "target_types": TARGET_TYPES,
        "redirect_types": REDIRECT_TYPES,
        "redirect_targets": REDIRECT_TARGETS,
        "yes_no": YES_NO,
        "max_priority": MAX_PRIORITY,
    }


def _save(
    document: dict[str, Any],
    gateway_id: GatewayId,
    rule_form: RuleForm,
    previous: dict[str, Any] | None,
) -> FieldMapping:
    applied = _apply(document, gateway_id, rule_form, previous, is_v2(document))
    return _rule_fields(gateway_id, document, rule_form, applied)


def _delete_own_targets(document: dict[str, Any], rule: dict[str, Any]) -> None:
    """Its own redirect and path map go with the rule, as in Azure's portal."""
    old_map = find_child(document, PATH_MAPS, name_of(rule["properties"].get("urlPathMap")))
    holder = old_map["properties"] if old_map else rule["properties"]
    _drop_unused(
        document,
        name_of(holder.get("defaultRedirectConfiguration" if old_map else "redirectConfiguration")),
        old_map["name"] if old_map else "",
    )


BLADE = ChildScreen(
    screen="rules",
    collection=RULES,
    noun="rule",
    name_field="rule_name",
    list_context=_list_context,
    editor_context=_editor_context,
    blank_form=lambda _view: RuleForm(),
    form_of_child=RuleForm.of_rule,
    form_of_post=RuleForm.of_form,
    child_name=lambda rule_form: rule_form.name,
    apply=_save,
    delete_also=_delete_own_targets,
)
register = BLADE.register
