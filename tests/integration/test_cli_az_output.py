"""What az prints, printed by the real `appgw` against a real `appgw serve`: the flattened
shape (`properties` lifted, `resourceGroup` added), az's table and tsv layouts, --no-wait and
`wait`, the Key Vault flags appgw refuses by name, and help that fits 80 columns.

The expected flattened documents are written out by hand here (not by the code under test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from backends import free_port
from helpers import (
    TOKEN,
    Pfx,
    ServeProcess,
    fresh_gateway,
    gateway_id,
    gateway_url,
    run_cli,
)

pytestmark = pytest.mark.slow

GATEWAY = ("-g", "rg1", "-n", "appgw", "--subscription", "sub1")
CHILDREN = ("-g", "rg1", "--gateway-name", "appgw", "--subscription", "sub1")
NO_CONFIG = Path("/nonexistent/appgw-config.json")


@pytest.fixture
def api(server: ServeProcess, pfx: Pfx, root_cer: str) -> Iterator[httpx.Client]:
    """A fresh gateway for each test, on a free port."""
    with fresh_gateway(server.base_url, pfx, root_cer, free_port()) as client:
        yield client


def appgw(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"APPGW_SERVER": url, "APPGW_TOKEN": TOKEN}
    return run_cli(*args, config=NO_CONFIG, env=env)


def printed(url: str, *args: str) -> str:
    result = appgw(url, *args)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def keys_anywhere(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(keys_anywhere(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_anywhere(v) for v in value))
    return set()


# --- the flattened shape ---------------------------------------------------------------------


def test_az_style_queries_get_values(server: ServeProcess, api: httpx.Client) -> None:
    url = server.base_url
    query = ("show", *GATEWAY, "--query")
    assert json.loads(printed(url, *query, "operationalState")) == "Running"
    assert json.loads(printed(url, *query, "provisioningState")) == "Succeeded"
    assert json.loads(printed(url, *query, "sku.name")) == "Standard_v2"
    assert printed(url, *query, "sku.name", "-o", "tsv") == "Standard_v2\n"
    assert printed(url, *query, "properties.sku.name") == ""  # az prints nothing for null
    assert printed(url, "identity", "show", *GATEWAY) == ""  # appgw gateways have none

    shown = printed(
        url, "root-cert", "show", *CHILDREN, "-n", "backendRoot",
        "--query", "{name:name,state:provisioningState}",
    )  # fmt: skip
    assert json.loads(shown) == {"name": "backendRoot", "state": "Succeeded"}

    table = printed(
        url, "http-settings", "list", *CHILDREN,
        "--query", "[].{Name:name, Port:port, Protocol:protocol}", "-o", "table",
    )  # fmt: skip
    # az: the query's columns in the query's order, dashes two wider than a short heading.
    assert table.splitlines() == [
        "Name                           Port    Protocol",
        "-----------------------------  ------  ----------",
        "appGatewayBackendHttpSettings  443     Https",
    ]


def test_show_prints_the_gateway_as_az_does(server: ServeProcess, api: httpx.Client) -> None:
    stored = api.get(gateway_url()).json()
    shown = json.loads(printed(server.base_url, "show", *GATEWAY))
    gateway = gateway_id()

    # Top level: the envelope, resourceGroup, and every property lifted.
    assert "properties" not in keys_anywhere(shown)
    expected_top = {
        **{k: stored[k] for k in ("id", "name", "type", "location", "etag") if k in stored},
        "resourceGroup": "rg1",
        "operationalState": "Running",
        "provisioningState": "Succeeded",
        "sku": {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 2},
    }
    assert {k: shown[k] for k in expected_top} == expected_top
    assert set(shown) == {
        *(k for k in stored if k != "properties"),
        *stored["properties"],
        "resourceGroup",
    }

    # A child: its properties lifted, resourceGroup added, and on each reference too.
    stored_settings = stored["properties"]["backendHttpSettingsCollection"][0]
    assert shown["backendHttpSettingsCollection"][0] == {
        "id": f"{gateway}/backendHttpSettingsCollection/appGatewayBackendHttpSettings",
        "name": "appGatewayBackendHttpSettings",
        "etag": stored_settings["etag"],
        "type": stored_settings["type"],
        "resourceGroup": "rg1",
        "provisioningState": "Succeeded",
        "port": 443,
        "protocol": "Https",
        "cookieBasedAffinity": "Disabled",
        "requestTimeout": 20,
        "pickHostNameFromBackendAddress": False,
        "hostName": "app1.contoso.com",
        "connectionDraining": {"enabled": False, "drainTimeoutInSec": 1},
        "trustedRootCertificates": [
            {"id": f"{gateway}/trustedRootCertificates/backendRoot", "resourceGroup": "rg1"}
        ],
        "probe": {"id": f"{gateway}/probes/httpsProbe", "resourceGroup": "rg1"},
        # The API's back-reference: the rules that use these settings.
        "requestRoutingRules": [
            {"id": f"{gateway}/requestRoutingRules/rule1", "resourceGroup": "rg1"}
        ],
        **{
            key: value
            for key, value in stored_settings["properties"].items()
            if key not in ("trustedRootCertificates", "probe")
            and not isinstance(value, dict | list)
        },
    }
    # Secrets are never printed: the API never returns them.
    certificate = shown["sslCertificates"][0]
    assert certificate["name"] == "appgwSslCert" and certificate["publicCertData"]
    assert not {"data", "password"} & set(certificate)

    child = json.loads(printed(server.base_url, "frontend-port", "show", *CHILDREN, "-n",
                               "appGatewayFrontendPort"))  # fmt: skip
    assert child == shown["frontendPorts"][0]
    assert child["port"] == stored["properties"]["frontendPorts"][0]["properties"]["port"]


# --- table and tsv -----------------------------------------------------------------------------


def test_a_bad_output_or_query_refuses_the_command_before_it_writes(
    server: ServeProcess, api: httpx.Client
) -> None:
    before = api.get(gateway_url()).json()
    for flags, named in (
        (("-o", "yaml"), "'--output' / '-o': 'yaml': use one of json, table, tsv, none"),
        (("--query", "tags.["), "'--query': Invalid jmespath expression"),
    ):
        result = appgw(server.base_url, "update", *GATEWAY, "--tags", "changed=yes", *flags)
        assert result.returncode == 2 and named in result.stderr, result.stderr
    after = api.get(gateway_url()).json()
    assert after["etag"] == before["etag"] and "changed" not in after.get("tags", {})
    # az's -o none: the change is made, nothing is printed.
    done = appgw(server.base_url, "update", *GATEWAY, "--tags", "changed=yes", "-o", "none")
    assert done.returncode == 0 and done.stdout == ""
    assert api.get(gateway_url()).json()["tags"] == {"changed": "yes"}


def test_table_and_tsv_as_az(server: ServeProcess, api: httpx.Client) -> None:
    url = server.base_url
    table = printed(url, "list", "-g", "rg1", "--subscription", "sub1", "-o", "table")
    header, rule, row = table.splitlines()
    # az: scalar fields only, keys sorted and capitalised, id/type/etag left out.
    stored = api.get(gateway_url()).json()
    scalars = {
        key: value
        for key, value in {**stored, **stored["properties"], "resourceGroup": "rg1"}.items()
        if not isinstance(value, dict | list) and key not in ("id", "type", "etag")
    }
    columns = sorted(scalars)
    assert header.split() == [key[0].upper() + key[1:] for key in columns]
    assert {"Location", "Name", "OperationalState", "ResourceGroup"} <= set(header.split())
    assert row.split() == [str(scalars[key]) for key in columns]
    assert set(rule.replace(" ", "")) == {"-"}

    # A list of lists: one line per item, tab-separated (not JSON arrays).
    tsv = printed(
        url, "http-settings", "list", *CHILDREN, "--query", "[].[name, port]", "-o", "tsv"
    )
    assert tsv == "appGatewayBackendHttpSettings\t443\n"
    # An object: its values by sorted key; a nested list prints its length, an object nothing.
    port = printed(url, "frontend-port", "show", *CHILDREN, "-n", "appGatewayFrontendPort",
                   "-o", "tsv").rstrip("\n").split("\t")  # fmt: skip
    shown = json.loads(printed(url, "frontend-port", "show", *CHILDREN, "-n",
                               "appGatewayFrontendPort"))  # fmt: skip
    expected = [
        str(len(v)) if isinstance(v, list) else "" if isinstance(v, dict) else str(v)
        for _, v in sorted(shown.items())
    ]
    assert port == expected
    assert printed(url, "show", *GATEWAY, "--query", "enableHttp2 || `false`", "-o", "tsv") in (
        "false\n",
        "true\n",
    )

    # Backend health has no plain field at its top: no blank lines, a message instead ...
    health = appgw(url, "show-backend-health", *GATEWAY, "-o", "table")
    assert health.returncode == 1 and health.stdout == ""
    assert "--query" in health.stderr
    # ... and with a query it is a table like any other.
    servers = printed(
        url, "show-backend-health", *GATEWAY, "-o", "table",
        "--query", "backendAddressPools[].backendHttpSettingsCollection[].servers[][address]",
    ).splitlines()  # fmt: skip
    assert servers[0].split() == ["Column1"] and [s.strip() for s in servers[2:]] == [
        "10.0.1.4",
        "app1.contoso.com",
    ]


# --- --no-wait and wait ------------------------------------------------------------------------


class Relay:
    """Passes the CLI's requests to the API and records their paths; while `hold` is set it
    answers every operation-status request InProgress, so the operation does not end."""

    def __init__(self, api: httpx.Client) -> None:
        self.paths: list[str] = []
        self.hold = True
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                relay.paths.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                operation = None
                if relay.hold and "/operations/" in self.path:
                    content = json.dumps({"status": "InProgress"}).encode()
                    status, kind = 200, "application/json"
                else:
                    skip = ("host", "content-length")
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                    answer = api.request(self.command, self.path, content=body, headers=headers)
                    content, status = answer.content, answer.status_code
                    kind = answer.headers.get("content-type", "application/json")
                    operation = answer.headers.get("Azure-AsyncOperation")
                self.send_response(status)
                self.send_header("Content-Type", kind)
                if operation:
                    self.send_header("Azure-AsyncOperation", operation)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_PUT = do_POST = do_DELETE = _relay

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def relay(api: httpx.Client) -> Iterator[Relay]:
    running = Relay(api)
    yield running
    running.close()


def test_no_wait_returns_while_the_operation_runs(
    server: ServeProcess, api: httpx.Client, relay: Relay
) -> None:
    # The relay keeps every operation InProgress: --no-wait returns anyway, printing nothing.
    started = time.monotonic()
    assert printed(relay.url, "update", *GATEWAY, "--capacity", "3", "--no-wait") == ""
    settings = ("-n", "appGatewayBackendHttpSettings", "--timeout", "45", "--no-wait")
    assert printed(relay.url, "http-settings", "update", *CHILDREN, *settings) == ""
    assert time.monotonic() - started < 30
    assert not [path for path in relay.paths if "/operations/" in path]
    assert printed(server.base_url, "wait", *GATEWAY, "--updated", "--interval", "1") == ""
    assert json.loads(printed(server.base_url, "show", *GATEWAY, "--query", "sku.capacity")) == 3

    # Without --no-wait the command polls the operation until it ends.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("APPGW_")},
        "APPGW_CONFIG": str(NO_CONFIG),
        "APPGW_SERVER": relay.url,
        "APPGW_TOKEN": TOKEN,
    }
    stopping = subprocess.Popen(
        [sys.executable, "-m", "appgw", "stop", *GATEWAY],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            stopping.wait(timeout=3)
        assert [path for path in relay.paths if "/operations/" in path]
        relay.hold = False
        assert stopping.wait(timeout=30) == 0
    finally:
        stopping.kill()
        stopping.communicate()
    custom = ("--custom", "operationalState=='Stopped'", "--interval", "1", "--timeout", "30")
    assert printed(server.base_url, "wait", *GATEWAY, *custom) == ""


def test_wait_for_deleted_and_for_a_timeout(server: ServeProcess, api: httpx.Client) -> None:
    url = server.base_url
    assert printed(url, "delete", *GATEWAY, "--no-wait") == ""
    assert printed(url, "wait", *GATEWAY, "--deleted", "--interval", "1", "--timeout", "30") == ""
    assert appgw(url, "show", *GATEWAY).returncode == 1

    never = appgw(url, "wait", *GATEWAY, "--created", "--interval", "1", "--timeout", "2")
    assert never.returncode == 1 and "--timeout" in never.stderr and "2 seconds" in never.stderr
    neither = appgw(url, "wait", *GATEWAY)
    assert neither.returncode == 2 and "--created" in neither.stderr


# --- flags appgw refuses by name, and what it no longer refuses ---------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("ssl-cert", "create", *CHILDREN, "-n", "kv", "--key-vault-secret-id", "https://v/s/x"),
        ("ssl-cert", "update", *CHILDREN, "-n", "kv", "--key-vault-secret-id", "https://v/s/x"),
        ("root-cert", "create", *CHILDREN, "-n", "kv", "--keyvault-secret", "https://v/s/x"),
        ("create", *GATEWAY, "--key-vault-secret-id", "https://v/s/x"),
        ("create", *GATEWAY, "--identity", "/subscriptions/s/resourceGroups/rg/providers/x/id"),
        ("identity", "assign", *GATEWAY, "--identity", "myIdentity"),
    ],
)
def test_key_vault_flags_are_refused_by_name(server: ServeProcess, args: tuple[str, ...]) -> None:
    result = appgw(server.base_url, *args)
    flag = next(arg for arg in args if arg.startswith("--key") or arg == "--identity")
    assert result.returncode == 2, result.stderr
    assert f"{flag}: " in result.stderr and "not supported by appgw" in result.stderr
    assert "--cert-file" in result.stderr and "No such option" not in result.stderr


def test_root_certs_without_a_host_name(server: ServeProcess, api: httpx.Client) -> None:
    url = server.base_url
    printed(url, "http-settings", "create", *CHILDREN, "-n", "plain", "--port", "80")
    updated = json.loads(printed(
        url, "http-settings", "update", *CHILDREN, "-n", "plain",
        "--protocol", "Https", "--port", "8443", "--root-certs", "backendRoot",
    ))  # fmt: skip
    assert updated["protocol"] == "Https" and updated["port"] == 8443
    assert [r["id"].rsplit("/", 1)[-1] for r in updated["trustedRootCertificates"]] == [
        "backendRoot"
    ]
    assert "hostName" not in updated and not updated.get("pickHostNameFromBackendAddress")


def test_help_fits_80_columns_with_whole_option_names() -> None:
    env = {**os.environ, "COLUMNS": "80", "APPGW_CONFIG": str(NO_CONFIG)}
    result = subprocess.run(
        [sys.executable, "-m", "appgw", "http-settings", "update", "--help"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    for name in (
        "--resource-group", "--gateway-name", "--host-name-from-backend-pool",
        "--validate-cert-chain-and-expiry", "--connection-draining-timeout", "--no-wait",
        "--subscription", "--server", "--output", "--query", "--root-certs", "--sni-name",
    ):  # fmt: skip
        assert f"{name} " in result.stdout or f"{name}\n" in result.stdout, name
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
