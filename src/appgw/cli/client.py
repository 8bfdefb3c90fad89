"""What every management command shares: where the API is, the token, output formats.

Like `az`, the CLI only talks to the REST API (`--server` / APPGW_SERVER, a token from
APPGW_TOKEN or `appgw login`), so it works the same against a local or a remote appgw.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import jmespath
import typer

API_VERSION = "2024-05-01"  # what the CLI sends; appgw accepts every dated version up to today
DEFAULT_SERVER = "http://127.0.0.1:7480"
DEFAULT_SUBSCRIPTION = "default"
TIMEOUT = 60.0  # seconds; an on-demand probe may take its whole probe timeout


def config_path() -> Path:
    override = os.environ.get("APPGW_CONFIG")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "appgw" / "config.json"


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"appgw: {message}", err=True)
    raise typer.Exit(code)


def save_login(server: str, token: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"server": server, "token": token}, handle)
    os.chmod(path, 0o600)
    return path


def _saved() -> dict[str, str]:
    path = config_path()
    if not path.exists():
        return {}
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        fail(f"{path} is readable by others; run 'chmod 600 {path}'")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        fail(f"{path}: not a valid appgw config file ({error})")
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


@dataclass
class Api:
    server: str
    token: str
    subscription: str

    @classmethod
    def connect(cls, server: str | None, subscription: str | None) -> Api:
        saved = _saved()
        url = server or os.environ.get("APPGW_SERVER") or saved.get("server") or DEFAULT_SERVER
        token = os.environ.get("APPGW_TOKEN") or saved.get("token")
        if not token:
            fail("no token: run 'appgw login' or set APPGW_TOKEN")
        sub = subscription or os.environ.get("APPGW_SUBSCRIPTION") or DEFAULT_SUBSCRIPTION
        return cls(url.rstrip("/"), token, sub)

    def gateway_path(self, resource_group: str, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{resource_group}/providers/"
            f"Microsoft.Network/applicationGateways/{name}"
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """The response; an error status fails the command unless it is in `allow`."""
        query = {"api-version": API_VERSION, **(params or {})}
        try:
            with httpx.Client(
                base_url=self.server,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=TIMEOUT,
                # Off loopback appgw serves HTTPS with its own certificate: trust the system
                # store, or the file in APPGW_CA_BUNDLE (the admin certificate it printed).
                verify=os.environ.get("APPGW_CA_BUNDLE") or True,
            ) as client:
                response = client.request(method, path, params=query, json=body, headers=headers)
        except httpx.HTTPError as error:
            fail(f"cannot reach {self.server}: {error}")
        if response.status_code >= 400 and response.status_code not in allow:
            _api_error(response, _precondition_hint(response.status_code, headers or {}))
        return response


def _precondition_hint(status: int, headers: dict[str, str]) -> str | None:
    """What a 412 means for a create (If-None-Match: *). Writes with If-Match go through
    `children.edit.edit_gateway`, which reports their conflict itself."""
    if status == 412 and headers.get("If-None-Match") == "*":
        return "It already exists; nothing was saved. Change it with update or the child commands."
    return None


def _api_error(response: httpx.Response, hint: str | None = None) -> NoReturn:
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
        details = [d["message"] for d in error.get("details", [])[1:]]
    except (ValueError, KeyError, TypeError):
        fail(f"HTTP {response.status_code}: {response.text[:500]}")
    lines = [f"({code}) {message}", *(f"  - {d}" for d in details)]
    if hint:
        lines.append(hint)
    fail("\n".join(lines))


def emit(value: Any, output: str, query: str | None) -> None:
    """Print like az: -o json (default), table or tsv, after an optional JMESPath --query."""
    if query:
        try:
            value = jmespath.search(query, value)
        except jmespath.exceptions.JMESPathError as error:
            fail(f"--query: {error}", 2)
    if output == "json":
        typer.echo(json.dumps(value, indent=2))
    elif output == "tsv":
        for row in _rows(value):
            typer.echo("\t".join(_cell(v) for v in row.values()))
    elif output == "table":
        rows = _rows(value)
        if not rows:
            return
        columns = list(rows[0])
        widths = [max(len(c), *(len(_cell(r.get(c))) for r in rows)) for c in columns]
        typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        typer.echo("  ".join("-" * w for w in widths))
        for row in rows:
            cells = (_cell(row.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True))
            typer.echo("  ".join(cells).rstrip())
    else:
        fail(f"-o {output}: use json, table or tsv", 2)


def _rows(value: Any) -> list[dict[str, Any]]:
    items: Sequence[Any] = value if isinstance(value, list) else [value]
    rows = []
    for item in items:
        if isinstance(item, dict):
            rows.append(_summary(item))
        else:
            rows.append({"Result": item})
    return rows


def _summary(item: dict[str, Any]) -> dict[str, Any]:
    """Table columns: scalar fields, and for a resource its name and main properties."""
    flat = {k: v for k, v in item.items() if not isinstance(v, dict | list)}
    properties = item.get("properties")
    if isinstance(properties, dict):
        for key in ("provisioningState", "operationalState"):
            if key in properties:
                flat[key] = properties[key]
        sku = properties.get("sku")
        if isinstance(sku, dict) and "name" in sku:
            flat["sku"] = sku["name"]
    flat.pop("etag", None)
    if "name" in flat:
        flat.pop("id", None)  # the name says it in a table; -o json keeps the id
    return flat


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def read_secret_stdin() -> str:
    line = sys.stdin.readline()
    return line.rstrip("\r\n")
