"""Every `appgw` command explains itself with an example, and the shell completes them."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import typer

from appgw.cli.main import app


def commands(group: click.Group, prefix: str = "appgw") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        path = f"{prefix} {name}"
        if hasattr(command, "list_commands"):  # a group (typer may bring its own click)
            found += commands(command, path)  # type: ignore[arg-type]
        else:
            found.append((path, command))
    return found


def test_every_command_has_help_with_an_example() -> None:
    every = commands(typer.main.get_command(app))  # type: ignore[arg-type]
    assert len(every) > 70  # gateway verbs, 13 child groups x 5 verbs, ssl-policy, cert, ...
    missing = [path for path, command in every if "Example:" not in (command.help or "")]
    assert missing == []
    for path, command in every:
        for parameter in command.params:
            if parameter.param_type_name == "option" and parameter.name != "help":
                assert getattr(parameter, "help", None), f"{path} {parameter.opts[0]}: no help"


def test_shell_completion_lists_groups_and_verbs() -> None:
    def complete(words: str) -> list[str]:
        environment = {
            **os.environ,
            "_APPGW_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            # The word being completed: a new one after a trailing space.
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        }
        done = subprocess.run(
            [sys.executable, "-m", "appgw"], env=environment, capture_output=True, text=True
        )
        return done.stdout.split()

    assert {"http-settings", "http-listener"} <= set(complete("appgw http-"))
    assert set(complete("appgw url-path-map ")) >= {"create", "rule", "update", "delete"}
