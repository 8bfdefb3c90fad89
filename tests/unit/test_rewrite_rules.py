"""Rewrite rule sets: the language (variables, templates, RE2 patterns), Azure's rules on a
PUT, and the evaluation a worker runs (in-process: these are the decisions, the e2e tests in
tests/e2e/test_rewrites.py send them over real sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from appgw.compile.rewrite import compile_rewrite_set
from appgw.core.request import Reject
from appgw.core.rewrite import (
    MAX_REWRITE_PASSES,
    RequestFacts,
    ResponseFacts,
    edited_headers,
    rewrite_and_route,
    rewrite_request,
    rewrite_response,
)
from appgw.model.ids import GatewayId
from appgw.model.resource import ApplicationGateway, RewriteRuleSet
from appgw.model.rewrite import (
    Kind,
    Reference,
    RewriteSyntaxError,
    compile_pattern,
    parse_template,
    parse_variable,
)
from appgw.model.validate import validate_gateway
from builders import GatewayBuilder

GID = GatewayId("sub1", "rg1", "appgw")


def test_templates_hold_text_references_and_captures() -> None:
    assert parse_template("{http_resp_Location_1}://contoso.com{http_resp_Location_2}") == (
        Reference(Kind.RESPONSE_HEADER, "Location", 1),
        "://contoso.com",
        Reference(Kind.RESPONSE_HEADER, "Location", 2),
    )
    assert parse_template("category={var_uri_path_1}&id={var_cookie_session}") == (
        "category=",
        Reference(Kind.SERVER, "uri_path", 1),
        "&id=",
        Reference(Kind.SERVER, "cookie_session"),
    )
    # Braces that do not open a reference are text (a CSP or JSON value keeps them).
    assert parse_template("{a}{ var_x }") == ("{a}{ var_x }",)
    assert parse_variable("http_req_User-Agent") == Reference(Kind.REQUEST_HEADER, "User-Agent")


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("var_nope", "not a server variable"),
        ("var_ciphers_supported", "not available in appgw"),
        ("http_req_Bad Header", "not a header name"),
        ("uri_path", "not a variable"),
    ],
)
def test_unknown_variables_are_refused_by_name(text: str, word: str) -> None:
    with pytest.raises(RewriteSyntaxError, match=word):
        parse_variable(text)


def test_patterns_are_re2_linear_time_and_refuse_what_backtracks() -> None:
    pattern = compile_pattern("^(a+)+$", ignore_case=False)
    assert pattern.search("a" * 100_000 + "!") is None  # instantly, whatever the length
    assert compile_pattern("ABC", ignore_case=True).search("xabc") is not None
    for backtracking in ("^(?!/admin)", r"(a)\1", "(?<=x)y"):
        with pytest.raises(RewriteSyntaxError, match="not an RE2 regular expression"):
            compile_pattern(backtracking, ignore_case=False)


def document(rules: list[dict[str, Any]], *, path_based: bool = False) -> dict[str, Any]:
    builder = (
        GatewayBuilder()
        .pool("pool", "127.0.0.1")
        .settings("settings", 8080)
        .listener("listener", 8081)
        .rewrite_set("set", rules)
    )
    if path_based:
        builder.path_map("paths", ("pool", "settings"), [("a", ["/a*"], "pool", "settings")])
        builder.rule("rule", "listener", path_map="paths")
        built = builder.build()
        built["properties"]["urlPathMaps"][0]["properties"]["defaultRewriteRuleSet"] = builder.ref(
            "rewriteRuleSets", "set"
        )
        return built
    builder.rule("rule", "listener", pool="pool", settings="settings", rewrite_set="set")
    return builder.build()


def problems(built: dict[str, Any]) -> dict[str, str]:
    found = validate_gateway(ApplicationGateway.model_validate(built), GID)
    return {d.code + " " + d.field: d.message for d in found}


def header_rule(name: str, sequence: int = 100, **action_set: Any) -> dict[str, Any]:
    return {"name": name, "ruleSequence": sequence, "actionSet": action_set}


def test_a_valid_set_passes() -> None:
    assert (
        problems(
            document(
                [
                    header_rule(
                        "hsts",
                        responseHeaderConfigurations=[
                            {"headerName": "Strict-Transport-Security", "headerValue": "max-age=1"},
                            {"headerName": "Server", "headerValue": ""},
                        ],
                    ),
                    {
                        "name": "pretty",
                        "ruleSequence": 110,
                        "conditions": [{"variable": "var_uri_path", "pattern": "^/(.+)/(.+)$"}],
                        "actionSet": {
                            "urlConfiguration": {
                                "modifiedPath": "/buy.aspx",
                                "modifiedQueryString": "c={var_uri_path_1}&p={var_uri_path_2}",
                            }
                        },
                    },
                ]
            )
        )
        == {}
    )


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        (
            header_rule(
                "c", requestHeaderConfigurations=[{"headerName": "Connection", "headerValue": "x"}]
            ),
            "ApplicationGatewayRewriteHeaderNotSupported",
        ),
        (
            header_rule(
                "h", requestHeaderConfigurations=[{"headerName": "Host", "headerValue": ""}]
            ),
            "ApplicationGatewayRewriteHeaderNotSupported",
        ),
        (
            header_rule(
                "s",
                responseHeaderConfigurations=[{"headerName": "X", "headerValue": "a\r\nB: c"}],
            ),
            "ApplicationGatewayRewriteInvalidHeaderValue",
        ),
        (
            header_rule(
                "n", requestHeaderConfigurations=[{"headerName": "X_Y", "headerValue": "1"}]
            ),
            "ApplicationGatewayRewriteInvalidHeaderName",
        ),
        (
            header_rule(
                "cap",
                responseHeaderConfigurations=[{"headerName": "X", "headerValue": "{var_host_1}"}],
            ),
            "ApplicationGatewayRewriteCaptureWithoutCondition",
        ),
        (
            header_rule(
                "resp",
                requestHeaderConfigurations=[
                    {"headerName": "X", "headerValue": "{http_resp_Server}"}
                ],
            ),
            "ApplicationGatewayRewriteResponseVariableInRequest",
        ),
        (header_rule("empty"), "ApplicationGatewayRewriteRuleActionSetEmpty"),
        (
            header_rule(
                "seq", 0, responseHeaderConfigurations=[{"headerName": "X", "headerValue": "1"}]
            ),
            "ApplicationGatewayRewriteRuleSequenceOutOfRange",
        ),
        (
            {
                "name": "pattern",
                "ruleSequence": 1,
                "conditions": [{"variable": "var_uri_path", "pattern": "(?=x)"}],
                "actionSet": {
                    "responseHeaderConfigurations": [{"headerName": "X", "headerValue": "1"}]
                },
            },
            "ApplicationGatewayRewriteInvalidPattern",
        ),
        (
            header_rule("reroute", urlConfiguration={"modifiedPath": "/x", "reroute": True}),
            "ApplicationGatewayRewriteRerouteOnBasicRule",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else value["name"],
)
def test_azures_rules_are_enforced_naming_the_field(rule: dict[str, Any], code: str) -> None:
    found = problems(document([rule]))
    assert any(key.startswith(code + " ") for key in found), found


def test_a_path_map_whose_every_rule_reroutes_unconditionally_is_a_loop() -> None:
    loop = header_rule("again", urlConfiguration={"modifiedPath": "/a", "reroute": True})
    found = problems(document([loop], path_based=True))
    assert "ApplicationGatewayRewriteRerouteLoop properties.defaultRewriteRuleSet" in found
    guarded = {**loop, "conditions": [{"variable": "var_uri_path", "pattern": "^/b"}]}
    assert problems(document([guarded], path_based=True)) == {}


def test_a_v1_gateway_has_no_rewrites() -> None:
    built = document([header_rule("x", responseHeaderConfigurations=[{"headerName": "X"}])])
    built["properties"]["sku"] = {"name": "Standard_Medium", "tier": "Standard", "capacity": 1}
    assert any(key.startswith("ApplicationGatewayRewriteRequiresV2Sku") for key in problems(built))


# --- evaluation --------------------------------------------------------------------------------


def compiled(rules: list[dict[str, Any]]) -> Any:
    return compile_rewrite_set(
        RewriteRuleSet.model_validate({"name": "set", "properties": {"rewriteRules": rules}})
    )


def facts(**changes: Any) -> RequestFacts:
    values: dict[str, Any] = {
        "method": b"GET",
        "target": b"/a/b?x=1",
        "path": b"/a/b",
        "query": b"x=1",
        "host": "www.contoso.test",
        "headers": [(b"Host", b"www.contoso.test"), (b"User-Agent", b"curl/8")],
        "client_ip": "192.0.2.1",
        "client_port": 50000,
        "server_port": 443,
        "https": True,
        "tls_version": "TLSv1.3",
        "tls_cipher": "TLS_AES_128_GCM_SHA256",
        "http_version": "1.1",
        "received_bytes": 60,
    }
    values.update(changes)
    return RequestFacts(**values)


def test_later_rules_win_and_conditions_see_the_request_as_received() -> None:
    rules = compiled(
        [
            header_rule(
                "second", 200, requestHeaderConfigurations=[{"headerName": "X", "headerValue": "2"}]
            ),
            header_rule(
                "first", 100, requestHeaderConfigurations=[{"headerName": "X", "headerValue": "1"}]
            ),
            {
                "name": "absent",
                "ruleSequence": 300,
                "conditions": [{"variable": "http_req_X", "pattern": ".*"}],
                "actionSet": {
                    "requestHeaderConfigurations": [{"headerName": "Y", "headerValue": "seen"}]
                },
            },
        ]
    )
    outcome = rewrite_request(rules, facts())
    assert not isinstance(outcome, Reject) and outcome is not None
    # Sequence order (100 then 200): the later wins; the client sent no X, so "absent" (a
    # presence test on X) did not apply although a rule set X before it.
    assert outcome.headers == {b"x": (b"X", b"2")}


def test_a_value_with_a_control_character_is_never_sent() -> None:
    rules = compiled(
        [
            header_rule(
                "copy",
                requestHeaderConfigurations=[{"headerName": "X-Copy", "headerValue": "{var_host}"}],
            )
        ]
    )
    assert rewrite_request(rules, facts(host="a\r\nInjected: 1")) == Reject(
        400, "ERRORINFO_REWRITE_INVALID_VALUE", close=False
    )
    response_rules = compiled(
        [
            header_rule(
                "copy",
                responseHeaderConfigurations=[
                    {"headerName": "X-Copy", "headerValue": "{http_resp_X-In}"}
                ],
            )
        ]
    )
    edits = rewrite_response(response_rules, facts, ResponseFacts(200, [(b"X-In", b"a\x00b")], 0))
    assert edits == {b"x-copy": (b"X-Copy", None)}  # left out, never split


def test_edits_replace_every_header_of_a_name_in_place() -> None:
    headers = [(b"Set-Cookie", b"a=1"), (b"Server", b"x"), (b"Set-Cookie", b"b=2")]
    edits = {b"set-cookie": (b"Set-Cookie", b"c=3"), b"server": (b"Server", None)}
    edits[b"x-new"] = (b"X-New", b"1")
    assert edited_headers(headers, edits) == [(b"Set-Cookie", b"c=3"), (b"X-New", b"1")]


def test_a_reroute_loop_ends_in_a_500() -> None:
    rules = compiled(
        [
            {
                "name": "loop",
                "ruleSequence": 1,
                "conditions": [{"variable": "var_uri_path", "pattern": "^/"}],
                "actionSet": {"urlConfiguration": {"modifiedPath": "/again", "reroute": True}},
            }
        ]
    )
    passes: list[bytes] = []

    def route_again(path: bytes, _query: bytes) -> tuple[Any, bool]:
        passes.append(path)
        return rules, True  # the new path rule has the same set: a loop built by the config

    assert rewrite_and_route(rules, facts(), route_again) == Reject(
        500, "ERRORINFO_REWRITE_LOOP", close=False
    )
    assert len(passes) == MAX_REWRITE_PASSES


def test_server_variables() -> None:
    rules = compiled(
        [
            header_rule(
                "vars",
                requestHeaderConfigurations=[
                    {
                        "headerName": "X-Vars",
                        "headerValue": "{var_request_scheme}|{var_ssl_enabled}|{var_server_port}|"
                        "{var_http_method}|{var_request_uri}|{var_ssl_connection_protocol}|"
                        "{var_client_certificate_verification}|{var_cookie_s}",
                    },
                    {
                        "headerName": "X-Forwarded-For",
                        "headerValue": "{var_add_x_forwarded_for_proxy}",
                    },
                ],
            )
        ]
    )
    outcome = rewrite_request(
        rules,
        facts(
            headers=[(b"Cookie", b"a=1; s=abc"), (b"X-Forwarded-For", b"203.0.113.9")],
        ),
    )
    assert not isinstance(outcome, Reject) and outcome is not None
    assert outcome.headers[b"x-vars"][1] == b"https|On|443|GET|/a/b?x=1|TLSv1.3|NONE|abc"
    assert outcome.headers[b"x-forwarded-for"][1] == b"203.0.113.9, 192.0.2.1"
