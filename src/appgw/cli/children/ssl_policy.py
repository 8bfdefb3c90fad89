"""`appgw ssl-policy`: the gateway's TLS policy (a property, not a child) and the catalogue of
predefined policies (`applicationGatewayAvailableSslOptions`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from appgw.cli.children.commands import (
    Flag,
    add_command,
    connect,
    connection,
    edit,
    given_values,
    keyword,
    option,
    read,
    target,
    waiting,
)
from appgw.cli.children.edit import Edit
from appgw.cli.client import emit, fail
from appgw.model.enums import SslCipherSuite, SslPolicyName, SslPolicyType, SslProtocol

SSL_OPTIONS = (
    "/subscriptions/{}/providers/Microsoft.Network/applicationGatewayAvailableSslOptions/default"
)


def policy_flags(name: tuple[str, ...], where: str = "") -> tuple[Flag, ...]:
    """The flags of a TLS policy, one table for the gateway's (`ssl-policy set`, whose -n names
    the predefined policy) and an SSL profile's (`--policy-name`; `where` "sslPolicy." puts
    the values into the profile's policy)."""
    return (
        Flag(
            ("--policy-type",),
            "Policy type; given, the policy is replaced by what the policy flags say.",
            choices=SslPolicyType,
            key=f"{where}policyType",
        ),
        Flag(name, "Predefined policy name.", choices=SslPolicyName, key=f"{where}policyName"),
        Flag(
            ("--min-protocol-version",),
            "Lowest TLS version (Custom, CustomV2).",
            choices=SslProtocol,
            key=f"{where}minProtocolVersion",
        ),
        Flag(
            ("--cipher-suites",),
            "Cipher suites in order of preference (Custom, CustomV2).",
            kind=list,
            choices=SslCipherSuite,
            key=f"{where}cipherSuites",
        ),
        Flag(
            ("--disabled-ssl-protocols", "--disabled-protocols"),
            "TLS versions to turn off (the older form of --min-protocol-version).",
            kind=list,
            choices=SslProtocol,
            key=f"{where}disabledSslProtocols",
        ),
    )


_SET_FLAGS = (
    *policy_flags(("--name", "-n")),
    Flag(("--clear",), "Remove the policy: the gateway's default applies.", kind=bool),
)


def _set(arguments: dict[str, Any]) -> None:
    # Like az, `set` replaces the whole policy with what the flags say.
    values = given_values(_SET_FLAGS, arguments, creating=False)
    policy = {
        flag.key: values[flag.name] for flag in _SET_FLAGS if flag.key and flag.name in values
    }
    if bool(policy) == bool(values.get("clear")):
        fail("give --clear, or the policy: --policy-type with -n or the custom flags", 2)

    def change(document: Edit) -> None:
        properties = document.view["properties"]
        if values.get("clear"):
            properties.pop("sslPolicy", None)
        else:
            properties["sslPolicy"] = policy

    stored = edit(arguments, change)
    if arguments["no_wait"]:
        return
    emit(stored["properties"].get("sslPolicy"), arguments["output"], arguments["query"])


def _show(arguments: dict[str, Any]) -> None:
    emit(read(arguments)["properties"].get("sslPolicy"), arguments["output"], arguments["query"])


def _options_path(arguments: dict[str, Any], suffix: str = "") -> tuple[Any, str]:
    api = connect(arguments)
    return api, SSL_OPTIONS.format(api.subscription) + suffix


def _list_options(arguments: dict[str, Any]) -> None:
    api, path = _options_path(arguments)
    emit(api.call("GET", path).json(), arguments["output"], arguments["query"])


def _predefined_list(arguments: dict[str, Any]) -> None:
    api, path = _options_path(arguments, "/predefinedPolicies")
    emit(api.call("GET", path).json().get("value", []), arguments["output"], arguments["query"])


def _predefined_show(arguments: dict[str, Any]) -> None:
    api, path = _options_path(arguments, f"/predefinedPolicies/{arguments['name']}")
    emit(api.call("GET", path).json(), arguments["output"], arguments["query"])


def ssl_policy_app() -> typer.Typer:
    app = typer.Typer(help="The gateway's TLS policy.", no_args_is_help=True, rich_markup_mode=None)
    printing = connection(prints=True)
    flags = (option(f, creating=False) for f in _SET_FLAGS)
    set_params = [*target(), *flags, *waiting(), *printing]
    add_command(
        app,
        "set",
        set_params,
        _set,
        "Set the TLS policy (replaces the whole policy); prints it.\n\n"
        "Example: appgw ssl-policy set -g rg1 --gateway-name appgw1 --policy-type Predefined "
        "-n AppGwSslPolicy20220101S",
    )
    add_command(
        app,
        "show",
        [*target(), *printing],
        _show,
        "Show the TLS policy.\n\nExample: appgw ssl-policy show -g rg1 --gateway-name appgw1",
    )
    add_command(
        app,
        "list-options",
        printing,
        _list_options,
        "The TLS options appgw offers: predefined policies, cipher suites, protocols.\n\n"
        "Example: appgw ssl-policy list-options --query availableProtocols",
    )
    predefined = typer.Typer(
        help="Predefined TLS policies.", no_args_is_help=True, rich_markup_mode=None
    )
    add_command(
        predefined,
        "list",
        printing,
        _predefined_list,
        "List the predefined policies.\n\nExample: appgw ssl-policy predefined list -o table",
    )
    name = typer.Option("--name", "-n", help="Predefined policy name.")
    add_command(
        predefined,
        "show",
        [keyword("name", Annotated[str, name]), *printing],
        _predefined_show,
        "Show a predefined policy.\n\n"
        "Example: appgw ssl-policy predefined show -n AppGwSslPolicy20220101",
    )
    app.add_typer(predefined, name="predefined")
    return app
