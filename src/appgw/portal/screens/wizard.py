"""Create application gateway: Azure's wizard tabs (spec §5.1) as sections of one form, with the
default names of spec §5.4. One PUT through the service with If-None-Match "*"."""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from appgw.control.service import Caller, ServiceError
from appgw.model.ids import GatewayId
from appgw.portal.common import (
    FormErrors,
    Portal,
    certificate_field,
    gateway_url,
    redirect,
    text,
    upload,
)
from appgw.portal.sessions import Session

URL = "/portal/create"
NETWORK = "Microsoft.Network"

TIERS = (
    ("Standard_v2", "Standard V2"),
    ("WAF_v2", "WAF V2"),
    ("Standard", "Standard (v1)"),
)
V1_SKU = "Standard_Medium"  # the v1 size the portal preselected
MIN_TARGET_ROWS = 4

DEFAULTS: dict[str, str] = {
    "subscription": "default",
    "resource_group": "",
    "gateway_name": "",
    "region": "local",
    "tier": "Standard_v2",
    "capacity": "2",
    "frontend_type": "Private",
    "public_ip_name": "",
    "private_ip": "127.0.0.1",
    "pool_name": "appGatewayBackendPool",
    "pool_empty": "",
    "rule_name": "rule1",
    "priority": "100",
    "listener_name": "appGatewayHttpListener",
    "listener_protocol": "Http",
    "listener_port_http": "80",
    "listener_port_https": "443",
    "cert_name": "",
    "listener_type": "Basic",
    "host_name": "",
    "settings_name": "appGatewayBackendHttpSettings",
    "settings_protocol": "Http",
    "settings_port_http": "80",
    "settings_port_https": "443",
    "well_known": "yes",
    "backend_cer_name": "",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "tier": tuple(value for value, _label in TIERS),
    "frontend_type": ("Public", "Private"),
    "listener_protocol": ("Http", "Https"),
    "listener_type": ("Basic", "MultiSite"),
    "settings_protocol": ("Http", "Https"),
    "well_known": ("yes", "no"),
}

_GATEWAY_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")
_RESOURCE_GROUP = re.compile(r"^[-\w.()]{1,90}$")
_SUBSCRIPTION = re.compile(r"^[-\w.]{1,64}$")


@dataclass
class Wizard:
    """The form as entered (never passwords or files) and where each target row went."""

    values: dict[str, str]
    targets: list[str]
    errors: FormErrors = field(default_factory=FormErrors)
    target_rows: list[int] = field(default_factory=list)  # backendAddresses[i] -> row

    @property
    def v2(self) -> bool:
        return self.values["tier"] != "Standard"

    def port_field(self, prefix: str) -> str:
        protocol = self.values[f"{prefix}_protocol"]
        return f"{prefix}_port_{'https' if protocol == 'Https' else 'http'}"


def register(app: FastAPI, portal: Portal) -> None:
    @app.get(URL, include_in_schema=False, response_class=HTMLResponse)
    def wizard_page(request: Request) -> Response:
        session = portal.session(request)
        wizard = Wizard(dict(DEFAULTS), [])
        return _page(portal, request, session, wizard)

    @app.post(URL, include_in_schema=False, response_class=HTMLResponse)
    async def wizard_create(request: Request) -> Response:
        session = portal.session(request)
        form = await portal.form(request, session)
        wizard = _read(form)
        pfx = await upload(form, "cert_file")
        cer = await upload(form, "backend_cer")
        document = _document(wizard, form, pfx, cer)
        if wizard.errors or document is None:
            return _page(portal, request, session, wizard, status=400)
        values = wizard.values
        gateway_id = GatewayId(
            values["subscription"], values["resource_group"], values["gateway_name"]
        )
        caller = Caller(session.caller, request.client.host if request.client else None)
        try:
            await run_in_threadpool(
                portal.service.put, gateway_id, document, caller, if_none_match="*"
            )
        except ServiceError as error:
            _explain(wizard, gateway_id, error)
            return _page(portal, request, session, wizard, status=error.status)
        session.flash.append(
            f"Created application gateway '{gateway_id.name}' in resource group "
            f"'{gateway_id.resource_group}'."
        )
        return redirect(gateway_url(gateway_id, "overview"))


def _page(
    portal: Portal, request: Request, session: Session, wizard: Wizard, *, status: int = 200
) -> Response:
    filled = [target for target in wizard.targets if target]
    rows = filled + [""] * max(MIN_TARGET_ROWS - len(filled), 1)
    return portal.render(
        request,
        "wizard.html",
        session,
        status=status,
        values=wizard.values,
        errors=wizard.errors,
        targets=rows,
        tiers=TIERS,
        action=URL,
    )


# --- reading the form -----------------------------------------------------------------------


def _read(form: FormData) -> Wizard:
    values = {key: text(form, key, default) for key, default in DEFAULTS.items()}
    for key, allowed in CHOICES.items():
        if values[key] not in allowed:
            values[key] = DEFAULTS[key]
    values["pool_empty"] = "yes" if values["pool_empty"] == "yes" else ""
    targets: list[str] = []
    index = 0
    while f"target_{index}" in form and index < 1200:
        targets.append(text(form, f"target_{index}"))
        index += 1
    return Wizard(values, targets)


def _whole(wizard: Wizard, key: str, label: str) -> int | None:
    raw = wizard.values[key]
    if not raw:
        wizard.errors.add(key, f"Enter the {label}.")
        return None
    try:
        return int(raw)
    except ValueError:
        wizard.errors.add(key, f"The {label} must be a whole number.")
        return None


def _required(wizard: Wizard, key: str, label: str) -> str:
    value = wizard.values[key]
    if not value:
        wizard.errors.add(key, f"Enter {label}.")
    return value


def _document(
    wizard: Wizard, form: FormData, pfx: bytes | None, cer: bytes | None
) -> dict[str, Any] | None:
    """The gateway to PUT, or None when the form itself is incomplete (errors say why)."""
    v = wizard.values
    subscription = _required(wizard, "subscription", "a subscription")
    group = _required(wizard, "resource_group", "a resource group")
    name = _required(wizard, "gateway_name", "a name for the application gateway")
    if subscription and not _SUBSCRIPTION.match(subscription):
        wizard.errors.add("subscription", "Use letters, digits, '-', '_' and '.' only.")
    if group and not _RESOURCE_GROUP.match(group):
        wizard.errors.add(
            "resource_group",
            "A resource group name has 1-90 letters, digits, '-', '_', '.', '(' and ')'.",
        )
    if name and not _GATEWAY_NAME.match(name):
        wizard.errors.add(
            "gateway_name",
            "The name has 1-80 characters: letters, digits, '_', '.' and '-'; it starts with a "
            "letter or digit and ends with a letter, digit or '_'.",
        )
    _required(wizard, "region", "a region")
    capacity = _whole(wizard, "capacity", "instance count")
    listener_port = _whole(wizard, wizard.port_field("listener"), "port")
    settings_port = _whole(wizard, wizard.port_field("settings"), "backend port")
    priority: int | None = None
    if v["priority"] or wizard.v2:
        priority = _whole(wizard, "priority", "priority")
    for key, label in (
        ("pool_name", "a name for the backend pool"),
        ("rule_name", "a rule name"),
        ("listener_name", "a listener name"),
        ("settings_name", "a name for the backend settings"),
    ):
        _required(wizard, key, label)
    public = v["frontend_type"] == "Public"
    if not public:
        address = _required(wizard, "private_ip", "the private IP address")
        if address:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                wizard.errors.add("private_ip", f"'{address}' is not an IPv4 or IPv6 address.")

    https = v["listener_protocol"] == "Https"
    if https and pfx is None:
        wizard.errors.add("cert_file", "Choose the PFX certificate file of the listener.")
    multi = v["listener_type"] == "MultiSite"
    hosts = [h.strip() for h in v["host_name"].split(",") if h.strip()]
    if multi and not hosts:
        wizard.errors.add("host_name", "Enter the host name this listener serves.")

    addresses: list[dict[str, str]] = []
    if v["pool_empty"] != "yes":
        for row, target in enumerate(wizard.targets):
            if not target:
                continue
            wizard.target_rows.append(row)
            try:
                ipaddress.ip_address(target)
                addresses.append({"ipAddress": target})
            except ValueError:
                addresses.append({"fqdn": target})
        if not addresses:
            wizard.errors.add(
                "targets",
                "Add at least one target (IP address or FQDN), or choose "
                "'Add backend pool without targets'.",
            )

    backend_https = v["settings_protocol"] == "Https"
    own_ca = backend_https and v["well_known"] == "no"
    if own_ca:
        if cer is None:
            wizard.errors.add("backend_cer", "Choose the CER certificate file.")
        _required(wizard, "backend_cer_name", "a name for the certificate")

    if wizard.errors:
        return None
    gid = GatewayId(subscription, group, name)

    def ref(collection: str, child: str) -> dict[str, str]:
        return {"id": gid.child(collection, child)}

    frontend = "appGatewayFrontendIP" if public else "appGatewayPrivateFrontendIP"
    frontend_props: dict[str, Any]
    if public:
        public_ip = v["public_ip_name"] or f"{name}-pip"
        frontend_props = {
            "privateIPAllocationMethod": "Dynamic",
            "publicIPAddress": {
                "id": f"/subscriptions/{subscription}/resourceGroups/{group}/providers/"
                f"{NETWORK}/publicIPAddresses/{public_ip}"
            },
        }
    else:
        frontend_props = {
            "privateIPAddress": v["private_ip"],
            "privateIPAllocationMethod": "Static",
        }
    tier = v["tier"]
    sku = {"name": V1_SKU if tier == "Standard" else tier, "tier": tier, "capacity": capacity}

    listener: dict[str, Any] = {
        "frontendIPConfiguration": ref("frontendIPConfigurations", frontend),
        "frontendPort": ref("frontendPorts", "appGatewayFrontendPort"),
        "protocol": v["listener_protocol"],
        "requireServerNameIndication": https and multi,
    }
    ssl_certificates: list[dict[str, Any]] = []
    if https and pfx is not None:
        cert_name = v["cert_name"] or f"{name}SslCert"
        cert_props = {"data": base64.b64encode(pfx).decode()}
        password = form.get("cert_password")
        if isinstance(password, str) and password:
            cert_props["password"] = password
        ssl_certificates.append({"name": cert_name, "properties": cert_props})
        listener["sslCertificate"] = ref("sslCertificates", cert_name)
    if multi:
        if len(hosts) == 1 and "*" not in hosts[0] and "?" not in hosts[0]:
            listener["hostName"] = hosts[0]
        else:
            listener["hostNames"] = hosts

    settings: dict[str, Any] = {
        "port": settings_port,
        "protocol": v["settings_protocol"],
        "cookieBasedAffinity": "Disabled",
        "requestTimeout": 20,
        "pickHostNameFromBackendAddress": False,
    }
    trusted_roots: list[dict[str, Any]] = []
    authentication: list[dict[str, Any]] = []
    if own_ca and cer is not None:
        ca_name = v["backend_cer_name"]
        cert = {"name": ca_name, "properties": {"data": certificate_field(cer)}}
        if wizard.v2:
            trusted_roots.append(cert)
            settings["trustedRootCertificates"] = [ref("trustedRootCertificates", ca_name)]
        else:
            authentication.append(cert)
            settings["authenticationCertificates"] = [ref("authenticationCertificates", ca_name)]

    rule: dict[str, Any] = {
        "ruleType": "Basic",
        "httpListener": ref("httpListeners", v["listener_name"]),
        "backendAddressPool": ref("backendAddressPools", v["pool_name"]),
        "backendHttpSettings": ref("backendHttpSettingsCollection", v["settings_name"]),
    }
    if priority is not None:
        rule["priority"] = priority
    return {
        "location": v["region"],
        "tags": {},
        "properties": {
            "sku": sku,
            "gatewayIPConfigurations": [
                {
                    "name": frontend,
                    "properties": {
                        "subnet": {
                            "id": f"/subscriptions/{subscription}/resourceGroups/{group}/providers/"
                            f"{NETWORK}/virtualNetworks/{name}Vnet/subnets/default"
                        }
                    },
                }
            ],
            "sslCertificates": ssl_certificates,
            "authenticationCertificates": authentication,
            "trustedRootCertificates": trusted_roots,
            "frontendIPConfigurations": [{"name": frontend, "properties": frontend_props}],
            "frontendPorts": [
                {"name": "appGatewayFrontendPort", "properties": {"port": listener_port}}
            ],
            "backendAddressPools": [
                {"name": v["pool_name"], "properties": {"backendAddresses": addresses}}
            ],
            "backendHttpSettingsCollection": [{"name": v["settings_name"], "properties": settings}],
            "httpListeners": [{"name": v["listener_name"], "properties": listener}],
            "probes": [],
            "requestRoutingRules": [{"name": v["rule_name"], "properties": rule}],
        },
    }


# --- the service's answer, next to the fields --------------------------------------------------


def _explain(wizard: Wizard, gateway_id: GatewayId, error: ServiceError) -> None:
    if error.status == 412:
        wizard.errors.add(
            "gateway_name",
            f"An application gateway named '{gateway_id.name}' already exists in resource group "
            f"'{gateway_id.resource_group}'. Choose another name.",
        )
        return
    if not error.details:
        wizard.errors.add(None, error.message)
        return
    mapping = _mapping(wizard, gateway_id)
    for detail in error.details:
        resource, _, path = detail.get("target", "").partition("#")
        wizard.errors.add(mapping(resource, path), detail["message"])


def _mapping(wizard: Wizard, gateway_id: GatewayId) -> Callable[[str, str], str | None]:
    gid = str(gateway_id).casefold()
    listener_port = wizard.port_field("listener")
    settings_port = wizard.port_field("settings")

    def under(path: str, prefix: str) -> bool:
        return path == prefix or path.startswith((prefix + ".", prefix + "["))

    def target_row(path: str) -> str:
        match = re.match(r"properties\.backendAddresses\[(\d+)\]", path)
        if match and int(match[1]) < len(wizard.target_rows):
            return f"target_{wizard.target_rows[int(match[1])]}"
        return "targets"

    def mapping(resource: str, path: str) -> str | None:
        folded = resource.casefold()
        if folded == gid:
            if path == "location":
                return "region"
            if path == "name":
                return "gateway_name"
            if under(path, "properties.sku.capacity"):
                return "capacity"
            if under(path, "properties.sku") or under(path, "properties.autoscaleConfiguration"):
                return "tier"
            if under(path, "properties.frontendPorts"):
                return listener_port
            return None
        if not folded.startswith(gid + "/"):
            return None
        collection, _, _child = folded[len(gid) + 1 :].partition("/")
        if collection == "sslcertificates":
            if under(path, "properties.password"):
                return "cert_password"
            if under(path, "properties.data"):
                return "cert_file"
            return "cert_name"
        if collection in ("trustedrootcertificates", "authenticationcertificates"):
            return "backend_cer" if under(path, "properties.data") else "backend_cer_name"
        if collection == "frontendipconfigurations":
            if under(path, "properties.privateIPAddress"):
                return "private_ip"
            if under(path, "properties.publicIPAddress"):
                return "public_ip_name"
            return None
        if collection == "frontendports":
            return listener_port
        if collection == "backendaddresspools":
            return target_row(path) if under(path, "properties.backendAddresses") else "pool_name"
        if collection == "backendhttpsettingscollection":
            if under(path, "properties.port"):
                return settings_port
            if under(path, "properties.protocol"):
                return "settings_protocol"
            if under(path, "properties.trustedRootCertificates") or under(
                path, "properties.authenticationCertificates"
            ):
                return "backend_cer"
            return "settings_name" if path == "name" else None
        if collection == "httplisteners":
            if under(path, "properties.hostName") or under(path, "properties.hostNames"):
                return "host_name"
            if under(path, "properties.sslCertificate"):
                return "cert_file"
            if under(path, "properties.protocol"):
                return "listener_protocol"
            if under(path, "properties.frontendPort"):
                return listener_port
            return "listener_name" if path == "name" else None
        if collection == "requestroutingrules":
            if under(path, "properties.priority"):
                return "priority"
            return "rule_name" if path == "name" else None
        return None

    return mapping
