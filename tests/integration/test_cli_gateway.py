"""The real `appgw` executable against a real `appgw serve`: login, show, list, start/stop,
backend health, output formats and errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from helpers import TOKEN, Pfx, ServeProcess, gateway_url, run_cli, skeleton

pytestmark = pytest.mark.slow


appgw = run_cli


def test_login_then_gateway_commands(
    server: ServeProcess, tmp_path: Path, pfx: Pfx, root_cer: str
) -> None:
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as api:
        assert api.put(gateway_url(), json=skeleton(pfx, root_cer, port=8443)).status_code == 201
    config = tmp_path / "config.json"
    wrong = appgw(
        "login", "--server", server.base_url, "--token-stdin", config=config, stdin="nope\n"
    )
    assert wrong.returncode == 1 and "(InvalidAuthenticationToken)" in wrong.stderr
    assert not config.exists()
    login = appgw(
        "login", "--server", server.base_url, "--token-stdin", config=config, stdin=TOKEN + "\n"
    )
    assert login.returncode == 0, login.stderr
    assert config.stat().st_mode & 0o777 == 0o600
    assert TOKEN not in login.stdout

    common = ("-g", "rg1", "-n", "appgw", "--subscription", "sub1")
    shown = appgw("show", *common, config=config)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["sku"]["name"] == "Standard_v2"
    state = appgw("show", *common, "--query", "operationalState", "-o", "tsv", config=config)
    assert state.stdout.strip() == "Running"
    table = appgw("list", "--subscription", "sub1", "-o", "table", config=config)
    assert table.returncode == 0
    header, rule, row = table.stdout.splitlines()[:3]
    assert "Name" in header and "ResourceGroup" in header and "appgw" in row
    assert set(rule.replace(" ", "")) == {"-"}

    assert appgw("stop", *common, config=config).returncode == 0
    assert (
        appgw(
            "show", *common, "--query", "operationalState", "-o", "tsv", config=config
        ).stdout.strip()
        == "Stopped"
    )
    assert appgw("start", *common, config=config).returncode == 0
    health = appgw(
        "show-backend-health", *common,
        "--query", "backendAddressPools[0].backendHttpSettingsCollection[0].servers[].address",
        config=config,
    )  # fmt: skip
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == ["10.0.1.4", "app1.contoso.com"]

    missing = appgw("show", "-g", "rg1", "-n", "nope", "--subscription", "sub1", config=config)
    assert missing.returncode == 1
    assert "(ResourceNotFound)" in missing.stderr and "Traceback" not in missing.stderr
    bad_query = appgw("show", *common, "--query", "[[[", config=config)
    assert bad_query.returncode == 2 and "--query" in bad_query.stderr
    # APPGW_TOKEN wins over the saved login, as AZURE_* variables do for az.
    overridden = appgw("show", *common, config=config, env={"APPGW_TOKEN": "wrong"})
    assert overridden.returncode == 1 and "(InvalidAuthenticationToken)" in overridden.stderr

    assert appgw("delete", *common, config=config).returncode == 0
    assert appgw("show", *common, config=config).returncode == 1
