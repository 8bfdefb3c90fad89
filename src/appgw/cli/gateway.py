"""Gateway-level commands shaped like `az network application-gateway`: show, list, delete,
start, stop, show-backend-health; and `appgw login`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from appgw.cli.client import Api, emit, fail, read_secret_stdin, save_login

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
Output = Annotated[str, typer.Option("--output", "-o", help="json, table or tsv.")]
Query = Annotated[str | None, typer.Option(help="JMESPath query applied to the result.")]


def register(app: typer.Typer) -> None:
    @app.command("login")
    def login(
        server: Annotated[str, typer.Option(help="appgw API address.")] = "http://127.0.0.1:7480",
        token_stdin: Annotated[
            bool, typer.Option("--token-stdin", help="Read the token from standard input.")
        ] = False,
    ) -> None:
        """Remember the server and token (in a 0600 file) for later commands.

        Example: echo "$TOKEN" | appgw login --server http://127.0.0.1:7480 --token-stdin
        """
        token = read_secret_stdin() if token_stdin else typer.prompt("Token", hide_input=True)
        if not token:
            fail("an empty token")
        api = Api(server.rstrip("/"), token, "default")
        api.call("GET", "/subscriptions/default/providers/Microsoft.Network/applicationGateways")
        path = save_login(api.server, token)
        typer.echo(f"Signed in to {api.server}; saved to {path}")

    @app.command("show")
    def show(
        resource_group: ResourceGroup,
        name: Name,
        subscription: Subscription = None,
        server: Server = None,
        output: Output = "json",
        query: Query = None,
    ) -> None:
        """Show an application gateway.

        Example: appgw show -g myResourceGroup -n myAppGateway --query properties.operationalState
        """
        api = Api.connect(server, subscription)
        emit(api.call("GET", api.gateway_path(resource_group, name)).json(), output, query)

    @app.command("list")
    def list_gateways(
        resource_group: Annotated[
            str | None, typer.Option("--resource-group", "-g", help="Only this resource group.")
        ] = None,
        subscription: Subscription = None,
        server: Server = None,
        output: Output = "json",
        query: Query = None,
    ) -> None:
        """List application gateways (all pages).

        Example: appgw list -g myResourceGroup -o table
        """
        api = Api.connect(server, subscription)
        scope = f"/subscriptions/{api.subscription}"
        if resource_group:
            scope += f"/resourceGroups/{resource_group}"
        path: str | None = f"{scope}/providers/Microsoft.Network/applicationGateways"
        gateways: list[Any] = []
        params: dict[str, str] = {}
        while path:
            page = api.call("GET", path, params=params).json()
            gateways += page.get("value", [])
            next_link = page.get("nextLink")
            path = None
            if next_link:
                token = next_link.split("$skiptoken=")[-1].split("&")[0]
                path = f"{scope}/providers/Microsoft.Network/applicationGateways"
                params = {"$skiptoken": token}
        emit(gateways, output, query)

    @app.command("delete")
    def delete(
        resource_group: ResourceGroup,
        name: Name,
        subscription: Subscription = None,
        server: Server = None,
    ) -> None:
        """Delete an application gateway (its history stays in the store).

        Example: appgw delete -g myResourceGroup -n myAppGateway
        """
        api = Api.connect(server, subscription)
        api.call("DELETE", api.gateway_path(resource_group, name))

    for verb, help_text in (
        ("start", "Start a stopped application gateway (its listeners open again)."),
        ("stop", "Stop an application gateway (its listeners close)."),
    ):
        _register_action(app, verb, help_text)

    @app.command("show-backend-health")
    def show_backend_health(
        resource_group: ResourceGroup,
        name: Name,
        expand: Annotated[
            str | None, typer.Option(help="Expand pools and settings, as '$expand' does.")
        ] = None,
        subscription: Subscription = None,
        server: Server = None,
        output: Output = "json",
        query: Query = None,
    ) -> None:
        """Show backend health: per pool, per settings, per server, and why.

        Example: appgw show-backend-health -g myResourceGroup -n myAppGateway
          --query "backendAddressPools[].backendHttpSettingsCollection[].servers[].[address,health]"
        """
        api = Api.connect(server, subscription)
        params = {"$expand": expand} if expand else None
        path = api.gateway_path(resource_group, name) + "/backendhealth"
        emit(api.call("POST", path, params=params).json(), output, query)


def _register_action(app: typer.Typer, verb: str, help_text: str) -> None:
    def action(
        resource_group: ResourceGroup,
        name: Name,
        subscription: Subscription = None,
        server: Server = None,
    ) -> None:
        api = Api.connect(server, subscription)
        api.call("POST", f"{api.gateway_path(resource_group, name)}/{verb}")

    action.__doc__ = f"{help_text}\n\nExample: appgw {verb} -g myResourceGroup -n myAppGateway"
    app.command(verb)(action)
