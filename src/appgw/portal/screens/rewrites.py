"""Rewrites blade: rewrite rule sets (Azure: Application gateway > Settings > Rewrites).

One form covers Azure's two steps: "Name and Association" (the set's name and the routing rules,
or a path-based rule's paths, it rewrites) and "Rewrite rule configuration" (its rules, each with
conditions and actions). Without JavaScript, a condition, header action or rule is added or
removed by a submit button that shows the form again as typed, with the row added or gone;
nothing is saved until Save.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData
from starlette.responses import Response

from appgw.model.ids import PATH_RULES, GatewayId
from appgw.model.rewrite import SERVER_VARIABLES
from appgw.model.validate_rewrite import MAX_RULE_SEQUENCE
from appgw.portal.common import (
    ChildScreen,
    FieldMapping,
    FormErrors,
    Submission,
    find_child,
    is_v2,
    name_of,
    ref,
    save_child,
    text,
)
from appgw.portal.screens.rules import PATH_MAPS, RULES, number_or_text

COLLECTION = "rewriteRuleSets"

# Condition variable types: the form's value -> (label, prefix of the variable's name).
SERVER, REQUEST, RESPONSE = "server", "request", "response"
VARIABLE_TYPES = (
    (SERVER, "Server variable"),
    (REQUEST, "Request header"),
    (RESPONSE, "Response header"),
)
_PREFIX = {SERVER: "var_", REQUEST: "http_req_", RESPONSE: "http_resp_"}
HEADER_SIDES = ((REQUEST, "Request header"), (RESPONSE, "Response header"))
SET, DELETE = "set", "delete"
ACTION_TYPES = ((SET, "Set"), (DELETE, "Delete"))
# Azure's "Components" of a URL rewrite; "" is no URL rewrite.
URL_NONE, URL_BOTH, URL_PATH, URL_QUERY = "", "both", "path", "query"
URL_COMPONENTS = (
    (URL_NONE, "(no URL rewrite)"),
    (URL_BOTH, "Both URL path and URL query string"),
    (URL_PATH, "URL path"),
    (URL_QUERY, "URL query string"),
)
# Offered as suggestions (a datalist): any header name may be typed.
COMMON_HEADERS = (
    "Strict-Transport-Security",
    "Server",
    "X-Powered-By",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "Location",
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cache-Control",
    "Set-Cookie",
    "Host",
    "User-Agent",
    "Accept-Language",
)
DEFAULT_SEQUENCE = "100"


# --- the form ------------------------------------------------------------------------------------


@dataclass
class ConditionRow:
    kind: str = SERVER
    name: str = ""  # the server variable or header, without its prefix
    pattern: str = ""
    ignore_case: bool = True  # Azure's portal: "Case-sensitive" unticked
    negate: bool = False

    def blank(self) -> bool:
        return not (self.name or self.pattern)


@dataclass
class HeaderRow:
    side: str = REQUEST
    action: str = SET
    header: str = ""
    value: str = ""

    def blank(self) -> bool:
        return not (self.header or self.value)


@dataclass
class RuleRows:
    name: str = ""
    sequence: str = DEFAULT_SEQUENCE
    conditions: list[ConditionRow] = field(default_factory=list)
    headers: list[HeaderRow] = field(default_factory=list)
    url: str = URL_NONE
    url_path: str = ""
    url_query: str = ""
    reroute: bool = False

    def blank(self) -> bool:
        return (
            not self.name
            and all(c.blank() for c in self.conditions)
            and all(h.blank() for h in self.headers)
            and self.url == URL_NONE
        )


@dataclass
class RewriteSetForm:
    name: str = ""
    # The attachment points ticked (see _points): "rule:{rule}", "default:{map}",
    # "path:{map}:{path rule}" (names never hold ':').
    associations: list[str] = field(default_factory=list)
    rules: list[RuleRows] = field(default_factory=list)

    @classmethod
    def blank(cls, _view: dict[str, Any]) -> RewriteSetForm:
        return cls(rules=[RuleRows(headers=[HeaderRow()])])

    @classmethod
    def of_set(cls, view: dict[str, Any], rule_set: dict[str, Any]) -> RewriteSetForm:
        associations = [
            point.value
            for point in _points(view)
            if point.current.casefold() == rule_set["name"].casefold()
        ]
        rules = [
            _rows_of_rule(rule) for rule in rule_set.get("properties", {}).get("rewriteRules", [])
        ]
        return cls(rule_set["name"], associations, rules)

    @classmethod
    def of_form(cls, form: FormData, name: str | None) -> RewriteSetForm:
        rules: list[RuleRows] = []
        i = 0
        while f"r{i}_name" in form:
            rule = RuleRows(
                name=text(form, f"r{i}_name"),
                sequence=text(form, f"r{i}_sequence"),
                url=text(form, f"r{i}_url"),
                url_path=text(form, f"r{i}_url_path"),
                url_query=text(form, f"r{i}_url_query"),
                reroute=f"r{i}_reroute" in form,
            )
            j = 0
            while f"r{i}_c{j}_kind" in form:
                prefix = f"r{i}_c{j}"
                rule.conditions.append(
                    ConditionRow(
                        text(form, f"{prefix}_kind", SERVER),
                        text(form, f"{prefix}_name"),
                        _raw(form, f"{prefix}_pattern"),
                        f"{prefix}_ignore_case" in form,
                        f"{prefix}_negate" in form,
                    )
                )
                j += 1
            k = 0
            while f"r{i}_h{k}_side" in form:
                prefix = f"r{i}_h{k}"
                rule.headers.append(
                    HeaderRow(
                        text(form, f"{prefix}_side", REQUEST),
                        text(form, f"{prefix}_action", SET),
                        text(form, f"{prefix}_header"),
                        _raw(form, f"{prefix}_value"),
                    )
                )
                k += 1
            rules.append(rule)
            i += 1
        return cls(
            name=name if name is not None else text(form, "set_name"),
            associations=[v for v in form.getlist("assoc") if isinstance(v, str)],
            rules=rules,
        )


def _raw(form: FormData, name: str) -> str:
    """A pattern or header value as typed: leading or trailing spaces may be meant."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _rows_of_rule(rule: dict[str, Any]) -> RuleRows:
    rows = RuleRows(
        name=rule.get("name", ""),
        sequence="" if rule.get("ruleSequence") is None else str(rule["ruleSequence"]),
    )
    for condition in rule.get("conditions") or []:
        variable = str(condition.get("variable", ""))
        kind = next((k for k, p in _PREFIX.items() if variable.startswith(p)), SERVER)
        rows.conditions.append(
            ConditionRow(
                kind,
                variable.removeprefix(_PREFIX[kind]),
                str(condition.get("pattern", "")),
                bool(condition.get("ignoreCase")),
                bool(condition.get("negate")),
            )
        )
    actions = rule.get("actionSet") or {}
    for side, key in (
        (REQUEST, "requestHeaderConfigurations"),
        (RESPONSE, "responseHeaderConfigurations"),
    ):
        for header in actions.get(key) or []:
            value = header.get("headerValue") or ""
            rows.headers.append(
                HeaderRow(side, SET if value else DELETE, header.get("headerName", ""), value)
            )
    url = actions.get("urlConfiguration")
    if url is not None:
        path, query = url.get("modifiedPath"), url.get("modifiedQueryString")
        rows.url = (
            URL_BOTH
            if path is not None and query is not None
            else URL_QUERY
            if query is not None
            else URL_PATH
        )
        rows.url_path, rows.url_query = path or "", query or ""
        rows.reroute = bool(url.get("reroute"))
    return rows


# --- where a set can be attached ------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """A place a rewrite set is attached to: a basic rule, a path-based rule's default target
    (its path map's defaultRewriteRuleSet) or one of its path rules."""

    value: str  # the form's checkbox value
    label: str
    current: str  # the set attached now ("" if none)


def _holders(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """(checkbox value, label, properties holding the reference, its key) of every rule, and
    of every path map's default and path rules, each once, in the Rules blade's order."""
    seen: set[str] = set()
    props = document["properties"]
    for rule in props.get(RULES, []):
        p = rule.setdefault("properties", {})
        path_map = find_child(document, PATH_MAPS, name_of(p.get("urlPathMap")))
        if path_map is None:
            yield f"rule:{rule['name']}", rule["name"], p, "rewriteRuleSet"
            continue
        if path_map["name"].casefold() in seen:
            continue
        seen.add(path_map["name"].casefold())
        map_props = path_map.setdefault("properties", {})
        yield (
            f"default:{path_map['name']}",
            f"{rule['name']}: default (paths not listed)",
            map_props,
            "defaultRewriteRuleSet",
        )
        for path_rule in map_props.get("pathRules", []):
            paths = ", ".join(path_rule.get("properties", {}).get("paths", []))
            yield (
                f"path:{path_map['name']}:{path_rule['name']}",
                f"{rule['name']}: {path_rule['name']} ({paths})",
                path_rule.setdefault("properties", {}),
                "rewriteRuleSet",
            )


def _points(view: dict[str, Any]) -> list[Point]:
    return [
        Point(value, label, name_of(holder.get(key)))
        for value, label, holder, key in _holders(view)
    ]


def _resource_of(value: str) -> str:
    """The child the service names for a checkbox value: 'collection/name' or a path rule's
    'urlPathMaps/map/pathRules/rule' (the gateway id goes before it)."""
    kind, _, rest = value.partition(":")
    if kind == "rule":
        return f"{RULES}/{rest}"
    if kind == "default":
        return f"{PATH_MAPS}/{rest}"
    path_map, _, path_rule = rest.partition(":")
    return f"{PATH_MAPS}/{path_map}/{PATH_RULES}/{path_rule}"


def _detach_everywhere(document: dict[str, Any], set_name: str) -> None:
    """Every reference to the set goes (the set is deleted)."""
    props = document["properties"]
    holders: list[tuple[dict[str, Any], str]] = [
        (rule.get("properties", {}), "rewriteRuleSet") for rule in props.get(RULES, [])
    ]
    for path_map in props.get(PATH_MAPS, []):
        map_props = path_map.get("properties", {})
        holders.append((map_props, "defaultRewriteRuleSet"))
        holders += [
            (r.get("properties", {}), "rewriteRuleSet") for r in map_props.get("pathRules", [])
        ]
    for holder, key in holders:
        if name_of(holder.get(key)).casefold() == set_name.casefold():
            holder.pop(key)


# --- form -> document ----------------------------------------------------------------------------


@dataclass
class _Applied:
    """Where the form's rows landed in the document, to put the service's problems back."""

    set_index: int
    rule_row: dict[int, int] = field(default_factory=dict)  # rewriteRules index -> form row
    # (rule index, conditions index) -> form condition row
    condition_row: dict[tuple[int, int], int] = field(default_factory=dict)
    # (rule index, 'requestHeaderConfigurations' | 'responseHeaderConfigurations', index) -> row
    header_row: dict[tuple[int, str, int], int] = field(default_factory=dict)


def _rule_document(rows: RuleRows, applied: _Applied, index: int) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = []
    for j, condition in enumerate(rows.conditions):
        if condition.blank():
            continue
        applied.condition_row[(index, len(conditions))] = j
        entry: dict[str, Any] = {
            "variable": _PREFIX.get(condition.kind, _PREFIX[SERVER]) + condition.name,
            "pattern": condition.pattern,
            "ignoreCase": condition.ignore_case,
            "negate": condition.negate,
        }
        conditions.append(entry)
    action_set: dict[str, Any] = {}
    for k, header in enumerate(rows.headers):
        if header.blank():
            continue
        key = (
            "responseHeaderConfigurations"
            if header.side == RESPONSE
            else "requestHeaderConfigurations"
        )
        configurations = action_set.setdefault(key, [])
        applied.header_row[(index, key, len(configurations))] = k
        configuration = {"headerName": header.header}
        # Azure: a header configuration without a value deletes the header.
        if header.action != DELETE:
            configuration["headerValue"] = header.value
        configurations.append(configuration)
    if rows.url != URL_NONE:
        url: dict[str, Any] = {"reroute": rows.reroute}
        if rows.url in (URL_BOTH, URL_PATH):
            url["modifiedPath"] = rows.url_path
        if rows.url in (URL_BOTH, URL_QUERY):
            url["modifiedQueryString"] = rows.url_query
        action_set["urlConfiguration"] = url
    rule: dict[str, Any] = {"name": rows.name, "ruleSequence": number_or_text(rows.sequence)}
    if conditions:
        rule["conditions"] = conditions
    rule["actionSet"] = action_set
    return rule


def _apply(
    document: dict[str, Any],
    gateway_id: GatewayId,
    form: RewriteSetForm,
    previous: dict[str, Any] | None,
) -> FieldMapping:
    applied = _Applied(set_index=-1)
    rules: list[dict[str, Any]] = []
    for row, rows in enumerate(form.rules):
        if rows.blank():
            continue
        applied.rule_row[len(rules)] = row
        rules.append(_rule_document(rows, applied, len(rules)))
    rule_set = {"name": form.name, "properties": {"rewriteRules": rules}}
    save_child(document, COLLECTION, rule_set, previous)
    sets = document["properties"][COLLECTION]
    applied.set_index = next(i for i, s in enumerate(sets) if s is rule_set)

    ticked = {value.casefold() for value in form.associations}
    own = previous["name"] if previous is not None else form.name
    for value, _label, holder, key in list(_holders(document)):
        if value.casefold() in ticked:
            holder[key] = ref(gateway_id, COLLECTION, form.name)
        elif holder.get(key) and name_of(holder[key]).casefold() == own.casefold():
            holder.pop(key)
    return _fields(gateway_id, form, applied)


# --- service problems -> form fields -------------------------------------------------------------

_CONDITION_FIELDS = {
    "variable": "name",
    "pattern": "pattern",
    "ignoreCase": "ignore_case",
    "negate": "negate",
}


def _fields(gateway_id: GatewayId, form: RewriteSetForm, applied: _Applied) -> FieldMapping:
    set_ids = {gateway_id.child(COLLECTION, f"[{applied.set_index}]").casefold()}
    if form.name:
        set_ids.add(gateway_id.child(COLLECTION, form.name).casefold())
    attached = {
        f"{gateway_id}/{_resource_of(value)}".casefold(): value for value in form.associations
    }

    def in_rule(index: int, rest: str) -> str | None:
        row = applied.rule_row.get(index)
        if row is None:
            return None
        r = f"r{row}"
        if rest in ("name", "ruleSequence"):
            return f"{r}_name" if rest == "name" else f"{r}_sequence"
        if rest.startswith("conditions["):
            number, _, tail = rest.removeprefix("conditions[").partition("]")
            j = applied.condition_row.get((index, int(number))) if number.isdigit() else None
            if j is None:
                return f"{r}_conditions"
            leaf = _CONDITION_FIELDS.get(tail.removeprefix("."), "pattern")
            return f"{r}_c{j}_{leaf}"
        if rest.startswith("conditions"):
            return f"{r}_conditions"
        if rest.startswith("actionSet.urlConfiguration"):
            tail = rest.removeprefix("actionSet.urlConfiguration").removeprefix(".")
            if tail.startswith("modifiedPath"):
                return f"{r}_url_path"
            if tail.startswith("modifiedQueryString"):
                return f"{r}_url_query"
            return f"{r}_reroute" if tail.startswith("reroute") else f"{r}_url"
        for key in ("requestHeaderConfigurations", "responseHeaderConfigurations"):
            if rest.startswith(f"actionSet.{key}["):
                number, _, tail = rest.removeprefix(f"actionSet.{key}[").partition("]")
                k = applied.header_row.get((index, key, int(number))) if number.isdigit() else None
                if k is None:
                    return f"{r}_actions"
                return f"{r}_h{k}_value" if tail.startswith(".headerValue") else f"{r}_h{k}_header"
        return f"{r}_actions" if rest.startswith("actionSet") else f"{r}_name"

    def mapping(resource: str, path: str) -> str | None:
        folded = resource.casefold()
        if folded in attached and path.endswith("ewriteRuleSet"):
            return f"assoc_{attached[folded]}"
        if folded not in set_ids:
            return None
        if path == "name":
            return "set_name"
        if path.startswith("properties.rewriteRules["):
            number, _, rest = path.removeprefix("properties.rewriteRules[").partition("]")
            if number.isdigit():
                return in_rule(int(number), rest.removeprefix("."))
        return None  # about the whole set (a v1 gateway, a limit): above the form

    return mapping


# --- checks before anything is sent --------------------------------------------------------------


def _check(_view: dict[str, Any], form: RewriteSetForm, _adding: bool) -> FormErrors:
    errors = FormErrors()
    if not form.name:
        errors.add("set_name", "Enter a name for the rewrite set.")
    for i, rule in enumerate(form.rules):
        if rule.blank():
            continue
        if not rule.name:
            errors.add(f"r{i}_name", "Enter a name for this rewrite rule.")
        for j, condition in enumerate(rule.conditions):
            if condition.blank():
                continue
            if not condition.name:
                what = "server variable" if condition.kind == SERVER else "header name"
                errors.add(f"r{i}_c{j}_name", f"Enter the {what} this condition checks.")
            if not condition.pattern:
                errors.add(f"r{i}_c{j}_pattern", "Enter the pattern to match (RE2).")
        for k, header in enumerate(rule.headers):
            if header.blank():
                continue
            if not header.header:
                errors.add(f"r{i}_h{k}_header", "Enter the header name.")
            if header.action == SET and not header.value:
                errors.add(
                    f"r{i}_h{k}_value",
                    "Enter the header value, or choose Delete to remove the header.",
                )
        if rule.url in (URL_BOTH, URL_PATH) and not rule.url_path:
            errors.add(f"r{i}_url_path", "Enter the URL path to rewrite to (it starts with '/').")
    return errors


# --- adding and removing rows (the form shown again, nothing saved) -------------------------------


def _edit_rows(submission: Submission[RewriteSetForm]) -> Response | None:
    """A row button ("+ Add condition", "Remove" ...) changes the form and shows it again;
    None for Save."""
    op = text(submission.posted, "op", "save")
    if op == "save":
        return None
    verb, _, where = op.partition(":")
    numbers = [int(n) for n in where.split(":") if n.isdigit()]
    rules = submission.form.rules
    rule = rules[numbers[0]] if numbers and numbers[0] < len(rules) else None
    if verb == "add_rule":
        rules.append(RuleRows(sequence=_next_sequence(rules), headers=[HeaderRow()]))
    elif verb == "remove_rule" and rule is not None:
        rules.remove(rule)
    elif verb == "add_condition" and rule is not None:
        rule.conditions.append(ConditionRow())
    elif verb == "add_header" and rule is not None:
        rule.headers.append(HeaderRow())
    elif verb in ("remove_condition", "remove_header") and rule is not None and len(numbers) > 1:
        rows: list[Any] = rule.conditions if verb == "remove_condition" else rule.headers
        if numbers[1] < len(rows):
            del rows[numbers[1]]
    return submission.editor(status=200)


def _next_sequence(rules: list[RuleRows]) -> str:
    """A new rule runs after the others (as Azure's portal suggests)."""
    numbers = [int(r.sequence) for r in rules if r.sequence.isdigit()]
    return str(min(max(numbers, default=0) + 1, MAX_RULE_SEQUENCE)) if numbers else "100"


# --- pages ---------------------------------------------------------------------------------------


def _list_context(view: dict[str, Any]) -> dict[str, Any]:
    points = _points(view)
    sets = []
    for rule_set in view["properties"].get(COLLECTION, []):
        folded = rule_set["name"].casefold()
        sets.append(
            {
                "name": rule_set["name"],
                "associated": [p.label for p in points if p.current.casefold() == folded],
                "rules": len(rule_set.get("properties", {}).get("rewriteRules", [])),
            }
        )
    return {"sets": sets}


def _editor_context(view: dict[str, Any], form: RewriteSetForm, _adding: bool) -> dict[str, Any]:
    ticked = {value.casefold() for value in form.associations}
    own = form.name.casefold()
    points = [
        {
            "value": p.value,
            "label": p.label,
            "checked": p.value.casefold() in ticked,
            # Ticking it moves it here: a rule or path runs one rewrite set.
            "other": p.current if p.current and p.current.casefold() != own else "",
        }
        for p in _points(view)
    ]
    return {
        "rewrite": form,
        "points": points,
        "variable_types": VARIABLE_TYPES,
        "header_sides": HEADER_SIDES,
        "action_types": ACTION_TYPES,
        "url_components": URL_COMPONENTS,
        "server_variables": sorted(SERVER_VARIABLES),
        "common_headers": COMMON_HEADERS,
        "max_sequence": MAX_RULE_SEQUENCE,
        "v2_only": not is_v2(view),
    }


def _delete_also(document: dict[str, Any], rule_set: dict[str, Any]) -> None:
    """Its associations go with it, so the routing rules it rewrote stay valid."""
    _detach_everywhere(document, rule_set["name"])


def _delete_note(view: dict[str, Any], rule_set: dict[str, Any]) -> str:
    folded = rule_set["name"].casefold()
    labels = [p.label for p in _points(view) if p.current.casefold() == folded]
    if not labels:
        return ""
    return f"It is taken off the routing rules it is associated with: {'; '.join(labels)}."


BLADE = ChildScreen(
    screen="rewrites",
    collection=COLLECTION,
    noun="rewrite set",
    name_field="set_name",
    list_context=_list_context,
    editor_context=_editor_context,
    blank_form=RewriteSetForm.blank,
    form_of_child=RewriteSetForm.of_set,
    form_of_post=RewriteSetForm.of_form,
    child_name=lambda form: form.name,
    apply=_apply,
    check=_check,
    delete_also=_delete_also,
    delete_note=_delete_note,
    intercept=_edit_rows,
)
register = BLADE.register
