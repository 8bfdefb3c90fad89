"""The gateway that `az network application-gateway create` builds from its flags.

One frontend IP, one frontend port, one pool, one backend settings, one listener and one rule,
with Azure's default names (spec §5.4) and defaults (§6.1). `appgw create`, `appgw serve --demo`
and the portal's Create wizard all start from it, so a quick-created gateway looks the same
whichever way it was made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appgw.hostnames import is_ip_address
from appgw.model.document import ref
from appgw.model.ids import GatewayId
from appgw.model.waf_rule_sets import default_configuration

PUBLIC_FRONTEND_IP = "appGatewayFrontendIP"
PRIVATE_FRONTEND_IP = "appGatewayPrivateFrontendIP"
BACKEND_POOL = "appGatewayBackendPool"
FRONTEND_PORT = "appGatewayFrontendPort"
HTTP_LISTENER = "appGatewayHttpListener"
BACKEND_HTTP_SETTINGS = "appGatewayBackendHttpSettings"
ROUTING_RULE = "rule1"

V2_SKUS = ("Standard_v2", "WAF_v2", "Basic")
# az's tier for each SKU name: the part before the size for v1, the name itself for v2.
_TIERS = {
    "Standard_Small": "Standard",
    "Standard_Medium": "Standard",
    "Standard_Large": "Standard",
    "WAF_Medium": "WAF",
    "WAF_Large": "WAF",
    "Standard_v2": "Standard_v2",
    "WAF_v2": "WAF_v2",
    "Basic": "Basic",
}
SKUS = tuple(_TIERS)


def sku_tier(sku: str) -> str:
    return _TIERS[sku]


@dataclass(frozen=True)
class ListenerCertificate:
    """The PFX given with --cert-file, as the API takes it."""

    name: str
    data: str  # base64 PFX
    password: str


@dataclass(frozen=True)
class QuickCreate:
    """az create's flags; each default is az's own (spec §6.1)."""

    location: str = "local"  # appgw has no regions; the field is kept for Azure tooling
    sku: str = "Standard_Medium"
    capacity: int | None = 2  # az: 2 instances unless autoscale bounds are given
    min_capacity: int | None = None
    max_capacity: int | None = None
    frontend_port: int | None = None  # None: 443 with a certificate, else 80
    certificate: ListenerCertificate | None = None
    # A multi-site listener's host names (the portal's); none: a basic listener, as az makes.
    host_names: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    http_settings_port: int = 80
    http_settings_protocol: str = "Http"
    http_settings_host_name: str | None = None
    request_timeout: int = 30  # az's; Azure's portal proposes 20
    trusted_root_certificates: tuple[tuple[str, str], ...] = ()  # (name, base64 data), v2
    # (name, base64 data): the backend's own certificate a v1 gateway trusts (the portal's).
    authentication_certificates: tuple[tuple[str, str], ...] = ()
    cookie_based_affinity: str = "Disabled"
    connection_draining_timeout: int = 0  # 0: draining off (Azure then stores 1 s, disabled)
    priority: int | None = None  # written for v2 SKUs only, as az does
    private_ip_address: str | None = None
    public_ip_address: str | None = None
    vnet_name: str | None = None  # az: <gateway>Vnet
    subnet: str = "default"
    http2: bool | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # The children's names: Azure's defaults, which the portal lets the operator change.
    backend_pool_name: str = BACKEND_POOL
    http_settings_name: str = BACKEND_HTTP_SETTINGS
    listener_name: str = HTTP_LISTENER
    rule_name: str = ROUTING_RULE

    @property
    def v2(self) -> bool:
        return self.sku in V2_SKUS


def quick_create_document(gateway: GatewayId, options: QuickCreate) -> dict[str, Any]:
    """The PUT body of the gateway `options` describe."""
    if options.sku not in _TIERS:
        raise ValueError(f"--sku {options.sku!r}: use one of {', '.join(SKUS)}")

    def child(collection: str, name: str) -> dict[str, str]:
        return ref(gateway, collection, name)

    network = f"/subscriptions/{gateway.subscription}/resourceGroups/{gateway.resource_group}"
    network += "/providers/Microsoft.Network"
    if options.private_ip_address:
        frontend_name = PRIVATE_FRONTEND_IP
        frontend: dict[str, Any] = {
            "privateIPAddress": options.private_ip_address,
            "privateIPAllocationMethod": "Static",
        }
    else:
        frontend_name = PUBLIC_FRONTEND_IP
        public_ip = options.public_ip_address or f"{gateway.name}PublicIp"
        frontend = {
            "privateIPAllocationMethod": "Dynamic",
            "publicIPAddress": {"id": f"{network}/publicIPAddresses/{public_ip}"},
        }
    vnet = options.vnet_name or f"{gateway.name}Vnet"
    sku: dict[str, Any] = {"name": options.sku, "tier": sku_tier(options.sku)}
    autoscale = options.min_capacity is not None or options.max_capacity is not None
    if options.capacity is not None and not autoscale:
        sku["capacity"] = options.capacity
    settings: dict[str, Any] = {
        "port": options.http_settings_port,
        "protocol": options.http_settings_protocol,
        "cookieBasedAffinity": options.cookie_based_affinity,
        "requestTimeout": options.request_timeout,
        "connectionDraining": {
            "enabled": options.connection_draining_timeout > 0,
            "drainTimeoutInSec": max(options.connection_draining_timeout, 1),
        },
    }
    if options.http_settings_host_name:
        settings["hostName"] = options.http_settings_host_name
    for collection, certificates in (
        ("trustedRootCertificates", options.trusted_root_certificates),
        ("authenticationCertificates", options.authentication_certificates),
    ):
        if certificates:
            settings[collection] = [child(collection, name) for name, _ in certificates]
    listener: dict[str, Any] = {
        "frontendIPConfiguration": child("frontendIPConfigurations", frontend_name),
        "frontendPort": child("frontendPorts", FRONTEND_PORT),
        "protocol": "Https" if options.certificate else "Http",
    }
    if options.certificate:
        listener["sslCertificate"] = child("sslCertificates", options.certificate.name)
    if options.host_names:
        hosts = options.host_names
        if len(hosts) == 1 and "*" not in hosts[0] and "?" not in hosts[0]:
            listener["hostName"] = hosts[0]
        else:
            listener["hostNames"] = list(hosts)
        # A multi-site HTTPS listener picks its certificate by SNI.
        listener["requireServerNameIndication"] = options.certificate is not None
    rule: dict[str, Any] = {
        "ruleType": "Basic",
        "httpListener": child("httpListeners", options.listener_name),
        "backendAddressPool": child("backendAddressPools", options.backend_pool_name),
        "backendHttpSettings": child("backendHttpSettingsCollection", options.http_settings_name),
    }
    if options.priority is not None and options.v2:
        rule["priority"] = options.priority
    port = options.frontend_port
    if port is None:
        port = 443 if options.certificate else 80
    properties: dict[str, Any] = {
        "sku": sku,
        "gatewayIPConfigurations": [
            {
                "name": frontend_name,
                "properties": {
                    "subnet": {"id": f"{network}/virtualNetworks/{vnet}/subnets/{options.subnet}"}
                },
            }
        ],
        "frontendIPConfigurations": [{"name": frontend_name, "properties": frontend}],
        "frontendPorts": [{"name": FRONTEND_PORT, "properties": {"port": port}}],
        "sslCertificates": [
            {
                "name": options.certificate.name,
                "properties": {
                    "data": options.certificate.data,
                    "password": options.certificate.password,
                },
            }
        ]
        if options.certificate
        else [],
        "trustedRootCertificates": [
            {"name": name, "properties": {"data": data}}
            for name, data in options.trusted_root_certificates
        ],
        "backendAddressPools": [
            {
                "name": options.backend_pool_name,
                "properties": {"backendAddresses": [_address(s) for s in options.servers]},
            }
        ],
        "backendHttpSettingsCollection": [
            {"name": options.http_settings_name, "properties": settings}
        ],
        "httpListeners": [{"name": options.listener_name, "properties": listener}],
        "requestRoutingRules": [{"name": options.rule_name, "properties": rule}],
    }
    if options.authentication_certificates:
        properties["authenticationCertificates"] = [
            {"name": name, "properties": {"data": data}}
            for name, data in options.authentication_certificates
        ]
    if autoscale:
        bounds: dict[str, int] = {"minCapacity": options.min_capacity or 0}
        if options.max_capacity is not None:
            bounds["maxCapacity"] = options.max_capacity
        properties["autoscaleConfiguration"] = bounds
    if options.http2 is not None:
        properties["enableHttp2"] = options.http2
    if options.sku.startswith("WAF"):
        # A WAF SKU filters with its inline configuration (appgw has no WAF policies yet):
        # Azure's defaults, detecting only, until the operator chooses Prevention.
        properties["webApplicationFirewallConfiguration"] = default_configuration(options.sku)
    return {"location": options.location, "tags": dict(options.tags), "properties": properties}


def _address(server: str) -> dict[str, str]:
    """az --servers: IP-looking values become ipAddress, others fqdn."""
    return {"ipAddress": server} if is_ip_address(server) else {"fqdn": server}
