"""The real `appgw rewrite-rule` commands (sets, rules, conditions, the list-* catalogues) and
`--rewrite-rule-set` on routing and path rules, against a real `appgw serve`: what they store,
az's flattened output, and refusals that name the flag or field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backends import free_port
from helpers import (
    Pfx,
    ServeProcess,
    cli as appgw,
    cli_ok as ok,
    cli_refused as refused,
    fresh_gateway,
    gateway_url,
)

pytestmark = pytest.mark.slow

GW = ("-g", "rg1", "--gateway-name", "appgw", "--subscription", "sub1")
IN_SET = ("--rule-set-name", "rewriteSet1")
IN_RULE = (*IN_SET, "--rule-name", "mobile")


@pytest.fixture
def api(server: ServeProcess, pfx: Pfx, root_cer: str) -> Iterator[httpx.Client]:
    """A fresh gateway for each test, on a free port."""
    with fresh_gateway(server.base_url, pfx, root_cer, free_port()) as client:
        yield client


def stored(api: httpx.Client) -> dict[str, Any]:
    document: dict[str, Any] = api.get(gateway_url()).json()
    return document


def stored_set(api: httpx.Client) -> dict[str, Any]:
    (rule_set,) = stored(api)["properties"]["rewriteRuleSets"]
    assert isinstance(rule_set, dict)
    return rule_set


def last(reference: dict[str, str]) -> str:
    return reference["id"].rsplit("/", 1)[-1]


def with_rule(server: ServeProcess) -> None:
    """rewriteSet1 with the rule `mobile`, which sets one request header."""
    ok(server, "rewrite-rule", "set", "create", *GW, "-n", "rewriteSet1")
    ok(
        server, "rewrite-rule", "create", *GW, *IN_SET, "-n", "mobile",
        "--request-headers", "X-Mobile=yes",
    )  # fmt: skip


def test_sets_rules_and_conditions(server: ServeProcess, api: httpx.Client) -> None:
    made = ok(server, "rewrite-rule", "set", "create", *GW, "-n", "rewriteSet1")
    # az's shape: `properties` lifted into the set, resourceGroup beside its id.
    assert made["name"] == "rewriteSet1" and "properties" not in made
    assert made["id"].endswith("/rewriteRuleSets/rewriteSet1") and made["resourceGroup"] == "rg1"
    assert made.get("rewriteRules", []) == []

    rule = ok(
        server, "rewrite-rule", "create", *GW, *IN_SET, "-n", "headers",
        "--request-headers", "X-Client-IP={var_client_ip}", "X-Note=a b, c",
        "--response-headers", "Server=", "Strict-Transport-Security=max-age=31536000",
        "--modified-path", "/v2{var_uri_path}", "--modified-query-string", "from=cli",
    )  # fmt: skip
    assert rule["name"] == "headers" and rule["ruleSequence"] == 100  # az's default
    actions = rule["actionSet"]
    # A value keeps its spaces, commas and '=' (split at the first '=' only).
    assert actions["requestHeaderConfigurations"] == [
        {"headerName": "X-Client-IP", "headerValue": "{var_client_ip}"},
        {"headerName": "X-Note", "headerValue": "a b, c"},
    ]
    # An empty value deletes the header.
    assert actions["responseHeaderConfigurations"] == [
        {"headerName": "Server", "headerValue": ""},
        {"headerName": "Strict-Transport-Security", "headerValue": "max-age=31536000"},
    ]
    assert actions["urlConfiguration"]["modifiedPath"] == "/v2{var_uri_path}"
    assert actions["urlConfiguration"]["modifiedQueryString"] == "from=cli"
    assert stored_set(api)["properties"]["rewriteRules"][0]["actionSet"] == actions

    ok(
        server, "rewrite-rule", "create", *GW, *IN_SET, "-n", "mobile", "--sequence", "20",
        "--request-headers", "X-Mobile=yes",
    )  # fmt: skip
    condition = ok(
        server, "rewrite-rule", "condition", "create", *GW, *IN_RULE,
        "--variable", "http_req_User-Agent", "--pattern", "mobile|android",
    )  # fmt: skip
    assert condition == {
        "variable": "http_req_User-Agent",
        "pattern": "mobile|android",
        "ignoreCase": True,  # az's defaults, written out
        "negate": False,
    }
    quiet = ok(
        server, "rewrite-rule", "condition", "create", *GW, *IN_RULE,
        "--variable", "var_uri_path", "--pattern", "^/old/(.*)", "--ignore-case", "false",
        "--no-wait",
    )  # fmt: skip
    assert quiet is None  # az prints nothing with --no-wait

    # list and show, flattened as az prints them.
    shown = ok(server, "rewrite-rule", "set", "show", *GW, "-n", "rewritESET1")  # any case
    assert "properties" not in shown and shown["name"] == "rewriteSet1"
    assert [r["name"] for r in shown["rewriteRules"]] == ["headers", "mobile"]
    assert [c["variable"] for c in shown["rewriteRules"][1]["conditions"]] == [
        "http_req_User-Agent",
        "var_uri_path",
    ]
    listed_sets = ok(server, "rewrite-rule", "set", "list", *GW)
    assert [s["name"] for s in listed_sets] == ["rewriteSet1"]
    assert listed_sets[0]["resourceGroup"] == "rg1" and "properties" not in listed_sets[0]
    assert ok(server, "rewrite-rule", "list", *GW, *IN_SET, "--query", "[].name") == [
        "headers",
        "mobile",
    ]
    table = appgw(server, "rewrite-rule", "list", *GW, *IN_SET, "-o", "table").stdout
    header, _, *rows = table.splitlines()
    assert header.split() == ["Name", "RuleSequence"]
    assert [row.split() for row in rows] == [["headers", "100"], ["mobile", "20"]]
    one = ok(server, "rewrite-rule", "show", *GW, *IN_SET, "-n", "mobile")
    assert one["ruleSequence"] == 20 and len(one["conditions"]) == 2
    conditions = ok(server, "rewrite-rule", "condition", "list", *GW, *IN_RULE)
    assert [c["ignoreCase"] for c in conditions] == [True, False]
    path_condition = ok(
        server, "rewrite-rule", "condition", "show", *GW, *IN_RULE, "--variable", "VAR_URI_PATH"
    )
    assert path_condition["pattern"] == "^/old/(.*)"

    # update: only what the flags give; a header flag replaces that list.
    updated = ok(
        server, "rewrite-rule", "update", *GW, *IN_SET, "-n", "mobile", "--sequence", "50",
        "--response-headers", "X-Powered-By=", "--modified-path", "/new/{var_uri_path_1}",
        "--enable-reroute", "false",
    )  # fmt: skip
    assert updated["ruleSequence"] == 50 and len(updated["conditions"]) == 2
    assert updated["actionSet"]["requestHeaderConfigurations"] == [
        {"headerName": "X-Mobile", "headerValue": "yes"}
    ]
    assert updated["actionSet"]["responseHeaderConfigurations"] == [
        {"headerName": "X-Powered-By", "headerValue": ""}
    ]
    assert updated["actionSet"]["urlConfiguration"]["modifiedPath"] == "/new/{var_uri_path_1}"
    assert updated["actionSet"]["urlConfiguration"]["reroute"] is False
    negated = ok(
        server, "rewrite-rule", "condition", "update", *GW, *IN_RULE,
        "--variable", "http_req_User-Agent", "--negate", "true",
    )  # fmt: skip
    assert negated["negate"] is True and negated["pattern"] == "mobile|android"
    assert negated["ignoreCase"] is True
    cleared = ok(
        server, "rewrite-rule", "update", *GW, *IN_SET, "-n", "headers", "--request-headers", ""
    )
    assert cleared["actionSet"]["requestHeaderConfigurations"] == []
    assert len(cleared["actionSet"]["responseHeaderConfigurations"]) == 2

    # delete, innermost first; each is its own GET -> PUT.
    ok(
        server, "rewrite-rule", "condition", "delete", *GW, *IN_RULE,
        "--variable", "http_req_user-agent",
    )  # fmt: skip
    rules = stored_set(api)["properties"]["rewriteRules"]
    assert [c["variable"] for c in rules[1]["conditions"]] == ["var_uri_path"]
    ok(server, "rewrite-rule", "delete", *GW, *IN_SET, "-n", "headers")
    assert [r["name"] for r in stored_set(api)["properties"]["rewriteRules"]] == ["mobile"]
    assert ok(server, "rewrite-rule", "set", "update", *GW, "-n", "rewriteSet1")["name"]
    ok(server, "rewrite-rule", "set", "delete", *GW, "-n", "rewriteSet1")
    assert stored(api)["properties"].get("rewriteRuleSets", []) == []


def test_attaching_a_set_to_rules_and_path_rules(server: ServeProcess, api: httpx.Client) -> None:
    with_rule(server)
    attached = ok(server, "rule", "update", *GW, "-n", "rule1", "--rewrite-rule-set", "rewriteSet1")
    assert last(attached["rewriteRuleSet"]) == "rewriteSet1"
    assert attached["rewriteRuleSet"]["resourceGroup"] == "rg1"  # az's reference shape
    in_use = refused(server, "rewrite-rule", "set", "delete", *GW, "-n", "rewriteSet1")
    assert "rewriteSet1" in in_use  # the API names the set still referenced
    missing = refused(server, "rule", "update", *GW, "-n", "rule1", "--rewrite-rule-set", "nope")
    assert "--rewrite-rule-set 'nope'" in missing and "no rewrite rule set" in missing
    assert "(existing: rewriteSet1)" in missing
    detached = ok(server, "rule", "update", *GW, "-n", "rule1", "--rewrite-rule-set", "")
    assert "rewriteRuleSet" not in detached

    path_map = ok(
        server, "url-path-map", "create", *GW, "-n", "map1", "--paths", "/images/*",
        "--address-pool", "appGatewayBackendPool",
        "--http-settings", "appGatewayBackendHttpSettings",
        "--rewrite-rule-set", "rewriteSet1", "--default-rewrite-rule-set", "rewriteSet1",
    )  # fmt: skip
    assert last(path_map["defaultRewriteRuleSet"]) == "rewriteSet1"
    assert last(path_map["pathRules"][0]["rewriteRuleSet"]) == "rewriteSet1"
    in_map = ("--path-map-name", "map1")
    video = ok(
        server, "url-path-map", "rule", "create", *GW, *in_map, "-n", "video",
        "--paths", "/video/*", "--rewrite-rule-set", "rewriteSet1",
    )  # fmt: skip
    assert last(video["rewriteRuleSet"]) == "rewriteSet1"
    plain = ok(
        server, "url-path-map", "rule", "update", *GW, *in_map, "-n", "video",
        "--rewrite-rule-set", "",
    )  # fmt: skip
    assert "rewriteRuleSet" not in plain and plain["paths"] == ["/video/*"]
    no_default = ok(
        server, "url-path-map", "update", *GW, "-n", "map1", "--default-rewrite-rule-set", ""
    )
    assert "defaultRewriteRuleSet" not in no_default
    stored_map = stored(api)["properties"]["urlPathMaps"][0]["properties"]
    assert [("rewriteRuleSet" in r["properties"]) for r in stored_map["pathRules"]] == [True, False]


def test_refusals_name_the_flag_or_field(server: ServeProcess, api: httpx.Client) -> None:
    with_rule(server)
    etag = stored(api)["etag"]

    # The server's rules, with the field they are about.
    look_ahead = refused(
        server, "rewrite-rule", "condition", "create", *GW, *IN_RULE,
        "--variable", "var_uri_path", "--pattern", "^/a(?=x)",
    )  # fmt: skip
    assert "ApplicationGatewayRewriteInvalidPattern" in look_ahead
    assert "conditions[0].pattern" in look_ahead
    connection = refused(
        server, "rewrite-rule", "update", *GW, *IN_SET, "-n", "mobile",
        "--request-headers", "Connection=close",
    )  # fmt: skip
    assert "ApplicationGatewayRewriteHeaderNotSupported" in connection
    assert "requestHeaderConfigurations[0].headerName" in connection
    assert "Connection header" in connection
    no_action = refused(server, "rewrite-rule", "create", *GW, *IN_SET, "-n", "empty")
    assert "ApplicationGatewayRewriteRuleActionSetEmpty" in no_action and "actionSet" in no_action
    sequence = refused(
        server, "rewrite-rule", "update", *GW, *IN_SET, "-n", "mobile", "--sequence", "0"
    )
    assert "ruleSequence" in sequence and "1-1000" in sequence

    # The CLI's own checks, before any request: no API listens at this address.
    nowhere = f"http://127.0.0.1:{free_port()}"
    not_pair = refused(
        nowhere, "rewrite-rule", "create", *GW, *IN_SET, "-n", "x", "--request-headers", "X-A"
    )
    assert "--request-headers 'X-A': give KEY=VALUE" in not_pair and "cannot reach" not in not_pair
    twice = refused(
        nowhere, "rewrite-rule", "create", *GW, *IN_SET, "-n", "x",
        "--response-headers", "X-A=1", "x-a=2",
    )  # fmt: skip
    assert "--response-headers: 'x-a' is given twice" in twice
    reroute = refused(
        nowhere, "rewrite-rule", "create", *GW, *IN_SET, "-n", "x", "--enable-reroute", "maybe"
    )
    assert "--enable-reroute: 'maybe' is not one of: true, false" in reroute
    pattern = appgw(
        nowhere, "rewrite-rule", "condition", "create", *GW, *IN_RULE, "--variable", "var_host"
    )
    assert pattern.returncode == 2 and "--pattern" in pattern.stderr

    # Names that do not exist, at each level, with what does.
    no_set = refused(server, "rewrite-rule", "list", *GW, "--rule-set-name", "nope")
    assert "--rule-set-name 'nope': the gateway has no rewrite rule set" in no_set
    assert "(existing: rewriteSet1)" in no_set
    no_rule = refused(
        server, "rewrite-rule", "condition", "list", *GW, *IN_SET, "--rule-name", "nope"
    )
    assert "--rule-name 'nope': rewrite rule set 'rewriteSet1' has no rewrite rule" in no_rule
    assert "(existing: mobile)" in no_rule
    no_condition = refused(
        server, "rewrite-rule", "condition", "show", *GW, *IN_RULE, "--variable", "var_host"
    )
    assert (
        "--variable 'var_host': rewrite rule 'mobile' has no rewrite condition of that "
        "variable (existing: none)" in no_condition
    )
    no_update = refused(server, "rewrite-rule", "update", *GW, *IN_SET, "-n", "nope")
    assert "--name 'nope'" in no_update and "has no rewrite rule" in no_update
    again = refused(
        server, "rewrite-rule", "create", *GW, *IN_SET, "-n", "MOBILE",
        "--request-headers", "X-B=1",
    )  # fmt: skip
    assert "rewrite rule 'mobile' already exists" in again and "rewrite-rule update" in again
    assert stored(api)["etag"] == etag  # nothing above was saved


def test_catalogues(server: ServeProcess) -> None:
    variables = ok(server, "rewrite-rule", "list-server-variables")
    assert "uri_path" in variables and "client_ip" in variables and "http_status" in variables
    assert variables == sorted(variables)
    requests = ok(server, "rewrite-rule", "list-request-headers")
    assert {"User-Agent", "X-Forwarded-For", "Host", "Authorization"} <= set(requests)
    responses = ok(server, "rewrite-rule", "list-response-headers", "--query", "length(@)")
    assert responses > 20
    tsv = appgw(server, "rewrite-rule", "list-response-headers", "-o", "tsv").stdout.split()
    assert {"Set-Cookie", "Strict-Transport-Security", "Server"} <= set(tsv)


def test_listed_headers_are_ones_a_rule_may_set() -> None:
    """The catalogues offer no header the server refuses (Connection, framing, hop-by-hop)."""
    from appgw.cli.children.rewrite import REQUEST_HEADERS, RESPONSE_HEADERS
    from appgw.model.rewrite import REQUEST_HEADER_NAME, is_header_name
    from appgw.model.validate_rewrite import NOT_REWRITABLE

    for name in REQUEST_HEADERS + RESPONSE_HEADERS:
        assert name.lower() not in NOT_REWRITABLE, name
        assert is_header_name(name), name
    assert all(REQUEST_HEADER_NAME.fullmatch(name) for name in REQUEST_HEADERS)
    assert len(set(REQUEST_HEADERS)) == len(REQUEST_HEADERS)
    assert len(set(RESPONSE_HEADERS)) == len(RESPONSE_HEADERS)


def test_every_rewrite_command_has_an_example() -> None:
    import typer

    from appgw.cli.main import app

    root: Any = typer.main.get_command(app)
    group = root.commands["rewrite-rule"]
    found = [
        (f"rewrite-rule {name} {verb}", sub)
        for name, command in group.commands.items()
        if hasattr(command, "commands")
        for verb, sub in command.commands.items()
    ]
    found += [
        (f"rewrite-rule {name}", command)
        for name, command in group.commands.items()
        if not hasattr(command, "commands")
    ]
    assert len(found) == 5 + 3 + 5 + 5  # rules, list-*, set, condition
    for path, command in found:
        assert "Example: appgw " + path in (command.help or ""), path
