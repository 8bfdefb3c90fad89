"""az's list arguments (`--servers a b`) read as click's repeated options, and --add/--remove's
words kept together."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from typer.testing import CliRunner

from appgw.cli.options import GROUP_SEPARATOR, AzCommand

app = typer.Typer()


@app.command(cls=AzCommand)
def command(
    servers: Annotated[list[str] | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option("--name", "-n")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set")] = None,
    add: Annotated[list[str] | None, typer.Option()] = None,
) -> None:
    typer.echo(json.dumps({"servers": servers, "name": name, "set": set_, "add": add}))


def parsed(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    value: dict[str, object] = json.loads(result.output)
    return value


def test_space_separated_values_are_repeated_options() -> None:
    assert parsed("--servers", "10.0.0.4", "app.contoso.com", "-n", "gw", "--servers", "x") == {
        "servers": ["10.0.0.4", "app.contoso.com", "x"],
        "name": "gw",
        "set": None,
        "add": None,
    }


def test_grouped_options_keep_their_words_together() -> None:
    result = parsed("--add", "pools[0].addresses", "fqdn=a", "port=1", "--add", "tags", "x=1")
    assert result["add"] == [
        GROUP_SEPARATOR.join(["pools[0].addresses", "fqdn=a", "port=1"]),
        GROUP_SEPARATOR.join(["tags", "x=1"]),
    ]


def test_negative_numbers_are_values_and_equals_form_stays_single() -> None:
    assert parsed("--set", "a=-1", "-5")["set"] == ["a=-1", "-5"]
    assert parsed("--servers=a", "-n", "b")["servers"] == ["a"]
    missing = CliRunner().invoke(app, ["--servers", "--name", "x"])
    assert missing.exit_code == 2  # click names the option without a value
