"""`appgw waf-config`: the gateway's inline web application firewall settings
(`webApplicationFirewallConfiguration`, a property, not a child), shaped like
`az network application-gateway waf-config set/show`.

Like az, `set` replaces the whole configuration with what the flags say. The new configuration
is checked here with the API's own rules (model/validate_waf.py) before anything is written, so
a refusal names the flag; the API checks it again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from appgw.cli.children.commands import (
    Flag,
    Switch,
    add_command,
    connect,
    connection,
    edit,
    given_values,
    keyword,
    option,
    read,
    target,
    waiting,
)
from appgw.cli.children.edit import Edit
from appgw.cli.client import emit, fail
from appgw.model.enums import FirewallMode, WafRuleSetType
from appgw.model.ids import GatewayId
from appgw.model.waf_rule_sets import (
    DEFAULT_RULE_SET_VERSION,
    WAF_CONFIGURATION_FIELD as FIELD,
    group_of_rule,
)

if TYPE_CHECKING:
    from appgw.model.resource import ApplicationGatewayProperties

CONFIG = "webApplicationFirewallConfiguration"


_FLAGS = (
    Flag(("--enabled",), "Whether the firewall filters requests.", choices=Switch, required=True),
    Flag(
        ("--firewall-mode",),
        "Detection logs what the rules match; Prevention also blocks it (403). Default: Detection.",
        choices=FirewallMode,
    ),
    Flag(("--rule-set-type",), "Rule set. Default: OWASP.", choices=WafRuleSetType),
    Flag(
        ("--rule-set-version",),
        f"OWASP Core Rule Set version: 3.0, 3.1 or 3.2 (3.1 and 3.2: WAF_v2 only). "
        f"Default: {DEFAULT_RULE_SET_VERSION} on WAF_v2, 3.0 on v1.",
    ),
    Flag(
        ("--disabled-rule-groups",),
        "Rule groups to turn off, e.g. REQUEST-942-APPLICATION-ATTACK-SQLI.",
        kind=list,
    ),
    Flag(
        ("--disabled-rules",),
        "Rule ids to turn off, e.g. 942100 (their group is found from the id).",
        kind=list,
    ),
    Flag(("--request-body-check",), "Inspect request bodies.", choices=Switch),
    Flag(
        ("--max-request-body-size", "--max-request-body-size-kb"),
        "Largest request body inspected, in KB: 8-128 (OWASP 3.0/3.1), 8-2000 (3.2).",
        kind=int,
    ),
    Flag(
        ("--file-upload-limit", "--file-upload-limit-mb"),
        "Largest file upload, in MB: 1-100 (v1), 1-4000 (WAF_v2).",
        kind=int,
    ),
)
EXCLUSION = "--exclusion"
# Where the API's field names a flag (the longest matching prefix wins).
_FLAG_OF_FIELD = (
    ("enabled", "--enabled"),
    ("firewallMode", "--firewall-mode"),
    ("ruleSetType", "--rule-set-type"),
    ("ruleSetVersion", "--rule-set-version"),
    ("disabledRuleGroups", "--disabled-rule-groups"),
    ("requestBodyCheck", "--request-body-check"),
    ("maxRequestBodySizeInKb", "--max-request-body-size"),
    ("fileUploadLimitInMb", "--file-upload-limit"),
    ("exclusions", EXCLUSION),
)


@dataclass
class _LocalCheck:
    """Runs the API's WAF rules on the new configuration, before it is written."""

    props: ApplicationGatewayProperties  # (a string annotation: pydantic loads lazily)
    gid: GatewayId
    found: list[tuple[str, str]] = field(default_factory=list)

    def add(self, code: str, resource_id: str, field: str, text: str) -> None:
        self.found.append((field, text))


def flag_of(path: str) -> str:
    """The flag that sets an API field of the configuration (the SKU's: `-g/--gateway-name`)."""
    rest = path.removeprefix(FIELD).removeprefix(".")
    if rest.startswith("disabledRuleGroups") and ".rules" in rest:
        return "--disabled-rules"
    for prefix, flag in _FLAG_OF_FIELD:
        if rest.startswith(prefix):
            return flag
    return "--gateway-name"


def _disabled_groups(values: dict[str, Any]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = [
        {"ruleGroupName": name} for name in values.get("disabled_rule_groups", [])
    ]
    whole = {name.casefold() for name in values.get("disabled_rule_groups", [])}
    rules: dict[str, list[int]] = {}
    for word in values.get("disabled_rules", []):
        if not word.isdigit() or int(word) <= 0:
            fail(f"--disabled-rules: {word!r} is not a rule id (a number such as 942100)", 2)
        group = group_of_rule(int(word))
        if group is None:
            fail(f"--disabled-rules: {word} is not a rule of the OWASP Core Rule Set 3.x", 2)
        if group.casefold() not in whole:  # a group turned off whole needs no rules
            rules.setdefault(group, []).append(int(word))
    groups += [{"ruleGroupName": group, "rules": ids} for group, ids in rules.items()]
    return groups


def _exclusions(words: list[str]) -> list[dict[str, str]]:
    if len(words) % 3:
        fail(f"{EXCLUSION} takes three values: VARIABLE OPERATOR SELECTOR", 2)
    return [
        {"matchVariable": variable, "selectorMatchOperator": operator, "selector": selector}
        for variable, operator, selector in zip(words[::3], words[1::3], words[2::3], strict=True)
    ]


def configuration(values: dict[str, Any], sku: str | None) -> dict[str, Any]:
    """The configuration the flags describe, with az's defaults for those left out."""
    v1 = sku not in (None, "WAF_v2")
    config: dict[str, Any] = {
        "enabled": values["enabled"],
        "firewallMode": values.get("firewall_mode", "Detection"),
        "ruleSetType": values.get("rule_set_type", "OWASP"),
        "ruleSetVersion": values.get("rule_set_version", "3.0" if v1 else DEFAULT_RULE_SET_VERSION),
    }
    groups = _disabled_groups(values)
    if groups:
        config["disabledRuleGroups"] = groups
    for name, key in (
        ("request_body_check", "requestBodyCheck"),
        ("max_request_body_size", "maxRequestBodySizeInKb"),
        ("file_upload_limit", "fileUploadLimitInMb"),
    ):
        if name in values:
            config[key] = values[name]
    if values.get("exclusion"):
        config["exclusions"] = _exclusions(values["exclusion"])
    return config


def _check(document: Edit, config: dict[str, Any]) -> None:
    # Here, not at the top: the CLI starts without pydantic (test_the_cli_loads_no_server_code).
    from pydantic import ValidationError

    from appgw.model.resource import ApplicationGatewayProperties
    from appgw.model.validate_waf import check_waf_configuration

    try:
        props = ApplicationGatewayProperties.model_validate(
            {"sku": {"name": document.view["properties"]["sku"]["name"]}, CONFIG: config}
        )
    except (ValidationError, KeyError, TypeError):
        return  # the API says what is wrong
    local = _LocalCheck(props, document.gateway)
    check_waf_configuration(local)
    if local.found:
        fail("; ".join(f"{flag_of(path)}: {text}" for path, text in local.found), 2)


def _set(arguments: dict[str, Any]) -> None:
    values = given_values(_FLAGS, arguments, creating=False)
    values["exclusion"] = arguments.get("exclusion") or []

    def change(document: Edit) -> None:
        properties = document.view["properties"]
        sku = (properties.get("sku") or {}).get("name")
        config = configuration(values, sku)
        _check(document, config)
        properties[CONFIG] = config

    stored = edit(arguments, change)
    if arguments["no_wait"]:
        return
    emit(stored["properties"].get(CONFIG), arguments["output"], arguments["query"])


def _show(arguments: dict[str, Any]) -> None:
    emit(read(arguments)["properties"].get(CONFIG), arguments["output"], arguments["query"])


def _exclusion_option() -> Any:
    return keyword(
        "exclusion",
        Annotated[
            list[str] | None,
            typer.Option(
                EXCLUSION,
                help="An exclusion: VARIABLE OPERATOR SELECTOR, e.g. RequestHeaderNames Equals "
                "x-token (EqualsAny takes the selector '*'). Repeat the flag for several.",
                show_default=False,
            ),
        ],
        None,
    )


WAF_RULE_SETS = (
    "/subscriptions/{}/providers/Microsoft.Network/applicationGatewayAvailableWafRuleSets"
)


def _list_rule_sets(arguments: dict[str, Any]) -> None:
    """az's list-rule-sets: the rule sets (filtered by --type/--version); their groups' rules
    only for --group (a name, or '*' for all)."""
    api = connect(arguments)
    sets = api.call("GET", WAF_RULE_SETS.format(api.subscription)).json().get("value", [])
    wanted_type, version, group = arguments["type"], arguments["version"], arguments["group"]
    shown = []
    for rule_set in sets:
        properties = rule_set["properties"]
        if wanted_type and properties["ruleSetType"].casefold() != wanted_type.casefold():
            continue
        if version and properties["ruleSetVersion"] != version:
            continue
        groups = properties["ruleGroups"]
        if group is None:
            groups = [{**g, "rules": None} for g in groups]
        elif group != "*":
            groups = [g for g in groups if g["ruleGroupName"].casefold() == group.casefold()]
        shown.append({**rule_set, "properties": {**properties, "ruleGroups": groups}})
    emit(shown, arguments["output"], arguments["query"])


def waf_config_app() -> typer.Typer:
    app = typer.Typer(
        help="The gateway's web application firewall configuration (WAF SKUs).",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    printing = connection(prints=True)
    flags = [option(f, creating=True) for f in _FLAGS]  # --enabled is required, as in az
    add_command(
        app,
        "set",
        [*target(), *flags, _exclusion_option(), *waiting(), *printing],
        _set,
        "Set the web application firewall configuration (replaces it whole); prints it.\n\n"
        "Example: appgw waf-config set -g rg1 --gateway-name appgw1 --enabled true "
        "--firewall-mode Prevention --rule-set-version 3.2 --disabled-rules 942100",
    )
    add_command(
        app,
        "show",
        [*target(), *printing],
        _show,
        "Show the web application firewall configuration.\n\n"
        "Example: appgw waf-config show -g rg1 --gateway-name appgw1",
    )
    text = str | None
    add_command(
        app,
        "list-rule-sets",
        [
            keyword("type", Annotated[text, typer.Option("--type", help="OWASP.")], None),
            keyword("version", Annotated[text, typer.Option("--version", help="e.g. 3.2.")], None),
            keyword(
                "group",
                Annotated[
                    text,
                    typer.Option("--group", help="A rule group's name, or '*': list its rules."),
                ],
                None,
            ),
            *printing,
        ],
        _list_rule_sets,
        "The managed rule sets, their rule groups and (with --group) rules.\n\n"
        "Example: appgw waf-config list-rule-sets --type OWASP --version 3.2 "
        "--group REQUEST-942-APPLICATION-ATTACK-SQLI -o table",
    )
    return app
