"""Gateway-level commands shaped like `az network application-gateway`: create, update, show,
list, delete, start, stop, show-backend-health; and `appgw login`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import jmespath
import typer

from appgw.cli.az_shape import flatten
from appgw.cli.children.edit import Edit, edit_gateway
from appgw.cli.client import (
    Api,
    await_operation,
    emit,
    fail,
    read_secret_stdin,
    save_login,
)
from appgw.cli.generic_update import add_item, key_values, remove_item, set_value, tag_values
from appgw.cli.options import (
    GROUP_SEPARATOR,
    KEY_VAULT,
    MANAGED_IDENTITY,
    AzCommand,
    Name,
    NoWait,
    Output,
    Query,
    ResourceGroup,
    Server,
    Subscription,
    unsupported_option,
)
from appgw.cli.uploads import read_pfx
from appgw.cli.waf_policy_link import policy_ref
from appgw.model.document import ref
from appgw.model.ids import GatewayId
from appgw.model.quick_create import (
    SKUS,
    ListenerCertificate,
    QuickCreate,
    quick_create_document,
    sku_tier,
)

WafPolicy = Annotated[
    str | None,
    typer.Option(
        "--waf-policy",
        help="WAF policy of the whole gateway (WAF_v2): a policy's id, or the name of one in "
        "the gateway's resource group; empty (update) unlinks it.",
    ),
]


def register(app: typer.Typer) -> None:
    @app.command("login", cls=AzCommand)
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

    @app.command("show", cls=AzCommand)
    def show(
        resource_group: ResourceGroup,
        name: Name,
        subscription: Subscription = None,
        server: Server = None,
        output: Output = "json",
        query: Query = None,
    ) -> None:
        """Show an application gateway.

        Example: appgw show -g myResourceGroup -n myAppGateway --query operationalState
        """
        api = Api.connect(server, subscription)
        emit(api.call("GET", api.gateway_path(resource_group, name)).json(), output, query)

    @app.command("list", cls=AzCommand)
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

    @app.command("delete", cls=AzCommand)
    def delete(
        resource_group: ResourceGroup,
        name: Name,
        no_wait: NoWait = False,
        subscription: Subscription = None,
        server: Server = None,
    ) -> None:
        """Delete an application gateway (its history stays in the store).

        Example: appgw delete -g myResourceGroup -n myAppGateway
        """
        api = Api.connect(server, subscription)
        accepted = api.call("DELETE", api.gateway_path(resource_group, name))
        if not no_wait:
            await_operation(api, accepted)

    register_create(app)
    register_update(app)
    register_wait(app)
    app.add_typer(identity_app(), name="identity")

    for verb, help_text in (
        ("start", "Start a stopped application gateway (its listeners open again)."),
        ("stop", "Stop an application gateway (its listeners close)."),
    ):
        _register_action(app, verb, help_text)

    @app.command("show-backend-health", cls=AzCommand)
    def show_backend_health(
        resource_group: ResourceGroup,
        name: Name,
        expand: Annotated[
            str | None, typer.Option(help="Expand pools and settings, as '$expand' does.")
        ] = None,
        protocol: Annotated[
            str | None, typer.Option(help="On-demand probe: Http or Https.")
        ] = None,
        host: Annotated[str | None, typer.Option(help="On-demand probe: Host header.")] = None,
        path: Annotated[str | None, typer.Option(help="On-demand probe: path, e.g. /.")] = None,
        timeout: Annotated[
            int | None, typer.Option(min=1, max=86400, help="On-demand probe: seconds.")
        ] = None,
        host_name_from_http_settings: Annotated[
            bool | None,
            typer.Option(help="On-demand probe: take the host name from the backend settings."),
        ] = None,
        match_body: Annotated[
            str | None, typer.Option(help="On-demand probe: text the body must contain.")
        ] = None,
        match_status_codes: Annotated[
            list[str] | None,
            typer.Option(help="On-demand probe: healthy status codes or ranges, e.g. 200-399."),
        ] = None,
        address_pool: Annotated[
            str | None, typer.Option(help="On-demand probe: the backend pool to probe.")
        ] = None,
        http_settings: Annotated[
            str | None, typer.Option(help="On-demand probe: the backend settings to use.")
        ] = None,
        subscription: Subscription = None,
        server: Server = None,
        output: Output = "json",
        query: Query = None,
    ) -> None:
        """Show backend health: per pool, per settings, per server, and why. Any probe flag
        (--protocol, --host, --path, --address-pool, ...) runs a one-off on-demand probe of
        one pool with one settings instead.

        Example: appgw show-backend-health -g myResourceGroup -n myAppGateway
        --query "backendAddressPools[].backendHttpSettingsCollection[].servers[].[address,health]"

        Example: appgw show-backend-health -g myResourceGroup -n myAppGateway
        --address-pool appGatewayBackendPool --http-settings appGatewayBackendHttpSettings
        --protocol Https --path / --host-name-from-http-settings
        """
        api = Api.connect(server, subscription)
        gateway_path = api.gateway_path(resource_group, name)
        gateway = GatewayId(api.subscription, resource_group, name)
        probe: dict[str, Any] = {
            "protocol": protocol,
            "host": host,
            "path": path,
            "timeout": timeout,
            "pickHostNameFromBackendHttpSettings": host_name_from_http_settings,
        }
        if match_body is not None or match_status_codes is not None:
            probe["match"] = {"body": match_body, "statusCodes": match_status_codes}
        if address_pool is not None:
            probe["backendAddressPool"] = ref(gateway, "backendAddressPools", address_pool)
        if http_settings is not None:
            probe["backendHttpSettings"] = ref(
                gateway, "backendHttpSettingsCollection", http_settings
            )
        probe = {key: value for key, value in probe.items() if value is not None}
        params = {"$expand": expand} if expand else None
        if probe:
            response = api.call(
                "POST", gateway_path + "/getBackendHealthOnDemand", body=probe, params=params
            )
        else:
            response = api.call("POST", gateway_path + "/backendhealth", params=params)
        emit(response.json(), output, query)


def _register_action(app: typer.Typer, verb: str, help_text: str) -> None:
    def action(
        resource_group: ResourceGroup,
        name: Name,
        no_wait: NoWait = False,
        subscription: Subscription = None,
        server: Server = None,
    ) -> None:
        api = Api.connect(server, subscription)
        accepted = api.call("POST", f"{api.gateway_path(resource_group, name)}/{verb}")
        if not no_wait:
            await_operation(api, accepted)

    action.__doc__ = f"{help_text}\n\nExample: appgw {verb} -g myResourceGroup -n myAppGateway"
    app.command(verb, cls=AzCommand)(action)


# az's Key Vault and managed identity flags, accepted only to say why appgw refuses them.
IDENTITY_REFUSAL = f"{MANAGED_IDENTITY}: upload the PFX with --cert-file"
KeyVaultSecretId = Annotated[
    str | None,
    unsupported_option(
        "--key-vault-secret-id", reason=f"{KEY_VAULT}: upload the PFX with --cert-file"
    ),
]
Identity = Annotated[str | None, unsupported_option("--identity", reason=IDENTITY_REFUSAL)]
Tags = Annotated[
    list[str] | None,
    typer.Option(help="Space-separated tags: key[=value]. Use '' to clear them (update)."),
]
Http2 = Annotated[str | None, typer.Option("--http2", help="Enabled or Disabled.")]
CustomErrorPages = Annotated[
    list[str] | None,
    typer.Option(help="Space-separated STATUS=URL pairs, e.g. HttpStatus502=https://x/502.html."),
]


def register_create(app: typer.Typer) -> None:
    @app.command("create", cls=AzCommand)
    def create(
        resource_group: ResourceGroup,
        name: Name,
        location: Annotated[str, typer.Option("--location", "-l", help="Location.")] = "local",
        sku: Annotated[str, typer.Option(help=f"One of {', '.join(SKUS)}.")] = "Standard_Medium",
        capacity: Annotated[
            int, typer.Option(help="Instances (ignored with --min/--max-capacity).")
        ] = 2,
        min_capacity: Annotated[int | None, typer.Option(help="Autoscale minimum (v2).")] = None,
        max_capacity: Annotated[int | None, typer.Option(help="Autoscale maximum (v2).")] = None,
        frontend_port: Annotated[
            int | None,
            typer.Option(help="Listener port; default 443 with --cert-file, else 80."),
        ] = None,
        cert_file: Annotated[
            Path | None, typer.Option(help="PFX of the listener: makes the listener HTTPS.")
        ] = None,
        cert_password: Annotated[
            str | None,
            typer.Option(help="The PFX password (visible in the process list: prefer stdin)."),
        ] = None,
        cert_password_stdin: Annotated[
            bool, typer.Option(help="Read the PFX password from the first line of stdin.")
        ] = False,
        ssl_certificate_name: Annotated[
            str | None, typer.Option(help="Name of the SSL certificate (default <name>SslCert).")
        ] = None,
        servers: Annotated[
            list[str] | None,
            typer.Option(help="Space-separated backend IPs or FQDNs of the default pool."),
        ] = None,
        http_settings_port: Annotated[
            int, typer.Option(min=1, max=65535, help="Backend port.")
        ] = 80,
        http_settings_protocol: Annotated[str, typer.Option(help="Http or Https.")] = "Http",
        http_settings_cookie_based_affinity: Annotated[
            str, typer.Option(help="Enabled or Disabled.")
        ] = "Disabled",
        connection_draining_timeout: Annotated[
            int, typer.Option(min=0, max=3600, help="Seconds; 0 disables draining.")
        ] = 0,
        routing_rule_type: Annotated[
            str,
            typer.Option(help="Basic (path rules: add them with 'appgw url-path-map create')."),
        ] = "Basic",
        priority: Annotated[
            int | None, typer.Option(min=1, max=20000, help="Rule priority (v2 SKUs only).")
        ] = None,
        private_ip_address: Annotated[
            str | None,
            typer.Option(help="Static private frontend IP: the address the listener binds."),
        ] = None,
        public_ip_address: Annotated[
            str | None,
            typer.Option(help="Name of the public IP resource (appgw binds --frontend-address)."),
        ] = None,
        vnet_name: Annotated[str | None, typer.Option(help="Virtual network name.")] = None,
        subnet: Annotated[str, typer.Option(help="Subnet name.")] = "default",
        http2: Http2 = None,
        tags: Tags = None,
        waf_policy: WafPolicy = None,
        key_vault_secret_id: KeyVaultSecretId = None,
        identity: Identity = None,
        no_wait: NoWait = False,
        subscription: Subscription = None,
        server: Server = None,
        output: Output = "json",
        query: Query = None,
    ) -> None:
        """Create an application gateway: one listener, pool, settings and rule, named as Azure
        names them. A --cert-file makes the listener HTTPS on port 443. Fails if the gateway
        exists (use update or the child commands).

        Example: appgw create -g myResourceGroup -n myAppGateway --sku Standard_v2 --priority 100
        --servers 10.0.0.4 10.0.0.5 --cert-file site.pfx --cert-password "$PW"
        """
        if routing_rule_type.casefold() != "basic":
            fail(
                "--routing-rule-type: create makes a Basic rule; for path-based routing run "
                "'appgw url-path-map create' and 'appgw rule update --rule-type PathBasedRouting'",
                2,
            )
        api = Api.connect(server, subscription)
        gateway = GatewayId(api.subscription, resource_group, name)
        certificate = None
        if cert_file is not None:
            data, password = read_pfx(cert_file, cert_password, cert_password_stdin)
            certificate = ListenerCertificate(
                ssl_certificate_name or f"{name}SslCert", data, password or ""
            )
        options = QuickCreate(
            location=location,
            sku=_choice(sku, SKUS, "--sku"),
            capacity=capacity,
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            frontend_port=frontend_port,
            certificate=certificate,
            servers=tuple(servers or ()),
            http_settings_port=http_settings_port,
            http_settings_protocol=_choice(
                http_settings_protocol, ("Http", "Https"), "--http-settings-protocol"
            ),
            cookie_based_affinity=_choice(
                http_settings_cookie_based_affinity,
                ("Enabled", "Disabled"),
                "--http-settings-cookie-based-affinity",
            ),
            connection_draining_timeout=connection_draining_timeout,
            priority=priority,
            private_ip_address=private_ip_address,
            public_ip_address=public_ip_address,
            vnet_name=vnet_name,
            subnet=subnet,
            http2=_enabled(http2, "--http2"),
            tags=tag_values(tags) or {},
        )
        if priority is not None and not options.v2:
            typer.echo("appgw: warning: --priority applies to v2 SKUs only; ignored", err=True)
        document = quick_create_document(gateway, options)
        link = policy_ref(gateway, waf_policy, "--waf-policy") if waf_policy else None
        if link is not None:
            # As az: a gateway created with a policy has no inline WAF configuration.
            document["properties"]["firewallPolicy"] = link
            document["properties"].pop("webApplicationFirewallConfiguration", None)
        response = api.call(
            "PUT",
            api.gateway_path(resource_group, name),
            body=document,
            headers={"If-None-Match": "*"},
        )
        if no_wait:
            return  # az prints nothing then
        await_operation(api, response)
        emit(response.json(), output, query)


def register_update(app: typer.Typer) -> None:
    @app.command("update", cls=AzCommand)
    def update(
        resource_group: ResourceGroup,
        name: Name,
        sku: Annotated[str | None, typer.Option(help=f"One of {', '.join(SKUS)}.")] = None,
        capacity: Annotated[int | None, typer.Option(help="Instances.")] = None,
        min_capacity: Annotated[int | None, typer.Option(help="Autoscale minimum (v2).")] = None,
        max_capacity: Annotated[int | None, typer.Option(help="Autoscale maximum (v2).")] = None,
        http2: Http2 = None,
        enable_fips: Annotated[bool | None, typer.Option(help="true or false.")] = None,
        custom_error_pages: CustomErrorPages = None,
        tags: Tags = None,
        waf_policy: WafPolicy = None,
        set_: Annotated[
            list[str] | None,
            typer.Option("--set", help="PATH=VALUE, e.g. sku.capacity=3 (VALUE may be JSON)."),
        ] = None,
        add: Annotated[
            list[str] | None,
            typer.Option(help="LIST_PATH KEY=VALUE..., or LIST_PATH JSON: append to a list."),
        ] = None,
        remove: Annotated[
            list[str] | None,
            typer.Option(help="PATH, or LIST_PATH INDEX: remove a property or list item."),
        ] = None,
        no_wait: NoWait = False,
        subscription: Subscription = None,
        server: Server = None,
        output: Output = "json",
        query: Query = None,
    ) -> None:
        """Update gateway-level properties (GET, change, PUT with If-Match: a concurrent change
        makes this fail rather than be overwritten). Paths of --set/--add/--remove are relative
        to the gateway; 'properties.' may be left out, as in az.

        Example: appgw update -g myResourceGroup -n myAppGateway --capacity 3 --http2 Enabled
        --set sslPolicy.policyType=Predefined sslPolicy.policyName=AppGwSslPolicy20220101S
        """
        api = Api.connect(server, subscription)

        def change(edit: Edit) -> None:
            document = edit.view
            properties = document.setdefault("properties", {})
            if sku is not None:
                chosen = _choice(sku, SKUS, "--sku")
                sku_now = properties.get("sku", {})
                properties["sku"] = {**sku_now, "name": chosen, "tier": sku_tier(chosen)}
            if capacity is not None:
                properties.setdefault("sku", {})["capacity"] = capacity
            if min_capacity is not None or max_capacity is not None:
                bounds = properties.get("autoscaleConfiguration") or {}
                if min_capacity is not None:
                    bounds["minCapacity"] = min_capacity
                if max_capacity is not None:
                    bounds["maxCapacity"] = max_capacity
                properties["autoscaleConfiguration"] = bounds
                properties.get("sku", {}).pop("capacity", None)
            if http2 is not None:
                properties["enableHttp2"] = _enabled(http2, "--http2")
            if enable_fips is not None:
                properties["enableFips"] = enable_fips
            if custom_error_pages is not None:
                properties["customErrorConfigurations"] = [
                    {"statusCode": status, "customErrorPageUrl": url}
                    for status, url in _pairs(custom_error_pages, "--custom-error-pages").items()
                ]
            if tags is not None:
                document["tags"] = tag_values(tags)
            if waf_policy is not None:
                link = policy_ref(edit.gateway, waf_policy, "--waf-policy")
                if link is None:
                    properties.pop("firewallPolicy", None)
                else:
                    properties["firewallPolicy"] = link
            for assignment in set_ or ():
                set_value(document, assignment)
            for group in add or ():
                list_path, *values = group.split(GROUP_SEPARATOR)
                add_item(document, list_path, values)
            for group in remove or ():
                target, *index = group.split(GROUP_SEPARATOR)
                remove_item(document, target, index[0] if index else None)

        result = edit_gateway(api, resource_group, name, change, no_wait=no_wait)
        if not no_wait:
            emit(result, output, query)


def register_wait(app: typer.Typer) -> None:
    @app.command("wait", cls=AzCommand)
    def wait(
        resource_group: ResourceGroup,
        name: Name,
        created: Annotated[
            bool,
            typer.Option("--created", help="Until it exists with provisioningState Succeeded."),
        ] = False,
        updated: Annotated[
            bool, typer.Option("--updated", help="Until provisioningState is Succeeded.")
        ] = False,
        deleted: Annotated[bool, typer.Option("--deleted", help="Until it is gone.")] = False,
        exists: Annotated[bool, typer.Option("--exists", help="Until it exists.")] = False,
        custom: Annotated[
            str | None,
            typer.Option(
                help="Until this JMESPath query over the gateway (as 'show' prints it) is "
                "true, e.g. \"operationalState=='Stopped'\"."
            ),
        ] = None,
        interval: Annotated[
            int, typer.Option(min=1, help="Seconds between two reads of the gateway.")
        ] = 30,
        timeout: Annotated[
            int, typer.Option(min=1, help="Seconds to wait before giving up (exit 1).")
        ] = 3600,
        subscription: Subscription = None,
        server: Server = None,
    ) -> None:
        """Wait until a condition on the gateway holds (after a --no-wait command). Prints
        nothing; exit 0 once it holds.

        Example: appgw wait -g myResourceGroup -n myAppGateway --updated --interval 5
        """
        conditions = [created, updated, deleted, exists, custom is not None]
        if conditions.count(True) != 1:
            fail("give one of --created, --updated, --deleted, --exists or --custom", 2)
        if custom is not None:
            try:
                compiled = jmespath.compile(custom)
            except jmespath.exceptions.JMESPathError as error:
                fail(f"--custom: {error}", 2)
        api = Api.connect(server, subscription)
        path = api.gateway_path(resource_group, name)
        deadline = time.monotonic() + timeout
        while True:
            response = api.call("GET", path, allow=(404,))
            if response.status_code == 404:
                if deleted:
                    return
                if updated:  # az: nothing to wait for on a gateway that does not exist
                    api.call("GET", path)
            else:
                gateway = flatten(response.json())
                state = gateway.get("provisioningState")
                if state == "Failed" and (created or updated):
                    fail(f"the gateway's provisioningState is {state}")
                if (
                    exists
                    or ((created or updated) and state == "Succeeded")
                    or (custom is not None and compiled.search(gateway))
                ):
                    return
            if time.monotonic() + interval > deadline:
                fail(f"--timeout: the condition did not hold within {timeout} seconds")
            time.sleep(interval)


def identity_app() -> typer.Typer:
    """az's `identity` group: appgw has no managed identities (Azure uses them to read Key
    Vault), so assign and remove refuse their --identity by name and show prints none."""
    identity = typer.Typer(
        help="Managed identities (not supported: upload certificates instead).",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    for verb in ("assign", "remove"):

        def change(
            resource_group: ResourceGroup,
            name: Name,
            identity_id: Identity = None,
            subscription: Subscription = None,
            server: Server = None,
        ) -> None:
            fail(f"--identity: {IDENTITY_REFUSAL}", 2)

        change.__doc__ = (
            f"Not supported: appgw has no managed identities.\n\nExample: appgw identity {verb} "
            "-g myResourceGroup -n myAppGateway --identity myIdentity"
        )
        identity.command(verb, cls=AzCommand)(change)

    @identity.command("show", cls=AzCommand)
    def show(
        resource_group: ResourceGroup,
        name: Name,
        subscription: Subscription = None,
        server: Server = None,
        output: Output = "json",
        query: Query = None,
    ) -> None:
        """Show the gateway's managed identity: appgw gateways have none, so nothing is printed.

        Example: appgw identity show -g myResourceGroup -n myAppGateway
        """
        api = Api.connect(server, subscription)
        gateway = api.call("GET", api.gateway_path(resource_group, name)).json()
        emit(gateway.get("identity"), output, query)

    return identity


def _choice(value: str, choices: tuple[str, ...], flag: str) -> str:
    for choice in choices:
        if choice.casefold() == value.casefold():
            return choice
    fail(f"{flag} {value!r}: use one of {', '.join(choices)}", 2)


def _enabled(value: str | None, flag: str) -> bool | None:
    if value is None:
        return None
    return _choice(value, ("Enabled", "Disabled"), flag) == "Enabled"


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    return key_values(values, flag, require_value=True)
