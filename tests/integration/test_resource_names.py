"""ARM's naming rules for the names in a path (subscription, resource group, gateway) and in a
body (child resources), and ARM's case-insensitive path segments, on a real `appgw serve`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from backends import free_port
from builders import GatewayBuilder
from helpers import API_VERSION, TOKEN, ServeProcess, serving

pytestmark = pytest.mark.slow

GUID = "8f3c2d1e-5b7a-4c9e-a1d2-3e4f5a6b7c8d"
BIDI = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: shows 'gw' + reversed text
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data_dir = tmp_path_factory.mktemp("names") / "data"
    with serving(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}, wait_ready=False) as running:
        yield running


@pytest.fixture
def api(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as client:
        yield client


def segment(text: str) -> str:
    """`text` as one path segment, even '..' (which a client would otherwise resolve)."""
    return quote(text, safe="").replace(".", "%2E")


def path(sub: str, rg: str, name: str) -> str:
    return (
        f"/subscriptions/{segment(sub)}/resourceGroups/{segment(rg)}/providers/"
        f"Microsoft.Network/applicationGateways/{segment(name)}"
    )


def document(sub: str, rg: str, name: str, **child_names: str) -> dict[str, Any]:
    """A small valid gateway with its ids under (sub, rg, name), on a free port."""
    builder = (
        GatewayBuilder("placeholder")
        .pool("pool", "10.0.0.4")
        .settings("settings", 80)
        .listener("listener", free_port())
        .rule("rule", "listener", pool="pool", settings="settings")
    )
    text = json.dumps(builder.build())
    for old, new in child_names.items():
        text = text.replace(f'"{old}"', json.dumps(new))
        text = text.replace(f"/{old}", f"/{json.dumps(new)[1:-1]}")
    gid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/"
    text = text.replace(builder.gid, json.dumps(f"{gid}applicationGateways/{name}")[1:-1])
    result: dict[str, Any] = json.loads(text)
    return result


def put(api: httpx.Client, sub: str, rg: str, name: str, **children: str) -> httpx.Response:
    return api.put(
        path(sub, rg, name),
        params={"api-version": API_VERSION},
        json=document(sub, rg, name, **children),
    )


BAD_GATEWAY_NAMES = {
    "dot-dot": "..",
    "markup": XSS,
    "5000-chars": "a" * 5000,
    "81-chars": "a" * 81,
    "control": "gw\x01x",
    "newline": "gw\n",
    "bidi": f"gw{BIDI}txt.exe",
    "starts-with-hyphen": "-gw",
    "ends-with-period": "gw.",
    "ends-with-hyphen": "gw-",
    "space": "my gw",
    "unicode-letter": "gwé",  # Azure: ASCII only for application gateways
}
BAD_GROUPS = {
    "dot-dot": "..",
    "markup": XSS,
    "5000-chars": "r" * 5000,
    "91-chars": "r" * 91,
    "control": "rg\x7f",
    "bidi": f"rg{BIDI}",
    "ends-with-period": "rg.",
    "slash-like": "rg\u2215x",  # DIVISION SLASH
}
BAD_SUBSCRIPTIONS = {
    "dot-dot": "..",
    "markup": XSS,
    "65-chars": "s" * 65,
    "bidi": f"s{BIDI}",
    "space": "sub 1",
}


@pytest.mark.parametrize("name", BAD_GATEWAY_NAMES.values(), ids=BAD_GATEWAY_NAMES.keys())
def test_a_gateway_name_azure_refuses_is_refused(api: httpx.Client, name: str) -> None:
    answer = put(api, "sub1", "rg1", name)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "InvalidResourceName"
    assert "application gateway name" in answer.json()["error"]["message"]
    query = {"api-version": API_VERSION}
    for action in ("start", "stop"):
        acted = api.post(path("sub1", "rg1", name) + f"/{action}", params=query)
        assert acted.status_code == 400, (action, acted.text)
    patched = api.patch(path("sub1", "rg1", name), params=query, json={"tags": {}})
    assert patched.json()["error"]["code"] == "InvalidResourceName"
    # Reads and deletes find nothing by such a name (a gateway stored under one before names
    # were checked could still be removed).
    assert api.get(path("sub1", "rg1", name), params=query).status_code == 404
    assert api.delete(path("sub1", "rg1", name), params=query).status_code == 204


@pytest.mark.parametrize("group", BAD_GROUPS.values(), ids=BAD_GROUPS.keys())
def test_a_resource_group_name_azure_refuses_is_refused(api: httpx.Client, group: str) -> None:
    answer = put(api, "sub1", group, "gw")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "InvalidResourceName"
    assert "resource group name" in answer.json()["error"]["message"]
    listed = api.get(
        f"/subscriptions/sub1/resourceGroups/{segment(group)}/providers/"
        "Microsoft.Network/applicationGateways",
        params={"api-version": API_VERSION},
    )
    assert listed.status_code == 400, listed.text
    assert listed.json()["error"]["code"] == "InvalidResourceName"


@pytest.mark.parametrize("sub", BAD_SUBSCRIPTIONS.values(), ids=BAD_SUBSCRIPTIONS.keys())
def test_a_subscription_id_that_is_no_token_is_refused(api: httpx.Client, sub: str) -> None:
    answer = put(api, sub, "rg1", "gw")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "InvalidResourceName"
    listed = api.get(
        f"/subscriptions/{segment(sub)}/providers/Microsoft.Network/applicationGateways",
        params={"api-version": API_VERSION},
    )
    assert listed.status_code == 400, listed.text


@pytest.mark.parametrize(
    ("sub", "rg", "name"),
    [
        ("sub1", "rg1", "a"),
        ("sub1", "rg1", "g" * 80),
        ("sub1", "rg1", "gw_"),
        ("sub1", "rg1", "my.gw-1_x"),
        (GUID, "rg1", "gw"),
        ("sub_1", "MyGroup(1).prod-x", "gw"),
        ("sub1", "r" * 90, "gw"),
        ("sub1", "grüppe-ß", "gw"),  # unicode letters are allowed in resource groups
        ("sub1", "_", "gw"),
    ],
)
def test_names_azure_accepts_are_accepted(api: httpx.Client, sub: str, rg: str, name: str) -> None:
    answer = put(api, sub, rg, name)
    assert answer.status_code == 201, answer.text
    shown = api.get(path(sub, rg, name), params={"api-version": API_VERSION}).json()
    assert shown["name"] == name
    assert api.delete(path(sub, rg, name), params={"api-version": API_VERSION}).status_code == 202


@pytest.mark.parametrize(
    "child", ["a" * 5000, XSS, f"pool{BIDI}", "pool\x00", "..", "pool."], ids=repr
)
def test_a_child_name_azure_refuses_is_refused(api: httpx.Client, child: str) -> None:
    answer = put(api, "sub1", "rg1", "gw", pool=child)
    assert answer.status_code == 400, answer.text
    codes = {answer.json()["error"]["code"]} | {
        d["code"] for d in answer.json()["error"]["details"]
    }
    assert "InvalidResourceName" in codes, answer.text


UPPER = "/SUBSCRIPTIONS/sub1/RESOURCEGROUPS/rg1/PROVIDERS/MICROSOFT.NETWORK/APPLICATIONGATEWAYS"


def test_path_segments_match_without_regard_to_case(api: httpx.Client) -> None:
    created = put(api, "sub1", "rg1", "casegw")
    assert created.status_code == 201, created.text
    etag = created.json()["etag"]
    query = {"api-version": API_VERSION}
    shown = api.get(f"{UPPER}/casegw", params=query)
    assert shown.status_code == 200, shown.text
    assert shown.json()["etag"] == etag
    mixed = "/Subscriptions/sub1/ResourceGroups/rg1/Providers/microsoft.network/applicationgateways"
    assert api.get(f"{mixed}/casegw", params=query).json()["etag"] == etag
    # The same gateway, not a second one: a PUT through the other casing updates it.
    again = api.put(f"{UPPER}/casegw", params=query, json=shown.json())
    assert again.status_code == 200, again.text
    listed = api.get(UPPER, params=query)
    assert [g["name"] for g in listed.json()["value"]] == ["casegw"]
    listed = api.get(
        "/SUBSCRIPTIONS/sub1/PROVIDERS/Microsoft.Network/ApplicationGateways", params=query
    )
    assert [g["name"] for g in listed.json()["value"]] == ["casegw"]
    assert api.get(f"{UPPER}/casegw/REVISIONS", params=query).status_code == 200
    stopped = api.post(f"{UPPER}/casegw/STOP", params=query)
    assert stopped.status_code == 202, stopped.text
    operation = httpx.URL(stopped.headers["Azure-AsyncOperation"]).path
    operation = operation.replace(
        "/providers/Microsoft.Network/locations/", "/PROVIDERS/MICROSOFT.NETWORK/LOCATIONS/"
    )
    status = api.get(operation.replace("/operations/", "/OPERATIONS/"), params=query)
    assert status.status_code == 200, status.text
    activity = api.get(
        "/SUBSCRIPTIONS/sub1/PROVIDERS/MICROSOFT.INSIGHTS/EVENTTYPES/MANAGEMENT/VALUES",
        params=query,
    )
    assert activity.status_code == 200, activity.text
    assert api.delete(f"{UPPER}/casegw", params=query).status_code == 202


def test_the_portal_shows_not_found_for_a_name_azure_refuses(server: ServeProcess) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as browser:
        signed_in = browser.post("/portal/signin", data={"token": TOKEN})
        assert signed_in.status_code == 303, signed_in.text
        page = browser.get(f"/portal/gateways/sub1/rg1/{segment(XSS)}/overview")
    assert page.status_code == 404, page.text
    assert "text/html" in page.headers["content-type"]
    assert XSS not in page.text  # shown escaped, if at all
