"""What every management command's signature shares: the common options and az's way of
reading list arguments."""

from __future__ import annotations

from typing import Annotated, Any

import jmespath
import typer
from typer.core import TyperCommand

from appgw.cli.client import fail

ResourceGroup = Annotated[str, typer.Option("--resource-group", "-g", help="Resource group.")]
Name = Annotated[str, typer.Option("--name", "-n", help="Application gateway name.")]
Subscription = Annotated[
    str | None,
    typer.Option(envvar="APPGW_SUBSCRIPTION", help="Subscription id (default: 'default')."),
]
Server = Annotated[
    str | None,
    typer.Option(envvar="APPGW_SERVER", help="appgw API address, e.g. http://host:7480."),
]
OUTPUT_FORMATS = ("json", "table", "tsv", "none")


def _output_format(value: str) -> str:
    """Checked when the command line is read: a bad format refuses the command before it
    changes anything (az's `-o none` prints nothing)."""
    if value not in OUTPUT_FORMATS:
        raise typer.BadParameter(f"'{value}': use one of {', '.join(OUTPUT_FORMATS)}")
    return value


def _query_expression(value: str | None) -> str | None:
    """A --query that does not parse refuses the command before it changes anything."""
    if value:
        try:
            jmespath.compile(value)
        except jmespath.exceptions.JMESPathError as error:
            raise typer.BadParameter(str(error)) from None
    return value


Output = Annotated[
    str,
    typer.Option("--output", "-o", help="json, table, tsv or none.", callback=_output_format),
]
Query = Annotated[
    str | None,
    typer.Option(help="JMESPath query applied to the result.", callback=_query_expression),
]
NoWait = Annotated[
    bool,
    typer.Option(
        "--no-wait",
        help="Return once the API accepted the change, without waiting until it is applied "
        "(then 'appgw wait'); prints nothing.",
    ),
]

# az's `--add LIST_PATH KEY=VALUE ...` and `--remove LIST_PATH INDEX` take several words that
# belong together; they reach the command as one value, joined with this.
GROUP_SEPARATOR = "\n"
GROUPED_OPTIONS = frozenset({"--add", "--remove"})


class AzCommand(TyperCommand):
    """Takes az's space-separated lists, `--servers 10.0.1.4 10.0.1.5`: the words after a list
    option, up to the next option, are read as that option repeated (click's own form); for
    --add/--remove they are one value."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        lists = {o for p in self.params if getattr(p, "multiple", False) for o in p.opts}
        spread: list[str] = []
        current: str | None = None
        for arg in args:
            if _is_option(arg):
                name = arg.split("=", 1)[0]
                current = name if name in lists and "=" not in arg else None
                spread.append(arg)
            elif current in GROUPED_OPTIONS and spread[-1] != current:
                spread[-1] += GROUP_SEPARATOR + arg
            elif current is not None and spread[-1] != current:
                spread += [current, arg]
            else:
                spread.append(arg)
        return super().parse_args(ctx, spread)


def _is_option(arg: str) -> bool:
    # "-5" is a value (a negative number), "-" is stdin.
    return arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit()


KEY_VAULT = "Key Vault is not supported by appgw, which keeps certificates in its own store"
MANAGED_IDENTITY = (
    "managed identities are not supported by appgw (Azure uses them to read Key Vault, which "
    "appgw does not)"
)


def unsupported_option(*decls: str, reason: str) -> Any:
    """An az option appgw takes only to say why it does not support it (rather than click's
    'No such option'): given, it fails the command with `reason`, exit 2 like az's usage errors.
    Eager, so it is reported before a required option the user left out for it."""

    def refuse(param: typer.CallbackParam, value: Any) -> Any:
        if value:
            fail(f"{param.opts[0]}: {reason}", 2)
        return value

    return typer.Option(
        *decls,
        help=f"Not supported: {reason}.",
        callback=refuse,
        is_eager=True,
        show_default=False,
    )
