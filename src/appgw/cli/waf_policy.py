"""`appgw waf-policy`: WAF policies (the ApplicationGatewayWebApplicationFirewallPolicies
resource), shaped like `az network application-gateway waf-policy`: the policy itself, its
policy-setting, custom-rule (and their match-condition), managed-rule rule-set and
managed-rule exclusion (and their rule-set).

A policy is a resource of its own, not part of a gateway: every command that changes one does
GET -> change -> PUT with If-Match, as the child commands do on a gateway. Flag values are
checked here against Azure's values before anything is written; what the API refuses comes
back with the fields it names, shown as the flags that set them.

Linking a policy (`appgw update --waf-policy`, `http-listener create/update --waf-policy`,
`url-path-map rule create/update --waf-policy`) uses `waf_policy_link.policy_ref`."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import httpx
import typer

from appgw.cli.children.commands import add_command, connect, connection, keyword
from appgw.cli.client import Api, await_operation, emit, fail
from appgw.cli.generic_update import add_item, remove_item, set_value, tag_values
from appgw.cli.options import GROUP_SEPARATOR, ResourceGroup
from appgw.model.firewall_policy_values import (
    ACTIONS,
    BLOCK_STATUSES,
    MODES,
    OPERATORS,
    RULE_TYPES,
    STATES,
    TRANSFORMS,
    VARIABLES,
)
from appgw.model.ids import FIREWALL_POLICY_TYPE
from appgw.model.waf_rule_sets import (
    DEFAULT_RULE_SET_VERSION,
    RULE_SET_VERSIONS,
    group_of_rule,
    groups_of,
)

CONFLICT = "the WAF policy changed since it was read; nothing was saved; run the command again"
RULE_SET_TYPES = ("OWASP",)
SWITCH = ("true", "false")

# --- values -----------------------------------------------------------------------------------


def choice(value: str, choices: Sequence[str], flag: str) -> str:
    """Azure's spelling of `value`, given in any letter case."""
    for known in choices:
        if known.casefold() == value.casefold():
            return known
    fail(f"{flag}: {value!r} is not one of: {', '.join(choices)}", 2)


def _words(values: Sequence[str] | None) -> list[str]:
    """az's list values: repeated, or separated by spaces (AzCommand) or commas."""
    return [word for value in values or () for word in re.split(r"[\s,]+", value) if word]


def policy_path(api: Api, resource_group: str, name: str | None = None) -> str:
    path = f"/subscriptions/{api.subscription}/resourceGroups/{resource_group}/providers/"
    path += FIREWALL_POLICY_TYPE
    return f"{path}/{name}" if name is not None else path


# --- where the API's fields come from ---------------------------------------------------------

# The flag that sets an API field (the field's innermost name that is listed wins; the
# `_WHOLE` ones are set by one flag as a whole, whatever is inside).
_FLAG_OF_FIELD = {
    "name": "--name",
    "location": "--location",
    "tags": "--tags",
    "state": "--state",
    "mode": "--mode",
    "requestBodyCheck": "--request-body-check",
    "maxRequestBodySizeInKb": "--max-request-body-size-in-kb",
    "fileUploadLimitInMb": "--file-upload-limit-in-mb",
    "customBlockResponseStatusCode": "--custom-status",
    "customBlockResponseBody": "--custom-body",
    "priority": "--priority",
    "ruleType": "--rule-type",
    "action": "--action",
    "matchVariables": "--match-variables",
    "operator": "--operator",
    "negationConditon": "--negate",
    "matchValues": "--values",
    "transforms": "--transforms",
    "managedRuleSets": "--type",
    "ruleSetType": "--type",
    "ruleSetVersion": "--version",
    "ruleGroupName": "--group-name",
    "rules": "--rules",
    "matchVariable": "--match-variable",
    "selectorMatchOperator": "--selector-match-operator",
    "selector": "--selector",
}
_WHOLE = frozenset({"matchVariables", "rules", "tags"})
_SEGMENT_NAME = re.compile(r"\[\d+\]")


def flag_of(field: str) -> str | None:
    flag = None
    for part in field.split("."):
        name = _SEGMENT_NAME.sub("", part)
        if name in _FLAG_OF_FIELD:
            flag = _FLAG_OF_FIELD[name]
            if name in _WHOLE:
                break
    return flag


def _refusal(response: httpx.Response) -> None:
    """A 400 of the API about a policy: each problem with the flag that sets its field."""
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
        details = error.get("details") or []
    except (ValueError, KeyError, TypeError):
        fail(f"HTTP {response.status_code}: {response.text[:500]}")
    problems = []
    for detail in details:
        text = str(detail.get("message", ""))
        field = str(detail.get("target", "")).partition("#")[2]
        flag = flag_of(field) if field else None
        if flag is not None:
            text = text.split(f" (property '{field}'", 1)[0]
            text = f"{flag}: {text} (property '{field}')"
        problems.append((str(detail.get("code", code)), text))
    if len(problems) == 1:
        lines = [f"({problems[0][0]}) {problems[0][1]}"]
    elif problems:
        lines = [f"({code}) {len(problems)} problems:"]
        lines += [f"  - ({detail_code}) {text}" for detail_code, text in problems]
    else:
        lines = [f"({code}) {message}"]
    fail("\n".join(lines))


# --- reading and writing a policy -------------------------------------------------------------


def read_policy(
    api: Api, resource_group: str, name: str, flag: str = "--policy-name"
) -> dict[str, Any]:
    response = api.call("GET", policy_path(api, resource_group, name), allow=(404,))
    if response.status_code == 404:
        fail(f"{flag} {name!r}: no WAF policy of that name in resource group {resource_group}")
    found: dict[str, Any] = response.json()
    return found


def _put(api: Api, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    response = api.call("PUT", path, body=body, headers=headers, allow=(400, 412))
    if response.status_code == 412:
        if headers.get("If-None-Match") == "*":
            fail("the WAF policy already exists; nothing was saved; change it with its commands")
        fail(CONFLICT)
    if response.status_code == 400:
        _refusal(response)
    await_operation(api, response)
    stored: dict[str, Any] = response.json()
    return stored


def edit_policy(
    arguments: dict[str, Any], change: Callable[[dict[str, Any]], None], *, name_key: str
) -> dict[str, Any]:
    """GET the policy, let `change` edit its properties (it fails on bad input, before
    anything is written), PUT it with If-Match; the policy as stored."""
    api = connect(arguments)
    group, name = arguments["resource_group"], arguments[name_key]
    document = read_policy(api, group, name, "--name" if name_key == "name" else "--policy-name")
    etag = document.get("etag")
    change(document)
    headers = {"If-Match": etag} if etag else {}
    return _put(api, policy_path(api, group, name), document, headers)


def _properties(document: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = document.setdefault("properties", {})
    return properties


def _owasp_set(document: dict[str, Any]) -> dict[str, Any] | None:
    managed = _properties(document).setdefault("managedRules", {})
    sets: list[dict[str, Any]] = managed.setdefault("managedRuleSets", [])
    return next((s for s in sets if s.get("ruleSetType") == "OWASP"), None)


# --- options ----------------------------------------------------------------------------------

Text = str | None
Words = list[str] | None


def _opt(name: str, *decls: str, help: str, kind: Any = Text, default: Any = None) -> Any:
    return keyword(
        name, Annotated[kind, typer.Option(*decls, help=help, show_default=False)], default
    )


def _required(name: str, *decls: str, help: str, kind: Any = str) -> Any:
    return keyword(name, Annotated[kind, typer.Option(*decls, help=help, show_default=False)])


def _group() -> Any:
    return keyword("resource_group", ResourceGroup)


def _policy_name() -> Any:
    return _required("policy_name", "--policy-name", help="Name of the WAF policy.")


def _printing() -> list[Any]:
    return connection(prints=True)


def _emit(value: Any, arguments: dict[str, Any]) -> None:
    emit(value, arguments["output"], arguments["query"])


# --- the policy -------------------------------------------------------------------------------


def _create(arguments: dict[str, Any]) -> None:
    api = connect(arguments)
    rule_set_type = choice(arguments["type"], RULE_SET_TYPES, "--type")
    version = choice(arguments["version"], RULE_SET_VERSIONS, "--version")
    body: dict[str, Any] = {
        "location": arguments["location"],
        "properties": {
            "policySettings": {"state": "Enabled", "mode": "Detection"},
            "customRules": [],
            "managedRules": {
                "managedRuleSets": [{"ruleSetType": rule_set_type, "ruleSetVersion": version}]
            },
        },
    }
    tags = tag_values(arguments["tags"])
    if tags is not None:
        body["tags"] = tags
    path = policy_path(api, arguments["resource_group"], arguments["name"])
    _emit(_put(api, path, body, {"If-None-Match": "*"}), arguments)


def _show(arguments: dict[str, Any]) -> None:
    api = connect(arguments)
    _emit(read_policy(api, arguments["resource_group"], arguments["name"], "--name"), arguments)


def _list(arguments: dict[str, Any]) -> None:
    api = connect(arguments)
    group = arguments["resource_group"]
    if group:
        path = policy_path(api, group)
    else:
        path = f"/subscriptions/{api.subscription}/providers/{FIREWALL_POLICY_TYPE}"
    _emit(api.call("GET", path).json().get("value", []), arguments)


def _delete(arguments: dict[str, Any]) -> None:
    api = connect(arguments)
    path = policy_path(api, arguments["resource_group"], arguments["name"])
    response = api.call("DELETE", path, allow=(400,))
    if response.status_code == 400:
        _refusal(response)


def _update(arguments: dict[str, Any]) -> None:
    def change(document: dict[str, Any]) -> None:
        tags = tag_values(arguments["tags"])
        if tags is not None:
            document["tags"] = tags
        for assignment in arguments["set_"] or ():
            set_value(document, assignment)
        for group in arguments["add"] or ():
            list_path, *values = group.split(GROUP_SEPARATOR)
            add_item(document, list_path, values)
        for group in arguments["remove"] or ():
            target, *index = group.split(GROUP_SEPARATOR)
            remove_item(document, target, index[0] if index else None)

    _emit(edit_policy(arguments, change, name_key="name"), arguments)


def _policy_commands(app: typer.Typer) -> None:
    name = _required("name", "--name", "-n", help="Name of the WAF policy.")
    tags = _opt("tags", "--tags", help='KEY=VALUE tags; "" clears them.', kind=Words)
    add_command(
        app,
        "create",
        [
            _group(),
            name,
            _opt("location", "--location", "-l", help="Location.", kind=str, default="local"),
            _opt("type", "--type", help="Managed rule set type: OWASP.", kind=str, default="OWASP"),
            _opt(
                "version",
                "--version",
                help=f"OWASP rule set version: {', '.join(RULE_SET_VERSIONS)}.",
                kind=str,
                default=DEFAULT_RULE_SET_VERSION,
            ),
            tags,
            *_printing(),
        ],
        _create,
        "Create a WAF policy: enabled, in Detection mode, with the OWASP 3.2 rule set (as az "
        "does); prints it.\n\nExample: appgw waf-policy create -g rg1 -n policy1 --version 3.2",
    )
    add_command(
        app,
        "show",
        [_group(), name, *_printing()],
        _show,
        "Show a WAF policy, with the gateways, listeners and path rules that link it.\n\n"
        "Example: appgw waf-policy show -g rg1 -n policy1",
    )
    add_command(
        app,
        "list",
        [
            _opt("resource_group", "--resource-group", "-g", help="Resource group (default: all)."),
            *_printing(),
        ],
        _list,
        "List the WAF policies of a resource group, or of the subscription.\n\n"
        "Example: appgw waf-policy list -g rg1 -o table",
    )
    add_command(
        app,
        "delete",
        [_group(), name, *connection(prints=False)],
        _delete,
        "Delete a WAF policy (refused while a gateway, listener or path rule links it).\n\n"
        "Example: appgw waf-policy delete -g rg1 -n policy1",
    )
    add_command(
        app,
        "update",
        [
            _group(),
            name,
            tags,
            _opt(
                "set_", "--set", help="PATH=VALUE, e.g. policySettings.mode=Prevention.", kind=Words
            ),
            _opt("add", "--add", help="LIST_PATH KEY=VALUE..., or LIST_PATH JSON.", kind=Words),
            _opt("remove", "--remove", help="PATH, or LIST_PATH INDEX.", kind=Words),
            *_printing(),
        ],
        _update,
        "Update a WAF policy with --tags or az's generic --set/--add/--remove (paths relative "
        "to the policy; 'properties.' may be left out); prints it.\n\n"
        "Example: appgw waf-policy update -g rg1 -n policy1 --set policySettings.mode=Prevention",
    )


# --- policy-setting ---------------------------------------------------------------------------


def _base64(text: str, flag: str) -> str:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        fail(
            f"{flag}: the body must be base64-encoded, as in az "
            "(e.g. --custom-body $(printf 'Blocked' | base64))",
            2,
        )
    return text


def _settings(arguments: dict[str, Any]) -> None:
    given: dict[str, Any] = {}
    if arguments["state"] is not None:
        given["state"] = choice(arguments["state"], STATES, "--state")
    if arguments["mode"] is not None:
        given["mode"] = choice(arguments["mode"], MODES, "--mode")
    if arguments["request_body_check"] is not None:
        check = choice(arguments["request_body_check"], SWITCH, "--request-body-check")
        given["requestBodyCheck"] = check == "true"
    for name, key in (
        ("max_request_body_size_in_kb", "maxRequestBodySizeInKb"),
        ("file_upload_limit_in_mb", "fileUploadLimitInMb"),
    ):
        if arguments[name] is not None:
            given[key] = arguments[name]
    if arguments["custom_status"] is not None:
        status = arguments["custom_status"]
        if status not in BLOCK_STATUSES:
            fail(
                f"--custom-status: {status} is not one of: {', '.join(map(str, BLOCK_STATUSES))}", 2
            )
        given["customBlockResponseStatusCode"] = status
    if arguments["custom_body"] is not None:
        given["customBlockResponseBody"] = _base64(arguments["custom_body"], "--custom-body")

    def change(document: dict[str, Any]) -> None:
        settings = _properties(document).get("policySettings") or {}
        _properties(document)["policySettings"] = {**settings, **given}

    stored = edit_policy(arguments, change, name_key="policy_name")
    _emit(_properties(stored).get("policySettings"), arguments)


def _settings_app() -> typer.Typer:
    app = typer.Typer(help="The policy's settings.", no_args_is_help=True, rich_markup_mode=None)
    add_command(
        app,
        "update",
        [
            _group(),
            _policy_name(),
            _opt("state", "--state", help="Enabled or Disabled."),
            _opt("mode", "--mode", help="Prevention (blocks) or Detection (logs)."),
            _opt("request_body_check", "--request-body-check", help="Inspect bodies: true/false."),
            _opt(
                "max_request_body_size_in_kb",
                "--max-request-body-size-in-kb",
                help="Largest body inspected, in KB: 8-128 (OWASP 3.0/3.1), 8-2000 (3.2).",
                kind=int | None,
            ),
            _opt(
                "file_upload_limit_in_mb",
                "--file-upload-limit-in-mb",
                help="Largest file upload, in MB: 1-4000.",
                kind=int | None,
            ),
            _opt(
                "custom_status",
                "--custom-status",
                help="Status of a blocked request: 200, 403, 405, 406 or 429.",
                kind=int | None,
            ),
            _opt("custom_body", "--custom-body", help="Body of a blocked request, base64-encoded."),
            *_printing(),
        ],
        _settings,
        "Change the policy's settings: only what the flags give; prints them.\n\n"
        "Example: appgw waf-policy policy-setting update -g rg1 --policy-name policy1 "
        "--mode Prevention --max-request-body-size-in-kb 2000 --custom-status 429",
    )
    return app


# --- custom rules and their match conditions --------------------------------------------------


def _variables(words: list[str]) -> list[dict[str, str]]:
    """az's VariableName.Selector words: RequestHeaders.X-Tenant, RemoteAddr."""
    found = []
    for word in words:
        variable, dot, selector = word.partition(".")
        entry = {"variableName": choice(variable, VARIABLES, "--match-variables")}
        if dot:
            if not selector:
                fail(f"--match-variables {word!r}: give the selector after the '.'", 2)
            entry["selector"] = selector
        found.append(entry)
    if not found:
        fail("--match-variables: give at least one, e.g. RemoteAddr or RequestHeaders.X-Tenant", 2)
    return found


def _condition(arguments: dict[str, Any]) -> dict[str, Any]:
    """The match condition --match-variables, --operator, --values, --negate, --transforms give."""
    condition: dict[str, Any] = {
        "matchVariables": _variables(_words(arguments["match_variables"])),
        "operator": choice(arguments["operator"], OPERATORS, "--operator"),
        "matchValues": list(arguments["values"] or []),
    }
    if arguments["negate"] is not None:
        negate = choice(arguments["negate"], SWITCH, "--negate")
        condition["negationConditon"] = negate == "true"
    transforms = _words(arguments["transforms"])
    if transforms:
        condition["transforms"] = [choice(t, TRANSFORMS, "--transforms") for t in transforms]
    return condition


def _condition_options(*, required: bool) -> list[Any]:
    first = " (the rule's first condition: a custom rule needs one)" if required else ""
    return [
        _required(
            "match_variables",
            "--match-variables",
            help=f"What to look at{first}: VariableName or VariableName.Selector, e.g. "
            f"RemoteAddr, RequestHeaders.X-Tenant; several allowed. Variables: "
            f"{', '.join(VARIABLES)}.",
            kind=list[str],
        ),
        _required("operator", "--operator", help=f"One of: {', '.join(OPERATORS)}."),
        _opt(
            "values",
            "--values",
            help="Values to match (IP ranges for IPMatch); several allowed.",
            kind=Words,
        ),
        _opt("negate", "--negate", help="true: the condition matches when the values do not."),
        _opt(
            "transforms",
            "--transforms",
            help=f"Applied before matching: {', '.join(TRANSFORMS)}; several allowed.",
            kind=Words,
        ),
    ]


def _custom_rules(document: dict[str, Any]) -> list[dict[str, Any]]:
    properties = _properties(document)
    rules: list[dict[str, Any]] = properties.get("customRules") or []
    properties["customRules"] = rules
    return rules


def _find_rule(document: dict[str, Any], name: str, flag: str = "--name") -> dict[str, Any]:
    rules = _custom_rules(document)
    for rule in rules:
        if str(rule.get("name", "")).casefold() == name.casefold():
            return rule
    listed = ", ".join(str(rule.get("name")) for rule in rules) or "none"
    fail(f"{flag} {name!r}: the policy has no custom rule of that name (existing: {listed})")


def _rule_fields(arguments: dict[str, Any], rule: dict[str, Any]) -> None:
    if arguments["priority"] is not None:
        rule["priority"] = arguments["priority"]
    if arguments["action"] is not None:
        rule["action"] = choice(arguments["action"], ACTIONS, "--action")
    if arguments.get("rule_type") is not None:
        rule["ruleType"] = choice(arguments["rule_type"], RULE_TYPES, "--rule-type")
    if arguments["state"] is not None:
        rule["state"] = choice(arguments["state"], STATES, "--state")


def _rule_create(arguments: dict[str, Any]) -> None:
    rule: dict[str, Any] = {"name": arguments["name"], "ruleType": "MatchRule"}
    _rule_fields(arguments, rule)
    rule["matchConditions"] = [_condition(arguments)]
    name = arguments["name"]

    def change(document: dict[str, Any]) -> None:
        rules = _custom_rules(document)
        if any(str(r.get("name", "")).casefold() == name.casefold() for r in rules):
            fail(f"custom rule '{name}' already exists; change it with 'custom-rule update'")
        rules.append(rule)

    stored = edit_policy(arguments, change, name_key="policy_name")
    _emit(_find_rule(stored, name), arguments)


def _rule_update(arguments: dict[str, Any]) -> None:
    def change(document: dict[str, Any]) -> None:
        _rule_fields(arguments, _find_rule(document, arguments["name"]))

    stored = edit_policy(arguments, change, name_key="policy_name")
    _emit(_find_rule(stored, arguments["name"]), arguments)


def _rule_delete(arguments: dict[str, Any]) -> None:
    def change(document: dict[str, Any]) -> None:
        rule = _find_rule(document, arguments["name"])
        _properties(document)["customRules"] = [r for r in _custom_rules(document) if r is not rule]

    edit_policy(arguments, change, name_key="policy_name")


def _rule_show(arguments: dict[str, Any]) -> None:
    api = connect(arguments)
    document = read_policy(api, arguments["resource_group"], arguments["policy_name"])
    _emit(_find_rule(document, arguments["name"]), arguments)


def _rule_list(arguments: dict[str, Any]) -> None:
    api = connect(arguments)
    document = read_policy(api, arguments["resource_group"], arguments["policy_name"])
    _emit(_custom_rules(document), arguments)


def _condition_add(arguments: dict[str, Any]) -> None:
    condition = _condition(arguments)

    def change(document: dict[str, Any]) -> None:
        rule = _find_rule(document, arguments["name"])
        rule["matchConditions"] = [*(rule.get("matchConditions") or []), condition]

    stored = edit_policy(arguments, change, name_key="policy_name")
    _emit(_find_rule(stored, arguments["name"]).get("matchConditions"), arguments)


def _condition_remove(arguments: dict[str, Any]) -> None:
    index = arguments["index"]

    def change(document: dict[str, Any]) -> None:
        rule = _find_rule(document, arguments["name"])
        conditions = rule.get("matchConditions") or []
        if not 0 <= index < len(conditions):
            fail(f"--index {index}: the rule has {len(conditions)} match conditions (0-based)", 2)
        if len(conditions) == 1:
            fail(
                f"--index {index}: the rule's only match condition; a custom rule needs one "
                "(delete the rule instead)",
                2,
            )
        rule["matchConditions"] = conditions[:index] + conditions[index + 1 :]

    edit_policy(arguments, change, name_key="policy_name")


def _condition_list(arguments: dict[str, Any]) -> None:
    api = connect(arguments)
    document = read_policy(api, arguments["resource_group"], arguments["policy_name"])
    _emit(_find_rule(document, arguments["name"]).get("matchConditions") or [], arguments)


def _custom_rule_app() -> typer.Typer:
    app = typer.Typer(
        help="The policy's custom rules.", no_args_is_help=True, rich_markup_mode=None
    )
    rule_name = _required("name", "--name", "-n", help="Name of the custom rule.")
    where = [_group(), _policy_name(), rule_name]
    example = "-g rg1 --policy-name policy1 -n BlockEvil"

    def rule_flags(creating: bool) -> list[Any]:
        make = _required if creating else _opt
        return [
            make(
                "priority",
                "--priority",
                help="1-100, unique in the policy: lower runs first.",
                kind=int if creating else int | None,
            ),
            make(
                "action",
                "--action",
                help=f"One of: {', '.join(ACTIONS)}.",
                kind=str if creating else Text,
            ),
            _opt("state", "--state", help="Enabled (default) or Disabled."),
        ]

    add_command(
        app,
        "create",
        [
            *where,
            *rule_flags(True),
            _opt(
                "rule_type",
                "--rule-type",
                help="MatchRule (the default; appgw has no rate limiting).",
            ),
            *_condition_options(required=True),
            *_printing(),
        ],
        _rule_create,
        "Create a custom rule with its first match condition (the API refuses a rule without "
        "one; add more with 'custom-rule match-condition add'); prints it.\n\n"
        f"Example: appgw waf-policy custom-rule create {example} --priority 10 --action Block "
        "--match-variables RequestHeaders.X-Tenant --operator Equal --values evil "
        "--transforms Lowercase",
    )
    add_command(
        app,
        "update",
        [*where, *rule_flags(False), *_printing()],
        _rule_update,
        "Change a custom rule's priority, action or state; prints it.\n\n"
        f"Example: appgw waf-policy custom-rule update {example} --state Disabled",
    )
    add_command(
        app,
        "delete",
        [*where, *connection(prints=False)],
        _rule_delete,
        f"Delete a custom rule.\n\nExample: appgw waf-policy custom-rule delete {example}",
    )
    add_command(
        app,
        "show",
        [*where, *_printing()],
        _rule_show,
        f"Show a custom rule.\n\nExample: appgw waf-policy custom-rule show {example}",
    )
    add_command(
        app,
        "list",
        [_group(), _policy_name(), *_printing()],
        _rule_list,
        "List the policy's custom rules.\n\n"
        "Example: appgw waf-policy custom-rule list -g rg1 --policy-name policy1 -o table",
    )
    conditions = typer.Typer(
        help="A custom rule's match conditions (all must match).",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    add_command(
        conditions,
        "add",
        [*where, *_condition_options(required=False), *_printing()],
        _condition_add,
        "Add a match condition to a custom rule; prints the rule's conditions.\n\n"
        f"Example: appgw waf-policy custom-rule match-condition add {example} "
        "--match-variables RemoteAddr --operator IPMatch --values 10.0.0.0/8 --negate true",
    )
    add_command(
        conditions,
        "list",
        [*where, *_printing()],
        _condition_list,
        f"List a custom rule's match conditions.\n\n"
        f"Example: appgw waf-policy custom-rule match-condition list {example}",
    )
    add_command(
        conditions,
        "remove",
        [
            *where,
            _required(
                "index", "--index", help="Which condition (0-based, as list shows).", kind=int
            ),
            *connection(prints=False),
        ],
        _condition_remove,
        f"Remove a custom rule's match condition.\n\n"
        f"Example: appgw waf-policy custom-rule match-condition remove {example} --index 1",
    )
    app.add_typer(conditions, name="match-condition")
    return app


# --- managed rules: the rule set and its overrides --------------------------------------------


def _rule_set_flags(arguments: dict[str, Any]) -> tuple[str, str]:
    return (
        choice(arguments["type"], RULE_SET_TYPES, "--type"),
        choice(arguments["version"], RULE_SET_VERSIONS, "--version"),
    )


def _overrides(
    arguments: dict[str, Any], version: str, rules_flag: str = "--rules"
) -> tuple[str | None, list[str]]:
    """--group-name (Azure's spelling) and --rules (ids of that group)."""
    group, rules = arguments["group_name"], _words(arguments.get("rules"))
    if group is None:
        if rules:
            fail(f"{rules_flag} needs --group-name: the rule group the rules are in", 2)
        return None, []
    known = {g.casefold(): g for g in groups_of(version)}
    name = known.get(group.casefold())
    if name is None:
        fail(f"--group-name: {group!r} is not a rule group of OWASP {version}", 2)
    for rule in rules:
        owner = group_of_rule(int(rule)) if rule.isdigit() else None
        if owner is None:
            fail(f"{rules_flag}: {rule!r} is not a rule of the OWASP Core Rule Set 3.x", 2)
        if owner != name:
            fail(f"{rules_flag}: {rule} is a rule of {owner}, not of --group-name {name}", 2)
    return name, rules


def _override_group(rule_set: dict[str, Any], group: str) -> dict[str, Any]:
    overrides: list[dict[str, Any]] = rule_set.get("ruleGroupOverrides") or []
    rule_set["ruleGroupOverrides"] = overrides
    for entry in overrides:
        if str(entry.get("ruleGroupName", "")).casefold() == group.casefold():
            return entry
    entry = {"ruleGroupName": group, "rules": []}
    overrides.append(entry)
    return entry


def _disable(entry: dict[str, Any], rules: list[str], *, replace: bool) -> None:
    kept = [] if replace else list(entry.get("rules") or [])
    have = {str(rule.get("ruleId")) for rule in kept}
    kept += [{"ruleId": rule, "state": "Disabled"} for rule in rules if rule not in have]
    entry["rules"] = kept


def _drop_group(rule_set: dict[str, Any], group: str) -> None:
    overrides = rule_set.get("ruleGroupOverrides") or []
    rule_set["ruleGroupOverrides"] = [
        entry
        for entry in overrides
        if str(entry.get("ruleGroupName", "")).casefold() != group.casefold()
    ]


def _rule_set_write(arguments: dict[str, Any], verb: str) -> None:
    rule_set_type, version = _rule_set_flags(arguments)
    group, rules = _overrides(arguments, version)

    def change(document: dict[str, Any]) -> None:
        current = _owasp_set(document)
        sets = _properties(document)["managedRules"]["managedRuleSets"]
        if verb == "add":
            if current is None:
                current = {"ruleSetType": rule_set_type, "ruleSetVersion": version}
                sets.append(current)
            elif current.get("ruleSetVersion") != version:
                fail(
                    f"--version {version}: the policy runs OWASP {current.get('ruleSetVersion')} "
                    "and has one OWASP rule set; change its version with 'rule-set update'",
                    2,
                )
            if group is not None:
                _disable(_override_group(current, group), rules, replace=False)
            return
        if current is None:
            fail("--type: the policy has no OWASP rule set; add one with 'rule-set add'", 2)
        if verb == "update":
            current["ruleSetVersion"] = version
            if group is None:
                current.pop("ruleGroupOverrides", None)
            elif rules:
                _disable(_override_group(current, group), rules, replace=True)
            else:
                _drop_group(current, group)
            return
        # remove: a group's overrides, or the rule set (the API needs one: it refuses that).
        if group is not None:
            _drop_group(current, group)
        else:
            sets.remove(current)

    stored = edit_policy(arguments, change, name_key="policy_name")
    if verb != "remove":
        _emit(_properties(stored)["managedRules"]["managedRuleSets"], arguments)


def _rule_set_list(arguments: dict[str, Any]) -> None:
    api = connect(arguments)
    document = read_policy(api, arguments["resource_group"], arguments["policy_name"])
    managed = _properties(document).get("managedRules") or {}
    _emit(managed.get("managedRuleSets") or [], arguments)


def _rule_set_app() -> typer.Typer:
    app = typer.Typer(
        help="The policy's managed rule set (OWASP CRS) and its rule overrides.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    def flags(*, rules: bool = True) -> list[Any]:
        found = [
            _group(),
            _policy_name(),
            _opt("type", "--type", help="OWASP.", kind=str, default="OWASP"),
            _required("version", "--version", help=f"{', '.join(RULE_SET_VERSIONS)}."),
            _opt(
                "group_name",
                "--group-name",
                help="A rule group, e.g. REQUEST-942-APPLICATION-ATTACK-SQLI.",
            ),
        ]
        if rules:
            found.append(
                _opt(
                    "rules",
                    "--rules",
                    help="Rule ids of --group-name to disable, e.g. 942100 942110.",
                    kind=Words,
                )
            )
        return found

    example = "-g rg1 --policy-name policy1 --type OWASP --version 3.2"
    sqli = "--group-name REQUEST-942-APPLICATION-ATTACK-SQLI"
    add_command(
        app,
        "add",
        [*flags(), *_printing()],
        lambda arguments: _rule_set_write(arguments, "add"),
        "Add the managed rule set, or (with --group-name and --rules) disable more rules of "
        "it; prints the rule sets.\n\n"
        f"Example: appgw waf-policy managed-rule rule-set add {example} {sqli} --rules 942100",
    )
    add_command(
        app,
        "update",
        [*flags(), *_printing()],
        lambda arguments: _rule_set_write(arguments, "update"),
        "Change the rule set, as az does: with --group-name and --rules, those are the group's "
        "disabled rules; with --group-name alone, the group's overrides are cleared; with "
        "neither, the version is set and every override cleared. Prints the rule sets.\n\n"
        f"Example: appgw waf-policy managed-rule rule-set update {example} {sqli} "
        "--rules 942100 942110",
    )
    add_command(
        app,
        "remove",
        [*flags(rules=False), *connection(prints=False)],
        lambda arguments: _rule_set_write(arguments, "remove"),
        "Remove a rule group's overrides (--group-name), or the rule set itself (which the API "
        "refuses: a policy has one OWASP rule set).\n\n"
        f"Example: appgw waf-policy managed-rule rule-set remove {example} {sqli}",
    )
    add_command(
        app,
        "list",
        [_group(), _policy_name(), *_printing()],
        _rule_set_list,
        "List the policy's managed rule sets and their overrides.\n\n"
        "Example: appgw waf-policy managed-rule rule-set list -g rg1 --policy-name policy1",
    )
    return app


# --- managed rules: exclusions ----------------------------------------------------------------


def _exclusions(document: dict[str, Any]) -> list[dict[str, Any]]:
    managed = _properties(document).setdefault("managedRules", {})
    exclusions: list[dict[str, Any]] = managed.get("exclusions") or []
    managed["exclusions"] = exclusions
    return exclusions


def _exclusion_of(arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "matchVariable": arguments["match_variable"],
        "selectorMatchOperator": arguments["selector_match_operator"],
        "selector": arguments["selector"],
    }


def _same(entry: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(str(entry.get(k, "")).casefold() == str(v).casefold() for k, v in wanted.items())


def _exclusion_add(arguments: dict[str, Any]) -> None:
    wanted = _exclusion_of(arguments)

    def change(document: dict[str, Any]) -> None:
        exclusions = _exclusions(document)
        if any(_same(entry, wanted) for entry in exclusions):
            fail("the policy has this exclusion already", 2)
        exclusions.append(wanted)

    stored = edit_policy(arguments, change, name_key="policy_name")
    _emit(_exclusions(stored), arguments)


def _exclusion_remove(arguments: dict[str, Any]) -> None:
    index = arguments["index"]

    def change(document: dict[str, Any]) -> None:
        exclusions = _exclusions(document)
        if index is None:
            exclusions.clear()  # az removes every exclusion
        elif not 0 <= index < len(exclusions):
            fail(f"--index {index}: the policy has {len(exclusions)} exclusions (0-based)", 2)
        else:
            del exclusions[index]

    edit_policy(arguments, change, name_key="policy_name")


def _exclusion_list(arguments: dict[str, Any]) -> None:
    api = connect(arguments)
    document = read_policy(api, arguments["resource_group"], arguments["policy_name"])
    _emit(_exclusions(document), arguments)


def _exclusion_rule_set_add(arguments: dict[str, Any]) -> None:
    wanted = _exclusion_of(arguments)
    rule_set_type, version = _rule_set_flags(arguments)
    group, rules = _overrides(arguments, version, "--rule-ids")

    def change(document: dict[str, Any]) -> None:
        entry = next((e for e in _exclusions(document) if _same(e, wanted)), None)
        if entry is None:
            fail(
                "--match-variable/--selector-match-operator/--selector: the policy has no such "
                "exclusion; add it with 'managed-rule exclusion add'",
                2,
            )
        scope: dict[str, Any] = {"ruleSetType": rule_set_type, "ruleSetVersion": version}
        if group is not None:
            scope["ruleGroups"] = [
                {
                    "ruleGroupName": group,
                    **({"rules": [{"ruleId": r} for r in rules]} if rules else {}),
                }
            ]
        entry["exclusionManagedRuleSets"] = [*(entry.get("exclusionManagedRuleSets") or []), scope]

    stored = edit_policy(arguments, change, name_key="policy_name")
    _emit(_exclusions(stored), arguments)


def _exclusion_app() -> typer.Typer:
    app = typer.Typer(
        help="The policy's managed rule exclusions.", no_args_is_help=True, rich_markup_mode=None
    )
    which = [
        _required(
            "match_variable",
            "--match-variable",
            help="RequestHeaderNames, RequestCookieNames, RequestArgNames, RequestHeaderKeys, "
            "RequestHeaderValues, RequestCookieKeys, RequestCookieValues, RequestArgKeys or "
            "RequestArgValues.",
        ),
        _required(
            "selector_match_operator",
            "--selector-match-operator",
            help="Equals, StartsWith, EndsWith, Contains or EqualsAny.",
        ),
        _required("selector", "--selector", help="The name to exclude ('*' for EqualsAny)."),
    ]
    where = [_group(), _policy_name()]
    example = "-g rg1 --policy-name policy1"
    excluded = (
        "--match-variable RequestHeaderNames --selector-match-operator Equals --selector x-token"
    )
    add_command(
        app,
        "add",
        [*where, *which, *_printing()],
        _exclusion_add,
        "Add an exclusion (from every rule; narrow it with 'exclusion rule-set add'); prints "
        f"the exclusions.\n\nExample: appgw waf-policy managed-rule exclusion add {example} "
        f"{excluded}",
    )
    add_command(
        app,
        "remove",
        [
            *where,
            _opt(
                "index",
                "--index",
                help="Which exclusion (0-based); default: all, as az.",
                kind=int | None,
            ),
            *connection(prints=False),
        ],
        _exclusion_remove,
        "Remove an exclusion (--index), or all of them.\n\n"
        f"Example: appgw waf-policy managed-rule exclusion remove {example} --index 0",
    )
    add_command(
        app,
        "list",
        [*where, *_printing()],
        _exclusion_list,
        f"List the exclusions.\n\nExample: appgw waf-policy managed-rule exclusion list {example}",
    )
    rule_sets = typer.Typer(
        help="The rules an exclusion applies to.", no_args_is_help=True, rich_markup_mode=None
    )
    add_command(
        rule_sets,
        "add",
        [
            *where,
            *which,
            _opt("type", "--type", help="OWASP.", kind=str, default="OWASP"),
            _required("version", "--version", help=f"{', '.join(RULE_SET_VERSIONS)}."),
            _opt("group_name", "--group-name", help="A rule group (default: the whole set)."),
            _opt(
                "rules", "--rule-ids", help="Rule ids of --group-name (default: all).", kind=Words
            ),
            *_printing(),
        ],
        _exclusion_rule_set_add,
        "Make an exclusion apply only to a rule set, group or rules; prints the exclusions.\n\n"
        f"Example: appgw waf-policy managed-rule exclusion rule-set add {example} {excluded} "
        "--type OWASP --version 3.2 --group-name REQUEST-942-APPLICATION-ATTACK-SQLI "
        "--rule-ids 942100",
    )
    app.add_typer(rule_sets, name="rule-set")
    return app


# --- the group --------------------------------------------------------------------------------


def waf_policy_app() -> typer.Typer:
    app = typer.Typer(
        help="WAF policies (ApplicationGatewayWebApplicationFirewallPolicies): link one with "
        "'appgw update --waf-policy', 'http-listener create/update --waf-policy' or "
        "'url-path-map rule create/update --waf-policy'.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    _policy_commands(app)
    app.add_typer(_settings_app(), name="policy-setting")
    app.add_typer(_custom_rule_app(), name="custom-rule")
    managed = typer.Typer(
        help="The policy's managed rules: the OWASP rule set, overrides and exclusions.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    managed.add_typer(_rule_set_app(), name="rule-set")
    managed.add_typer(_exclusion_app(), name="exclusion")
    app.add_typer(managed, name="managed-rule")
    return app
