"""The `Microsoft.Network/applicationGateways` resource with Azure's JSON names exactly.

Pure data, no I/O. Shape checks (types, enums, single-field ranges) live here; rules that
span several objects live in `appgw.model.validate`. Unknown fields are rejected. Read-only
fields (`etag`, `type`, `provisioningState`, `publicCertData`, back-references, ...) are
accepted on input because Azure's tools send a GET result back in a PUT, but the server
overwrites them (`appgw.model.wire.fill_read_only`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from appgw.model.enums import (
    ClientAuthMode,
    ClientRevocationOptions,
    CookieBasedAffinity,
    CustomErrorStatusCode,
    IPAllocationMethod,
    OperationalState,
    ProbeProtocol,
    Protocol,
    RedirectType,
    RuleType,
    SkuFamily,
    SkuName,
    SkuTier,
    SslCipherSuite,
    SslPolicyName,
    SslPolicyType,
    SslProtocol,
)
from appgw.model.ids import NAME_PATTERN

# Azure's rule for child names is the gateway's own.
CHILD_NAME_PATTERN = NAME_PATTERN


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; only Azure's spellings are accepted."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        extra="forbid",
        use_enum_values=False,
    )


class SubResource(WireModel):
    id: str
    # `az ... show` prints a resourceGroup next to each id; it carries no information of its own.
    resource_group: str | None = Field(default=None, exclude=True)


class ChildProperties(WireModel):
    provisioning_state: str | None = None


class ChildResource(WireModel):
    id: str | None = None
    name: str = Field(pattern=CHILD_NAME_PATTERN)
    etag: str | None = None
    type: str | None = None
    resource_group: str | None = Field(default=None, exclude=True)


# --- gateway-level value objects -----------------------------------------------------------


class Sku(WireModel):
    name: SkuName | None = None
    tier: SkuTier | None = None
    # Azure's instance limit is 125 (v2) / 32 (v1); the SKU-specific bound is checked in validate.
    capacity: int | None = Field(default=None, ge=0, le=125)
    family: SkuFamily | None = None


class SslPolicy(WireModel):
    disabled_ssl_protocols: list[SslProtocol] | None = None
    policy_type: SslPolicyType | None = None
    policy_name: SslPolicyName | None = None
    cipher_suites: list[SslCipherSuite] | None = None
    min_protocol_version: SslProtocol | None = None


class AutoscaleConfiguration(WireModel):
    # Autoscale bounds of v2: minimum 0-125, maximum 2-125.
    min_capacity: int = Field(ge=0, le=125)
    max_capacity: int | None = Field(default=None, ge=2, le=125)


class CustomError(WireModel):
    status_code: CustomErrorStatusCode
    custom_error_page_url: str


class WebApplicationFirewallConfiguration(WireModel):
    enabled: bool
    firewall_mode: str | None = None
    rule_set_type: str | None = None
    rule_set_version: str | None = None
    disabled_rule_groups: list[dict[str, Any]] | None = None
    request_body_check: bool | None = None
    max_request_body_size: int | None = None
    max_request_body_size_in_kb: int | None = None
    file_upload_limit_in_mb: int | None = None
    exclusions: list[dict[str, Any]] | None = None


class GlobalConfiguration(WireModel):
    enable_request_buffering: bool | None = None
    enable_response_buffering: bool | None = None
    disable_default_server_header_in_response: bool | None = None


# --- children ----------------------------------------------------------------------------------


class GatewayIPConfigurationProperties(ChildProperties):
    subnet: SubResource | None = None


class GatewayIPConfiguration(ChildResource):
    properties: GatewayIPConfigurationProperties = Field(
        default_factory=GatewayIPConfigurationProperties
    )


class SslCertificateProperties(ChildProperties):
    # Write-only: base64 PFX and its password. Never stored in the document, never returned.
    data: str | None = Field(default=None, json_schema_extra={"writeOnly": True})
    password: str | None = Field(default=None, json_schema_extra={"writeOnly": True})
    key_vault_secret_id: str | None = None
    public_cert_data: str | None = None
    http_listeners: list[SubResource] | None = None


class SslCertificate(ChildResource):
    properties: SslCertificateProperties = Field(default_factory=SslCertificateProperties)


class AuthenticationCertificateProperties(ChildProperties):
    data: str | None = None


class AuthenticationCertificate(ChildResource):
    properties: AuthenticationCertificateProperties = Field(
        default_factory=AuthenticationCertificateProperties
    )


class TrustedRootCertificateProperties(ChildProperties):
    data: str | None = None
    key_vault_secret_id: str | None = None


class TrustedRootCertificate(ChildResource):
    properties: TrustedRootCertificateProperties = Field(
        default_factory=TrustedRootCertificateProperties
    )


class TrustedClientCertificateProperties(ChildProperties):
    data: str | None = None
    validated_cert_data: str | None = None
    client_cert_issuer_dn: str | None = Field(default=None, alias="clientCertIssuerDN")


class TrustedClientCertificate(ChildResource):
    properties: TrustedClientCertificateProperties = Field(
        default_factory=TrustedClientCertificateProperties
    )


class FrontendIPConfigurationProperties(ChildProperties):
    private_ip_address: str | None = Field(default=None, alias="privateIPAddress")
    private_ip_allocation_method: IPAllocationMethod | None = Field(
        default=None, alias="privateIPAllocationMethod"
    )
    subnet: SubResource | None = None
    public_ip_address: SubResource | None = Field(default=None, alias="publicIPAddress")
    private_link_configuration: SubResource | None = None
    http_listeners: list[SubResource] | None = None


class FrontendIPConfiguration(ChildResource):
    properties: FrontendIPConfigurationProperties = Field(
        default_factory=FrontendIPConfigurationProperties
    )


class FrontendPortProperties(ChildProperties):
    port: int | None = None
    http_listeners: list[SubResource] | None = None


class FrontendPort(ChildResource):
    properties: FrontendPortProperties = Field(default_factory=FrontendPortProperties)


class BackendAddress(WireModel):
    fqdn: str | None = None
    ip_address: str | None = None


class BackendAddressPoolProperties(ChildProperties):
    backend_addresses: list[BackendAddress] = Field(default_factory=list)
    backend_ip_configurations: list[SubResource] | None = Field(
        default=None, alias="backendIPConfigurations"
    )
    request_routing_rules: list[SubResource] | None = None
    url_path_maps: list[SubResource] | None = None
    path_rules: list[SubResource] | None = None


class BackendAddressPool(ChildResource):
    properties: BackendAddressPoolProperties = Field(default_factory=BackendAddressPoolProperties)


class ConnectionDraining(WireModel):
    enabled: bool
    # Azure's drain window is 1-3600 s.
    drain_timeout_in_sec: int = Field(ge=1, le=3600)


class BackendHttpSettingsProperties(ChildProperties):
    port: int | None = None
    protocol: Protocol | None = None
    cookie_based_affinity: CookieBasedAffinity | None = None
    affinity_cookie_name: str | None = None
    # Azure's bound: 1 s to 24 h.
    request_timeout: int | None = Field(default=None, ge=1, le=86400)
    probe: SubResource | None = None
    probe_enabled: bool | None = None
    authentication_certificates: list[SubResource] | None = None
    trusted_root_certificates: list[SubResource] | None = None
    connection_draining: ConnectionDraining | None = None
    host_name: str | None = None
    pick_host_name_from_backend_address: bool | None = None
    path: str | None = None
    dedicated_backend_connection: bool | None = None
    validate_cert_chain_and_expiry: bool | None = None
    validate_sni: bool | None = Field(default=None, alias="validateSNI")
    sni_name: str | None = None
    request_routing_rules: list[SubResource] | None = None
    url_path_maps: list[SubResource] | None = None
    path_rules: list[SubResource] | None = None


class BackendHttpSettings(ChildResource):
    properties: BackendHttpSettingsProperties = Field(default_factory=BackendHttpSettingsProperties)


class HttpListenerProperties(ChildProperties):
    frontend_ip_configuration: SubResource | None = Field(
        default=None, alias="frontendIPConfiguration"
    )
    frontend_port: SubResource | None = None
    protocol: Protocol | None = None
    host_name: str | None = None
    host_names: list[str] | None = None
    ssl_certificate: SubResource | None = None
    ssl_profile: SubResource | None = None
    require_server_name_indication: bool | None = None
    custom_error_configurations: list[CustomError] | None = None
    firewall_policy: SubResource | None = None


class HttpListener(ChildResource):
    properties: HttpListenerProperties = Field(default_factory=HttpListenerProperties)


class ProbeMatch(WireModel):
    # Azure caps the body match at 4090 characters.
    body: str | None = Field(default=None, max_length=4090)
    status_codes: list[str] | None = None


class ProbeProperties(ChildProperties):
    protocol: ProbeProtocol | None = None
    host: str | None = None
    path: str | None = None
    # Azure's bounds: interval and timeout 1 s to 24 h, threshold 1-20.
    interval: int | None = Field(default=None, ge=1, le=86400)
    timeout: int | None = Field(default=None, ge=1, le=86400)
    unhealthy_threshold: int | None = Field(default=None, ge=1, le=20)
    pick_host_name_from_backend_http_settings: bool | None = None
    pick_host_name_from_backend_settings: bool | None = None
    min_servers: int | None = Field(default=None, ge=0)
    match: ProbeMatch | None = None
    port: int | None = None
    enable_probe_proxy_protocol_header: bool | None = None
    backend_http_settings: list[SubResource] | None = None


class Probe(ChildResource):
    properties: ProbeProperties = Field(default_factory=ProbeProperties)


class RequestRoutingRuleProperties(ChildProperties):
    rule_type: RuleType | None = None
    priority: int | None = None
    http_listener: SubResource | None = None
    backend_address_pool: SubResource | None = None
    backend_http_settings: SubResource | None = None
    url_path_map: SubResource | None = None
    redirect_configuration: SubResource | None = None
    rewrite_rule_set: SubResource | None = None
    load_distribution_policy: SubResource | None = None


class RequestRoutingRule(ChildResource):
    properties: RequestRoutingRuleProperties = Field(default_factory=RequestRoutingRuleProperties)


class PathRuleProperties(ChildProperties):
    paths: list[str] = Field(default_factory=list)
    backend_address_pool: SubResource | None = None
    backend_http_settings: SubResource | None = None
    redirect_configuration: SubResource | None = None
    rewrite_rule_set: SubResource | None = None
    load_distribution_policy: SubResource | None = None
    firewall_policy: SubResource | None = None


class PathRule(ChildResource):
    properties: PathRuleProperties = Field(default_factory=PathRuleProperties)


class UrlPathMapProperties(ChildProperties):
    default_backend_address_pool: SubResource | None = None
    default_backend_http_settings: SubResource | None = None
    default_rewrite_rule_set: SubResource | None = None
    default_redirect_configuration: SubResource | None = None
    default_load_distribution_policy: SubResource | None = None
    path_rules: list[PathRule] = Field(default_factory=list)


class UrlPathMap(ChildResource):
    properties: UrlPathMapProperties = Field(default_factory=UrlPathMapProperties)


class RedirectConfigurationProperties(ChildProperties):
    redirect_type: RedirectType | None = None
    target_listener: SubResource | None = None
    target_url: str | None = None
    include_path: bool | None = None
    include_query_string: bool | None = None
    request_routing_rules: list[SubResource] | None = None
    url_path_maps: list[SubResource] | None = None
    path_rules: list[SubResource] | None = None


class RedirectConfiguration(ChildResource):
    properties: RedirectConfigurationProperties = Field(
        default_factory=RedirectConfigurationProperties
    )


class RewriteCondition(WireModel):
    variable: str
    pattern: str
    ignore_case: bool | None = None
    negate: bool | None = None


class HeaderConfiguration(WireModel):
    header_name: str
    header_value: str | None = None


class UrlConfiguration(WireModel):
    modified_path: str | None = None
    modified_query_string: str | None = None
    reroute: bool | None = None


class RewriteActionSet(WireModel):
    request_header_configurations: list[HeaderConfiguration] | None = None
    response_header_configurations: list[HeaderConfiguration] | None = None
    url_configuration: UrlConfiguration | None = None


class RewriteRule(WireModel):
    name: str
    rule_sequence: int | None = None
    conditions: list[RewriteCondition] | None = None
    action_set: RewriteActionSet | None = None


class RewriteRuleSetProperties(ChildProperties):
    rewrite_rules: list[RewriteRule] = Field(default_factory=list)


class RewriteRuleSet(ChildResource):
    properties: RewriteRuleSetProperties = Field(default_factory=RewriteRuleSetProperties)


class ClientAuthConfiguration(WireModel):
    verify_client_cert_issuer_dn: bool | None = Field(
        default=None, alias="verifyClientCertIssuerDN"
    )
    verify_client_revocation: ClientRevocationOptions | None = None
    verify_client_auth_mode: ClientAuthMode | None = None


class SslProfileProperties(ChildProperties):
    ssl_policy: SslPolicy | None = None
    trusted_client_certificates: list[SubResource] | None = None
    client_auth_configuration: ClientAuthConfiguration | None = None
    http_listeners: list[SubResource] | None = None


class SslProfile(ChildResource):
    properties: SslProfileProperties = Field(default_factory=SslProfileProperties)


# --- the gateway -------------------------------------------------------------------------------


class ApplicationGatewayProperties(WireModel):
    sku: Sku | None = None
    ssl_policy: SslPolicy | None = None
    operational_state: OperationalState | None = None
    provisioning_state: str | None = None
    resource_guid: str | None = None
    default_predefined_ssl_policy: str | None = None
    gateway_ip_configurations: list[GatewayIPConfiguration] = Field(
        default_factory=list, alias="gatewayIPConfigurations"
    )
    authentication_certificates: list[AuthenticationCertificate] = Field(default_factory=list)
    trusted_root_certificates: list[TrustedRootCertificate] = Field(default_factory=list)
    trusted_client_certificates: list[TrustedClientCertificate] = Field(default_factory=list)
    ssl_certificates: list[SslCertificate] = Field(default_factory=list)
    frontend_ip_configurations: list[FrontendIPConfiguration] = Field(
        default_factory=list, alias="frontendIPConfigurations"
    )
    frontend_ports: list[FrontendPort] = Field(default_factory=list)
    probes: list[Probe] = Field(default_factory=list)
    backend_address_pools: list[BackendAddressPool] = Field(default_factory=list)
    backend_http_settings_collection: list[BackendHttpSettings] = Field(default_factory=list)
    http_listeners: list[HttpListener] = Field(default_factory=list)
    ssl_profiles: list[SslProfile] = Field(default_factory=list)
    url_path_maps: list[UrlPathMap] = Field(default_factory=list)
    request_routing_rules: list[RequestRoutingRule] = Field(default_factory=list)
    rewrite_rule_sets: list[RewriteRuleSet] = Field(default_factory=list)
    redirect_configurations: list[RedirectConfiguration] = Field(default_factory=list)
    custom_error_configurations: list[CustomError] = Field(default_factory=list)
    enable_http2: bool | None = None
    enable_fips: bool | None = None
    autoscale_configuration: AutoscaleConfiguration | None = None
    force_firewall_policy_association: bool | None = None
    global_configuration: GlobalConfiguration | None = None
    # Known to Azure, not implemented by appgw: accepted only empty/absent (validate says why).
    web_application_firewall_configuration: WebApplicationFirewallConfiguration | None = None
    firewall_policy: SubResource | None = None
    backend_settings_collection: list[dict[str, Any]] = Field(default_factory=list)
    listeners: list[dict[str, Any]] = Field(default_factory=list)
    routing_rules: list[dict[str, Any]] = Field(default_factory=list)
    private_link_configurations: list[dict[str, Any]] = Field(default_factory=list)
    private_endpoint_connections: list[dict[str, Any]] = Field(default_factory=list)
    load_distribution_policies: list[dict[str, Any]] = Field(default_factory=list)


class ApplicationGateway(WireModel):
    id: str | None = None
    name: str | None = None
    type: str | None = None
    location: str | None = None
    tags: dict[str, str] | None = None
    etag: str | None = None
    zones: list[str] | None = None
    identity: dict[str, Any] | None = None
    properties: ApplicationGatewayProperties = Field(default_factory=ApplicationGatewayProperties)


class TagsObject(WireModel):
    tags: dict[str, str] | None = None


class OnDemandProbe(WireModel):
    """Body of POST .../getBackendHealthOnDemand: a probe to run once, now."""

    protocol: ProbeProtocol | None = None
    host: str | None = None
    path: str | None = None
    # Azure's probe timeout bound: 1 s to 24 h.
    timeout: int | None = Field(default=None, ge=1, le=86400)
    pick_host_name_from_backend_http_settings: bool | None = None
    match: ProbeMatch | None = None
    backend_address_pool: SubResource | None = None
    backend_http_settings: SubResource | None = None
