"""The child groups of `az network application-gateway` (spec §6.2, §6.3) as tables of flags,
plus what each group does beyond setting one JSON property per flag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appgw.cli.children.commands import Change, Flag, Group, Parent, Switch, set_field
from appgw.cli.children.ssl_policy import policy_flags
from appgw.cli.client import fail
from appgw.cli.options import KEY_VAULT
from appgw.cli.uploads import read_file, read_pfx
from appgw.cli.waf_policy_link import policy_ref
from appgw.hostnames import is_ip_address
from appgw.model.document import certificate_field
from appgw.model.enums import (
    ClientRevocationOptions,
    CookieBasedAffinity,
    ProbeProtocol,
    Protocol,
    RedirectType,
    RuleType,
)

SSL_CERTS = "sslCertificates"
AUTH_CERTS = "authenticationCertificates"
ROOT_CERTS = "trustedRootCertificates"
CLIENT_CERTS = "trustedClientCertificates"
SSL_PROFILES = "sslProfiles"
FRONTEND_IPS = "frontendIPConfigurations"
FRONTEND_PORTS = "frontendPorts"
POOLS = "backendAddressPools"
SETTINGS = "backendHttpSettingsCollection"
LISTENERS = "httpListeners"
PROBES = "probes"
RULES = "requestRoutingRules"
PATH_MAPS = "urlPathMaps"
REDIRECTS = "redirectConfigurations"
REWRITE_SETS = "rewriteRuleSets"

_POOL = Flag(("--address-pool",), "Backend address pool.", key="backendAddressPool", link=POOLS)
_SETTINGS = Flag(("--http-settings",), "HTTP settings.", key="backendHttpSettings", link=SETTINGS)
_REDIRECT = Flag(
    ("--redirect-config",),
    "Redirect configuration (instead of a pool and settings).",
    key="redirectConfiguration",
    link=REDIRECTS,
)


# --- certificates -----------------------------------------------------------------------------

_CERT_FILE = Flag(("--cert-file",), "Certificate file.", kind=Path, required=True)


def _public_certificate(values: dict[str, Any]) -> None:
    """auth-cert and root-cert: a .cer in PEM, DER or Base-64, sent as base64 DER."""
    from appgw.certificates import (
        CertificateError,
        load_public_certificate,
        public_certificate_data,
    )

    path = values.get("cert_file")
    if path is None:
        return
    try:
        certificate = load_public_certificate(read_file(path))
    except CertificateError as error:
        fail(f"--cert-file {path}: {error.message}")
    values["data"] = public_certificate_data(certificate)


def _pfx(values: dict[str, Any]) -> None:
    """A PFX, checked here with its password so a wrong one is named before anything is read
    or sent."""
    path = values.get("cert_file")
    if path is None:
        if values.get("cert_password") is not None or values.get("cert_password_stdin"):
            fail("a password needs the --cert-file it opens", 2)
        return
    data, password = read_pfx(
        path, values.get("cert_password"), bool(values.get("cert_password_stdin"))
    )
    values["data"] = data
    if password:
        values["password"] = password


def _certificate_data(change: Change) -> None:
    """What the prepare step read from --cert-file (client-cert: --data): the new `data` (and
    PFX password)."""
    if "data" in change.values:
        change.properties.pop("password", None)
        for key in ("data", "password"):
            if key in change.values:
                change.properties[key] = change.values[key]


SSL_CERT = Group(
    "ssl-cert",
    SSL_CERTS,
    (
        Flag(
            ("--cert-file",), "PFX file with the private key and chain.", kind=Path, required=True
        ),
        Flag(("--cert-password",), "PFX password (visible in the process list: prefer stdin)."),
        Flag(
            ("--cert-password-stdin",),
            "Read the PFX password from the first line of standard input.",
            kind=bool,
        ),
        Flag(
            ("--key-vault-secret-id",),
            "",
            refused=f"{KEY_VAULT}: upload the PFX with --cert-file",
        ),
    ),
    example_name="contosoSslCert",
    example="--cert-file contoso.pfx --cert-password-stdin < password.txt",
    update_example="--cert-file renewed.pfx --cert-password-stdin < password.txt",
    prepare=_pfx,
    apply=_certificate_data,
)

AUTH_CERT = Group(
    "auth-cert",
    AUTH_CERTS,
    (_CERT_FILE,),
    example_name="backendCert",
    example="--cert-file backend.cer",
    update_example="--cert-file renewed.cer",
    prepare=_public_certificate,
    apply=_certificate_data,
)

ROOT_CERT = Group(
    "root-cert",
    ROOT_CERTS,
    (
        _CERT_FILE,
        Flag(
            ("--keyvault-secret",),
            "",
            refused=f"{KEY_VAULT}: upload the root certificate with --cert-file",
        ),
    ),
    example_name="backendRoot",
    example="--cert-file root.cer",
    update_example="--cert-file new-root.cer",
    prepare=_public_certificate,
    apply=_certificate_data,
)


def _client_chain(values: dict[str, Any]) -> None:
    """client-cert: the CA chain file (.cer/.pem, root and intermediates), sent as it is in
    base64. What a file alone tells is checked here; which certificates are CAs, the root and
    expiry are the API's to judge (ApplicationGatewayTrustedClientCertificateInvalidData)."""
    from appgw.certificates import (
        MAX_TRUSTED_CLIENT_CHAIN_BYTES,
        CertificateError,
        load_certificate_chain,
    )

    path = values.get("data")
    if path is None:
        return
    data = read_file(path, "--data")
    if len(data) > MAX_TRUSTED_CLIENT_CHAIN_BYTES:
        fail(
            f"--data {path}: the file is {len(data)} bytes; a trusted client certificate file "
            f"holds at most {MAX_TRUSTED_CLIENT_CHAIN_BYTES} bytes (25 KB)"
        )
    try:
        load_certificate_chain(data)
    except CertificateError as error:
        fail(f"--data {path}: {error.message}")
    values["data"] = certificate_field(data)


CLIENT_CERT = Group(
    "client-cert",
    CLIENT_CERTS,
    (
        Flag(
            ("--data",),
            "CA certificate chain file (.cer or .pem: the root, and intermediates if any) that "
            "issues the clients' certificates.",
            kind=Path,
            required=True,
        ),
    ),
    example_name="clientCa",
    example="--data client-ca-chain.pem",
    update_example="--data renewed-ca-chain.pem",
    prepare=_client_chain,
    apply=_certificate_data,
    verbs=("add", "remove"),
)


_PROFILE_POLICY = policy_flags(("--policy-name",), "sslPolicy.")


def _ssl_profile(change: Change) -> None:
    """A --policy-type starts the profile's policy afresh: a Custom policy's suites do not
    belong to a Predefined one, nor a policy name to a Custom one. Other policy flags change
    only their own field, as az's update does."""
    if change.given("policy_type"):
        for flag in _PROFILE_POLICY:
            if flag.key is not None and not change.given(flag.name):
                set_field(change.properties, flag.key, None)


SSL_PROFILE = Group(
    "ssl-profile",
    SSL_PROFILES,
    (
        *_PROFILE_POLICY,
        Flag(
            ("--trusted-client-certificates", "--trusted-client-cert"),
            "Trusted client CA certificates (client-cert) that clients' certificates must chain "
            "to; an empty value removes them all.",
            kind=list,
            key="trustedClientCertificates",
            link=CLIENT_CERTS,
        ),
        Flag(
            ("--client-auth-configuration", "--client-auth-config"),
            "Also check that the client certificate's issuer is the uploaded chain's issuing CA "
            "(verifyClientCertIssuerDN).",
            choices=Switch,
            key="clientAuthConfiguration.verifyClientCertIssuerDN",
        ),
        Flag(
            ("--verify-client-revocation",),
            "Check the client certificate's revocation (OCSP) or not (None).",
            choices=ClientRevocationOptions,
            key="clientAuthConfiguration.verifyClientRevocation",
        ),
    ),
    example_name="mtlsProfile",
    example="--policy-type Predefined --policy-name AppGwSslPolicy20220101S "
    "--trusted-client-certificates clientCa --client-auth-configuration true",
    update_example="--policy-type CustomV2 --min-protocol-version TLSv1_3",
    apply=_ssl_profile,
    verbs=("add", "remove"),
)


# --- HTTP settings, listeners, frontends ------------------------------------------------------


def _http_settings(change: Change) -> None:
    properties = change.properties
    if change.given("connection_draining_timeout"):
        seconds = change.values["connection_draining_timeout"]
        # az: 0 turns draining off, which Azure writes as enabled=false with the minimum 1 s.
        properties["connectionDraining"] = {
            "enabled": seconds > 0,
            "drainTimeoutInSec": max(seconds, 1),
        }


HTTP_SETTINGS = Group(
    "http-settings",
    SETTINGS,
    (
        Flag(("--port",), "Backend port.", kind=int, key="port", required=True),
        Flag(
            ("--protocol",),
            "Backend protocol.",
            choices=Protocol,
            key="protocol",
            default=Protocol.HTTP,
        ),
        Flag(
            ("--cookie-based-affinity",),
            "Session affinity.",
            choices=CookieBasedAffinity,
            key="cookieBasedAffinity",
            default=CookieBasedAffinity.DISABLED,
        ),
        Flag(("--affinity-cookie-name",), "Name of the affinity cookie.", key="affinityCookieName"),
        Flag(
            ("--timeout",),
            "Request timeout in seconds.",
            kind=int,
            key="requestTimeout",
            default=30,
        ),
        Flag(("--probe",), "Custom probe.", key="probe", link=PROBES),
        Flag(("--enable-probe",), "Use the custom probe.", choices=Switch, key="probeEnabled"),
        Flag(("--host-name",), "Host header sent to the backend.", key="hostName"),
        Flag(
            ("--host-name-from-backend-pool",),
            "Send the backend's address as the host name.",
            choices=Switch,
            key="pickHostNameFromBackendAddress",
        ),
        Flag(("--path",), "Path prefix for backend requests.", key="path"),
        Flag(
            ("--auth-certs",),
            "Authentication certificates (v1).",
            kind=list,
            key="authenticationCertificates",
            link=AUTH_CERTS,
        ),
        Flag(
            ("--root-certs",),
            "Trusted root certificates (v2).",
            kind=list,
            key="trustedRootCertificates",
            link=ROOT_CERTS,
        ),
        Flag(
            ("--connection-draining-timeout",),
            "Seconds to drain removed servers; 0 turns draining off.",
            kind=int,
            default=0,
        ),
        Flag(
            ("--validate-cert-chain-and-expiry",),
            "Check the backend certificate's chain and expiry.",
            choices=Switch,
            key="validateCertChainAndExpiry",
        ),
        Flag(
            ("--validate-sni",),
            "Check the backend certificate's name.",
            choices=Switch,
            key="validateSNI",
        ),
        Flag(("--sni-name",), "Name to check the backend certificate against.", key="sniName"),
    ),
    example_name="appGatewayBackendHttpSettings",
    example="--port 443 --protocol Https --host-name app1.contoso.com --root-certs backendRoot",
    update_example="--timeout 60 --probe httpsProbe --enable-probe true",
    apply=_http_settings,
)


WAF_POLICY = Flag(
    ("--waf-policy",),
    "WAF policy that inspects its requests: a policy's id, or the name of one in the "
    "gateway's resource group; empty unlinks it.",
)


def _link_waf_policy(change: Change) -> None:
    if change.given("waf_policy"):
        link = policy_ref(change.edit.gateway, change.values["waf_policy"], WAF_POLICY.long)
        set_field(change.properties, "firewallPolicy", link)


def _listener(change: Change) -> None:
    _link_waf_policy(change)
    properties = change.properties
    if change.given("ssl_cert"):
        properties["protocol"] = "Https" if change.values["ssl_cert"] else "Http"
    elif change.creating:
        properties["protocol"] = "Http"
    if change.given("host_name"):
        properties.pop("hostNames", None)
    if change.given("host_names"):
        properties.pop("hostName", None)
    if properties.get("protocol") == "Https" and properties.get("hostName"):
        properties["requireServerNameIndication"] = True
    elif change.given("ssl_cert") or change.given("host_name"):
        properties.pop("requireServerNameIndication", None)
    change.link_or_only("frontendIPConfiguration", "frontend_ip", FRONTEND_IPS)


HTTP_LISTENER = Group(
    "http-listener",
    LISTENERS,
    (
        Flag(
            ("--frontend-port",),
            "Frontend port.",
            key="frontendPort",
            link=FRONTEND_PORTS,
            required=True,
        ),
        Flag(
            ("--frontend-ip",),
            "Frontend IP configuration (default: the only one).",
            key="frontendIPConfiguration",
            link=FRONTEND_IPS,
        ),
        Flag(
            ("--ssl-cert",),
            "SSL certificate: the listener is Https; else Http.",
            key="sslCertificate",
            link=SSL_CERTS,
        ),
        Flag(
            ("--host-name",), "Host name of a multi-site listener (SNI with Https).", key="hostName"
        ),
        Flag(("--host-names",), "Host names, wildcards allowed.", kind=list, key="hostNames"),
        Flag(
            ("--ssl-profile",),
            "SSL profile of an Https listener (its own TLS policy, client certificates); "
            "empty detaches it.",
            key="sslProfile",
            link=SSL_PROFILES,
        ),
        WAF_POLICY,
    ),
    example_name="appGatewayHttpListener",
    example="--frontend-port appGatewayFrontendPort --ssl-cert contosoSslCert "
    "--host-name www.contoso.com",
    update_example="--host-names '*.contoso.com' contoso.com --ssl-profile mtlsProfile",
    apply=_listener,
)

FRONTEND_PORT = Group(
    "frontend-port",
    FRONTEND_PORTS,
    (Flag(("--port",), "Port number.", kind=int, key="port", required=True),),
    example_name="appGatewayFrontendPort",
    example="--port 443",
    update_example="--port 8443",
)


def _frontend_ip(change: Change) -> None:
    """Names of public IPs and subnets become their ids in the gateway's resource group."""
    properties = change.properties
    gateway = change.edit.gateway
    network = (
        f"/subscriptions/{gateway.subscription}/resourceGroups/{gateway.resource_group}"
        "/providers/Microsoft.Network"
    )
    public = change.values.get("public_ip_address")
    if public is not None:
        properties["publicIPAddress"] = {
            "id": public if public.startswith("/") else f"{network}/publicIPAddresses/{public}"
        }
    private = change.values.get("private_ip_address")
    if private is not None:
        if not is_ip_address(private):
            fail(f"--private-ip-address {private!r}: not an IP address", 2)
        properties["privateIPAddress"] = private
        properties["privateIPAllocationMethod"] = "Static"
    subnet = change.values.get("subnet")
    if subnet is not None:
        if not subnet.startswith("/"):
            vnet = change.values.get("vnet_name")
            if not vnet:
                fail("--subnet by name needs --vnet-name (or give the subnet's id)", 2)
            subnet = f"{network}/virtualNetworks/{vnet}/subnets/{subnet}"
        properties["subnet"] = {"id": subnet}
    if change.creating and not (public or private or subnet):
        fail("give --public-ip-address, or --private-ip-address with --subnet", 2)


FRONTEND_IP = Group(
    "frontend-ip",
    FRONTEND_IPS,
    (
        Flag(("--public-ip-address",), "Public IP address: name (in this resource group) or id."),
        Flag(("--private-ip-address",), "Static private IP address."),
        Flag(("--subnet",), "Subnet of a private frontend: name (with --vnet-name) or id."),
        Flag(("--vnet-name",), "Virtual network of --subnet."),
    ),
    example_name="appGatewayPrivateFrontendIP",
    example="--private-ip-address 10.0.0.10 --vnet-name appgwVnet --subnet default",
    update_example="--private-ip-address 10.0.0.11",
    apply=_frontend_ip,
)


def _address_pool(change: Change) -> None:
    servers = change.values.get("servers")
    if servers is not None:
        change.properties["backendAddresses"] = [
            {"ipAddress": s} if is_ip_address(s) else {"fqdn": s} for s in servers
        ]


ADDRESS_POOL = Group(
    "address-pool",
    POOLS,
    (Flag(("--servers",), "Backend servers: IP addresses or FQDNs.", kind=list, default=[]),),
    example_name="appGatewayBackendPool",
    example="--servers 10.0.1.4 app1.contoso.com",
    update_example="--servers 10.0.1.5",
    apply=_address_pool,
)


# --- probes, rules, path maps, redirects ------------------------------------------------------

PROBE = Group(
    "probe",
    PROBES,
    (
        Flag(
            ("--protocol",), "Probe protocol.", choices=ProbeProtocol, key="protocol", required=True
        ),
        Flag(("--host",), "Host name to probe.", key="host"),
        Flag(("--path",), "Path to probe.", key="path", required=True),
        Flag(("--interval",), "Seconds between probes.", kind=int, key="interval", default=30),
        Flag(
            ("--timeout",), "Seconds to wait for an answer.", kind=int, key="timeout", default=120
        ),
        Flag(
            ("--threshold",),
            "Failures before a server is unhealthy.",
            kind=int,
            key="unhealthyThreshold",
            default=8,
        ),
        Flag(
            ("--host-name-from-http-settings", "--from-http-settings"),
            "Take the host name from the HTTP settings.",
            choices=Switch,
            key="pickHostNameFromBackendHttpSettings",
        ),
        Flag(("--port",), "Port to probe (default: the settings' port).", kind=int, key="port"),
        Flag(("--min-servers",), "Servers always reported healthy.", kind=int, key="minServers"),
        Flag(
            ("--match-status-codes",),
            "Healthy status codes or ranges (200-399).",
            kind=list,
            key="match.statusCodes",
        ),
        Flag(("--match-body",), "Text the healthy response body contains.", key="match.body"),
    ),
    example_name="httpsProbe",
    example="--protocol Https --host app1.contoso.com --path /health --match-status-codes 200-399",
    update_example="--interval 15 --threshold 3",
)


def _rule(change: Change) -> None:
    properties = change.properties
    change.link_or_only("httpListener", "http_listener", LISTENERS)
    if properties.get("ruleType") == "PathBasedRouting":
        change.link_or_only("urlPathMap", "url_path_map", PATH_MAPS)
    elif "redirectConfiguration" not in properties:
        change.link_or_only("backendAddressPool", "address_pool", POOLS)
        change.link_or_only("backendHttpSettings", "http_settings", SETTINGS)


RULE = Group(
    "rule",
    RULES,
    (
        Flag(
            ("--rule-type",), "Rule type.", choices=RuleType, key="ruleType", default=RuleType.BASIC
        ),
        Flag(("--priority",), "Priority 1-20000, lower first (v2).", kind=int, key="priority"),
        Flag(
            ("--http-listener",),
            "HTTP listener (default: the only one).",
            key="httpListener",
            link=LISTENERS,
        ),
        Flag(
            ("--address-pool",),
            "Backend address pool (default: the only one).",
            key="backendAddressPool",
            link=POOLS,
        ),
        Flag(
            ("--http-settings",),
            "HTTP settings (default: the only one).",
            key="backendHttpSettings",
            link=SETTINGS,
        ),
        Flag(
            ("--url-path-map",),
            "URL path map of a PathBasedRouting rule.",
            key="urlPathMap",
            link=PATH_MAPS,
        ),
        _REDIRECT,
        Flag(
            ("--rewrite-rule-set",),
            "Rewrite rule set applied to the rule's traffic; empty detaches it.",
            key="rewriteRuleSet",
            link=REWRITE_SETS,
        ),
    ),
    example_name="rule1",
    example="--priority 100 --http-listener appGatewayHttpListener",
    update_example="--priority 200",
    apply=_rule,
)


def _path_rule_targets(change: Change, rule: dict[str, Any]) -> None:
    """A path rule's pool and settings, or redirect, and its rewrite rule set; an empty value
    removes the reference."""
    for name, key, collection in (
        ("address_pool", "backendAddressPool", POOLS),
        ("http_settings", "backendHttpSettings", SETTINGS),
        ("redirect_config", "redirectConfiguration", REDIRECTS),
        ("rewrite_rule_set", "rewriteRuleSet", REWRITE_SETS),
    ):
        if not change.given(name):
            continue
        if change.values[name]:
            rule[key] = change.ref(name, collection)
        else:
            rule.pop(key, None)


def _url_path_map(change: Change) -> None:
    if not change.creating:
        return
    rule: dict[str, Any] = {"paths": change.values["paths"]}
    _path_rule_targets(change, rule)
    properties = change.properties
    for key in ("backendAddressPool", "backendHttpSettings", "redirectConfiguration"):
        default = "default" + key[0].upper() + key[1:]
        if key in rule and default not in properties:
            properties[default] = dict(rule[key])
    name = change.values["rule_name"]
    properties["pathRules"] = [{"name": name, "properties": rule}]


def _path_rule(change: Change) -> None:
    _link_waf_policy(change)
    _path_rule_targets(change, change.properties)
    parent = change.parent
    if change.creating and parent is not None and "redirectConfiguration" not in change.properties:
        for key in ("backendAddressPool", "backendHttpSettings"):
            default = parent["properties"].get("default" + key[0].upper() + key[1:])
            if key not in change.properties and default is not None:
                change.properties[key] = dict(default)


URL_PATH_MAP = Group(
    "url-path-map",
    PATH_MAPS,
    (
        Flag(
            ("--paths",),
            "Paths of the first rule (/images/*).",
            kind=list,
            required=True,
            update=False,
        ),
        Flag(("--rule-name",), "Name of the first rule.", default="default", update=False),
        Flag(("--address-pool",), "Backend address pool of the first rule.", update=False),
        Flag(("--http-settings",), "HTTP settings of the first rule.", update=False),
        Flag(("--redirect-config",), "Redirect configuration of the first rule.", update=False),
        Flag(("--rewrite-rule-set",), "Rewrite rule set of the first rule.", update=False),
        Flag(
            ("--default-address-pool",),
            "Pool for paths no rule matches (default: --address-pool).",
            key="defaultBackendAddressPool",
            link=POOLS,
        ),
        Flag(
            ("--default-http-settings",),
            "Settings for paths no rule matches (default: --http-settings).",
            key="defaultBackendHttpSettings",
            link=SETTINGS,
        ),
        Flag(
            ("--default-redirect-config",),
            "Redirect for paths no rule matches (default: --redirect-config).",
            key="defaultRedirectConfiguration",
            link=REDIRECTS,
        ),
        Flag(
            ("--default-rewrite-rule-set",),
            "Rewrite rule set for paths no rule matches; empty detaches it.",
            key="defaultRewriteRuleSet",
            link=REWRITE_SETS,
        ),
    ),
    example_name="pathMap1",
    example="--paths /images/* --address-pool imagesPool "
    "--http-settings appGatewayBackendHttpSettings",
    update_example="--default-address-pool appGatewayBackendPool",
    apply=_url_path_map,
)

URL_PATH_MAP_RULE = Group(
    "url-path-map rule",
    "pathRules",
    (
        Flag(
            ("--paths",),
            "Paths this rule matches (/images/*).",
            kind=list,
            key="paths",
            required=True,
        ),
        Flag(("--address-pool",), "Backend address pool (default: the map's)."),
        Flag(("--http-settings",), "HTTP settings (default: the map's)."),
        Flag(("--redirect-config",), "Redirect configuration."),
        Flag(("--rewrite-rule-set",), "Rewrite rule set; empty detaches it."),
        WAF_POLICY,
    ),
    example_name="videoRule",
    example="--paths /video/* --address-pool videoPool",
    update_example="--paths /video/* /media/* --rewrite-rule-set rewriteSet1",
    apply=_path_rule,
    parent=Parent(Flag(("--path-map-name",), "The URL path map.", required=True), URL_PATH_MAP),
)


def _redirect(change: Change) -> None:
    listener, url = change.given("target_listener"), change.given("target_url")
    if listener and url:
        fail("give --target-listener or --target-url, not both", 2)
    if listener:
        change.properties.pop("targetUrl", None)
    elif url:
        change.properties.pop("targetListener", None)
    elif change.creating:
        fail("give --target-listener or --target-url", 2)


REDIRECT_CONFIG = Group(
    "redirect-config",
    REDIRECTS,
    (
        Flag(
            ("--type", "-t"),
            "Redirect status.",
            choices=RedirectType,
            key="redirectType",
            required=True,
        ),
        Flag(
            ("--target-listener",), "Listener to redirect to.", key="targetListener", link=LISTENERS
        ),
        Flag(("--target-url",), "URL to redirect to.", key="targetUrl"),
        Flag(("--include-path",), "Keep the request path.", choices=Switch, key="includePath"),
        Flag(
            ("--include-query-string",),
            "Keep the query string.",
            choices=Switch,
            key="includeQueryString",
        ),
    ),
    example_name="httpToHttps",
    example="-t Permanent --target-listener appGatewayHttpListener --include-path true",
    update_example="--include-query-string true",
    apply=_redirect,
)

# --- rewrite rule sets ------------------------------------------------------------------------

REWRITE_RULE_SET = Group(
    "rewrite-rule set",
    REWRITE_SETS,
    (),
    example_name="rewriteSet1",
    example="",
    update_example="",
)


def _rewrite_rule(change: Change) -> None:
    """--request-headers / --response-headers replace the rule's list (as az does); an empty
    VALUE deletes the header."""
    for name, key in (
        ("request_headers", "requestHeaderConfigurations"),
        ("response_headers", "responseHeaderConfigurations"),
    ):
        if change.given(name):
            headers = [
                {"headerName": header, "headerValue": value}
                for header, value in change.values[name].items()
            ]
            set_field(change.properties, f"actionSet.{key}", headers)


REWRITE_RULE = Group(
    "rewrite-rule",
    "rewriteRules",
    (
        Flag(
            ("--sequence",),
            "Order of the rule in its set, 1-1000; lower runs first.",
            kind=int,
            key="ruleSequence",
            default=100,
        ),
        Flag(
            ("--request-headers",),
            "Request headers to set, HEADER=VALUE (the VALUE may use variables: "
            "{var_client_ip}); an empty VALUE (Server=) deletes the header. Replaces the "
            "rule's list.",
            kind=dict,
        ),
        Flag(
            ("--response-headers",),
            "Response headers to set, HEADER=VALUE (the VALUE may use variables: "
            "{http_resp_Location}); an empty VALUE (Server=) deletes the header. Replaces the "
            "rule's list.",
            kind=dict,
        ),
        Flag(
            ("--modified-path",),
            "URL path to rewrite to; may use variables ({var_uri_path_1}).",
            key="actionSet.urlConfiguration.modifiedPath",
        ),
        Flag(
            ("--modified-query-string",),
            "Query string to rewrite to; may use variables.",
            key="actionSet.urlConfiguration.modifiedQueryString",
        ),
        Flag(
            ("--enable-reroute",),
            "Match the rewritten URL against the URL path map again.",
            choices=Switch,
            key="actionSet.urlConfiguration.reroute",
        ),
    ),
    example_name="rule1",
    example="--sequence 100 --request-headers X-Forwarded-For={var_add_x_forwarded_for_proxy} "
    "--response-headers Server=",
    update_example="--modified-path /v2{var_uri_path} --enable-reroute false",
    apply=_rewrite_rule,
    parent=Parent(
        Flag(("--rule-set-name",), "The rewrite rule set.", required=True), REWRITE_RULE_SET
    ),
    envelope=False,
)

REWRITE_CONDITION = Group(
    "rewrite-rule condition",
    "conditions",
    (
        Flag(
            ("--pattern",),
            "Pattern (RE2) the variable's value is matched against.",
            key="pattern",
            required=True,
        ),
        Flag(
            ("--ignore-case",),
            "Match without regard to case.",
            choices=Switch,
            key="ignoreCase",
            default=Switch.TRUE,
        ),
        Flag(
            ("--negate",),
            "The condition holds when the pattern does not match.",
            choices=Switch,
            key="negate",
            default=Switch.FALSE,
        ),
    ),
    example_name="http_req_User-Agent",
    example="--pattern 'mobile|android' --negate false",
    update_example="--pattern 'android|iphone' --ignore-case true",
    parent=Parent(Flag(("--rule-name",), "The rewrite rule.", required=True), REWRITE_RULE),
    identity=Flag(
        ("--variable",),
        "Variable the condition checks, which identifies it: a server variable (var_uri_path), "
        "a request header (http_req_User-Agent) or a response header (http_resp_Location).",
        key="variable",
    ),
    envelope=False,
)

# In the order they are registered: a group after the one its command path extends.
GROUPS = (
    (SSL_CERT, "Listener certificates (PFX)."),
    (AUTH_CERT, "Backend authentication certificates (v1 SKUs)."),
    (ROOT_CERT, "Trusted root certificates for backends (v2 SKUs)."),
    (CLIENT_CERT, "Trusted client CA certificates for mutual TLS (v2 SKUs)."),
    (SSL_PROFILE, "SSL profiles: a listener's own TLS policy and client certificates (v2 SKUs)."),
    (HTTP_SETTINGS, "Backend HTTP settings."),
    (HTTP_LISTENER, "HTTP listeners."),
    (FRONTEND_PORT, "Frontend ports."),
    (FRONTEND_IP, "Frontend IP configurations."),
    (ADDRESS_POOL, "Backend address pools."),
    (PROBE, "Health probes."),
    (RULE, "Request routing rules."),
    (REDIRECT_CONFIG, "Redirect configurations."),
    (URL_PATH_MAP, "URL path maps."),
    (URL_PATH_MAP_RULE, "Rules of a URL path map."),
    (REWRITE_RULE, "Rewrite rules, their sets and conditions (v2 SKUs)."),
    (REWRITE_RULE_SET, "Rewrite rule sets."),
    (REWRITE_CONDITION, "Conditions of a rewrite rule."),
)
