"""Build Azure-shaped gateway documents for tests, piece by piece, with Azure's default names."""

from __future__ import annotations

from typing import Any

from helpers import gateway_id

Doc = dict[str, Any]


class GatewayBuilder:
    def __init__(
        self, name: str = "appgw", *, v1: bool = False, address: str = "127.0.0.1"
    ) -> None:
        self.name = name
        self.gid = gateway_id(name)
        self.v1 = v1
        sku = (
            {"name": "Standard_Medium", "tier": "Standard", "capacity": 1}
            if v1
            else {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 1}
        )
        self.props: Doc = {
            "sku": sku,
            "gatewayIPConfigurations": [
                {
                    "name": "appGatewayIpConfig",
                    "properties": {
                        "subnet": {
                            "id": "/subscriptions/sub1/resourceGroups/rg1/providers/"
                            "Microsoft.Network/virtualNetworks/vnet/subnets/default"
                        }
                    },
                }
            ],
            "frontendIPConfigurations": [
                {
                    "name": "appGatewayFrontendIP",
                    "properties": {
                        "privateIPAddress": address,
                        "privateIPAllocationMethod": "Static",
                    },
                }
            ],
            "frontendPorts": [],
            "sslCertificates": [],
            "trustedRootCertificates": [],
            "authenticationCertificates": [],
            "backendAddressPools": [],
            "backendHttpSettingsCollection": [],
            "httpListeners": [],
            "requestRoutingRules": [],
            "urlPathMaps": [],
            "redirectConfigurations": [],
            "probes": [],
        }
        if v1:
            self.props["sslPolicy"] = {
                "policyType": "Predefined",
                "policyName": "AppGwSslPolicy20170401S",
            }

    def ref(self, collection: str, name: str) -> Doc:
        return {"id": f"{self.gid}/{collection}/{name}"}

    def port(self, port: int) -> str:
        name = f"port_{port}"
        if all(p["name"] != name for p in self.props["frontendPorts"]):
            self.props["frontendPorts"].append({"name": name, "properties": {"port": port}})
        return name

    def certificate(self, name: str, pfx_b64: str, password: str) -> GatewayBuilder:
        self.props["sslCertificates"].append(
            {"name": name, "properties": {"data": pfx_b64, "password": password}}
        )
        return self

    def trusted_root(self, name: str, cer_b64: str) -> GatewayBuilder:
        self.props["trustedRootCertificates"].append(
            {"name": name, "properties": {"data": cer_b64}}
        )
        return self

    def authentication_certificate(self, name: str, cer_b64: str) -> GatewayBuilder:
        self.props["authenticationCertificates"].append(
            {"name": name, "properties": {"data": cer_b64}}
        )
        return self

    def pool(self, name: str, *members: str) -> GatewayBuilder:
        addresses = [
            {"ipAddress": m} if m.replace(".", "").isdigit() else {"fqdn": m} for m in members
        ]
        self.props["backendAddressPools"].append(
            {"name": name, "properties": {"backendAddresses": addresses}}
        )
        return self

    def settings(
        self, name: str, port: int, protocol: str = "Http", **extra: Any
    ) -> GatewayBuilder:
        properties: Doc = {"port": port, "protocol": protocol, "cookieBasedAffinity": "Disabled"}
        for key in ("trustedRootCertificates", "authenticationCertificates"):
            if key in extra:
                extra[key] = [self.ref(key, n) for n in extra[key]]
        properties.update(extra)
        self.props["backendHttpSettingsCollection"].append({"name": name, "properties": properties})
        return self

    def listener(
        self,
        name: str,
        port: int,
        protocol: str = "Http",
        *,
        certificate: str | None = None,
        host_name: str | None = None,
        host_names: list[str] | None = None,
        require_sni: bool = False,
    ) -> GatewayBuilder:
        properties: Doc = {
            "frontendIPConfiguration": self.ref("frontendIPConfigurations", "appGatewayFrontendIP"),
            "frontendPort": self.ref("frontendPorts", self.port(port)),
            "protocol": protocol,
        }
        if certificate:
            properties["sslCertificate"] = self.ref("sslCertificates", certificate)
        if host_name:
            properties["hostName"] = host_name
        if host_names:
            properties["hostNames"] = host_names
        if require_sni:
            properties["requireServerNameIndication"] = True
        self.props["httpListeners"].append({"name": name, "properties": properties})
        return self

    def rule(
        self,
        name: str,
        listener: str,
        *,
        pool: str | None = None,
        settings: str | None = None,
        redirect: str | None = None,
        path_map: str | None = None,
        priority: int | None = None,
        rewrite_set: str | None = None,
    ) -> GatewayBuilder:
        properties: Doc = {
            "ruleType": "PathBasedRouting" if path_map else "Basic",
            "httpListener": self.ref("httpListeners", listener),
        }
        if pool:
            properties["backendAddressPool"] = self.ref("backendAddressPools", pool)
        if settings:
            properties["backendHttpSettings"] = self.ref("backendHttpSettingsCollection", settings)
        if redirect:
            properties["redirectConfiguration"] = self.ref("redirectConfigurations", redirect)
        if path_map:
            properties["urlPathMap"] = self.ref("urlPathMaps", path_map)
        if rewrite_set:
            properties["rewriteRuleSet"] = self.ref("rewriteRuleSets", rewrite_set)
        if priority is None and not self.v1:
            priority = 100 * (len(self.props["requestRoutingRules"]) + 1)
        if priority is not None:
            properties["priority"] = priority
        self.props["requestRoutingRules"].append({"name": name, "properties": properties})
        return self

    def path_map(
        self, name: str, default: tuple[str, str], rules: list[tuple[str, list[str], str, str]]
    ) -> GatewayBuilder:
        self.props["urlPathMaps"].append(
            {
                "name": name,
                "properties": {
                    "defaultBackendAddressPool": self.ref("backendAddressPools", default[0]),
                    "defaultBackendHttpSettings": self.ref(
                        "backendHttpSettingsCollection", default[1]
                    ),
                    "pathRules": [
                        {
                            "name": rule_name,
                            "properties": {
                                "paths": paths,
                                "backendAddressPool": self.ref("backendAddressPools", pool),
                                "backendHttpSettings": self.ref(
                                    "backendHttpSettingsCollection", settings
                                ),
                            },
                        }
                        for rule_name, paths, pool, settings in rules
                    ],
                },
            }
        )
        return self

    def redirect(
        self,
        name: str,
        *,
        target_listener: str | None = None,
        target_url: str | None = None,
        kind: str = "Permanent",
        include_path: bool = True,
        include_query: bool = True,
    ) -> GatewayBuilder:
        properties: Doc = {
            "redirectType": kind,
            "includePath": include_path,
            "includeQueryString": include_query,
        }
        if target_listener:
            properties["targetListener"] = self.ref("httpListeners", target_listener)
        if target_url:
            properties["targetUrl"] = target_url
        self.props["redirectConfigurations"].append({"name": name, "properties": properties})
        return self

    def rewrite_set(self, name: str, rules: list[Doc]) -> GatewayBuilder:
        """Rules in Azure's shape: {"name", "ruleSequence", "conditions", "actionSet"}."""
        self.props.setdefault("rewriteRuleSets", []).append(
            {"name": name, "properties": {"rewriteRules": rules}}
        )
        return self

    def build(self) -> Doc:
        return {"location": "local", "properties": self.props}
