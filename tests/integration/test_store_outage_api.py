"""While its PostgreSQL store is down, a real `appgw serve` says so on every route: 503
StoreUnavailable in ARM's shape, naming the store but never its password, with Retry-After; a
wrong token is a 401 where that is known without the store and a 503 otherwise, never a 500;
the portal shows a banner and the CLI the code; the data plane serves on. Once the store is
back, everything works again."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backends import Backend, free_port
from builders import GatewayBuilder
from helpers import API_VERSION, TOKEN, ServeProcess, gateway_id, run_cli, serving
from postgresql import PostgresServer, read_only, running_postgres, stopped

pytestmark = pytest.mark.slow

# The store's password is in its URL here (the test cluster trusts any): no answer may show it.
PASSWORD = "Outage7Sentinel"
NAME = "outage"
GATEWAY = gateway_id(NAME)
QUERY = f"?api-version={API_VERSION}"
SUBSCRIPTION = "/subscriptions/sub1"
BANNER = "Changes cannot be saved; traffic is still served with the last applied configuration."
STALE_TOKEN = "appgw_a-stale-token-0123456789abcdef"  # refused before the store went away
SSL_OPTIONS = f"{SUBSCRIPTION}/providers/Microsoft.Network/applicationGatewayAvailableSslOptions"


@dataclass
class Instance:
    server: ServeProcess
    database_url: str
    shown_store: str  # the store as answers name it
    api: httpx.Client
    portal: httpx.Client  # signed in before the store went away
    operation: str  # the Azure-AsyncOperation URL of the PUT
    listener_port: int


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresServer]:
    with running_postgres() as server:  # its own: these tests stop it
        yield server


@pytest.fixture(scope="module")
def instance(
    cluster: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Instance]:
    url = cluster.new_database().replace("postgres@", f"postgres:{PASSWORD}@")
    shown = url.replace(PASSWORD, "***")
    backend = Backend("outage").start()
    data_dir = tmp_path_factory.mktemp("outage") / "data"
    listener_port = free_port()
    document = (
        GatewayBuilder(NAME)
        .pool("pool", "127.0.0.1")
        .settings("settings", backend.port)
        .listener("listener", listener_port)
        .rule("rule", "listener", pool="pool", settings="settings")
        .build()
    )
    with (
        serving(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}, args=("--store-url", url)) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        ) as api,
        httpx.Client(base_url=server.base_url, timeout=60) as portal,
    ):
        assert f"waiting for the store {shown} (connect timeout 10 s)" in server.banner
        created = api.put(GATEWAY + QUERY, json=document)
        assert created.status_code == 201, created.text
        signed_in = portal.post("/portal/signin", data={"token": TOKEN})
        assert signed_in.status_code == 303, signed_in.text
        stale = httpx.get(
            server.base_url + GATEWAY + QUERY, headers={"Authorization": f"Bearer {STALE_TOKEN}"}
        )
        assert stale.status_code == 401, stale.text
        yield Instance(
            server,
            url,
            shown,
            api,
            portal,
            created.headers["Azure-AsyncOperation"],
            listener_port,
        )
    backend.stop()


def assert_store_unavailable(answer: httpx.Response, instance: Instance) -> None:
    where = f"{answer.request.method} {answer.request.url}"
    assert answer.status_code == 503, f"{where}: {answer.status_code} {answer.text}"
    assert answer.headers["content-type"] == "application/json", where
    error = answer.json()["error"]
    assert error["code"] == "StoreUnavailable", (where, error)
    assert error["message"].startswith(
        f"The configuration store is unavailable: {instance.shown_store} (connection failed: "
    ), (where, error)
    assert BANNER in error["message"], (where, error)
    assert answer.headers["retry-after"] == "5", where
    assert PASSWORD not in answer.text, where


def api_routes(instance: Instance) -> list[tuple[str, str, Any]]:
    """(method, path or URL, JSON body) of every API route that reads or writes the store."""
    group = f"{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.Network/applicationGateways"
    every = f"{SUBSCRIPTION}/providers/Microsoft.Network/applicationGateways"
    probe = {
        "protocol": "Http",
        "host": "127.0.0.1",
        "path": "/",
        "timeout": 5,
        "backendAddressPool": {"id": f"{GATEWAY}/backendAddressPools/pool"},
        "backendHttpSettings": {"id": f"{GATEWAY}/backendHttpSettingsCollection/settings"},
    }
    activity = (
        f"{SUBSCRIPTION}/providers/Microsoft.Insights/eventtypes/management/values{QUERY}"
        f"&$filter=resourceUri eq '{GATEWAY}'"
    )
    return [
        ("GET", GATEWAY + QUERY, None),
        ("PUT", GATEWAY + QUERY, {"location": "westeurope", "properties": {}}),
        ("PATCH", GATEWAY + QUERY, {"tags": {"during": "outage"}}),
        ("DELETE", GATEWAY + QUERY, None),
        ("POST", f"{GATEWAY}/start{QUERY}", None),
        ("POST", f"{GATEWAY}/stop{QUERY}", None),
        ("GET", group + QUERY, None),
        ("GET", every + QUERY, None),
        ("GET", f"{every}{QUERY}&$top=1&$skiptoken={GATEWAY.casefold()}", None),  # a nextLink
        ("POST", f"{GATEWAY}/backendhealth{QUERY}", None),
        ("POST", f"{GATEWAY}/backendhealth{QUERY}&$expand=backendHealthHttpSettings", None),
        ("POST", f"{GATEWAY}/getBackendHealthOnDemand{QUERY}", probe),
        ("GET", instance.operation, None),
        ("GET", instance.operation.replace("/operations/", "/operationResults/"), None),
        ("GET", f"{GATEWAY}/revisions{QUERY}", None),
        ("GET", activity, None),
        ("GET", f"{SSL_OPTIONS}/default{QUERY}", None),
        ("GET", "/metrics", None),
    ]


@pytest.fixture(scope="class")
def store_down(cluster: PostgresServer, instance: Instance) -> Iterator[None]:
    """The store stopped for every test of a class: one outage, several checks."""
    with stopped(cluster):
        yield


@pytest.mark.usefixtures("store_down")
class TestWhileTheStoreIsDown:
    def test_every_api_route_answers_503_store_unavailable(self, instance: Instance) -> None:
        for method, path, body in api_routes(instance):
            assert_store_unavailable(instance.api.request(method, path, json=body), instance)
        # Liveness of the process: appgw runs, and restarting it would not bring the store back.
        assert instance.api.get("/healthz").status_code == 200

    def test_a_wrong_token_is_a_401_or_a_503_never_a_500(self, instance: Instance) -> None:
        url = instance.server.base_url + GATEWAY + QUERY
        never_seen = httpx.get(url, headers={"Authorization": "Bearer appgw_never-seen-123456789"})
        assert_store_unavailable(never_seen, instance)  # right or wrong: only the store knows
        stale = httpx.get(url, headers={"Authorization": f"Bearer {STALE_TOKEN}"})
        assert stale.status_code == 401, stale.text  # refused before: known without the store
        assert stale.json()["error"]["code"] == "InvalidAuthenticationToken"
        assert httpx.get(url).status_code == 401  # no token at all

    def test_the_data_plane_serves_on(self, instance: Instance) -> None:
        answer = httpx.get(f"http://127.0.0.1:{instance.listener_port}/", timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["backend"] == "outage"

    def test_the_portal_shows_a_banner(self, instance: Instance) -> None:
        for page in ("/portal/resources", f"/portal/gateways/sub1/rg1/{NAME}/overview"):
            shown = instance.portal.get(page)
            assert shown.status_code == 503, (page, shown.text)
            assert shown.headers["content-type"].startswith("text/html"), page
            assert shown.headers["retry-after"] == "5", page
            assert 'class="banner" role="alert">The configuration store is unavailable: ' in (
                shown.text
            ), page
            assert BANNER in shown.text and PASSWORD not in shown.text, page
            assert "Traceback" not in shown.text, page
        # Signing in needs the store too: the form again, under the banner.
        signin = httpx.post(
            instance.server.base_url + "/portal/signin",
            data={"token": TOKEN, "next": "/portal/resources"},
        )
        assert signin.status_code == 503, signin.text
        assert BANNER in signin.text and 'name="token"' in signin.text
        assert signin.headers["retry-after"] == "5"

    def test_the_cli_prints_the_code_and_exits_1(self, instance: Instance, tmp_path: Path) -> None:
        shown = run_cli(
            "show", "-g", "rg1", "-n", NAME, "--subscription", "sub1",
            config=tmp_path / "config.json",
            env={"APPGW_SERVER": instance.server.base_url, "APPGW_TOKEN": TOKEN},
        )  # fmt: skip
        assert shown.returncode == 1, shown.stdout + shown.stderr
        assert shown.stderr.startswith(
            f"appgw: (StoreUnavailable) The configuration store is unavailable: "
            f"{instance.shown_store} ("
        ), shown.stderr
        assert PASSWORD not in shown.stderr and "Traceback" not in shown.stderr


def test_everything_works_again_once_the_store_is_back(
    cluster: PostgresServer, instance: Instance, tmp_path: Path
) -> None:
    with stopped(cluster):
        assert_store_unavailable(instance.api.get(GATEWAY + QUERY), instance)
    shown = instance.api.get(GATEWAY + QUERY)
    assert shown.status_code == 200, shown.text  # the right token works again
    changed = instance.api.patch(GATEWAY + QUERY, json={"tags": {"after": "outage"}})
    assert changed.status_code == 200, changed.text
    wrong = httpx.get(
        instance.server.base_url + GATEWAY + QUERY,
        headers={"Authorization": "Bearer appgw_never-seen-123456789"},
    )
    assert wrong.status_code == 401, wrong.text
    assert instance.portal.get("/portal/resources").status_code == 200
    signin = httpx.post(instance.server.base_url + "/portal/signin", data={"token": TOKEN})
    assert signin.status_code == 303, signin.text
    cli = run_cli(
        "show", "-g", "rg1", "-n", NAME, "--subscription", "sub1",
        "--query", "tags.after", "-o", "tsv",
        config=tmp_path / "config.json",
        env={"APPGW_SERVER": instance.server.base_url, "APPGW_TOKEN": TOKEN},
    )  # fmt: skip
    assert cli.returncode == 0 and cli.stdout.strip() == "outage", cli.stderr


def test_a_form_the_store_cannot_save_is_shown_again_under_the_banner(
    instance: Instance,
) -> None:
    """The store reads but cannot write (a standby after a failover, here a read-only
    database): the form comes back as typed, with the banner and a 503."""
    add = f"/portal/gateways/sub1/rg1/{NAME}/pools/add"
    page = instance.portal.get(add).text
    hidden = dict(re.findall(r'name="(csrf|etag)" value="([^"]*)"', page))
    read_only(instance.database_url, True)
    try:
        refused = instance.portal.post(
            add,
            data={
                "csrf": hidden["csrf"],
                "etag": html.unescape(hidden["etag"]),
                "pool_name": "typedDuringOutage",
                "without_targets": "No",
                "target_0": "10.9.9.9",
            },
        )
    finally:
        read_only(instance.database_url, False)
    assert refused.status_code == 503, refused.text
    assert 'class="banner" role="alert">The configuration store is unavailable: ' in refused.text
    assert "read-only" in refused.text and BANNER in refused.text
    assert 'value="typedDuringOutage"' in refused.text and 'value="10.9.9.9"' in refused.text
    assert PASSWORD not in refused.text
    pools = instance.api.get(GATEWAY + QUERY).json()["properties"]["backendAddressPools"]
    assert [pool["name"] for pool in pools] == ["pool"]
