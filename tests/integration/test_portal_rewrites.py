"""Portal blade Rewrites (rewrite rule sets), driven over HTTP the way a browser without
JavaScript posts it: the page's own form (CSRF token and all) with the operator's changes, the
row buttons ("+ Add condition", "Remove" ...) as submit buttons; every outcome checked through
the REST API."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import GatewayBuilder
from helpers import RG, SUB, TOKEN, Api, gateway_id, gateway_url, running_api
from portal_forms import (
    Browser,
    field_error,
    general_error,
    is_checked,
    selected,
    signed_in_portal,
    stored,
    value_of,
)

PORTAL = f"/portal/gateways/{SUB}/{RG}/appgw"
G = gateway_id()
REWRITES = f"{PORTAL}/rewrites"


# --- a browser without JavaScript ----------------------------------------------------------------


# --- fixtures ------------------------------------------------------------------------------------


def gateway() -> dict[str, Any]:
    """A v2 gateway with a basic rule and a path-based rule (a default and one path)."""
    builder = GatewayBuilder()
    builder.pool("webPool", "127.0.0.1").settings("webSettings", 8080)
    builder.listener("web", 8081).rule("rule1", "web", pool="webPool", settings="webSettings")
    builder.listener("site", 8082)
    builder.path_map(
        "pathRule",
        ("webPool", "webSettings"),
        [("images", ["/images/*"], "webPool", "webSettings")],
    )
    builder.rule("pathRule", "site", path_map="pathRule")
    return builder.build()


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[tuple[Api, Browser]]:
    with signed_in_portal(tmp_path / "data", gateway()) as signed_in:
        yield signed_in


def named(children: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [c for c in children if c["name"] == name]
    assert found, f"no '{name}' among {[c['name'] for c in children]}"
    return found[0]


def set_ref(name: str) -> dict[str, str]:
    return {"id": f"{G}/rewriteRuleSets/{name}"}


def press(browser: Browser, action: str, page: str, op: str, **changes: str | list[str]) -> str:
    """A row button: the form comes back as typed, with the row added or removed."""
    answer = browser.submit(page, action, op=op, **changes)
    assert answer.status_code == 200, answer.text
    return answer.text


# --- tests ---------------------------------------------------------------------------------------


def test_create_list_edit_and_delete_a_rewrite_set(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    listing = browser.get(REWRITES)
    # In the menu after Rules, before Health probes (as Azure's Settings list has it).
    menu = re.findall(r'<li><a href="[^"]+/(\w+)"', listing)
    assert menu.index("rewrites") == menu.index("rules") + 1
    assert menu.index("probes") == menu.index("rewrites") + 1
    assert 'href="' + REWRITES + '/add">+ Rewrite set</a>' in listing
    assert "No rewrite sets yet" in listing

    add = f"{REWRITES}/add"
    page = browser.get(add)
    for label in (
        "Name and Association",
        "Associated routing rules",
        "Rewrite rule configuration",
        "Rule sequence",
        "+ Add condition",
        "+ Add header action",
        "URL rewrite: components",
        "Re-evaluate path map",
        "+ Add rewrite rule",
    ):
        assert label in page, label
    # Step 1's association list: the basic rule, and the path-based rule's default and path.
    for value in ("rule:rule1", "default:pathRule", "path:pathRule:images"):
        assert f'name="assoc" value="{value}"' in page, value
    assert "pathRule: images (/images/*)" in page

    # Step 2, without JavaScript: rows come and go by submit buttons; what was typed stays.
    page = press(browser, add, page, "add_header:0", set_name="securityHeaders", r0_name="hsts")
    assert value_of(page, "set_name") == "securityHeaders"
    assert value_of(page, "r0_name") == "hsts"
    assert value_of(page, "r0_h1_header") == ""
    page = press(browser, add, page, "add_rule")
    assert value_of(page, "r1_name") == "" and value_of(page, "r1_sequence") == "101"
    page = press(browser, add, page, "add_condition:1")
    page = press(browser, add, page, "add_header:1", r1_c0_name="scratch")
    page = press(browser, add, page, "add_condition:1")
    assert value_of(page, "r1_c0_name") == "scratch" and value_of(page, "r1_c1_name") == ""
    page = press(browser, add, page, "remove_condition:1:0")
    assert value_of(page, "r1_c0_name") == "" and value_of(page, "r1_c1_name") is None
    assert api.client.get(gateway_url()).json()["properties"].get("rewriteRuleSets", []) == []

    created = browser.submit(
        page,
        add,
        op="save",
        assoc=["rule:rule1", "path:pathRule:images"],
        r0_sequence="100",
        r0_h0_side="response",
        r0_h0_header="Strict-Transport-Security",
        r0_h0_value="max-age=31536000",
        r0_h1_side="response",
        r0_h1_action="delete",
        r0_h1_header="Server",
        r1_name="articles",
        r1_sequence="200",
        r1_c0_kind="server",
        r1_c0_name="uri_path",
        r1_c0_pattern="^/article/([0-9]+)/(.*)$",
        r1_h0_side="request",
        r1_h0_header="X-Article-Id",
        r1_h0_value="{var_uri_path_1}",
        r1_url="both",
        r1_url_path="/article.aspx",
        r1_url_query="id={var_uri_path_1}&title={var_uri_path_2}",
    )
    assert created.status_code == 303, general_error(created.text) or created.text
    document = stored(api)
    rule_set = named(document["properties"]["rewriteRuleSets"], "securityHeaders")
    assert rule_set["properties"]["rewriteRules"] == [
        {
            "name": "hsts",
            "ruleSequence": 100,
            "actionSet": {
                "responseHeaderConfigurations": [
                    {"headerName": "Strict-Transport-Security", "headerValue": "max-age=31536000"},
                    {"headerName": "Server"},
                ]
            },
        },
        {
            "name": "articles",
            "ruleSequence": 200,
            "conditions": [
                {
                    "variable": "var_uri_path",
                    "pattern": "^/article/([0-9]+)/(.*)$",
                    "ignoreCase": True,
                    "negate": False,
                }
            ],
            "actionSet": {
                "requestHeaderConfigurations": [
                    {"headerName": "X-Article-Id", "headerValue": "{var_uri_path_1}"}
                ],
                "urlConfiguration": {
                    "modifiedPath": "/article.aspx",
                    "modifiedQueryString": "id={var_uri_path_1}&title={var_uri_path_2}",
                    "reroute": False,
                },
            },
        },
    ]
    props = document["properties"]
    assert named(props["requestRoutingRules"], "rule1")["properties"]["rewriteRuleSet"] == set_ref(
        "securityHeaders"
    )
    path_map = named(props["urlPathMaps"], "pathRule")["properties"]
    assert path_map["pathRules"][0]["properties"]["rewriteRuleSet"] == set_ref("securityHeaders")
    assert "defaultRewriteRuleSet" not in path_map

    # Listed: the associations and the number of rules.
    listing = browser.get(REWRITES)
    assert "Rewrite set &#39;securityHeaders&#39; added." in listing
    row = re.search(r"<tr>\s*<td data-label=\"Name\">.*?</tr>", listing, re.S)
    assert row is not None
    assert "securityHeaders" in row[0]
    assert "rule1; pathRule: images (/images/*)" in row[0]
    assert '<td data-label="Rewrite rules">2</td>' in row[0]

    # The edit form shows it back as stored.
    edit = f"{REWRITES}/securityHeaders/edit"
    page = browser.get(edit)
    assert is_checked(page, "assoc", "rule:rule1")
    assert is_checked(page, "assoc", "path:pathRule:images")
    assert not is_checked(page, "assoc", "default:pathRule")
    assert selected(page, "r0_h1_action") == "delete"
    assert selected(page, "r0_h0_side") == "response"
    assert value_of(page, "r1_c0_pattern") == "^/article/([0-9]+)/(.*)$"
    assert is_checked(page, "r1_c0_ignore_case") and not is_checked(page, "r1_c0_negate")
    assert selected(page, "r1_url") == "both"

    # An RE2-refused pattern: the server's words under the pattern, as typed, nothing saved.
    before = stored(api)["etag"]
    refused = browser.submit(page, edit, op="save", r1_c0_pattern="(?=x)")
    assert refused.status_code == 400
    assert "is not an RE2 regular expression" in field_error(refused.text, "r1_c0_pattern")
    assert "no look-ahead" in field_error(refused.text, "r1_c0_pattern")
    assert general_error(refused.text) == ""
    assert value_of(refused.text, "r1_c0_pattern") == "(?=x)"
    assert value_of(refused.text, "r0_h0_value") == "max-age=31536000"
    assert stored(api)["etag"] == before

    # Fixed and moved: off rule1, onto the path-based rule's default.
    saved = browser.submit(
        refused.text,
        edit,
        op="save",
        r1_c0_pattern="^/article/([0-9]+)/(.*)$",
        assoc=["path:pathRule:images", "default:pathRule"],
    )
    assert saved.status_code == 303, general_error(saved.text) or saved.text
    props = stored(api)["properties"]
    assert "rewriteRuleSet" not in named(props["requestRoutingRules"], "rule1")["properties"]
    path_map = named(props["urlPathMaps"], "pathRule")["properties"]
    assert path_map["defaultRewriteRuleSet"] == set_ref("securityHeaders")

    # Deleted from the list (the page that asks first says what goes): its associations go too.
    asked = browser.get(f"{REWRITES}/securityHeaders/delete")
    assert "Delete rewrite set securityHeaders?" in asked
    assert (
        "It is taken off the routing rules it is associated with: pathRule: default (paths not "
        "listed); pathRule: images (/images/*)." in html.unescape(asked)
    )
    listing = browser.get(REWRITES)
    deleted = browser.submit(listing, f"{REWRITES}/securityHeaders/delete")
    assert deleted.status_code == 303, deleted.text
    props = stored(api)["properties"]
    assert props.get("rewriteRuleSets", []) == []
    path_map = named(props["urlPathMaps"], "pathRule")["properties"]
    assert "defaultRewriteRuleSet" not in path_map
    assert "rewriteRuleSet" not in path_map["pathRules"][0]["properties"]
    assert "Rewrite set &#39;securityHeaders&#39; deleted." in browser.get(REWRITES)


def test_problems_are_shown_next_to_their_fields(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    add = f"{REWRITES}/add"
    page = browser.get(add)

    # What the form itself can tell, before anything is sent.
    missing = browser.submit(page, add, op="save", r0_name="", r0_h0_header="X-Test")
    assert missing.status_code == 400
    assert "Enter a name for the rewrite set." in field_error(missing.text, "set_name")
    assert "Enter a name for this rewrite rule." in field_error(missing.text, "r0_name")
    assert "Enter the header value, or choose Delete" in field_error(missing.text, "r0_h0_value")

    # What the service refuses, each next to its field: a capture the condition does not have,
    # a header Azure never rewrites, a rule sequence out of range, and 'reroute' on a basic rule.
    page = press(browser, add, page, "add_condition:0")
    page = press(browser, add, page, "add_rule")
    page = press(browser, add, page, "add_condition:1")
    page = press(browser, add, page, "add_rule")
    refused = browser.submit(
        page,
        add,
        op="save",
        set_name="broken",
        assoc=["rule:rule1"],
        r0_name="capture",
        r0_sequence="5000",
        r0_c0_kind="request",
        r0_c0_name="User-Agent",
        r0_c0_pattern="(Mobile)",
        r0_h0_header="X-Device",
        r0_h0_value="{http_req_User-Agent_2}",
        r0_h1_side="response",
        r0_h1_header="Connection",
        r0_h1_value="close",
        r0_url="path",
        r0_url_path="/mobile",
        r0_reroute="on",
        # A response header cannot decide a request header's rewrite (it comes later).
        r1_name="late",
        r1_c0_kind="response",
        r1_c0_name="Location",
        r1_c0_pattern=".*",
        r1_h0_header="X-Late",
        r1_h0_value="yes",
        # A rule that does nothing.
        r2_name="idle",
    )
    assert refused.status_code == 400, refused.text
    text = refused.text
    assert "its condition's pattern has 1 group(s)" in field_error(text, "r0_h0_value")
    assert "Connection header cannot be rewritten" in field_error(text, "r0_h1_header")
    assert "'ruleSequence' must be 1-1000" in field_error(text, "r0_sequence")
    assert "re-evaluates the path map" in field_error(text, "assoc_rule:rule1")
    assert "cannot decide a request header or URL rewrite" in field_error(text, "r1_conditions")
    assert "needs at least one request header" in field_error(text, "r2_actions")
    assert general_error(text) == ""
    assert is_checked(text, "r0_reroute") and is_checked(text, "assoc", "rule:rule1")
    assert stored(api)["properties"].get("rewriteRuleSets", []) == []


def test_a_v1_gateway_has_no_rewrites(tmp_path: Path) -> None:
    builder = GatewayBuilder(v1=True)
    builder.pool("webPool", "127.0.0.1").settings("webSettings", 8080)
    builder.listener("web", 8081).rule("rule1", "web", pool="webPool", settings="webSettings")
    with running_api(tmp_path / "data") as api:
        assert api.client.put(gateway_url(), json=builder.build()).status_code in (200, 201)
        with httpx.Client(base_url=api.base_url, timeout=30) as client:
            client.post("/portal/signin", data={"token": TOKEN})
            listing = client.get(REWRITES).text
            assert "Rewrites need a v2 SKU" in listing
            assert "+ Rewrite set" not in listing


def test_the_rule_screen_chooses_a_rewrite_set(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    document = stored(api)
    document["properties"]["rewriteRuleSets"] = [
        {
            "name": "headers",
            "properties": {
                "rewriteRules": [
                    {
                        "name": "noServer",
                        "ruleSequence": 100,
                        "actionSet": {"responseHeaderConfigurations": [{"headerName": "Server"}]},
                    }
                ]
            },
        }
    ]
    assert api.client.put(gateway_url(), json=document).status_code == 200

    # A basic rule holds the set itself.
    edit = f"{PORTAL}/rules/rule1/edit"
    page = browser.get(edit)
    assert selected(page, "rewrite_set") == ""
    saved = browser.submit(page, edit, rewrite_set="headers")
    assert saved.status_code == 303, general_error(saved.text) or saved.text
    props = stored(api)["properties"]
    assert named(props["requestRoutingRules"], "rule1")["properties"]["rewriteRuleSet"] == set_ref(
        "headers"
    )
    assert selected(browser.get(edit), "rewrite_set") == "headers"
    assert "rule1" in browser.get(REWRITES).split("headers", 1)[1]

    # A path-based rule: its default target's (the path map's) and each path's.
    edit = f"{PORTAL}/rules/pathRule/edit"
    page = browser.get(edit)
    saved = browser.submit(page, edit, rewrite_set="headers", path_rewrite_set_0="headers")
    assert saved.status_code == 303, general_error(saved.text) or saved.text
    path_map = named(stored(api)["properties"]["urlPathMaps"], "pathRule")["properties"]
    assert path_map["defaultRewriteRuleSet"] == set_ref("headers")
    assert path_map["pathRules"][0]["properties"]["rewriteRuleSet"] == set_ref("headers")
    page = browser.get(edit)
    assert selected(page, "rewrite_set") == "headers"
    assert selected(page, "path_rewrite_set_0") == "headers"

    # (none) takes it off again.
    saved = browser.submit(page, edit, rewrite_set="", path_rewrite_set_0="")
    assert saved.status_code == 303, general_error(saved.text) or saved.text
    path_map = named(stored(api)["properties"]["urlPathMaps"], "pathRule")["properties"]
    assert "defaultRewriteRuleSet" not in path_map
    assert "rewriteRuleSet" not in path_map["pathRules"][0]["properties"]
