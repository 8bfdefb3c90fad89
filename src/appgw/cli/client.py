"""What every management command shares: where the API is, the token, output formats.

Like `az`, the CLI only talks to the REST API (`--server` / APPGW_SERVER, a token from
APPGW_TOKEN or `appgw login`), so it works the same against a local or a remote appgw.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import jmespath
import typer

from appgw.cli.az_shape import flatten

API_VERSION = "2024-05-01"  # what the CLI sends; appgw accepts every dated version up to today
DEFAULT_SERVER = "http://127.0.0.1:7480"
DEFAULT_SUBSCRIPTION = "default"
TIMEOUT = 60.0  # seconds; an on-demand probe may take its whole probe timeout
# Polling a long-running operation: appgw applies a change in well under a second, so poll
# soon, then back off (the status answer carries no Retry-After).
FIRST_POLL_SECONDS = 0.1
LAST_POLL_SECONDS = 2.0


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


def await_operation(api: Api, accepted: httpx.Response) -> None:
    """Wait, as az does for a long-running operation, until the operation the response's
    Azure-AsyncOperation header names is done (every process of the server serves the change);
    a failed operation fails the command with its error. No header: it was done at once."""
    link = accepted.headers.get("Azure-AsyncOperation")
    if not link:
        return
    # The path only: the CLI keeps talking to --server whatever host name the server saw.
    path = urlsplit(link).path
    pause = FIRST_POLL_SECONDS
    while True:
        status = api.call("GET", path).json()
        state = status.get("status")
        if state == "Succeeded":
            return
        if state in ("Failed", "Canceled"):
            error = status.get("error") or {}
            code = error.get("code", f"Operation{state}")
            fail(f"({code}) {error.get('message', f'the operation ended {state}')}")
        time.sleep(pause)
        pause = min(pause * 2, LAST_POLL_SECONDS)


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


def emit(value: Any, output: str, query: str | None, *, as_az: bool = True) -> None:
    """Print an API result as az prints it: flattened (`az_shape.flatten`; `as_az` False for a
    request body, which keeps the API's shape), then an optional JMESPath --query, then -o json
    (default), table or tsv as az's formatters lay them out."""
    if as_az:
        value = flatten(value)
    if query:
        try:
            # az's query results keep their keys in the query's order (OrderedDict); the
            # formatters below sort the keys of plain objects only.
            options = jmespath.Options(dict_cls=OrderedDict)
            value = jmespath.search(query, value, options=options)
        except jmespath.exceptions.JMESPathError as error:
            fail(f"--query: {error}", 2)
    if value is None or output == "none":
        return  # az prints nothing for a null result, in every format, nor with -o none
    if output == "json":
        typer.echo(json.dumps(value, indent=2))
    elif output == "tsv":
        for item in value if isinstance(value, list) else [value]:
            typer.echo(_tsv_row(item))
    elif output == "table":
        typer.echo(_table(value if isinstance(value, list) else [value], sort=not query))
    else:
        fail(f"-o {output}: use json, table, tsv or none", 2)


def _tsv_row(item: Any) -> str:
    """One line: an object's values (keys sorted unless the query ordered them), a list's
    items; a nested list prints its length and a nested object nothing, as az does."""
    if isinstance(item, OrderedDict):
        values = list(item.values())
    elif isinstance(item, dict):
        values = [item[key] for key in sorted(item)]
    elif isinstance(item, list):
        values = item
    else:
        return _tsv_cell(str(item).lower() if isinstance(item, bool) else item)
    return "\t".join(_tsv_cell(v) for v in values)


def _tsv_cell(value: Any) -> str:
    if isinstance(value, list):
        return str(len(value))
    if isinstance(value, dict):
        return ""
    return str(value)


# az leaves these out of a table: the name says what the id says, and the rest is noise.
_TABLE_SKIPS = ("id", "type", "etag")
_TABLE_PADDING = 2  # columns are at least this much wider than their heading


def _table(items: list[Any], *, sort: bool) -> str:
    """az's automatic table: each object's scalar fields (capitalised, keys sorted unless a
    query ordered them); a list's items as Column1..N; anything else as Result."""
    rows = [_table_row(item, sort=sort) for item in items]
    columns = list(dict.fromkeys(column for row in rows for column in row))
    if not columns:
        if not rows:
            return ""
        fail(
            "-o table: the result has no plain values to show in columns; pick some with "
            "--query, or use -o json"
        )
    cells = [[_table_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max(len(column) + _TABLE_PADDING, *(len(line[i]) for line in cells))
        for i, column in enumerate(columns)
    ]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True))
        for line in [columns, ["-" * width for width in widths], *cells]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _table_row(item: Any, *, sort: bool) -> dict[str, Any]:
    if isinstance(item, dict):
        keys = sorted(item) if sort else list(item)
        return {
            key[:1].upper() + key[1:]: item[key]
            for key in keys
            if key not in _TABLE_SKIPS
            and item[key] is not None
            and not isinstance(item[key], dict | list)
        }
    if isinstance(item, list):
        return {f"Column{index}": value for index, value in enumerate(item, start=1)}
    return {"Result": item}


def _table_cell(value: Any) -> str:
    return "" if value is None else str(value)


def read_secret_stdin() -> str:
    line = sys.stdin.readline()
    return line.rstrip("\r\n")
