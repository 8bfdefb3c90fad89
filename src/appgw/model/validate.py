"""Cross-object rules of an application gateway, as Azure enforces them (spec §1, §2.2, §4, §8).

`validate_gateway` is pure: the same document gives the same diagnostics. Certificate contents
are checked by `appgw.control.certificates`, which needs the secrets the document never holds.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from urllib.parse import urlsplit

from appgw.hostnames import is_ip_address
from appgw.model.diagnostics import Diagnostic
from appgw.model.enums import (
    V1_SKU_NAMES,
    CookieBasedAffinity,
    ProbeProtocol,
    Protocol,
    RuleType,
    SkuTier,
    SslPolicyType,
    SslProtocol,
)
from appgw.model.ids import GatewayId, is_arm_id, parse_child_ref
from appgw.model.resource import (
    ApplicationGateway,
    ChildResource,
    HttpListener,
    SslPolicy,
    SubResource,
)
from appgw.model.ssl_policies import (
    PREDEFINED_POLICIES,
    REQUIRED_ONE_OF_SUITES,
    RETIRED_CUSTOM_SUITES,
    TLS13_CIPHER_SUITES,
)
from appgw.model.validate_profiles import check_ssl_profiles
from appgw.model.validate_rewrite import check_rewrite_rule_sets
from appgw.model.validate_waf import check_waf_configuration

# Azure's per-gateway limits (spec §8); "why" is always the same: a gateway built for Azure must
# fit on appgw and vice versa, so the numbers are Azure's.
LIMITS: dict[str, int] = {
    "frontendIPConfigurations": 4,
    "frontendPorts": 100,
    "backendAddressPools": 100,
    "backendHttpSettingsCollection": 100,
    "httpListeners": 200,
    "requestRoutingRules": 400,
    "sslCertificates": 100,
    "authenticationCertificates": 100,
    "trustedRootCertificates": 100,
    "redirectConfigurations": 100,
    "rewriteRuleSets": 400,
    "sslProfiles": 100,
    "trustedClientCertificates": 200,
    "urlPathMaps": 400,
    # Azure publishes no probe limit; one per backend setting is the practical ceiling.
    "probes": 100,
    "gatewayIPConfigurations": 1,
}
MAX_BACKEND_TARGETS_PER_POOL = 1200  # Azure: backend targets per pool
MAX_PATH_RULES_PER_MAP = 100  # Azure: path-based rules per URL map
MAX_HOST_NAMES_PER_LISTENER = 5  # Azure: host names per listener
MAX_PRIORITY = 20000  # Azure: rule priority 1-20000
MAX_V1_INSTANCES = 32  # Azure v1 instance limit
FRONTEND_PORT_MAX_V1 = 65502  # above are v1 management ports
FRONTEND_PORT_MAX_V2 = 65199  # above are v2 management ports
MAX_HOST_NAME_LENGTH = 253  # DNS name length limit (RFC 1035)
# Azure Resource Manager's tag limits: the same tags must be accepted by both.
MAX_TAGS = 50
MAX_TAG_NAME_LENGTH = 512
MAX_TAG_VALUE_LENGTH = 256
TAG_NAME_RESERVED = "<>%&\\?/"

_TARGET_FIELDS = ("backendAddressPool", "backendHttpSettings", "redirectConfiguration")
_DEFAULT_TARGET_FIELDS = (
    "defaultBackendAddressPool",
    "defaultBackendHttpSettings",
    "defaultRedirectConfiguration",
)

_HOST_CHARS = re.compile(r"^[A-Za-z0-9.*?-]+$")
_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_COOKIE_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")  # RFC 6265 token, bounded
_STATUS_RANGE = re.compile(r"^(\d{3})(?:-(\d{3}))?$")


def is_v1(gateway: ApplicationGateway) -> bool:
    sku = gateway.properties.sku
    return sku is not None and sku.name in V1_SKU_NAMES


def validate_gateway(gateway: ApplicationGateway, gateway_id: GatewayId) -> list[Diagnostic]:
    return _Validator(gateway, gateway_id).run()


def tag_problems(tags: dict[str, str], resource_id: str) -> list[Diagnostic]:
    """ARM's rules for a resource's tags (a PUT's and a PATCH's alike)."""
    found: list[Diagnostic] = []
    if len(tags) > MAX_TAGS:
        found.append(
            Diagnostic(
                "InvalidTagsCount",
                resource_id,
                "tags",
                f"{len(tags)} tags given; a resource has at most {MAX_TAGS}",
            )
        )
    for name, value in tags.items():
        where = f"tags.{name}"
        if not name.strip():
            found.append(Diagnostic("InvalidTagName", resource_id, where, "a tag needs a name"))
        elif len(name) > MAX_TAG_NAME_LENGTH:
            found.append(
                Diagnostic(
                    "InvalidTagNameLength",
                    resource_id,
                    where,
                    f"tag name '{name[:40]}...' has {len(name)} characters; "
                    f"at most {MAX_TAG_NAME_LENGTH} are allowed",
                )
            )
        elif any(c in TAG_NAME_RESERVED or ord(c) < 0x20 for c in name):
            found.append(
                Diagnostic(
                    "InvalidTagNameCharacters",
                    resource_id,
                    where,
                    f"tag name '{name}' has a reserved character "
                    f"({' '.join(TAG_NAME_RESERVED)}) or a control character",
                )
            )
        if len(value) > MAX_TAG_VALUE_LENGTH:
            found.append(
                Diagnostic(
                    "InvalidTagValueLength",
                    resource_id,
                    where,
                    f"the value of tag '{name[:40]}' has {len(value)} characters; "
                    f"at most {MAX_TAG_VALUE_LENGTH} are allowed",
                )
            )
    return found


class _Validator:
    def __init__(self, gateway: ApplicationGateway, gateway_id: GatewayId) -> None:
        self.gateway = gateway
        self.props = gateway.properties
        self.gid = gateway_id
        self.v1 = is_v1(gateway)
        self.found: list[Diagnostic] = []
        self.names: dict[str, set[str]] = defaultdict(set)

    def add(self, code: str, resource_id: str, field: str, text: str) -> None:
        self.found.append(Diagnostic(code, resource_id, field, text))

    def run(self) -> list[Diagnostic]:
        self.check_envelope()
        self.check_children_names()
        self.check_sku()
        self.check_unsupported()
        self.check_limits()
        self.check_frontends()
        self.check_certificates()
        self.check_pools()
        self.check_settings()
        self.check_probes()
        self.check_listeners()
        self.check_redirects()
        self.check_path_maps()
        self.check_rules()
        self.check_ssl_policies()
        check_rewrite_rule_sets(self)
        check_ssl_profiles(self)
        check_waf_configuration(self)
        return self.found

    # --- helpers ------------------------------------------------------------------------------

    def rid(self, collection: str, child: ChildResource) -> str:
        return self.gid.child(collection, child.name)

    def ref(
        self,
        owner: str,
        field: str,
        reference: SubResource | None,
        collection: str,
        *,
        required: bool = False,
    ) -> str | None:
        """Resolve a reference into this gateway; returns the target's folded name or None."""
        if reference is None:
            if required:
                self.add("MissingRequiredProperty", owner, field, f"'{field}' is required")
            return None
        target = parse_child_ref(reference.id)
        if target is None:
            if is_arm_id(reference.id):
                self.add(
                    "InvalidResourceReferenceType",
                    owner,
                    field,
                    f"'{reference.id}' is not a child of an application gateway; "
                    f"expected an id in '{collection}'",
                )
            else:
                self.add(
                    "LinkedInvalidPropertyId",
                    owner,
                    field,
                    f"'{reference.id}' is not a valid resource id; expected "
                    f"'{self.gid.child(collection, '<name>')}'",
                )
            return None
        if target.gateway_key != self.gid.key:
            self.add(
                "InvalidResourceReference",
                owner,
                field,
                f"'{reference.id}' belongs to another application gateway",
            )
            return None
        if target.collection.casefold() != collection.casefold():
            self.add(
                "InvalidResourceReferenceType",
                owner,
                field,
                f"'{reference.id}' points into '{target.collection}', expected '{collection}'",
            )
            return None
        name = target.name.casefold()
        if name not in self.names[collection]:
            self.add(
                "InvalidResourceReference",
                owner,
                field,
                f"'{reference.id}' refers to a {collection} entry that does not exist",
            )
            return None
        return name

    def external_id(self, owner: str, field: str, reference: SubResource | None) -> None:
        if reference is not None and not is_arm_id(reference.id):
            self.add(
                "LinkedInvalidPropertyId",
                owner,
                field,
                f"'{reference.id}' is not a valid resource id; expected an id starting "
                "with '/subscriptions/{subscriptionId}'",
            )

    def port_in_range(self, owner: str, field: str, port: int | None, upper: int) -> None:
        if port is not None and not 1 <= port <= upper:
            self.add(
                "ApplicationGatewayPortOutOfRange",
                owner,
                field,
                f"port {port} is outside 1-{upper}",
            )

    def require_v2(self, owner: str, field: str, code: str, what: str) -> None:
        if self.v1:
            self.add(code, owner, field, f"{what} requires a v2 SKU (Standard_v2 or WAF_v2)")

    # --- envelope and names -------------------------------------------------------------------

    def check_envelope(self) -> None:
        gid = str(self.gid)
        if (
            self.gateway.name is not None
            and self.gateway.name.casefold() != self.gid.name.casefold()
        ):
            self.add(
                "InvalidResourceName",
                gid,
                "name",
                f"the body names '{self.gateway.name}' but the URL names '{self.gid.name}'",
            )
        if self.gateway.id is not None and self.gateway.id.casefold() != self.gid.key:
            self.add("LinkedInvalidPropertyId", gid, "id", "the body's id differs from the URL's")
        if not self.gateway.location:
            self.add("LocationRequired", gid, "location", "a location is required")
        if self.props.sku is None or self.props.sku.name is None:
            self.add("MissingRequiredProperty", gid, "properties.sku.name", "the SKU is required")
        self.found += tag_problems(self.gateway.tags or {}, gid)

    def check_children_names(self) -> None:
        for collection in LIMITS:
            children: list[ChildResource] = getattr(self.props, _attr(collection))
            self._check_unique(collection, children, str(self.gid), f"properties.{collection}")
        for path_map in self.props.url_path_maps:
            owner = self.rid("urlPathMaps", path_map)
            self._check_unique(
                f"urlPathMaps/{path_map.name}/pathRules",
                path_map.properties.path_rules,
                owner,
                "properties.pathRules",
            )
            for rule in path_map.properties.path_rules:
                self._check_child_id(self.gid.path_rule(path_map.name, rule.name), rule)

    def _check_unique(
        self, collection: str, children: Iterable[ChildResource], owner: str, field: str
    ) -> None:
        seen = self.names[collection]
        for child in children:
            folded = child.name.casefold()
            if folded in seen:
                self.add(
                    "DuplicateResourceName",
                    owner,
                    field,
                    f"two entries are named '{child.name}'; names must be unique (ignoring case)",
                )
            seen.add(folded)
            if "/" not in collection:
                self._check_child_id(self.gid.child(collection, child.name), child)

    def _check_child_id(self, expected: str, child: ChildResource) -> None:
        if child.id is None or child.id.casefold() == expected.casefold():
            return
        if parse_child_ref(child.id) is None:
            self.add(
                "LinkedInvalidPropertyId",
                expected,
                "id",
                f"'{child.id}' is not a valid child resource id; expected '{expected}'",
            )
        else:
            self.add(
                "InvalidResourceId",
                expected,
                "id",
                f"'{child.id}' does not match the entry's name and collection; expected "
                f"'{expected}'",
            )

    # --- SKU and features -------------------------------------------------------------------------

    def check_sku(self) -> None:
        sku = self.props.sku
        gid = str(self.gid)
        if sku is None or sku.name is None:
            return
        expected_tier = (
            SkuTier(sku.name.value.split("_")[0]) if self.v1 else SkuTier(sku.name.value)
        )
        if sku.tier is not None and sku.tier != expected_tier:
            self.add(
                "ApplicationGatewaySkuTierMismatch",
                gid,
                "properties.sku.tier",
                f"tier '{sku.tier.value}' does not go with SKU '{sku.name.value}'; "
                f"expected '{expected_tier.value}'",
            )
        if self.v1:
            if sku.capacity is not None and not 1 <= sku.capacity <= MAX_V1_INSTANCES:
                self.add(
                    "ApplicationGatewayCapacityOutOfRange",
                    gid,
                    "properties.sku.capacity",
                    f"a v1 gateway has 1-{MAX_V1_INSTANCES} instances, not {sku.capacity}",
                )
            if self.props.autoscale_configuration is not None:
                self.require_v2(
                    gid,
                    "properties.autoscaleConfiguration",
                    "ApplicationGatewayAutoscaleRequiresV2Sku",
                    "autoscaling",
                )
        autoscale = self.props.autoscale_configuration
        if not self.v1 and autoscale is None and sku.capacity is not None and sku.capacity < 1:
            self.add(
                "ApplicationGatewayCapacityOutOfRange",
                gid,
                "properties.sku.capacity",
                "a v2 gateway without autoscaling needs 1-125 instances",
            )
        if (
            autoscale is not None
            and autoscale.max_capacity is not None
            and autoscale.max_capacity < autoscale.min_capacity
        ):
            self.add(
                "ApplicationGatewayCapacityOutOfRange",
                gid,
                "properties.autoscaleConfiguration.maxCapacity",
                "maxCapacity is below minCapacity",
            )

    def check_unsupported(self) -> None:
        gid = str(self.gid)
        unsupported: list[tuple[str, bool, str]] = [
            (
                "backendSettingsCollection",
                bool(self.props.backend_settings_collection),
                "TCP/TLS proxy settings",
            ),
            ("listeners", bool(self.props.listeners), "TCP/TLS listeners"),
            ("routingRules", bool(self.props.routing_rules), "TCP/TLS routing rules"),
            (
                "privateLinkConfigurations",
                bool(self.props.private_link_configurations),
                "Private Link",
            ),
            (
                "loadDistributionPolicies",
                bool(self.props.load_distribution_policies),
                "load distribution policies",
            ),
            ("enableFips", bool(self.props.enable_fips), "FIPS mode"),
        ]
        for field, present, what in unsupported:
            if present:
                self.add(
                    "FeatureNotSupported",
                    gid,
                    f"properties.{field}",
                    f"appgw does not implement {what}; remove '{field}' or leave it empty",
                )
        for collection, children in (
            ("sslCertificates", self.props.ssl_certificates),
            ("trustedRootCertificates", self.props.trusted_root_certificates),
        ):
            for child in children:
                if child.properties.key_vault_secret_id:
                    self.add(
                        "FeatureNotSupported",
                        self.rid(collection, child),
                        "properties.keyVaultSecretId",
                        "appgw does not read Azure Key Vault; upload the certificate as 'data'",
                    )

    def check_limits(self) -> None:
        for collection, limit in LIMITS.items():
            count = len(getattr(self.props, _attr(collection)))
            if count > limit:
                self.add(
                    "ApplicationGatewayLimitExceeded",
                    str(self.gid),
                    f"properties.{collection}",
                    f"{count} entries; an application gateway allows at most {limit}",
                )

    # --- frontends ----------------------------------------------------------------------------

    def check_frontends(self) -> None:
        for config in self.props.gateway_ip_configurations:
            owner = self.rid("gatewayIPConfigurations", config)
            self.external_id(owner, "properties.subnet", config.properties.subnet)
        for frontend in self.props.frontend_ip_configurations:
            owner = self.rid("frontendIPConfigurations", frontend)
            p = frontend.properties
            self.external_id(owner, "properties.publicIPAddress", p.public_ip_address)
            self.external_id(owner, "properties.subnet", p.subnet)
            if p.private_ip_address is not None:
                try:
                    ipaddress.ip_address(p.private_ip_address)
                except ValueError:
                    self.add(
                        "InvalidIPAddress",
                        owner,
                        "properties.privateIPAddress",
                        f"'{p.private_ip_address}' is not an IPv4 or IPv6 address",
                    )
            if p.public_ip_address is None and p.private_ip_address is None and p.subnet is None:
                self.add(
                    "MissingRequiredProperty",
                    owner,
                    "properties",
                    "a frontend needs 'publicIPAddress' or a private address "
                    "('privateIPAddress' or 'subnet')",
                )
        upper = FRONTEND_PORT_MAX_V1 if self.v1 else FRONTEND_PORT_MAX_V2
        seen: dict[int, str] = {}
        for port in self.props.frontend_ports:
            owner = self.rid("frontendPorts", port)
            if port.properties.port is None:
                self.add("MissingRequiredProperty", owner, "properties.port", "'port' is required")
                continue
            self.port_in_range(owner, "properties.port", port.properties.port, upper)
            if port.properties.port in seen:
                self.add(
                    "ApplicationGatewayDuplicateFrontendPort",
                    owner,
                    "properties.port",
                    f"port {port.properties.port} is already defined by frontend port "
                    f"'{seen[port.properties.port]}'",
                )
            seen[port.properties.port] = port.name

    # --- certificates (presence and SKU; contents are checked with the secrets) ------------------

    def check_certificates(self) -> None:
        for cert in self.props.authentication_certificates:
            owner = self.rid("authenticationCertificates", cert)
            self.require_v2_inverse(owner)
            if not cert.properties.data:
                self.add("MissingRequiredProperty", owner, "properties.data", "'data' is required")
        for root in self.props.trusted_root_certificates:
            owner = self.rid("trustedRootCertificates", root)
            self.require_v2(
                owner,
                "",
                "ApplicationGatewayTrustedRootCertificateRequiresV2Sku",
                "a trusted root certificate",
            )
            if not root.properties.data and not root.properties.key_vault_secret_id:
                self.add("MissingRequiredProperty", owner, "properties.data", "'data' is required")

    def require_v2_inverse(self, owner: str) -> None:
        if not self.v1:
            self.add(
                "ApplicationGatewayAuthenticationCertificateRequiresV1Sku",
                owner,
                "",
                "authentication certificates exist on v1 SKUs only; on v2 upload the backend's "
                "root as a trusted root certificate",
            )

    # --- backends -------------------------------------------------------------------------------

    def check_pools(self) -> None:
        for pool in self.props.backend_address_pools:
            owner = self.rid("backendAddressPools", pool)
            addresses = pool.properties.backend_addresses
            if len(addresses) > MAX_BACKEND_TARGETS_PER_POOL:
                self.add(
                    "ApplicationGatewayLimitExceeded",
                    owner,
                    "properties.backendAddresses",
                    f"{len(addresses)} targets; a pool allows at most "
                    f"{MAX_BACKEND_TARGETS_PER_POOL}",
                )
            # 120,000 members at Azure's limits: the field's name is made only for a problem.
            for index, address in enumerate(addresses):
                ip, fqdn = address.ip_address, address.fqdn
                if (fqdn is None) == (ip is None):
                    self.add(
                        "ApplicationGatewayInvalidBackendAddress",
                        owner,
                        f"properties.backendAddresses[{index}]",
                        "each backend address has exactly one of 'fqdn' and 'ipAddress'",
                    )
                elif ip is not None:
                    if not is_ip_address(ip):
                        self.add(
                            "ApplicationGatewayInvalidBackendAddress",
                            owner,
                            f"properties.backendAddresses[{index}].ipAddress",
                            f"'{ip}' is not an IP address",
                        )
                elif fqdn is not None and not _is_dns_name(fqdn):
                    self.add(
                        "ApplicationGatewayInvalidBackendAddress",
                        owner,
                        f"properties.backendAddresses[{index}].fqdn",
                        f"'{fqdn}' is not a valid DNS name",
                    )

    def check_settings(self) -> None:
        probes = {probe.name.casefold(): probe for probe in self.props.probes}
        for settings in self.props.backend_http_settings_collection:
            owner = self.rid("backendHttpSettingsCollection", settings)
            p = settings.properties
            if p.port is None:
                self.add("MissingRequiredProperty", owner, "properties.port", "'port' is required")
            self.port_in_range(owner, "properties.port", p.port, 65535)
            if p.protocol is None:
                self.add(
                    "MissingRequiredProperty",
                    owner,
                    "properties.protocol",
                    "'protocol' is required",
                )
            for index, ref in enumerate(p.authentication_certificates or []):
                field = f"properties.authenticationCertificates[{index}]"
                self.ref(owner, field, ref, "authenticationCertificates")
            for index, ref in enumerate(p.trusted_root_certificates or []):
                field = f"properties.trustedRootCertificates[{index}]"
                self.ref(owner, field, ref, "trustedRootCertificates")
            if p.authentication_certificates:
                self.require_v2_inverse(owner)
            if p.trusted_root_certificates:
                self.require_v2(
                    owner,
                    "properties.trustedRootCertificates",
                    "ApplicationGatewayTrustedRootCertificateRequiresV2Sku",
                    "a trusted root certificate",
                )
            if (p.authentication_certificates or p.trusted_root_certificates) and (
                p.protocol == Protocol.HTTP
            ):
                self.add(
                    "ApplicationGatewayBackendCertificatesRequireHttps",
                    owner,
                    "properties.protocol",
                    "backend certificates are used only when 'protocol' is 'Https'",
                )
            for field, value in (
                ("validateCertChainAndExpiry", p.validate_cert_chain_and_expiry),
                ("validateSNI", p.validate_sni),
                ("sniName", p.sni_name),
            ):
                if value is not None:
                    self.require_v2(
                        owner,
                        f"properties.{field}",
                        "ApplicationGatewayBackendTlsOptionRequiresV2Sku",
                        f"'{field}'",
                    )
            if p.host_name is not None and p.pick_host_name_from_backend_address:
                self.add(
                    "ApplicationGatewayHostNameConflict",
                    owner,
                    "properties.hostName",
                    "set 'hostName' or 'pickHostNameFromBackendAddress', not both",
                )
            if p.host_name is not None and not _is_host_header(p.host_name):
                self.add(
                    "ApplicationGatewayInvalidHostName",
                    owner,
                    "properties.hostName",
                    f"'{p.host_name}' is not a valid host name",
                )
            if p.sni_name is not None and not _is_dns_name(p.sni_name):
                self.add(
                    "ApplicationGatewayInvalidHostName",
                    owner,
                    "properties.sniName",
                    f"'{p.sni_name}' is not a valid DNS name (an SNI name cannot be an IP address)",
                )
            if p.path is not None and not p.path.startswith("/"):
                self.add(
                    "ApplicationGatewayInvalidPath",
                    owner,
                    "properties.path",
                    f"'{p.path}' must start with '/'",
                )
            if p.affinity_cookie_name is not None and not _COOKIE_NAME.match(
                p.affinity_cookie_name
            ):
                self.add(
                    "InvalidPropertyValue",
                    owner,
                    "properties.affinityCookieName",
                    f"'{p.affinity_cookie_name}' is not a valid cookie name",
                )
            if p.affinity_cookie_name is not None and (
                p.cookie_based_affinity != CookieBasedAffinity.ENABLED
            ):
                self.add(
                    "InvalidPropertyValue",
                    owner,
                    "properties.affinityCookieName",
                    "a cookie name needs 'cookieBasedAffinity': 'Enabled'",
                )
            probe_name = self.ref(owner, "properties.probe", p.probe, "probes")
            if probe_name is not None and p.protocol is not None:
                probe = probes[probe_name]
                if probe.properties.protocol is not None and (
                    probe.properties.protocol.value != p.protocol.value
                ):
                    self.add(
                        "ApplicationGatewayProbeProtocolMismatch",
                        owner,
                        "properties.probe",
                        f"probe '{probe.name}' uses {probe.properties.protocol.value} but these "
                        f"settings use {p.protocol.value}; a probe must use the settings' protocol",
                    )
                if probe.properties.pick_host_name_from_backend_http_settings and not (
                    p.host_name or p.pick_host_name_from_backend_address
                ):
                    self.add(
                        "ApplicationGatewayProbeHostNameUnavailable",
                        owner,
                        "properties.probe",
                        f"probe '{probe.name}' takes its host name from these settings, which "
                        "set neither 'hostName' nor 'pickHostNameFromBackendAddress'",
                    )

    def check_probes(self) -> None:
        for probe in self.props.probes:
            owner = self.rid("probes", probe)
            p = probe.properties
            for field, value in (
                ("protocol", p.protocol),
                ("path", p.path),
                ("interval", p.interval),
                ("timeout", p.timeout),
                ("unhealthyThreshold", p.unhealthy_threshold),
            ):
                if value is None:
                    self.add(
                        "MissingRequiredProperty",
                        owner,
                        f"properties.{field}",
                        f"'{field}' is required",
                    )
            if p.protocol in (ProbeProtocol.TCP, ProbeProtocol.TLS):
                self.add(
                    "FeatureNotSupported",
                    owner,
                    "properties.protocol",
                    "TCP/TLS probes belong to the TCP/TLS proxy, which appgw does not implement",
                )
            if p.path is not None and not p.path.startswith("/"):
                self.add(
                    "ApplicationGatewayInvalidPath",
                    owner,
                    "properties.path",
                    f"'{p.path}' must start with '/'",
                )
            if p.host and p.pick_host_name_from_backend_http_settings:
                self.add(
                    "ApplicationGatewayHostNameConflict",
                    owner,
                    "properties.host",
                    "set 'host' or 'pickHostNameFromBackendHttpSettings', not both",
                )
            if not p.host and not p.pick_host_name_from_backend_http_settings:
                self.add(
                    "ApplicationGatewayProbeHostNameUnavailable",
                    owner,
                    "properties.host",
                    "a custom probe needs 'host' or 'pickHostNameFromBackendHttpSettings': true",
                )
            if p.host and not _is_host_header(p.host):
                self.add(
                    "ApplicationGatewayInvalidHostName",
                    owner,
                    "properties.host",
                    f"'{p.host}' is not a valid host name",
                )
            if p.port is not None:
                self.port_in_range(owner, "properties.port", p.port, 65535)
                self.require_v2(
                    owner,
                    "properties.port",
                    "ApplicationGatewayProbePortRequiresV2Sku",
                    "a probe port",
                )
            for index, codes in enumerate((p.match.status_codes or []) if p.match else []):
                if not _is_status_range(codes):
                    self.add(
                        "ApplicationGatewayInvalidProbeStatusCodes",
                        owner,
                        f"properties.match.statusCodes[{index}]",
                        f"'{codes}' is not a status code or range such as '200' or '200-399' "
                        "(codes 100-599)",
                    )

    # --- listeners ------------------------------------------------------------------------------

    def check_listeners(self) -> None:
        ports = {port.name.casefold(): port for port in self.props.frontend_ports}
        protocols_by_port: dict[tuple[str, str], tuple[str, str]] = {}
        sites: dict[tuple[str, str, tuple[str, ...]], str] = {}
        for listener in self.props.http_listeners:
            owner = self.rid("httpListeners", listener)
            p = listener.properties
            frontend = self.ref(
                owner,
                "properties.frontendIPConfiguration",
                p.frontend_ip_configuration,
                "frontendIPConfigurations",
                required=True,
            )
            port = self.ref(
                owner, "properties.frontendPort", p.frontend_port, "frontendPorts", required=True
            )
            if p.protocol is None:
                self.add(
                    "MissingRequiredProperty",
                    owner,
                    "properties.protocol",
                    "'protocol' is required",
                )
            certificate = self.ref(
                owner, "properties.sslCertificate", p.ssl_certificate, "sslCertificates"
            )
            if p.protocol == Protocol.HTTPS and p.ssl_certificate is None:
                self.add(
                    "ApplicationGatewayHttpsListenerRequiresSslCertificate",
                    owner,
                    "properties.sslCertificate",
                    "an HTTPS listener needs an SSL certificate (upload a PFX in "
                    "'sslCertificates' and reference it)",
                )
            if p.protocol == Protocol.HTTP and certificate is not None:
                self.add(
                    "ApplicationGatewayHttpListenerWithSslCertificate",
                    owner,
                    "properties.sslCertificate",
                    "an HTTP listener does not use a certificate; set 'protocol' to 'Https' or "
                    "remove 'sslCertificate'",
                )
            if (
                self.ref(owner, "properties.sslProfile", p.ssl_profile, "sslProfiles") is not None
                and p.protocol != Protocol.HTTPS
            ):
                self.add(
                    "ApplicationGatewaySslProfileOnHttpListener",
                    owner,
                    "properties.sslProfile",
                    "an SSL profile applies to HTTPS listeners only; set 'protocol' to 'Https' or "
                    "remove 'sslProfile'",
                )
            hosts = self.check_listener_hosts(owner, listener)
            for index, custom in enumerate(p.custom_error_configurations or []):
                if not _is_http_url(custom.custom_error_page_url):
                    self.add(
                        "InvalidPropertyValue",
                        owner,
                        f"properties.customErrorConfigurations[{index}].customErrorPageUrl",
                        "a custom error page URL must be an absolute http or https URL",
                    )
            if frontend is None or port is None or p.protocol is None:
                continue
            earlier = protocols_by_port.get((frontend, port))
            if earlier is not None and earlier[0] != p.protocol.value:
                number = ports[port].properties.port
                self.add(
                    "ApplicationGatewayFrontendPortProtocolConflict",
                    owner,
                    "properties.protocol",
                    f"listener '{earlier[1]}' already uses frontend port {number} with "
                    f"{earlier[0]}; listeners sharing a port must share the protocol",
                )
            else:
                protocols_by_port[(frontend, port)] = (p.protocol.value, listener.name)
            site = (frontend, port, hosts)
            if site in sites:
                self.add(
                    "ApplicationGatewayDuplicateListener",
                    owner,
                    "properties",
                    f"listener '{sites[site]}' already serves the same frontend, port and host "
                    "names",
                )
            sites[site] = listener.name

    def check_listener_hosts(self, owner: str, listener: HttpListener) -> tuple[str, ...]:
        p = listener.properties
        if p.host_name is not None and p.host_names:
            self.add(
                "ApplicationGatewayHostNameAndHostNamesBothSet",
                owner,
                "properties.hostNames",
                "set 'hostName' or 'hostNames', not both",
            )
        if p.host_name is not None:
            if any(char in p.host_name for char in "*?"):
                self.add(
                    "ApplicationGatewayInvalidHostName",
                    owner,
                    "properties.hostName",
                    f"'{p.host_name}': 'hostName' takes no wildcards; use 'hostNames'",
                )
            elif not _is_dns_name(p.host_name):
                self.add(
                    "ApplicationGatewayInvalidHostName",
                    owner,
                    "properties.hostName",
                    f"'{p.host_name}' is not a valid host name",
                )
        names = p.host_names or []
        if names:
            self.require_v2(
                owner,
                "properties.hostNames",
                "ApplicationGatewayHostNamesRequireV2Sku",
                "'hostNames' (several or wildcard host names)",
            )
        if len(names) > MAX_HOST_NAMES_PER_LISTENER:
            self.add(
                "ApplicationGatewayTooManyHostNames",
                owner,
                "properties.hostNames",
                f"{len(names)} host names; a listener takes at most {MAX_HOST_NAMES_PER_LISTENER}",
            )
        for index, name in enumerate(names):
            problem = wildcard_host_problem(name)
            if problem is not None:
                self.add(
                    "ApplicationGatewayInvalidHostName",
                    owner,
                    f"properties.hostNames[{index}]",
                    f"'{name}': {problem}",
                )
        for index, (name, count) in enumerate(Counter(n.casefold() for n in names).items()):
            if count > 1:
                self.add(
                    "ApplicationGatewayInvalidHostName",
                    owner,
                    f"properties.hostNames[{index}]",
                    f"'{name}' is listed {count} times",
                )
        all_names = [p.host_name] if p.host_name else names
        return tuple(sorted(n.casefold() for n in all_names))

    # --- redirects, path maps, rules ---------------------------------------------------------

    def check_redirects(self) -> None:
        listeners = {listener.name.casefold(): listener for listener in self.props.http_listeners}
        for redirect in self.props.redirect_configurations:
            owner = self.rid("redirectConfigurations", redirect)
            p = redirect.properties
            if p.redirect_type is None:
                self.add(
                    "MissingRequiredProperty",
                    owner,
                    "properties.redirectType",
                    "'redirectType' is required",
                )
            if (p.target_listener is None) == (p.target_url is None):
                self.add(
                    "ApplicationGatewayRedirectTargetInvalid",
                    owner,
                    "properties",
                    "a redirect has exactly one of 'targetListener' and 'targetUrl'",
                )
            if p.target_url is not None and not _is_http_url(p.target_url):
                self.add(
                    "ApplicationGatewayRedirectTargetInvalid",
                    owner,
                    "properties.targetUrl",
                    f"'{p.target_url}' is not an absolute http or https URL",
                )
            target = self.ref(
                owner, "properties.targetListener", p.target_listener, "httpListeners"
            )
            if target is not None:
                names = listeners[target].properties.host_names or []
                if len(names) > 1 or any(char in name for name in names for char in "*?"):
                    self.add(
                        "ApplicationGatewayRedirectTargetInvalid",
                        owner,
                        "properties.targetListener",
                        f"listener '{listeners[target].name}' has several or wildcard host "
                        "names and cannot be a redirect target",
                    )

    def check_target(
        self,
        owner: str,
        fields: tuple[str, str, str],
        pool: SubResource | None,
        settings: SubResource | None,
        redirect: SubResource | None,
    ) -> None:
        """A rule or path rule sends to a pool with settings, or redirects; never both."""
        pool_field, settings_field, redirect_field = fields
        self.ref(owner, f"properties.{pool_field}", pool, "backendAddressPools")
        self.ref(owner, f"properties.{settings_field}", settings, "backendHttpSettingsCollection")
        self.ref(owner, f"properties.{redirect_field}", redirect, "redirectConfigurations")
        if redirect is not None and (pool is not None or settings is not None):
            self.add(
                "ApplicationGatewayRuleTargetConflict",
                owner,
                f"properties.{redirect_field}",
                "a redirect cannot be combined with a backend pool or backend settings",
            )
        elif redirect is None and (pool is None or settings is None):
            self.add(
                "ApplicationGatewayRuleTargetMissing",
                owner,
                "properties",
                f"needs both '{pool_field}' and '{settings_field}', or '{redirect_field}'",
            )

    def check_path_maps(self) -> None:
        for path_map in self.props.url_path_maps:
            owner = self.rid("urlPathMaps", path_map)
            p = path_map.properties
            self.check_target(
                owner,
                _DEFAULT_TARGET_FIELDS,
                p.default_backend_address_pool,
                p.default_backend_http_settings,
                p.default_redirect_configuration,
            )
            if len(p.path_rules) > MAX_PATH_RULES_PER_MAP:
                self.add(
                    "ApplicationGatewayLimitExceeded",
                    owner,
                    "properties.pathRules",
                    f"{len(p.path_rules)} path rules; a URL path map allows at most "
                    f"{MAX_PATH_RULES_PER_MAP}",
                )
            seen: dict[str, str] = {}
            for rule in p.path_rules:
                rule_owner = self.gid.path_rule(path_map.name, rule.name)
                r = rule.properties
                if not r.paths:
                    self.add(
                        "MissingRequiredProperty",
                        rule_owner,
                        "properties.paths",
                        "a path rule needs at least one path",
                    )
                for index, path in enumerate(r.paths):
                    problem = path_pattern_problem(path, v1=self.v1)
                    if problem is not None:
                        self.add(
                            "ApplicationGatewayInvalidPathPattern",
                            rule_owner,
                            f"properties.paths[{index}]",
                            f"'{path}': {problem}",
                        )
                    folded = path.casefold()
                    if folded in seen:
                        self.add(
                            "ApplicationGatewayDuplicatePathPattern",
                            rule_owner,
                            f"properties.paths[{index}]",
                            f"'{path}' is already matched by path rule '{seen[folded]}' "
                            "(paths match without regard to case)",
                        )
                    seen[folded] = rule.name
                self.check_target(
                    rule_owner,
                    _TARGET_FIELDS,
                    r.backend_address_pool,
                    r.backend_http_settings,
                    r.redirect_configuration,
                )

    def check_rules(self) -> None:
        used_listeners: dict[str, str] = {}
        rules = self.props.request_routing_rules
        with_priority = [rule for rule in rules if rule.properties.priority is not None]
        if with_priority and self.v1:
            self.add(
                "ApplicationGatewayRulePriorityRequiresV2Sku",
                self.rid("requestRoutingRules", with_priority[0]),
                "properties.priority",
                "v1 gateways evaluate rules in list order; 'priority' requires a v2 SKU",
            )
        elif with_priority and len(with_priority) != len(rules):
            for rule in rules:
                if rule.properties.priority is None:
                    self.add(
                        "ApplicationGatewayRulePriorityAllOrNone",
                        self.rid("requestRoutingRules", rule),
                        "properties.priority",
                        "once one rule has a priority every rule needs one",
                    )
        priorities: dict[int, str] = {}
        for rule in rules:
            owner = self.rid("requestRoutingRules", rule)
            p = rule.properties
            if p.priority is not None:
                if not 1 <= p.priority <= MAX_PRIORITY:
                    self.add(
                        "ApplicationGatewayRulePriorityOutOfRange",
                        owner,
                        "properties.priority",
                        f"priority {p.priority} is outside 1-{MAX_PRIORITY}",
                    )
                elif p.priority in priorities:
                    self.add(
                        "ApplicationGatewayRulePriorityDuplicate",
                        owner,
                        "properties.priority",
                        f"priority {p.priority} is already used by rule '{priorities[p.priority]}'",
                    )
                priorities.setdefault(p.priority, rule.name)
            listener = self.ref(
                owner, "properties.httpListener", p.http_listener, "httpListeners", required=True
            )
            if listener is not None:
                if listener in used_listeners:
                    self.add(
                        "ApplicationGatewayListenerUsedByMultipleRules",
                        owner,
                        "properties.httpListener",
                        f"the listener is already used by rule '{used_listeners[listener]}'; a "
                        "listener belongs to one rule",
                    )
                used_listeners.setdefault(listener, rule.name)
            self.ref(owner, "properties.rewriteRuleSet", p.rewrite_rule_set, "rewriteRuleSets")
            if p.rule_type is None:
                self.add(
                    "MissingRequiredProperty",
                    owner,
                    "properties.ruleType",
                    "'ruleType' is required",
                )
            elif p.rule_type == RuleType.BASIC:
                if p.url_path_map is not None:
                    self.add(
                        "ApplicationGatewayRuleTargetConflict",
                        owner,
                        "properties.urlPathMap",
                        "a Basic rule has no URL path map; use 'PathBasedRouting'",
                    )
                self.check_target(
                    owner,
                    _TARGET_FIELDS,
                    p.backend_address_pool,
                    p.backend_http_settings,
                    p.redirect_configuration,
                )
            else:
                self.ref(
                    owner, "properties.urlPathMap", p.url_path_map, "urlPathMaps", required=True
                )
                for field, value in (
                    ("backendAddressPool", p.backend_address_pool),
                    ("backendHttpSettings", p.backend_http_settings),
                    ("redirectConfiguration", p.redirect_configuration),
                ):
                    if value is not None:
                        self.add(
                            "ApplicationGatewayRuleTargetConflict",
                            owner,
                            f"properties.{field}",
                            "a PathBasedRouting rule takes its targets from its URL path map",
                        )

    # --- TLS policy -----------------------------------------------------------------------------

    def check_ssl_policies(self) -> None:
        policy = self.props.ssl_policy
        if policy is not None:
            self.check_ssl_policy(str(self.gid), "properties.sslPolicy", policy)

    def check_ssl_policy(self, owner: str, field: str, policy: SslPolicy) -> None:
        code = "ApplicationGatewayInvalidSslPolicy"
        kind = policy.policy_type
        if kind is None and policy.policy_name is not None:
            kind = SslPolicyType.PREDEFINED
        if kind is None:
            if policy.cipher_suites or policy.min_protocol_version:
                self.add(code, owner, f"{field}.policyType", "'policyType' is required")
                return
            disabled = set(policy.disabled_ssl_protocols or [])
            if not {SslProtocol.TLS_1_0, SslProtocol.TLS_1_1} <= disabled:
                self.add(
                    "ApplicationGatewayDeprecatedTlsVersionUsedInSslPolicy",
                    owner,
                    f"{field}.disabledSslProtocols",
                    "TLS 1.0 and 1.1 are retired; 'disabledSslProtocols' must disable both "
                    "(or use a predefined policy such as AppGwSslPolicy20220101)",
                )
            return
        if kind == SslPolicyType.PREDEFINED:
            if policy.policy_name is None:
                self.add(
                    code, owner, f"{field}.policyName", "a Predefined policy needs 'policyName'"
                )
                return
            if policy.cipher_suites or policy.min_protocol_version or policy.disabled_ssl_protocols:
                self.add(
                    code,
                    owner,
                    field,
                    "a Predefined policy takes only 'policyName'; 'cipherSuites', "
                    "'minProtocolVersion' and 'disabledSslProtocols' belong to Custom policies",
                )
            predefined = PREDEFINED_POLICIES[policy.policy_name]
            if predefined.retired:
                self.add(
                    "ApplicationGatewayDeprecatedTlsVersionUsedInSslPolicy",
                    owner,
                    f"{field}.policyName",
                    f"'{predefined.name.value}' allows TLS 1.0/1.1, which are retired; use "
                    "AppGwSslPolicy20220101, AppGwSslPolicy20220101S or AppGwSslPolicy20170401S",
                )
            if predefined.v2_only:
                self.require_v2(
                    owner,
                    f"{field}.policyName",
                    "ApplicationGatewaySslPolicyRequiresV2Sku",
                    f"the policy '{predefined.name.value}'",
                )
            return
        if policy.policy_name is not None:
            self.add(code, owner, f"{field}.policyName", "'policyName' is for Predefined policies")
        minimum = policy.min_protocol_version
        suites = policy.cipher_suites or []
        if minimum is None:
            self.add(code, owner, f"{field}.minProtocolVersion", "'minProtocolVersion' is required")
        elif minimum in (SslProtocol.TLS_1_0, SslProtocol.TLS_1_1):
            self.add(
                "ApplicationGatewayDeprecatedTlsVersionUsedInSslPolicy",
                owner,
                f"{field}.minProtocolVersion",
                "TLS 1.0 and 1.1 are retired; the minimum is TLSv1_2",
            )
        if kind == SslPolicyType.CUSTOM_V2:
            self.require_v2(
                owner, f"{field}.policyType", "ApplicationGatewaySslPolicyRequiresV2Sku", "CustomV2"
            )
        else:
            if minimum == SslProtocol.TLS_1_3:
                self.add(
                    code,
                    owner,
                    f"{field}.minProtocolVersion",
                    "TLS 1.3 needs policyType 'CustomV2'",
                )
            for index, suite in enumerate(suites):
                if suite in TLS13_CIPHER_SUITES:
                    self.add(
                        code,
                        owner,
                        f"{field}.cipherSuites[{index}]",
                        f"'{suite.value}' is a TLS 1.3 suite; it needs policyType 'CustomV2'",
                    )
                elif suite in RETIRED_CUSTOM_SUITES:
                    self.add(
                        "ApplicationGatewayDeprecatedTlsVersionUsedInSslPolicy",
                        owner,
                        f"{field}.cipherSuites[{index}]",
                        f"'{suite.value}' was removed from Custom policies with TLS 1.0/1.1",
                    )
        if minimum != SslProtocol.TLS_1_3 and not REQUIRED_ONE_OF_SUITES & set(suites):
            self.add(
                code,
                owner,
                f"{field}.cipherSuites",
                "a custom policy must enable one of "
                + ", ".join(sorted(s.value for s in REQUIRED_ONE_OF_SUITES)),
            )


def _attr(collection: str) -> str:
    """JSON collection name -> model attribute name."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", collection).lower()
    return snake.replace("_i_p_", "_ip_")


def _is_dns_name(text: str) -> bool:
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > MAX_HOST_NAME_LENGTH or is_ip_address(name):
        return False
    return all(_DNS_LABEL.match(label) for label in name.split("."))


def _is_host_header(text: str) -> bool:
    """A Host value: a DNS name or an IP literal, optionally with a port."""
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        return False
    host = host or text
    return _is_dns_name(host) or is_ip_address(host.strip("[]"))


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_status_range(text: str) -> bool:
    match = _STATUS_RANGE.match(text)
    if match is None:
        return False
    low = int(match[1])
    high = int(match[2]) if match[2] else low
    return 100 <= low <= high <= 599


def wildcard_host_problem(name: str) -> str | None:
    """Azure's host-name grammar for `hostNames` (spec §2.2); None when the name is valid."""
    if not name or len(name) > MAX_HOST_NAME_LENGTH:
        return "a host name has 1-253 characters"
    if not _HOST_CHARS.match(name):
        return "only letters, digits, '-', '.', '*' and '?' are allowed"
    labels = name.split(".")
    if any(not label for label in labels):
        return "empty labels ('..', or a leading or trailing '.') are not allowed"
    if any(label.count("*") > 1 for label in labels):
        return "at most one '*' per label"
    if name.count("*") > 2:
        return "at most two '*' in a host name"
    if name.count("*") + name.count("?") > 4:
        return "at most four wildcard characters in a host name"
    if any(pair in name for pair in ("*?", "?*", "**")):
        return "'*?', '?*' and '**' are not allowed"
    return None


def path_pattern_problem(path: str, *, v1: bool) -> str | None:
    """Azure's path-pattern rules (spec §8); None when the pattern is valid."""
    if not path.startswith("/"):
        return "a path must start with '/'"
    if "?" in path or "#" in path:
        return "'?' and '#' are not allowed in a path pattern"
    if "*" in path[:-1]:
        return "'*' is allowed only at the end"
    if v1 and path.endswith("*") and not path.endswith("/*"):
        return "on v1 '*' must follow '/' (for example '/images/*')"
    return None
