"""`appgw import` and `appgw export`: move a gateway between Azure and appgw as JSON.

Import takes what Azure gives: `az network application-gateway show` output (flattened, with
`resourceGroup` next to every id), the REST API's GET body, or an ARM template holding a
`Microsoft.Network/applicationGateways` resource. Azure never returns a listener certificate's
private key, so each one must be given as a PFX file; nothing is stored until all are there.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from appgw.cli.az_shape import AZ_ONLY, GATEWAY_ENVELOPE, unflatten
from appgw.cli.client import API_VERSION, DEFAULT_SUBSCRIPTION, Api, await_operation, emit, fail
from appgw.cli.options import AzCommand, NoWait, Output, Query, ResourceGroup, Server, Subscription
from appgw.model.arm_template import (
    Deployment,
    Template,
    TemplateError,
    escape_literal,
    parse_assignment,
    parse_parameters_file,
    quote,
)
from appgw.model.document import certificate_field
from appgw.model.ids import GATEWAY_TYPE, GatewayId

TEMPLATE_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
NAME_PARAMETER = "applicationGatewayName"
GATEWAY_ID_VARIABLE = "applicationGatewayId"

# Template resource fields that only steer the deployment (ordering, documentation, the API
# version of the body), not the gateway.
_DEPLOYMENT_ONLY = {"apiVersion", "type", "dependsOn", "comments", "metadata", "condition"}
# Read-only fields the model accepts but a new gateway must not inherit: the server computes
# its own resourceGuid and reads publicCertData off the PFX it is given.
_SERVER_COMPUTED = ("resourceGuid",)


class TransferError(Exception):
    """A file that cannot be imported; the message names the file (or the field)."""


# --- reading Azure's JSON -----------------------------------------------------------------------


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")  # files saved by PowerShell start with a BOM
    except OSError as error:
        raise TransferError(f"{path}: cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise TransferError(f"{path}: not a UTF-8 text file") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise TransferError(f"{path}: not valid JSON ({error})") from None


def is_template(raw: dict[str, Any]) -> bool:
    return "$schema" in raw or "resources" in raw


@dataclass
class Source:
    """The gateway found in a file, still in the file's names and ids."""

    resource: dict[str, Any]
    source_id: str | None  # the gateway id the file's references use, if known
    name: str | None
    skipped: list[str] = field(default_factory=list)  # other template resources, by type


def gateway_from_azure_json(raw: Any, path: Path) -> Source:
    """The object from `az network application-gateway show` or the REST API's GET."""
    if isinstance(raw, list):
        raise TransferError(
            f"{path}: a list of {len(raw)} item(s), not one gateway; export a single gateway "
            "(az network application-gateway show) or pick one with jq '.[0]'"
        )
    if not isinstance(raw, dict):
        raise TransferError(f"{path}: expected a JSON object, found {type(raw).__name__}")
    kind = raw.get("type")
    if kind is not None and str(kind).casefold() != GATEWAY_TYPE.casefold():
        raise TransferError(f"{path}: a '{kind}' resource, not an application gateway")
    if not isinstance(raw.get("properties"), dict):
        if not any(key in raw for key in ("sku", "gatewayIPConfigurations", "frontendPorts")):
            raise TransferError(
                f"{path}: neither an application gateway (no 'properties', no 'sku') nor an ARM "
                "template (no '$schema', no 'resources')"
            )
        raw = unflatten(raw)
    resource = copy.deepcopy(raw)
    source_id = resource.get("id") if isinstance(resource.get("id"), str) else None
    name = resource.get("name") if isinstance(resource.get("name"), str) else None
    return Source(resource, source_id, name)


@dataclass
class TemplateInput:
    values: dict[str, Any] = field(default_factory=dict)
    resource_name: str | None = None


def gateway_from_template(
    raw: dict[str, Any], path: Path, deployment: Deployment, given: TemplateInput
) -> Source:
    try:
        template = Template(raw, deployment, given.values)
        found = list(template.resources_of_type(GATEWAY_TYPE))
        if not found:
            raise TransferError(f"{path}: the template has no '{GATEWAY_TYPE}' resource")
        named = [
            (where, template.evaluate(r.get("name"), f"{where}.name"), r) for where, r in found
        ]
        if given.resource_name is not None:
            named = [n for n in named if str(n[1]).casefold() == given.resource_name.casefold()]
            if not named:
                raise TransferError(
                    f"{path}: no application gateway named '{given.resource_name}' in the template"
                )
        if len(named) > 1:
            names = ", ".join(str(n[1]) for n in named)
            raise TransferError(
                f"{path}: the template has {len(named)} application gateways ({names}); choose "
                "one with --resource-name"
            )
        where, name, resource = named[0]
        if "copy" in resource:
            raise TransferError(f"{path}: {where}.copy: resource copy loops are not supported")
        if (
            "condition" in resource
            and template.evaluate(resource["condition"], f"{where}.condition") is not True
        ):
            raise TransferError(f"{path}: {where}.condition is false: the gateway is not deployed")
        evaluated = {
            key: template.evaluate(value, f"{where}.{key}")
            for key, value in resource.items()
            if key in GATEWAY_ENVELOPE | {"properties", "sku"}
        }
        ignored = sorted(
            set(resource) - GATEWAY_ENVELOPE - _DEPLOYMENT_ONLY - {"sku", "properties"}
        )
        if ignored:
            raise TransferError(
                f"{path}: {where}: appgw cannot deploy a resource with "
                f"{', '.join(repr(k) for k in ignored)}"
            )
    except TemplateError as error:
        raise TransferError(f"{path}: {error}") from None
    evaluated["name"] = name
    # Older templates put the SKU beside `properties`; the resource itself takes it inside.
    sku = evaluated.pop("sku", None)
    if sku is not None:
        evaluated.setdefault("properties", {}).setdefault("sku", sku)
    source_id = f"/subscriptions/{deployment.subscription_id}/resourceGroups/" + (
        f"{deployment.resource_group}/providers/{GATEWAY_TYPE}/{name}"
    )
    others: list[Any] = raw["resources"] if isinstance(raw.get("resources"), list) else []
    skipped = sorted(
        {
            str(r.get("type"))
            for r in others
            if isinstance(r, dict) and str(r.get("type")).casefold() != GATEWAY_TYPE.casefold()
        }
    )
    return Source(evaluated, source_id, str(name), skipped)


# --- making it this server's gateway --------------------------------------------------------------


def rewrite_ids(value: Any, source: Source, target: GatewayId) -> Any:
    """Every reference into the source gateway, pointed at the target gateway instead."""
    if source.source_id is not None and GatewayId.parse(source.source_id) is not None:
        prefix = re.escape(source.source_id)
    else:  # no id in the file: any subscription and group, the file's gateway name
        name = re.escape(source.name or "")
        prefix = (
            rf"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
            rf"Microsoft\.Network/applicationGateways/{name}"
        )
    pattern = re.compile(rf"^{prefix}(?=/|$)", re.IGNORECASE)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return pattern.sub(lambda _m: str(target), node, count=1)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(item) for key, item in node.items()}
        return node

    return walk(value)


def without_nulls(value: Any) -> Any:
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


def desired_state(
    resource: dict[str, Any], gateway_id: GatewayId, source: Path | str
) -> tuple[dict[str, Any], list[str]]:
    """The gateway as a client would PUT it: read-only fields gone, and fields the model does
    not know dropped (returned by JSON path so the caller can say exactly what was lost).
    Anything else the model refuses is refused here, as the server would, naming `source`."""
    from pydantic import ValidationError

    from appgw.model.diagnostics import ValidationFailed
    from appgw.model.resource import ApplicationGateway
    from appgw.model.wire import canonical_document, parse_gateway

    document = without_nulls(resource)
    document.pop(AZ_ONLY, None)
    dropped: list[str] = []
    try:
        ApplicationGateway.model_validate(document)
    except ValidationError as error:
        extras = [e["loc"] for e in error.errors() if e["type"] == "extra_forbidden"]
        for loc in sorted(extras, key=len, reverse=True):
            dropped.append(_drop(document, loc))
    try:
        gateway = parse_gateway(document, gateway_id)
    except ValidationFailed as failed:
        lines = "\n".join(f"  - ({d.code}) {d.message}" for d in failed.diagnostics)
        raise TransferError(f"{source}: not a valid application gateway:\n{lines}") from None
    canonical = canonical_document(gateway)
    for key in _SERVER_COMPUTED:
        canonical["properties"].pop(key, None)
    # canonical_document drops the PFX and password; a template may carry them (parameters).
    given = {
        str(c.get("name", "")).casefold(): c.get("properties", {})
        for c in document["properties"].get("sslCertificates", [])
    }
    for cert in canonical["properties"].get("sslCertificates", []):
        props = cert.setdefault("properties", {})
        props.pop("publicCertData", None)
        for key in ("data", "password"):
            value = given.get(cert["name"].casefold(), {}).get(key)
            if value is not None:
                props[key] = value
    return canonical, sorted(dropped)


def _drop(document: dict[str, Any], loc: tuple[str | int, ...]) -> str:
    node: Any = document
    label = ""
    for element in loc[:-1]:
        node = node[element]
        if isinstance(element, int):
            name = node.get("name") if isinstance(node, dict) else None
            label += f"[{name}]" if isinstance(name, str) else f"[{element}]"
        else:
            label += f".{element}" if label else str(element)
    node.pop(loc[-1], None)
    return f"{label}.{loc[-1]}" if label else str(loc[-1])


@dataclass
class SecretFiles:
    """Certificates given on the command line, by folded certificate name."""

    ssl: dict[str, tuple[Path, str]] = field(default_factory=dict)  # PFX file and password
    trusted_root: dict[str, Path] = field(default_factory=dict)


def missing_secrets(
    document: dict[str, Any], ssl_names: set[str], root_names: set[str]
) -> list[str]:
    """One line per certificate whose secret the file lacks and the command line does not give."""
    problems = []
    properties = document.get("properties", {})
    for cert in properties.get("sslCertificates", []):
        name, props = cert.get("name", "?"), cert.get("properties", {})
        if props.get("data") or str(name).casefold() in ssl_names:
            continue
        where = (
            f"Azure keeps it in Key Vault ({props['keyVaultSecretId']}), which appgw does not read"
            if props.get("keyVaultSecretId")
            else "Azure's JSON carries only the public certificate, not the private key"
        )
        problems.append(f"sslCertificates '{name}': {where}; give --ssl-cert {name}=FILE.pfx")
    for cert in properties.get("trustedRootCertificates", []):
        name, props = cert.get("name", "?"), cert.get("properties", {})
        if props.get("data") or str(name).casefold() in root_names:
            continue
        problems.append(
            f"trustedRootCertificates '{name}': Azure keeps it in Key Vault, which appgw does "
            f"not read; give --trusted-root-cert {name}=FILE.cer"
        )
    return problems


def unknown_names(
    document: dict[str, Any], collection: str, given: dict[str, tuple[str, str]]
) -> list[str]:
    """The names given on the command line that the document has no entry for."""
    children = document["properties"].get(collection, [])
    present = {str(c.get("name", "")).casefold() for c in children}
    return sorted(name for folded, (name, _value) in given.items() if folded not in present)


def attach_secrets(document: dict[str, Any], files: SecretFiles) -> None:
    for cert in document["properties"].get("sslCertificates", []):
        given = files.ssl.get(str(cert.get("name", "")).casefold())
        if given is None:
            continue
        pfx, password = given
        props = cert.setdefault("properties", {})
        for key in ("keyVaultSecretId", "publicCertData"):
            props.pop(key, None)
        props["data"] = certificate_field(_read_bytes(pfx))
        props["password"] = password
    for cert in document["properties"].get("trustedRootCertificates", []):
        root = files.trusted_root.get(str(cert.get("name", "")).casefold())
        if root is not None:
            props = cert.setdefault("properties", {})
            props.pop("keyVaultSecretId", None)
            props["data"] = certificate_field(_read_bytes(root))


def masked(document: dict[str, Any]) -> dict[str, Any]:
    """The document for --dry-run: the PFX and its password never reach the screen."""
    shown = copy.deepcopy(document)
    for cert in shown["properties"].get("sslCertificates", []):
        props = cert.get("properties", {})
        for key in ("data", "password"):
            if key in props:
                props[key] = "(hidden)"
    return shown


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TransferError(f"{path}: cannot read it ({error.strerror or error})") from None
    if not data.strip():
        raise TransferError(f"{path}: the file is empty")
    return data


# --- exporting ----------------------------------------------------------------------------------


def secrets_in(view: dict[str, Any]) -> list[str]:
    """Secret fields present in a GET body (there must be none)."""
    found = []
    for cert in view.get("properties", {}).get("sslCertificates", []):
        for key in ("data", "password"):
            if key in cert.get("properties", {}):
                found.append(f"sslCertificates[{cert.get('name')}].properties.{key}")
    return found


def as_template(view: dict[str, Any]) -> dict[str, Any]:
    """An ARM template deploying this gateway, its name a parameter (secrets left out: import
    asks for each listener certificate's PFX)."""
    gateway_id = GatewayId.parse(str(view.get("id", "")))
    if gateway_id is None:
        raise TransferError(f"the API returned an unexpected gateway id {view.get('id')!r}")
    document, dropped = desired_state(view, gateway_id, "the API's answer")
    for path in dropped:
        typer.echo(f"appgw: warning: left out {path}: appgw does not know it", err=True)
    prefix = re.compile(rf"^{re.escape(str(gateway_id))}(?=/|$)", re.IGNORECASE)

    def expressions(node: Any) -> Any:
        if isinstance(node, str):
            match = prefix.match(node)
            if match is None:
                return escape_literal(node)
            rest = node[match.end() :]
            if not rest:
                return f"[variables('{GATEWAY_ID_VARIABLE}')]"
            return f"[concat(variables('{GATEWAY_ID_VARIABLE}'), {quote(rest)})]"
        if isinstance(node, list):
            return [expressions(item) for item in node]
        if isinstance(node, dict):
            return {key: expressions(item) for key, item in node.items()}
        return node

    resource: dict[str, Any] = {
        "type": GATEWAY_TYPE,
        "apiVersion": API_VERSION,
        "name": f"[parameters('{NAME_PARAMETER}')]",
        "location": "[parameters('location')]",
    }
    for key in ("tags", "zones", "identity"):
        if document.get(key):
            resource[key] = expressions(document[key])
    resource["properties"] = expressions(document["properties"])
    return {
        "$schema": TEMPLATE_SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {
            NAME_PARAMETER: {"type": "string", "defaultValue": gateway_id.name},
            "location": {"type": "string", "defaultValue": document.get("location", "")},
        },
        "variables": {
            GATEWAY_ID_VARIABLE: f"[resourceId('{GATEWAY_TYPE}', parameters('{NAME_PARAMETER}'))]"
        },
        "resources": [resource],
    }


# --- commands -----------------------------------------------------------------------------------


def _pairs(option: str, values: list[str]) -> dict[str, tuple[str, str]]:
    """NAME=VALUE options by folded name (ARM compares child names ignoring case)."""
    pairs: dict[str, tuple[str, str]] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            fail(f"{option} '{value}': expected NAME=VALUE", 2)
        pairs[name.casefold()] = (name, rest)
    return pairs


def _passwords(
    files: dict[str, tuple[str, str]], given: dict[str, tuple[str, str]], from_stdin: bool
) -> dict[str, tuple[Path, str]]:
    """A password per --ssl-cert: --ssl-cert-password, else a stdin line (in --ssl-cert order),
    else a prompt on a terminal."""
    unknown = sorted(given[k][0] for k in set(given) - set(files))
    if unknown:
        fail(f"--ssl-cert-password for {', '.join(unknown)} without a matching --ssl-cert", 2)
    if given:
        typer.echo(
            "appgw: warning: --ssl-cert-password exposes the password in the process list and "
            "shell history; prefer --ssl-cert-password-stdin or the prompt",
            err=True,
        )
    result: dict[str, tuple[Path, str]] = {}
    for folded, (name, path) in files.items():
        if folded in given:
            password = given[folded][1]
        elif from_stdin:
            line = sys.stdin.readline()
            if not line:
                fail(f"--ssl-cert-password-stdin: no password line for certificate '{name}'", 2)
            password = line.rstrip("\r\n")
        elif sys.stdin.isatty():
            password = typer.prompt(f"Password of {path} ({name})", hide_input=True, err=True)
        else:
            fail(
                f"no password for --ssl-cert {name}: standard input is not a terminal; use "
                "--ssl-cert-password-stdin",
                2,
            )
        result[folded] = (Path(path), password)
    return result


def _current_etag(api: Api, resource_group: str, name: str) -> str | None:
    """The gateway's etag, or None when there is no such gateway."""
    response = api.call("GET", api.gateway_path(resource_group, name), allow=(404,))
    if response.status_code == 404:
        return None
    return str(response.json()["etag"])


def register(app: typer.Typer) -> None:
    @app.command("import", cls=AzCommand)
    def import_command(
        file: Annotated[
            Path,
            typer.Argument(
                help="az network application-gateway show output, a REST GET body, or an ARM "
                "template.",
                show_default=False,
            ),
        ],
        resource_group: ResourceGroup,
        name: Annotated[
            str | None,
            typer.Option("--name", "-n", help="Gateway name here (default: the file's)."),
        ] = None,
        ssl_cert: Annotated[
            list[str],
            typer.Option(
                "--ssl-cert",
                help="NAME=FILE.pfx: the PFX of the listener certificate NAME; repeat per "
                "certificate.",
                show_default=False,
            ),
        ] = [],  # noqa: B006  (typer needs a literal default for a repeatable option)
        ssl_cert_password: Annotated[
            list[str],
            typer.Option(
                "--ssl-cert-password",
                help="NAME=PASSWORD. Discouraged (process list, shell history): prefer "
                "--ssl-cert-password-stdin or the prompt.",
                show_default=False,
            ),
        ] = [],  # noqa: B006
        ssl_cert_password_stdin: Annotated[
            bool,
            typer.Option(
                "--ssl-cert-password-stdin",
                help="Read the PFX passwords from standard input, one line per --ssl-cert in "
                "the order given.",
            ),
        ] = False,
        trusted_root_cert: Annotated[
            list[str],
            typer.Option(
                "--trusted-root-cert",
                help="NAME=FILE.cer for a trusted root certificate Azure keeps in Key Vault.",
                show_default=False,
            ),
        ] = [],  # noqa: B006
        parameters: Annotated[
            list[str],
            typer.Option(
                "--parameters",
                "-p",
                help="For a template: @params.json (an ARM parameters file) or NAME=VALUE; "
                "later ones win.",
                show_default=False,
            ),
        ] = [],  # noqa: B006
        resource_name: Annotated[
            str | None,
            typer.Option(help="For a template with several gateways: the one to import."),
        ] = None,
        location: Annotated[
            str | None,
            typer.Option(
                help="For a template: what resourceGroup().location means; for Azure's JSON: "
                "the location instead of the file's."
            ),
        ] = None,
        overwrite: Annotated[
            bool,
            typer.Option(help="Replace a gateway of that name (default: refuse)."),
        ] = False,
        dry_run: Annotated[
            bool,
            typer.Option(
                help="Check the document by the server's rules and print it (secrets "
                "hidden); store nothing."
            ),
        ] = False,
        no_wait: NoWait = False,
        subscription: Subscription = None,
        server: Server = None,
        output: Output = "json",
        query: Query = None,
    ) -> None:
        """Create a gateway from Azure's JSON or an ARM template, ids rewritten to this server.

        Listener certificates come without their private key from Azure: give each as
        --ssl-cert NAME=FILE.pfx, or the import lists the missing ones and stores nothing.

        Example: appgw import gw.json -g myResourceGroup --ssl-cert appGatewaySslCert=site.pfx
          --ssl-cert-password-stdin < password.txt

        Example: appgw import azuredeploy.json -g myResourceGroup --location westeurope
          -p @azuredeploy.parameters.json -p environment=prod
        """
        target_subscription = subscription or DEFAULT_SUBSCRIPTION  # the option reads the env
        try:
            raw = read_json(file)
            if isinstance(raw, dict) and is_template(raw):
                deployment = Deployment(target_subscription, resource_group, location)
                values = _template_values(parameters)
                source = gateway_from_template(
                    raw, file, deployment, TemplateInput(values, resource_name)
                )
            else:
                if parameters:
                    fail(f"{file}: --parameters applies to ARM templates only", 2)
                source = gateway_from_azure_json(raw, file)
                if location is not None:
                    source.resource["location"] = location
            target_name = name or source.name
            if not target_name:
                fail(f"{file}: the gateway has no name; give --name", 2)
            target = GatewayId(target_subscription, resource_group, target_name)
            resource = rewrite_ids(source.resource, source, target)
            resource["name"] = target_name
            resource.pop("id", None)
            document, dropped = desired_state(resource, target, file)
            ssl_files = _pairs("--ssl-cert", ssl_cert)
            root_files = _pairs("--trusted-root-cert", trusted_root_cert)
            roots = {k: Path(v) for k, (_name, v) in root_files.items()}
            for option, collection, given in (
                ("--ssl-cert", "sslCertificates", ssl_files),
                ("--trusted-root-cert", "trustedRootCertificates", root_files),
            ):
                unknown = unknown_names(document, collection, given)
                if unknown:
                    fail(
                        f"{option}: {file} has no {collection} entry named {', '.join(unknown)}", 2
                    )
            problems = missing_secrets(document, set(ssl_files), set(roots))
            if problems:
                lines = "\n".join(f"  - {p}" for p in problems)
                fail(
                    f"{file}: {len(problems)} certificate(s) lack their secret; nothing was "
                    f"imported:\n{lines}"
                )
            if source.skipped:
                typer.echo(
                    "appgw: note: only the application gateway is deployed; the template's "
                    f"other resources are not: {', '.join(source.skipped)}",
                    err=True,
                )
            for path in dropped:
                typer.echo(f"appgw: warning: dropped {path}: appgw does not know it", err=True)
            pfx = _passwords(
                ssl_files, _pairs("--ssl-cert-password", ssl_cert_password), ssl_cert_password_stdin
            )
            attach_secrets(document, SecretFiles(pfx, roots))
        except TransferError as error:
            fail(str(error), 2)
        if dry_run:
            problems = _rule_problems(document, target)
            if problems:
                lines = "\n".join(f"  - {p}" for p in problems)
                fail(f"{file}: the server would refuse this gateway:\n{lines}")
            emit(masked(document), output, query, as_az=False)
            return
        api = Api.connect(server, subscription)
        path = api.gateway_path(resource_group, target_name)
        etag = _current_etag(api, resource_group, target_name)
        if etag is not None and not overwrite:
            fail(
                f"gateway '{target_name}' already exists in resource group '{resource_group}'; "
                "add --overwrite to replace it, or choose another --name"
            )
        headers = {"If-Match": etag} if etag is not None else {"If-None-Match": "*"}
        response = api.call("PUT", path, body=document, headers=headers)
        if no_wait:
            return
        await_operation(api, response)
        emit(response.json(), output, query)

    @app.command("export", cls=AzCommand)
    def export_command(
        resource_group: ResourceGroup,
        name: Annotated[str, typer.Option("--name", "-n", help="Application gateway name.")],
        file: Annotated[
            Path | None,
            typer.Option("--file", "-f", help="Write here instead of standard output."),
        ] = None,
        template: Annotated[
            bool,
            typer.Option(
                "--template", help="An ARM template with the gateway name as a parameter."
            ),
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Overwrite --file if it exists.")
        ] = False,
        subscription: Subscription = None,
        server: Server = None,
    ) -> None:
        """Write a gateway as Azure-shaped JSON (as the REST API returns it), without secrets.

        `appgw import` takes the result back; each listener certificate's PFX must be given
        again then, as Azure never returns private keys.

        Example: appgw export -g myResourceGroup -n myAppGateway --file gw.json
        """
        api = Api.connect(server, subscription)
        view = api.call("GET", api.gateway_path(resource_group, name)).json()
        leaked = secrets_in(view)
        if leaked:
            fail(f"the API returned secret fields ({', '.join(leaked)}); refusing to write them")
        try:
            result = as_template(view) if template else view
        except TransferError as error:
            fail(str(error))
        text = json.dumps(result, indent=2) + "\n"
        if file is None:
            typer.echo(text, nl=False)
            return
        if file.exists() and not force:
            fail(f"{file} exists; add --force to overwrite it", 2)
        try:
            file.write_text(text)
        except OSError as error:
            fail(f"{file}: cannot write it ({error.strerror or error})")
        certs = [c["name"] for c in view.get("properties", {}).get("sslCertificates", [])]
        note = f"; on import give --ssl-cert for {', '.join(certs)}" if certs else ""
        typer.echo(f"Wrote {file}{note}", err=True)


def _rule_problems(document: dict[str, Any], target: GatewayId) -> list[str]:
    """What the server's cross-field rules say about the document (certificate contents are
    checked by the server alone)."""
    from appgw.model.validate import validate_gateway
    from appgw.model.wire import parse_gateway

    found = validate_gateway(parse_gateway(document, target), target)
    return [f"({d.code}) {d.message}" for d in found]


def _template_values(parameters: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in parameters:
        if item.startswith("@"):
            path = Path(item[1:])
            try:
                values.update(parse_parameters_file(read_json(path)))
            except TemplateError as error:
                raise TransferError(f"{path}: {error}") from None
        else:
            try:
                key, value = parse_assignment(item)
            except TemplateError as error:
                raise TransferError(f"--parameters {error}") from None
            values = {k: v for k, v in values.items() if k.casefold() != key.casefold()}
            values[key] = value
    return values
