"""Rewrite rule sets over real sockets: response headers added, removed and rewritten with
captures, request headers from conditions and server variables, URL rewrites with captures
and reroute, and a pattern that would stall a backtracking engine."""

from __future__ import annotations

import concurrent.futures
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway, get
from helpers import SUB, TOKEN, gateway_url, run_cli

pytestmark = pytest.mark.slow

HSTS = "max-age=31536000; includeSubDomains"


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    server = Backend(
        "app",
        response_headers=[
            ("Server", "Kestrel"),
            ("X-Powered-By", "ASP.NET"),
            ("Location", "https://contoso.azurewebsites.net/account/login?next=%2F"),
        ],
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def other() -> Iterator[Backend]:
    server = Backend("shoes").start()
    yield server
    server.stop()


def rule(
    name: str,
    sequence: int,
    *,
    conditions: list[dict[str, Any]] | None = None,
    request: dict[str, str] | None = None,
    response: dict[str, str] | None = None,
    url: dict[str, Any] | None = None,
) -> dict[str, Any]:
    action_set: dict[str, Any] = {}
    if request is not None:
        action_set["requestHeaderConfigurations"] = [
            {"headerName": k, "headerValue": v} for k, v in request.items()
        ]
    if response is not None:
        action_set["responseHeaderConfigurations"] = [
            {"headerName": k, "headerValue": v} for k, v in response.items()
        ]
    if url is not None:
        action_set["urlConfiguration"] = url
    return {
        "name": name,
        "ruleSequence": sequence,
        "conditions": conditions or [],
        "actionSet": action_set,
    }


def basic_site(backend: Backend, port: int, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return (
        GatewayBuilder()
        .pool("pool", "127.0.0.1")
        .settings("settings", backend.port)
        .listener("listener", port)
        .rewrite_set("rewrites", rules)
        .rule("rule", "listener", pool="pool", settings="settings", rewrite_set="rewrites")
        .build()
    )


def test_security_headers_added_banner_headers_removed_and_location_rewritten(
    gateway: Gateway, backend: Backend
) -> None:
    port = free_port()
    gateway.apply(
        basic_site(
            backend,
            port,
            [
                rule("security", 100, response={"Strict-Transport-Security": HSTS}),
                rule("banners", 110, response={"Server": "", "X-Powered-By": ""}),
                # Azure's own example: send the client back through the gateway, not to the
                # App Service host name the backend put in Location.
                rule(
                    "location",
                    120,
                    conditions=[
                        {
                            "variable": "http_resp_Location",
                            "pattern": r"(https?):\/\/.*azurewebsites\.net(.*)$",
                            "ignoreCase": True,
                        }
                    ],
                    response={
                        "Location": "{http_resp_Location_1}://{var_host}{http_resp_Location_2}"
                    },
                ),
            ],
        )
    )
    response = get(port, "www.contoso.test", path="/account")
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == HSTS
    assert "server" not in response.headers and "x-powered-by" not in response.headers
    assert response.headers["location"] == "https://www.contoso.test/account/login?next=%2F"
    assert response.json()["target"] == "/account"  # the request itself is untouched


def test_request_headers_from_conditions_and_server_variables(
    gateway: Gateway, backend: Backend
) -> None:
    port = free_port()
    gateway.apply(
        basic_site(
            backend,
            port,
            [
                # Azure's example: X-Forwarded-For without the port.
                rule("xff", 100, request={"X-Forwarded-For": "{var_add_x_forwarded_for_proxy}"}),
                rule(
                    "mobile",
                    110,
                    conditions=[
                        {"variable": "http_req_User-Agent", "pattern": r"(iPhone|Android)"}
                    ],
                    request={"X-Device": "mobile-{http_req_User-Agent_1}"},
                ),
                rule(
                    "no-debug",
                    120,
                    conditions=[{"variable": "http_req_X-Debug", "pattern": ".*", "negate": False}],
                    request={"X-Debug": "", "X-Had-Debug": "yes"},
                ),
                rule(
                    "scheme",
                    130,
                    request={"X-Client": "{var_request_scheme}:{var_client_ip}:{var_server_port}"},
                ),
            ],
        )
    )
    seen = get(
        port,
        "www.contoso.test",
        path="/p?q=1",
        headers={
            "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)",
            "X-Forwarded-For": "203.0.113.7",
            "X-Debug": "1",
        },
    ).json()["headers"]
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"  # no ports: the rewrite won
    assert seen["x-device"] == "mobile-iPhone"
    assert "x-debug" not in seen and seen["x-had-debug"] == "yes"
    assert seen["x-client"] == f"http:127.0.0.1:{port}"
    assert seen["x-original-url"] == "/p?q=1"  # the gateway's other headers stay

    # Without the matching headers the conditional rules do not apply.
    plain = get(port, "www.contoso.test", headers={"User-Agent": "curl/8"}).json()["headers"]
    assert "x-device" not in plain and "x-had-debug" not in plain
    assert plain["x-forwarded-for"] == "127.0.0.1"


def path_routing(backend: Backend, other: Backend, port: int) -> dict[str, Any]:
    """A path map: /listing1* to `other` (the shoes backend), everything else to `backend`;
    a rewrite set on the default path turns ?category=shoes into /listing1 and reroutes, and
    turns /<category>/<product> into /buy.aspx?category=..&product=.. (no reroute)."""
    builder = (
        GatewayBuilder()
        .pool("pool", "127.0.0.1")
        .settings("main", backend.port)
        .settings("shoes", other.port)
        .listener("listener", port)
        .path_map("paths", ("pool", "main"), [("listing1", ["/listing1*"], "pool", "shoes")])
        .rewrite_set(
            "catalog",
            [
                rule(
                    "shoes",
                    100,
                    conditions=[{"variable": "var_query_string", "pattern": "category=shoes"}],
                    url={"modifiedPath": "/listing1", "modifiedQueryString": "", "reroute": True},
                ),
                rule(
                    "pretty",
                    110,
                    conditions=[{"variable": "var_uri_path", "pattern": "^/([a-z]+)/([a-z]+)$"}],
                    url={
                        "modifiedPath": "buy.aspx",
                        "modifiedQueryString": "category={var_uri_path_1}&product={var_uri_path_2}",
                        "reroute": False,
                    },
                ),
            ],
        )
        .rule("rule", "listener", path_map="paths")
    )
    document = builder.build()
    path_map = document["properties"]["urlPathMaps"][0]["properties"]
    path_map["defaultRewriteRuleSet"] = builder.ref("rewriteRuleSets", "catalog")
    return document


def test_url_rewrite_with_captures_and_reroute(
    gateway: Gateway, backend: Backend, other: Backend
) -> None:
    port = free_port()
    gateway.apply(path_routing(backend, other, port))

    pretty = get(port, "www.contoso.test", path="/fashion/shirts").json()
    assert pretty["backend"] == "app"
    assert pretty["target"] == "/buy.aspx?category=fashion&product=shirts"
    assert pretty["headers"]["x-original-url"] == "/fashion/shirts"

    rerouted = get(port, "www.contoso.test", path="/listing?category=shoes").json()
    assert rerouted["backend"] == "shoes"  # the path map saw the rewritten path
    assert rerouted["target"] == "/listing1"  # and the query was removed

    unchanged = get(port, "www.contoso.test", path="/listing?category=bags").json()
    assert unchanged["backend"] == "app" and unchanged["target"] == "/listing?category=bags"


def test_a_catastrophic_backtracking_pattern_does_not_stall_the_worker(
    gateway: Gateway, backend: Backend
) -> None:
    """(a+)+$ against 'aaa…a!' takes a backtracking engine 2^n steps; RE2 matches in linear
    time, so the hostile request is answered and the worker keeps serving others."""
    port = free_port()
    gateway.apply(
        basic_site(
            backend,
            port,
            [
                rule(
                    "evil",
                    100,
                    conditions=[{"variable": "http_req_X-Input", "pattern": "^(a+)+$"}],
                    request={"X-Matched": "yes"},
                )
            ],
        )
    )
    backend.seen.clear()
    hostile = "a" * 30_000 + "!"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        attacks = [
            pool.submit(get, port, "www.contoso.test", headers={"X-Input": hostile})
            for _ in range(3)
        ]
        innocent = pool.submit(get, port, "www.contoso.test", path="/innocent")
        assert innocent.result(timeout=10).status_code == 200
        for attack in attacks:
            answered = attack.result(timeout=10)
            assert answered.status_code == 200
            assert "x-matched" not in answered.json()["headers"]  # '!' does not match
    matched = get(port, "www.contoso.test", headers={"X-Input": "a" * 30_000}).json()
    assert matched["headers"]["x-matched"] == "yes"


def test_gateway_answers_and_redirects_are_not_rewritten(
    gateway: Gateway, backend: Backend
) -> None:
    """Azure: rewrites do not apply to redirects nor to the gateway's own 4xx/5xx."""
    port = free_port()
    document = basic_site(
        backend, port, [rule("security", 100, response={"Strict-Transport-Security": HSTS})]
    )
    gateway.apply(document)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no Host: the gateway's own 400
        answer = raw.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"strict-transport-security" not in answer.lower()
    assert get(port, "www.contoso.test").headers["strict-transport-security"] == HSTS


def test_an_invalid_rewrite_is_refused_and_the_served_gateway_stays(
    gateway: Gateway, backend: Backend
) -> None:
    port = free_port()
    gateway.apply(
        basic_site(backend, port, [rule("ok", 100, response={"X-Frame-Options": "DENY"})])
    )
    bad = basic_site(
        backend,
        port,
        [
            rule(
                "lookahead",
                100,
                conditions=[{"variable": "var_uri_path", "pattern": "^(?!/admin)"}],
                response={"X-A": "1"},
            ),
            rule("split", 110, request={"X-B": "a\r\nInjected: 1"}),
        ],
    )
    with gateway.api() as api:
        refused = api.put(gateway_url(), json=bad)
    assert refused.status_code == 400
    codes = {d["code"] for d in refused.json()["error"]["details"]}
    assert {
        "ApplicationGatewayRewriteInvalidPattern",
        "ApplicationGatewayRewriteInvalidHeaderValue",
    } <= codes, json.dumps(refused.json(), indent=1)
    assert get(port, "www.contoso.test").headers["x-frame-options"] == "DENY"


AZ_SHOW = Path(__file__).parents[1] / "data" / "azure" / "az-show-v2-rewrites.json"


def test_an_azure_gateway_with_rewrite_sets_is_imported_and_served(
    gateway: Gateway, backend: Backend, tmp_path: Path
) -> None:
    """`az network application-gateway show` output of a gateway with a rewrite set (security
    headers, X-Forwarded-For without ports, pretty URLs), imported with `appgw import`."""
    document = json.loads(AZ_SHOW.read_text())
    port = free_port()
    document["frontendPorts"][0]["port"] = port
    document["backendAddressPools"][0]["backendAddresses"] = [{"ipAddress": "127.0.0.1"}]
    document["backendHttpSettingsCollection"][0]["port"] = backend.port
    exported = tmp_path / "contoso-rewrites.json"
    exported.write_text(json.dumps(document))
    done = run_cli(
        "import",
        str(exported),
        "-g",
        "contoso-web-rg",
        config=tmp_path / "config.json",
        env={
            "APPGW_SERVER": gateway.server.base_url,
            "APPGW_TOKEN": TOKEN,
            "APPGW_SUBSCRIPTION": SUB,
        },
    )
    assert done.returncode == 0, done.stderr
    wait_until(
        lambda: "contoso-rewrites version 1" in gateway.log(),
        what="the imported gateway to be served",
    )
    response = get(port, "www.contoso.test", path="/fashion/shirts")
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "server" not in response.headers
    seen = response.json()
    assert seen["target"] == "/buy.aspx?category=fashion&product=shirts"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
