"""Create application gateway: Azure's wizard tabs (spec §5.1) as sections of one form, with the
default names of spec §5.4. The gateway is the quick-create document (as `appgw create` makes
it) of what the form says, in one PUT through the service with If-None-Match "*"."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from appgw.control.service import Caller, ServiceError
from appgw.hostnames import is_ip_address
from appgw.model.ids import (
    GATEWAY_NAME,
    RESOURCE_GROUP_NAME,
    SUBSCRIPTION_ID,
    GatewayId,
    parse_child_ref,
)
from appgw.model.quick_create import ListenerCertificate, QuickCreate, quick_create_document
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
PORTAL_REQUEST_TIMEOUT = 20  # seconds; what Azure's portal proposes (az's is 30)

TIERS = (
    ("Standard_v2", "Standard V2"),
    ("WAF_v2", "WAF V2"),
    ("Standard", "Standard (v1)"),
    ("WAF", "WAF (v1)"),
)
V1_TIERS = ("Standard", "WAF")
# Standard (v1) comes in sizes (sku.name Standard_Small...); v2 has none. Azure preselects Medium.
V1_SIZES = (("Small", "Small"), ("Medium", "Medium"), ("Large", "Large"))
MIN_TARGET_ROWS = 4

DEFAULTS: dict[str, str] = {
    "subscription": "default",
    "resource_group": "",
    "gateway_name": "",
    "region": "local",
    "tier": "Standard_v2",
    "size": "Medium",
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
    "size": tuple(value for value, _label in V1_SIZES),
    "frontend_type": ("Public", "Private"),
    "listener_protocol": ("Http", "Https"),
    "listener_type": ("Basic", "MultiSite"),
    "settings_protocol": ("Http", "Https"),
    "well_known": ("yes", "no"),
}


@dataclass
class Wizard:
    """The form as entered (never passwords or files) and where each target row went."""

    values: dict[str, str]
    targets: list[str]
    errors: FormErrors = field(default_factory=FormErrors)
    target_rows: list[int] = field(default_factory=list)  # backendAddresses[i] -> row

    @property
    def v2(self) -> bool:
        return self.values["tier"] not in V1_TIERS

    def port_field(self, prefix: str) -> str:
        protocol = self.values[f"{prefix}_protocol"]
        return f"{prefix}_port_{'https' if protocol == 'Https' else 'http'}"


def register(router: APIRouter, portal: Portal) -> None:
    @router.get(URL)
    def wizard_page(request: Request) -> Response:
        session = portal.session(request)
        wizard = Wizard(dict(DEFAULTS), [])
        return _page(portal, request, session, wizard)

    @router.post(URL)
    async def wizard_create(request: Request) -> Response:
        session = portal.session(request)
        form = await portal.form(request, session)
        # The uploads are read and the gateway is written in a worker thread: both block.
        return await run_in_threadpool(_create, portal, request, session, form)


def _create(portal: Portal, request: Request, session: Session, form: FormData) -> Response:
    wizard = _read(form)
    pfx = upload(form, "cert_file")
    cer = upload(form, "backend_cer")
    gateway_id = _gateway_id(wizard)
    options = _options(wizard, form, pfx, cer)
    if wizard.errors or gateway_id is None or options is None:
        return _page(portal, request, session, wizard, status=400)
    caller = Caller(session.caller, request.client.host if request.client else None)
    try:
        portal.service.put(
            gateway_id, quick_create_document(gateway_id, options), caller, if_none_match="*"
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
        sizes=V1_SIZES,
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


def _gateway_id(wizard: Wizard) -> GatewayId | None:
    """The gateway the Basics tab names, or None when a part is missing or malformed."""
    subscription = _required(wizard, "subscription", "a subscription")
    group = _required(wizard, "resource_group", "a resource group")
    name = _required(wizard, "gateway_name", "a name for the application gateway")
    for field_name, rule, value in (
        ("subscription", SUBSCRIPTION_ID, subscription),
        ("resource_group", RESOURCE_GROUP_NAME, group),
        ("gateway_name", GATEWAY_NAME, name),
    ):
        if value and rule.problem(value):
            wizard.errors.add(field_name, f"The {rule.what} has {rule.words}.")
    gateway_id = GatewayId(subscription, group, name)
    return gateway_id if gateway_id.is_valid else None


def _options(
    wizard: Wizard, form: FormData, pfx: bytes | None, cer: bytes | None
) -> QuickCreate | None:
    """The quick-create inputs the other tabs describe, or None when the form itself is
    incomplete (errors say why)."""
    v = wizard.values
    _required(wizard, "region", "a region")
    if v["tier"] == "WAF" and v["size"] == "Small":  # Azure has no WAF_Small
        wizard.errors.add("size", "WAF (v1) comes in sizes Medium and Large; choose one.")
    capacity = _whole(wizard, "capacity", "instance count")
    listener_port = _whole(wizard, wizard.port_field("listener"), "port")
    settings_port = _whole(wizard, wizard.port_field("settings"), "backend port")
    # v1 evaluates rules in list order: as az does, a priority is kept on v2 only.
    priority = _whole(wizard, "priority", "priority") if wizard.v2 else None
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
        if address and not is_ip_address(address):
            wizard.errors.add("private_ip", f"'{address}' is not an IPv4 or IPv6 address.")

    https = v["listener_protocol"] == "Https"
    if https and pfx is None:
        wizard.errors.add("cert_file", "Choose the PFX certificate file of the listener.")
    hosts: tuple[str, ...] = ()
    if v["listener_type"] == "MultiSite":
        hosts = tuple(h.strip() for h in v["host_name"].split(",") if h.strip())
        if not hosts:
            wizard.errors.add("host_name", "Enter the host name this listener serves.")

    servers: list[str] = []
    if v["pool_empty"] != "yes":
        for row, target in enumerate(wizard.targets):
            if target:
                wizard.target_rows.append(row)
                servers.append(target)
        if not servers:
            wizard.errors.add(
                "targets",
                "Add at least one target (IP address or FQDN), or choose "
                "'Add backend pool without targets'.",
            )

    # v1 trusts no well-known CA: it allow-lists the backend's own certificate, so HTTPS to the
    # backend needs one whatever the (v2-only) well-known choice says.
    own_ca = v["settings_protocol"] == "Https" and (v["well_known"] == "no" or not wizard.v2)
    if own_ca:
        if cer is None:
            wizard.errors.add(
                "backend_cer",
                "Choose the CER certificate file."
                if wizard.v2
                else "Choose the backend's certificate (.cer): Standard (v1) connects over "
                "HTTPS only to a backend whose certificate is uploaded.",
            )
        _required(wizard, "backend_cer_name", "a name for the certificate")

    if wizard.errors or capacity is None or listener_port is None or settings_port is None:
        return None
    certificate = None
    if https and pfx is not None:
        password = form.get("cert_password")
        certificate = ListenerCertificate(
            v["cert_name"] or f"{v['gateway_name']}SslCert",
            base64.b64encode(pfx).decode(),
            password if isinstance(password, str) else "",
        )
    backend_certificates: tuple[tuple[str, str], ...] = ()
    if own_ca and cer is not None:
        backend_certificates = ((v["backend_cer_name"], certificate_field(cer)),)
    tier = v["tier"]
    return QuickCreate(
        location=v["region"],
        sku=tier if wizard.v2 else f"{tier}_{v['size']}",
        capacity=capacity,
        frontend_port=listener_port,
        certificate=certificate,
        host_names=hosts,
        servers=tuple(servers),
        http_settings_port=settings_port,
        http_settings_protocol=v["settings_protocol"],
        request_timeout=PORTAL_REQUEST_TIMEOUT,
        trusted_root_certificates=backend_certificates if wizard.v2 else (),
        authentication_certificates=() if wizard.v2 else backend_certificates,
        priority=priority,
        private_ip_address=None if public else v["private_ip"],
        public_ip_address=v["public_ip_name"] or None,
        backend_pool_name=v["pool_name"],
        http_settings_name=v["settings_name"],
        listener_name=v["listener_name"],
        rule_name=v["rule_name"],
    )


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
        if resource.casefold() == gateway_id.key:
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
        child = parse_child_ref(resource)
        if child is None or child.gateway_key != gateway_id.key:
            return None
        collection = child.collection.casefold()
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
