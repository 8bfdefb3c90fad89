"""WAF policies over real sockets (issue 18): ApplicationGatewayWebApplicationFirewallPolicies
through the API, linked from the gateway, a listener and a path rule. Custom rules on the client
IP, headers, URI and method run before the CRS; the most specific policy applies; a policy's
PUT re-applies the gateways that link it; a linked policy cannot be deleted. One `appgw serve`
(one worker) serves the module."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backends import free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway
from e2e.special_backends import SpecialBackend
from helpers import API_VERSION, RG, SUB, TOKEN, gateway_id, start_serve

pytestmark = pytest.mark.slow

HOST = "shop.contoso.test"
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "Accept": "*/*"}
SQLI = "?id=1%27%20OR%20%271%27%3D%271"
OWASP_32 = {"ruleSetType": "OWASP", "ruleSetVersion": "3.2"}
POLICY_TYPE = "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies"


def policy_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{POLICY_TYPE}/{name}"


def policy_url(name: str) -> str:
    return f"{policy_id(name)}?api-version={API_VERSION}"


def variable(name: str, selector: str | None = None) -> dict[str, str]:
    return {"variableName": name, **({"selector": selector} if selector else {})}


def condition(
    variables: list[dict[str, str]], operator: str, values: list[str], **extra: Any
) -> dict[str, Any]:
    return {"matchVariables": variables, "operator": operator, "matchValues": values, **extra}


def custom_rule(
    name: str, priority: int, action: str, conditions: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "priority": priority,
        "ruleType": "MatchRule",
        "action": action,
        "matchConditions": conditions,
    }


CUSTOM_RULES = [
    custom_rule(
        "AllowPartner",
        1,
        "Allow",
        [condition([variable("RequestHeaders", "X-Partner")], "Equal", ["trusted"])],
    ),
    custom_rule(
        "BlockEvilTenant",
        2,
        "Block",
        [
            condition([variable("RemoteAddr")], "IPMatch", ["127.0.0.0/8", "10.1.0.0/16"]),
            condition(
                [variable("RequestHeaders", "X-Tenant")],
                "Equal",
                ["evil"],
                transforms=["Lowercase", "Trim"],
            ),
        ],
    ),
    custom_rule(
        "BlockDeleteOrders",
        3,
        "Block",
        [
            condition([variable("RequestMethod")], "Equal", ["DELETE"]),
            condition([variable("RequestUri")], "BeginsWith", ["/orders"]),
        ],
    ),
    custom_rule(
        "LogCurl",
        4,
        "Log",
        [
            condition(
                [variable("RequestHeaders", "User-Agent")],
                "Contains",
                ["curl"],
                transforms=["Lowercase"],
            )
        ],
    ),
    custom_rule(
        "InternalFromOfficeOnly",
        5,
        "Block",
        [
            condition([variable("RemoteAddr")], "IPMatch", ["192.0.2.0/24"], negationConditon=True),
            condition([variable("RequestUri")], "Contains", ["/internal/"]),
        ],
    ),
]


def policy(mode: str = "Prevention", **extra: Any) -> dict[str, Any]:
    settings = {"state": "Enabled", "mode": mode, **extra.pop("settings", {})}
    return {
        "location": "westeurope",
        "properties": {
            "policySettings": settings,
            "managedRules": {
                "managedRuleSets": [{"ruleSetType": "OWASP", "ruleSetVersion": "3.2"}],
                **extra.pop("managed", {}),
            },
            **extra,
        },
    }


@dataclass
class Site:
    gateway: Gateway
    backend: SpecialBackend
    shop_port: int
    api_port: int
    data_dir: Path

    def put_policy(self, name: str, body: dict[str, Any]) -> httpx.Response:
        with self.gateway.api() as api:
            return api.put(policy_url(name), json=body)

    def configure(self) -> None:
        """shop: path rules /static/* (an open policy) and /admin/* (its own); api: its own."""
        builder = (
            GatewayBuilder()
            .pool("pool", "127.0.0.1")
            .settings("settings", self.backend.port)
            .listener("shop", self.shop_port, "Http")
            .listener("api", self.api_port, "Http")
            .path_map(
                "paths",
                ("pool", "settings"),
                [
                    ("static", ["/static/*"], "pool", "settings"),
                    ("admin", ["/admin/*"], "pool", "settings"),
                ],
            )
            .rule("shop-rule", "shop", path_map="paths")
            .rule("api-rule", "api", pool="pool", settings="settings")
        )
        document = builder.build()
        props = document["properties"]
        props["sku"] = {"name": "WAF_v2", "tier": "WAF_v2", "capacity": 1}
        props["firewallPolicy"] = {"id": policy_id("global")}
        props["httpListeners"][1]["properties"]["firewallPolicy"] = {"id": policy_id("api")}
        rules = props["urlPathMaps"][0]["properties"]["pathRules"]
        rules[0]["properties"]["firewallPolicy"] = {"id": policy_id("open")}
        rules[1]["properties"]["firewallPolicy"] = {"id": policy_id("admin")}
        self.gateway.apply(document)

    def firewall_lines(self, mark: str) -> list[dict[str, Any]]:
        path = self.data_dir / "firewall.log"
        if not path.exists():
            return []
        return [
            json.loads(line)["properties"] for line in path.read_text().splitlines() if mark in line
        ]

    def saw(self, mark: str) -> bool:
        return bool(self.backend.requests_for(mark))


GLOBAL = policy(
    customRules=CUSTOM_RULES,
    settings={
        "customBlockResponseStatusCode": 429,
        "customBlockResponseBody": base64.b64encode(b"blocked by policy").decode(),
    },
)
ADMIN = policy(
    customRules=[
        custom_rule(
            "AdminReadOnly",
            1,
            "Block",
            [
                condition(
                    [variable("RequestMethod")], "Equal", ["GET", "HEAD"], negationConditon=True
                )
            ],
        )
    ]
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    backend = SpecialBackend("app").start()
    data_dir = tmp_path_factory.mktemp("wafpolicy") / "data"
    server = start_serve(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}, workers=1)
    site = Site(Gateway(server, workers=1), backend, free_port(), free_port(), data_dir)
    try:
        for name, body in (
            ("global", GLOBAL),
            ("api", policy("Detection")),
            ("open", policy(settings={"state": "Disabled"})),
            ("admin", ADMIN),
        ):
            response = site.put_policy(name, body)
            assert response.status_code == 201, response.text
        site.configure()
        yield site
    finally:
        server.stop()
        backend.stop()


def mark() -> str:
    return uuid.uuid4().hex[:12]


def send(port: int, target: str, **kwargs: Any) -> httpx.Response:
    headers = {"Host": HOST, **BROWSER, **kwargs.pop("headers", {})}
    return httpx.request(
        kwargs.pop("method", "GET"),
        f"http://127.0.0.1:{port}{target}",
        headers=headers,
        timeout=10,
        **kwargs,
    )


def refused(site: Site, response: httpx.Response, m: str) -> list[dict[str, Any]]:
    """The policy's block answer, nothing forwarded; the firewall-log lines of `m`."""
    assert response.status_code == 429, response.text
    assert response.text == "blocked by policy"
    time.sleep(0.1)
    assert not site.saw(m)
    wait_until(lambda: bool(site.firewall_lines(m)), what="firewall log lines")
    return site.firewall_lines(m)


def test_custom_rules_on_ip_headers_uri_and_method(site: Site) -> None:
    m = mark()
    lines = refused(site, send(site.shop_port, f"/{m}", headers={"X-Tenant": "EVIL"}), m)
    assert [(x["ruleSetType"], x["ruleId"], x["action"]) for x in lines] == [
        ("Custom", "BlockEvilTenant", "Blocked")
    ]
    assert lines[0]["policyId"] == policy_id("global") and lines[0]["policyScope"] == "Global"
    m = mark()
    refused(site, send(site.shop_port, f"/orders/{m}", method="DELETE"), m)
    m = mark()
    assert send(site.shop_port, f"/orders/{m}").status_code == 200 and site.saw(m)
    m = mark()  # from outside 192.0.2.0/24: the negated IPMatch holds
    refused(site, send(site.shop_port, f"/internal/{m}"), m)
    # A tenant that is not evil, and Log: forwarded, the Log rule logged as Matched.
    m = mark()
    response = send(site.shop_port, f"/{m}", headers={"X-Tenant": "good", "User-Agent": "CURL/8.5"})
    assert response.status_code == 200 and site.saw(m)
    wait_until(lambda: bool(site.firewall_lines(m)), what="the Log rule's line")
    assert [(x["ruleId"], x["action"]) for x in site.firewall_lines(m)] == [("LogCurl", "Matched")]


def test_an_allow_rule_skips_the_managed_rules_and_they_block_otherwise(site: Site) -> None:
    m = mark()
    lines = refused(site, send(site.shop_port, f"/{m}{SQLI}"), m)
    assert any(x["ruleId"] == "949110" and x["action"] == "Blocked" for x in lines)
    m = mark()
    response = send(site.shop_port, f"/{m}{SQLI}", headers={"X-Partner": "trusted"})
    assert response.status_code == 200 and site.saw(m)
    wait_until(lambda: bool(site.firewall_lines(m)), what="the Allow rule's line")
    assert [(x["ruleId"], x["action"]) for x in site.firewall_lines(m)] == [
        ("AllowPartner", "Allowed")
    ]


def test_the_most_specific_policy_applies(site: Site) -> None:
    # The api listener's policy detects only: the attack is forwarded, logged for the listener.
    m = mark()
    assert send(site.api_port, f"/{m}{SQLI}").status_code == 200 and site.saw(m)
    wait_until(lambda: bool(site.firewall_lines(m)), what="firewall log lines")
    lines = site.firewall_lines(m)
    assert {x["action"] for x in lines} == {"Detected"}
    assert {(x["policyId"], x["policyScope"], x["policyScopeName"]) for x in lines} == {
        (policy_id("api"), "Listener", "api")
    }
    # ... and the gateway's custom rules do not apply there.
    m = mark()
    assert send(site.api_port, f"/{m}", headers={"X-Tenant": "evil"}).status_code == 200
    # /static/* links a Disabled policy: not inspected at all.
    m = mark()
    assert send(site.shop_port, f"/static/{m}{SQLI}").status_code == 200 and site.saw(m)
    time.sleep(0.2)
    assert site.firewall_lines(m) == []
    # /admin/* has its own policy: read-only, 403 (Azure's default status), and SQLi blocked.
    m = mark()
    response = send(site.shop_port, f"/admin/{m}", method="POST", content=b"x=1")
    assert response.status_code == 403 and not site.saw(m)
    wait_until(lambda: bool(site.firewall_lines(m)), what="firewall log lines")
    line = site.firewall_lines(m)[0]
    assert (line["ruleId"], line["policyScope"], line["policyScopeName"]) == (
        "AdminReadOnly",
        "Location",
        "admin",
    )
    m = mark()
    assert send(site.shop_port, f"/admin/{m}").status_code == 200 and site.saw(m)


def test_the_policy_lists_what_links_it(site: Site) -> None:
    with site.gateway.api() as api:
        view = api.get(policy_url("admin")).json()
        listed = api.get(
            f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{POLICY_TYPE}"
            f"?api-version={API_VERSION}"
        ).json()
    assert view["id"] == policy_id("admin") and view["type"] == POLICY_TYPE
    assert view["properties"]["pathBasedRules"] == [
        {"id": f"{gateway_id()}/urlPathMaps/paths/pathRules/admin"}
    ]
    assert view["properties"]["provisioningState"] == "Succeeded"
    assert view["properties"]["policySettings"]["maxRequestBodySizeInKb"] == 128
    assert sorted(item["name"] for item in listed["value"]) == ["admin", "api", "global", "open"]
    glob = next(item for item in listed["value"] if item["name"] == "global")
    assert glob["properties"]["applicationGateways"] == [{"id": gateway_id()}]


def test_a_policy_put_reapplies_the_gateways_that_link_it(site: Site) -> None:
    with site.gateway.api() as api:
        before = api.get(f"{gateway_id()}/revisions?api-version={API_VERSION}").json()["value"]
    override = {
        "managedRuleSets": [
            {
                "ruleSetType": "OWASP",
                "ruleSetVersion": "3.2",
                "ruleGroupOverrides": [
                    {
                        "ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI",
                        "rules": [{"ruleId": "942100", "state": "Disabled"}],
                    }
                ],
            }
        ],
        "exclusions": [
            {
                "matchVariable": "RequestArgNames",
                "selectorMatchOperator": "Equals",
                "selector": "comment",
                "exclusionManagedRuleSets": [
                    {
                        "ruleSetType": "OWASP",
                        "ruleSetVersion": "3.2",
                        "ruleGroups": [{"ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI"}],
                    }
                ],
            }
        ],
    }
    false_positive = "?comment=select%20*%20from%20users%20where%20id%3D1"
    elsewhere = false_positive.replace("comment", "note")
    m = mark()
    assert send(site.shop_port, f"/{m}{false_positive}").status_code == 429

    def put(managed: dict[str, Any]) -> None:
        body = {**GLOBAL, "properties": {**GLOBAL["properties"], "managedRules": managed}}
        response = site.put_policy("global", body)
        assert response.status_code == 200, response.text
        with site.gateway.api() as api:
            after = api.get(f"{gateway_id()}/revisions?api-version={API_VERSION}").json()["value"]
        assert after[-1]["caller"] and after[-1]["gateway"]["properties"]["firewallPolicy"]
        site.gateway.wait_version(after[-1]["version"])

    try:
        # An exclusion for the SQLi group: the argument is no longer inspected by it, ...
        put({"managedRuleSets": [OWASP_32], "exclusions": override["exclusions"]})
        with site.gateway.api() as api:
            after = api.get(f"{gateway_id()}/revisions?api-version={API_VERSION}").json()["value"]
        assert len(after) == len(before) + 1  # one new version of the linking gateway
        # The gateway's activity log says why it changed; the policy's has its own write.
        with site.gateway.api() as api:
            events = api.get(
                f"/subscriptions/{SUB}/providers/Microsoft.Insights/eventtypes/management/values"
                f"?api-version=2015-04-01&$filter=resourceGroupName eq '{RG}'"
            ).json()["value"]
        by_gateway = [e for e in events if e["resourceId"] == gateway_id()]
        # newest first, as Azure lists them
        assert by_gateway[0]["properties"]["detail"] == {"firewallPolicy": policy_id("global")}
        assert by_gateway[0]["properties"]["version"] == after[-1]["version"]
        assert any(
            e["resourceId"] == policy_id("global") and e["resourceGroupName"] == RG for e in events
        )
        m = mark()
        assert send(site.shop_port, f"/{m}{false_positive}").status_code == 200 and site.saw(m)
        # ... but only that argument: the same value under another name is still an attack.
        m = mark()
        assert send(site.shop_port, f"/{m}{elsewhere}").status_code == 429 and not site.saw(m)
        # A rule override turning off the rule that matched: passed under any name.
        put({"managedRuleSets": override["managedRuleSets"]})
        m = mark()
        assert send(site.shop_port, f"/{m}{elsewhere}").status_code == 200 and site.saw(m)
    finally:
        assert site.put_policy("global", GLOBAL).status_code == 200


def test_refusals_name_the_field(site: Site) -> None:
    bad = policy(
        customRules=[
            custom_rule(
                "Geo", 1, "Block", [condition([variable("RemoteAddr")], "GeoMatch", ["DE"])]
            ),
            custom_rule(
                "Ip", 1, "Block", [condition([variable("RemoteAddr")], "IPMatch", ["10.0.0.300"])]
            ),
        ],
        settings={"mode": "Block"},
    )
    response = site.put_policy("bad", bad)
    assert response.status_code == 400
    targets = {d["target"].split("#")[1]: d["code"] for d in response.json()["error"]["details"]}
    assert targets == {
        "properties.customRules[0].matchConditions[0].operator": "FeatureNotSupported",
        "properties.customRules[1].priority": "DuplicateCustomRulePriority",
        "properties.customRules[1].matchConditions[0].matchValues[0]": "InvalidMatchValues",
        "properties.policySettings.mode": "ApplicationGatewayFirewallModeInvalid",
    }
    with site.gateway.api() as api:
        assert api.get(policy_url("bad")).status_code == 404
        # Linked: not deleted, and still served.
        response = api.delete(policy_url("admin"))
        assert response.status_code == 400
        assert (
            response.json()["error"]["code"] == "InUseWebApplicationFirewallPolicyCannotBeDeleted"
        )
        assert "urlPathMaps/paths/pathRules/admin" in response.text
        assert api.get(policy_url("admin")).status_code == 200
        # A gateway cannot link a policy that does not exist.
        document = api.get(f"{gateway_id()}?api-version={API_VERSION}").json()
        document["properties"]["firewallPolicy"] = {"id": policy_id("missing")}
        response = api.put(f"{gateway_id()}?api-version={API_VERSION}", json=document)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "InvalidResourceReference"
        assert "properties.firewallPolicy" in response.text
        # Unlinked, a policy can go.
        assert site.put_policy("spare", policy()).status_code == 201
        assert api.delete(policy_url("spare")).status_code == 200
        assert api.delete(policy_url("spare")).status_code == 204
