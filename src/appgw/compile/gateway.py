"""compile_gateway: a stored gateway document + its secrets -> Snapshot. Pure: no clock, no I/O.

The control plane runs it as a dry run before every commit, so a version the store accepts
compiles on every worker. Certificate validity dates are not judged here (that needs a clock);
the API refuses expired uploads and the health view warns before expiry.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from appgw import certificates
from appgw.compile import stored_certificates
from appgw.compile.firewall import Firewalls
from appgw.compile.matching import CertificateSelector, HostMatcher, PathMatcher
from appgw.compile.rewrite import compile_rewrite_set
from appgw.compile.snapshot import (
    BackendMember,
    BackendPool,
    BackendSettings,
    Endpoint,
    FirewallScope,
    ForwardTarget,
    ListenerTls,
    PathRoute,
    ProbeSpec,
    RedirectTarget,
    Route,
    Site,
    Snapshot,
    Target,
    UpstreamSpec,
    upstream_spec,
)
from appgw.memo import BoundedMemo
from appgw.model.diagnostics import Diagnostic
from appgw.model.enums import (
    ClientAuthMode,
    ClientRevocationOptions,
    CookieBasedAffinity,
    Protocol,
    RedirectType,
    RuleType,
)
from appgw.model.resource import (
    ApplicationGateway,
    BackendHttpSettings,
    CustomError,
    HttpListener,
    RedirectConfiguration,
    RequestRoutingRule,
    SslProfile,
    SubResource,
)
from appgw.model.validate import is_v1
from appgw.tls.client_auth import ClientAuth, issuer_dn_of_upload
from appgw.tls.server import TlsPolicy, policy_from_model, server_context
from appgw.tls.trust import BackendTrust

# Azure's defaults (spec §5.2, §7.2, §7.4).
DEFAULT_REQUEST_TIMEOUT = 20.0  # seconds, the portal's and service's default
DEFAULT_DRAIN_TIMEOUT = 30.0  # seconds a removed member drains when draining is not configured
DEFAULT_PROBE_INTERVAL = 30.0  # Azure's default probe: every 30 s ...
DEFAULT_PROBE_TIMEOUT = 30.0  # ... with a 30 s timeout ...
DEFAULT_UNHEALTHY_THRESHOLD = 3  # ... and unhealthy after 3 consecutive failures
AFFINITY_COOKIE = "ApplicationGatewayAffinity"
ALL_ADDRESSES = "0.0.0.0"
WILDCARDS = frozenset({ALL_ADDRESSES, "::"})  # addresses that bind every address

_REDIRECT_STATUS = {
    RedirectType.PERMANENT: 301,
    RedirectType.FOUND: 302,
    RedirectType.SEE_OTHER: 303,
    RedirectType.TEMPORARY: 307,
}


# Loading a stored key and chain into a context costs ~1.5 ms (more for a version stored with its
# PFX, which is decrypted): at Azure's 100 certificates, a tenth of a second of every compile,
# though most new versions keep their certificates. Contexts are remembered by (stored entry's
# digest, TLS policy); the bound holds two gateways at Azure's 100 certificates, so a dry run
# and the next version of the largest one both find theirs.
_listener_contexts: BoundedMemo[
    tuple[bytes, TlsPolicy, ClientAuth | None, bool], ssl.SSLContext
] = BoundedMemo(200)


# Member tuples by their (address, is FQDN) pairs: most versions keep most pools, and making
# 120,000 members again (Azure's limits: 100 pools x 1,200) cost 0.4 s of every compile. The
# bound holds Azure's 100 pools of two gateways.
_member_tuples: BoundedMemo[tuple[tuple[str, bool], ...], tuple[BackendMember, ...]] = BoundedMemo(
    200
)


# Upstream specs by (settings, members, SKU): most versions keep most (pool, settings) pairs;
# the bound holds Azure's 100 pairs of two gateways.
_upstream_specs: BoundedMemo[
    tuple[BackendSettings, tuple[BackendMember, ...], bool], dict[str, UpstreamSpec]
] = BoundedMemo(200)


def upstream_specs(
    settings: BackendSettings, members: tuple[BackendMember, ...], *, sku_v1: bool
) -> dict[str, UpstreamSpec]:
    """How traffic reaches each member (by address) under `settings`: compile/identity.py's
    rule, applied once per version instead of per request."""

    def make() -> dict[str, UpstreamSpec]:
        return {m.address: upstream_spec(settings, m, sku_v1=sku_v1) for m in members}

    return _upstream_specs.get((settings, members, sku_v1), make)


def _members(pairs: tuple[tuple[str, bool], ...]) -> tuple[BackendMember, ...]:
    return _member_tuples.get(
        pairs, lambda: tuple(BackendMember(address, is_fqdn) for address, is_fqdn in pairs)
    )


class CompileError(Exception):
    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics[0].message if diagnostics else "compile failed")
        self.diagnostics = diagnostics


def compile_gateway(
    document: Mapping[str, Any],
    secrets: Mapping[str, Any],
    *,
    gateway_id: str,
    seq: int = 0,
    version: int = 0,
    running: bool = True,
    frontend_address: str = ALL_ADDRESSES,
) -> Snapshot:
    """`frontend_address` is what a frontend without a private IP (a "public" one) binds."""
    return compile_model(
        ApplicationGateway.model_validate(document),
        secrets,
        gateway_id=gateway_id,
        seq=seq,
        version=version,
        running=running,
        frontend_address=frontend_address,
    )


def compile_model(
    gateway: ApplicationGateway,
    secrets: Mapping[str, Any],
    *,
    gateway_id: str,
    seq: int = 0,
    version: int = 0,
    running: bool = True,
    frontend_address: str = ALL_ADDRESSES,
) -> Snapshot:
    """compile_gateway for a document already parsed (the API's dry run: parsing Azure's
    largest gateway costs 0.7 s)."""
    return _Compiler(gateway, secrets, gateway_id, frontend_address).build(
        seq=seq, version=version, running=running
    )


def listening_endpoints(
    document: Mapping[str, Any], frontend_address: str
) -> dict[tuple[str, int], list[str]]:
    """The (address, port) pairs a gateway document binds, each with the names of the
    listeners bound there (listeners that a rule uses), in rule order."""
    return bound_listeners(ApplicationGateway.model_validate(document), frontend_address)


def bound_listeners(
    gateway: ApplicationGateway, frontend_address: str
) -> dict[tuple[str, int], list[str]]:
    """As `listening_endpoints`, of a parsed gateway."""
    props = gateway.properties
    listeners = {item.name.casefold(): item for item in props.http_listeners}
    frontends = {item.name.casefold(): item for item in props.frontend_ip_configurations}
    ports = {item.name.casefold(): item.properties.port or 0 for item in props.frontend_ports}
    bound: dict[tuple[str, int], list[str]] = {}
    for rule in props.request_routing_rules:
        listener = listeners[_name(rule.properties.http_listener)]
        frontend = frontends[_name(listener.properties.frontend_ip_configuration)].properties
        key = (
            frontend.private_ip_address or frontend_address,
            ports[_name(listener.properties.frontend_port)],
        )
        names = bound.setdefault(key, [])
        if listener.name not in names:
            names.append(listener.name)
    return bound


def endpoints_overlap(a: tuple[str, int], b: tuple[str, int]) -> bool:
    """Two binds collide on one port when the addresses are equal or either is a wildcard."""
    return a[1] == b[1] and (a[0] == b[0] or a[0] in WILDCARDS or b[0] in WILDCARDS)


def parse_status_range(text: str) -> tuple[int, int]:
    """'200-399' -> (200, 399); '200' -> (200, 200). The text is already validated."""
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def _name(reference: SubResource | None) -> str:
    """The folded child name a (validated) reference points at."""
    assert reference is not None
    return reference.id.rsplit("/", 1)[-1].casefold()


def _custom_errors(configs: list[CustomError] | None) -> dict[int, str]:
    return {
        int(c.status_code.value.removeprefix("HttpStatus")): c.custom_error_page_url
        for c in configs or []
    }


class _Compiler:
    def __init__(
        self,
        gateway: ApplicationGateway,
        secrets: Mapping[str, Any],
        gateway_id: str,
        frontend_address: str,
    ) -> None:
        self.gateway = gateway
        self.props = gateway.properties
        self.secrets = secrets
        self.gateway_id = gateway_id
        self.frontend_address = frontend_address
        self.v1 = is_v1(gateway)
        # enableHttp2: the gateway's HTTPS listeners offer h2 in ALPN (clients only; backends
        # stay on HTTP/1.1, as in Azure).
        self.http2 = bool(gateway.properties.enable_http2)
        self.problems: list[Diagnostic] = []
        self.backend_addresses: set[tuple[str, int]] = set()
        self.forward_targets: list[ForwardTarget] = []
        self.forward_pairs: dict[tuple[str, str], dict[str, UpstreamSpec]] = {}
        self.request_hosts: dict[tuple[str, str], set[str]] = {}
        self.listener_hosts: tuple[str, ...] = ()  # of the rule being compiled
        try:
            self.policy: TlsPolicy = policy_from_model(self.props.ssl_policy)
        except ValueError as error:
            self.problems.append(
                Diagnostic(
                    "ApplicationGatewayInvalidSslPolicy",
                    gateway_id,
                    "properties.sslPolicy",
                    str(error),
                )
            )
            self.policy = policy_from_model(None)
        self.contexts: dict[tuple[str, str | None], ssl.SSLContext] = {}
        self.pools = {
            pool.name.casefold(): BackendPool(
                pool.name,
                _members(
                    tuple(
                        (a.fqdn or a.ip_address or "", a.fqdn is not None)
                        for a in pool.properties.backend_addresses
                    )
                ),
            )
            for pool in self.props.backend_address_pools
        }
        self.listeners = {item.name.casefold(): item for item in self.props.http_listeners}
        self.redirects = {item.name.casefold(): item for item in self.props.redirect_configurations}
        self.path_maps = {item.name.casefold(): item for item in self.props.url_path_maps}
        self.ports = {
            item.name.casefold(): item.properties.port or 0 for item in self.props.frontend_ports
        }
        self.frontends = {
            item.name.casefold(): item for item in self.props.frontend_ip_configurations
        }
        self.public_roots = {
            item.name.casefold(): certificates.decode_certificate_blob(item.properties.data or "")
            for item in self.props.trusted_root_certificates
        }
        self.auth_certs = {
            item.name.casefold(): certificates.decode_certificate_blob(item.properties.data or "")
            for item in self.props.authentication_certificates
        }
        self.settings = {
            item.name.casefold(): self._settings(item)
            for item in self.props.backend_http_settings_collection
        }
        self.ssl_profiles = {item.name.casefold(): item for item in self.props.ssl_profiles}
        self.trusted_client_certificates = {
            item.name.casefold(): item for item in self.props.trusted_client_certificates
        }
        self.rewrite_sets = {
            item.name.casefold(): compile_rewrite_set(item) for item in self.props.rewrite_rule_sets
        }
        self.firewalls = Firewalls(
            gateway_id,
            self.props.web_application_firewall_configuration,
            self.props.firewall_policy,
            secrets,
            self.problems,
        )

    def build(self, *, seq: int, version: int, running: bool) -> Snapshot:
        rules = list(self.props.request_routing_rules)
        if not self.v1 and all(rule.properties.priority is not None for rule in rules):
            rules.sort(key=lambda rule: rule.properties.priority or 0)
        by_endpoint: dict[tuple[str, int], list[tuple[HttpListener, RequestRoutingRule]]] = {}
        for rule in rules:
            listener = self.listeners[_name(rule.properties.http_listener)]
            by_endpoint.setdefault(self._bind(listener), []).append((listener, rule))
        endpoints: dict[tuple[str, int], Endpoint] = {}
        for key, pairs in by_endpoint.items():
            https = pairs[0][0].properties.protocol == Protocol.HTTPS
            sites = HostMatcher(
                [(self._hosts(listener), self._site(listener, rule)) for listener, rule in pairs]
            )
            selector: CertificateSelector[ssl.SSLContext] | None = None
            names: dict[ssl.SSLContext, ListenerTls] = {}
            auths: dict[ssl.SSLContext, ClientAuth] = {}
            policies: dict[ssl.SSLContext, TlsPolicy] = {}
            if https:
                for listener, _rule in pairs:
                    tls = self._listener_tls(listener)
                    context = self._listener_context(listener)
                    names[context] = tls
                    policy, auth = self._profile(tls.ssl_profile)
                    if auth is not None:
                        auths[context] = auth
                    if policy != self.policy:
                        policies[context] = policy
                selector = CertificateSelector(
                    [
                        (
                            self._hosts(listener),
                            bool(listener.properties.require_server_name_indication),
                            self._listener_context(listener),
                        )
                        for listener, _rule in pairs
                    ],
                    sku_v1=self.v1,
                )
            endpoints[key] = Endpoint(
                bind_host=key[0],
                port=key[1],
                https=https,
                sites=sites,
                certificates=selector,
                tls_policy=self.policy if https else None,
                certificate_names=names,
                client_auths=auths,
                profile_policies=policies,
            )
        if self.problems:
            raise CompileError(self.problems)
        probe_specs = self._probe_specs()
        return Snapshot(
            seq=seq,
            gateway_id=self.gateway_id,
            version=version,
            running=running,
            sku_v1=self.v1,
            endpoints=endpoints,
            custom_errors=_custom_errors(self.props.custom_error_configurations),
            backend_addresses=frozenset(self.backend_addresses),
            forward_targets=tuple(self.forward_targets),
            probe_specs=probe_specs,
            request_hosts={
                pair: tuple(sorted(hosts)) for pair, hosts in self.request_hosts.items()
            },
            probe_fingerprints={
                (spec.pool.name, spec.settings.name): spec.fingerprint for spec in probe_specs
            },
            custom_error_urls=frozenset(
                url
                for configs in (
                    self.props.custom_error_configurations,
                    *(
                        item.properties.custom_error_configurations
                        for item in self.props.http_listeners
                    ),
                )
                for url in _custom_errors(configs).values()
            ),
        )

    # --- pieces ---------------------------------------------------------------------------------

    def _bind(self, listener: HttpListener) -> tuple[str, int]:
        frontend = self.frontends[_name(listener.properties.frontend_ip_configuration)]
        host = frontend.properties.private_ip_address or self.frontend_address
        return host, self.ports[_name(listener.properties.frontend_port)]

    @staticmethod
    def _hosts(listener: HttpListener) -> tuple[str, ...]:
        p = listener.properties
        names = [p.host_name] if p.host_name else (p.host_names or [])
        return tuple(name.casefold().rstrip(".") for name in names)

    def _site(self, listener: HttpListener, rule: RequestRoutingRule) -> Site:
        p = rule.properties
        self.listener_hosts = self._hosts(listener) or ("",)
        waf = self.firewalls.listener(
            listener.properties.firewall_policy,
            listener.name,
            f"{self.gateway_id}/httpListeners/{listener.name}",
        )
        route: Route
        if p.rule_type == RuleType.PATH_BASED_ROUTING:
            path_map_model = self.path_maps[_name(p.url_path_map)]
            path_map = path_map_model.properties
            default = self._target(
                rule.name,
                path_map.default_backend_address_pool,
                path_map.default_backend_http_settings,
                path_map.default_redirect_configuration,
                None,
                path_map.default_rewrite_rule_set,
                waf,
            )
            route = PathRoute(
                rule.name,
                PathMatcher(
                    [
                        (
                            path_rule.properties.paths,
                            self._target(
                                rule.name,
                                path_rule.properties.backend_address_pool,
                                path_rule.properties.backend_http_settings,
                                path_rule.properties.redirect_configuration,
                                path_rule.name,
                                path_rule.properties.rewrite_rule_set,
                                self.firewalls.path_rule(
                                    path_rule.properties.firewall_policy,
                                    path_rule.name,
                                    f"{self.gateway_id}/urlPathMaps/{path_map_model.name}"
                                    f"/pathRules/{path_rule.name}",
                                    waf,
                                ),
                            ),
                        )
                        for path_rule in path_map.path_rules
                    ],
                    default,
                ),
            )
        else:
            route = self._target(
                rule.name,
                p.backend_address_pool,
                p.backend_http_settings,
                p.redirect_configuration,
                None,
                p.rewrite_rule_set,
                waf,
            )
        https = listener.properties.protocol == Protocol.HTTPS
        tls = self._listener_tls(listener) if https else None
        return Site(
            listener.name,
            route,
            _custom_errors(listener.properties.custom_error_configurations),
            tls.certificate if tls is not None else None,
            tls.ssl_profile if tls is not None else None,
            self._profile(tls.ssl_profile)[1] if tls is not None else None,
        )

    def _target(
        self,
        rule_name: str,
        pool: SubResource | None,
        settings: SubResource | None,
        redirect: SubResource | None,
        path_rule_name: str | None,
        rewrite: SubResource | None,
        waf: FirewallScope | None,
    ) -> Target:
        if redirect is not None:  # Azure: rewrites do not apply to redirects
            return self._redirect(rule_name, self.redirects[_name(redirect)], path_rule_name, waf)
        backend_pool, backend_settings = self.pools[_name(pool)], self.settings[_name(settings)]
        pair = (backend_pool.name, backend_settings.name)
        # Once per (pool, settings) pair, not per rule: at Azure's limits (100 x 100 path rules
        # over pools of 1,200 members) per-rule work here was 12 million set insertions.
        upstreams = self.forward_pairs.get(pair)
        first = upstreams is None
        if upstreams is None:
            upstreams = self.forward_pairs[pair] = upstream_specs(
                backend_settings, backend_pool.members, sku_v1=self.v1
            )
        self.request_hosts.setdefault(pair, set()).update(self.listener_hosts)
        target = ForwardTarget(
            rule_name,
            backend_pool,
            backend_settings,
            path_rule_name,
            upstreams=upstreams,
            rewrite=self.rewrite_sets[_name(rewrite)] if rewrite is not None else None,
            waf=waf,
        )
        if first:
            self.backend_addresses.update(
                (member.address, backend_settings.port) for member in backend_pool.members
            )
            self.forward_targets.append(target)
        return target

    def _redirect(
        self,
        rule_name: str,
        redirect: RedirectConfiguration,
        path_rule_name: str | None,
        waf: FirewallScope | None,
    ) -> RedirectTarget:
        p = redirect.properties
        scheme = host = None
        port = None
        if p.target_listener is not None:
            target = self.listeners[_name(p.target_listener)].properties
            scheme = "https" if target.protocol == Protocol.HTTPS else "http"
            names = [target.host_name] if target.host_name else (target.host_names or [])
            host = names[0] if names else None
            port = self.ports[_name(target.frontend_port)]
        assert p.redirect_type is not None
        return RedirectTarget(
            rule_name=rule_name,
            status=_REDIRECT_STATUS[p.redirect_type],
            target_url=p.target_url,
            target_scheme=scheme,
            target_host=host,
            target_port=port,
            include_path=bool(p.include_path),
            include_query=bool(p.include_query_string),
            path_rule_name=path_rule_name,
            waf=waf,
        )

    def _probe_specs(self) -> tuple[ProbeSpec, ...]:
        probes = {probe.name.casefold(): probe for probe in self.props.probes}
        settings_models = {
            item.name.casefold(): item for item in self.props.backend_http_settings_collection
        }
        specs: dict[tuple[str, str], ProbeSpec] = {}
        for target in self.forward_targets:
            key = (target.pool.name, target.settings.name)
            if key in specs:
                continue
            reference = settings_models[target.settings.name.casefold()].properties.probe
            probe = probes[_name(reference)].properties if reference is not None else None
            name = _name(reference) if reference is not None else None
            if probe is None:
                # Azure's default probe: GET / with Host 127.0.0.1, every 30 s, 30 s timeout,
                # unhealthy after 3 failures, healthy on 200-399.
                specs[key] = ProbeSpec(
                    pool=target.pool,
                    settings=target.settings,
                    probe_name=None,
                    host=None,
                    pick_host_from_settings=False,
                    path="/",
                    port=target.settings.port,
                    interval=DEFAULT_PROBE_INTERVAL,
                    timeout=DEFAULT_PROBE_TIMEOUT,
                    unhealthy_threshold=DEFAULT_UNHEALTHY_THRESHOLD,
                    status_ranges=((200, 399),),
                    body=None,
                    min_servers=0,
                )
                continue
            codes = (probe.match.status_codes if probe.match else None) or ["200-399"]
            specs[key] = ProbeSpec(
                pool=target.pool,
                settings=target.settings,
                probe_name=probes[name or ""].name if name else None,
                host=probe.host,
                pick_host_from_settings=bool(probe.pick_host_name_from_backend_http_settings),
                path=probe.path or "/",
                port=probe.port or target.settings.port,
                interval=float(probe.interval or DEFAULT_PROBE_INTERVAL),
                timeout=float(probe.timeout or DEFAULT_PROBE_TIMEOUT),
                unhealthy_threshold=probe.unhealthy_threshold or DEFAULT_UNHEALTHY_THRESHOLD,
                status_ranges=tuple(parse_status_range(code) for code in codes),
                body=(probe.match.body if probe.match else None) or None,
                min_servers=probe.min_servers or 0,
            )
        return tuple(specs.values())

    def _settings(self, settings: BackendHttpSettings) -> BackendSettings:
        p = settings.properties
        https = p.protocol == Protocol.HTTPS
        trust: BackendTrust | None = None
        if https:
            trust = BackendTrust(
                sku_v1=self.v1,
                allowed_leaves_der=tuple(
                    self.auth_certs[_name(ref)] for ref in p.authentication_certificates or []
                ),
                trusted_roots_der=tuple(
                    self.public_roots[_name(ref)] for ref in p.trusted_root_certificates or []
                ),
                validate_chain_and_expiry=p.validate_cert_chain_and_expiry is not False,
                validate_name=p.validate_sni is not False,
            )
        affinity = None
        if p.cookie_based_affinity == CookieBasedAffinity.ENABLED:
            affinity = p.affinity_cookie_name or AFFINITY_COOKIE
        draining = p.connection_draining
        return BackendSettings(
            name=settings.name,
            port=p.port or (443 if https else 80),
            https=https,
            host_override=p.host_name,
            pick_host_from_member=bool(p.pick_host_name_from_backend_address),
            path_override=p.path,
            request_timeout=float(p.request_timeout or DEFAULT_REQUEST_TIMEOUT),
            affinity_cookie=affinity,
            drain_timeout=float(draining.drain_timeout_in_sec)
            if draining is not None and draining.enabled
            else DEFAULT_DRAIN_TIMEOUT,
            trust=trust,
            sni_name=p.sni_name,
        )

    def _listener_tls(self, listener: HttpListener) -> ListenerTls:
        p = listener.properties
        return ListenerTls(
            _name(p.ssl_certificate), _name(p.ssl_profile) if p.ssl_profile is not None else None
        )

    def _listener_context(self, listener: HttpListener) -> ssl.SSLContext:
        tls = self._listener_tls(listener)
        return self._context(tls.certificate, tls.ssl_profile)

    def _profile(self, profile_name: str | None) -> tuple[TlsPolicy, ClientAuth | None]:
        """The TLS policy and client authentication of a listener's SSL profile (none: the
        gateway's policy, no client certificates)."""
        profile = self.ssl_profiles.get(profile_name) if profile_name is not None else None
        if profile is None:
            return self.policy, None
        p = profile.properties
        policy = self.policy
        if p.ssl_policy is not None:
            try:
                policy = policy_from_model(p.ssl_policy)
            except ValueError as error:
                self.problems.append(
                    Diagnostic(
                        "ApplicationGatewayInvalidSslPolicy",
                        f"{self.gateway_id}/sslProfiles/{profile.name}",
                        "properties.sslPolicy",
                        str(error),
                    )
                )
        return policy, self._client_auth(profile)

    def _client_auth(self, profile: SslProfile) -> ClientAuth | None:
        p = profile.properties
        entries = [
            self.trusted_client_certificates[_name(reference)]
            for reference in p.trusted_client_certificates or []
            if _name(reference) in self.trusted_client_certificates
        ]
        if not entries:
            return None  # a profile of TLS policy only
        settings = p.client_auth_configuration
        der: list[bytes] = []
        issuers: list[str] = []
        for entry in entries:
            chain = certificates.load_certificate_chain(entry.properties.data or "")
            der += (cert.public_bytes(Encoding.DER) for cert in chain)
            issuers.append(issuer_dn_of_upload(chain))
        return ClientAuth(
            tuple(der),
            tuple(issuers)
            if settings is not None and settings.verify_client_cert_issuer_dn
            else (),
            verify_chain=settings is None
            or settings.verify_client_auth_mode != ClientAuthMode.PASSTHROUGH,
            ocsp=settings is not None
            and settings.verify_client_revocation == ClientRevocationOptions.OCSP,
        )

    def _context(self, certificate_name: str, profile_name: str | None = None) -> ssl.SSLContext:
        if (certificate_name, profile_name) in self.contexts:
            return self.contexts[(certificate_name, profile_name)]
        policy, auth = self._profile(profile_name)
        stored = self.secrets.get("sslCertificates", {}).get(certificate_name)
        resource = f"{self.gateway_id}/sslCertificates/{certificate_name}"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # placeholder on failure; never served
        if stored is None:
            self.problems.append(
                Diagnostic(
                    "SslCertificateSecretMissing", resource, "", "no stored key and certificate"
                )
            )
        else:
            try:
                context = _listener_contexts.get(
                    (stored_certificates.digest(stored), policy, auth, self.http2),
                    lambda: server_context(
                        stored_certificates.load(stored), policy, auth, http2=self.http2
                    ),
                )
            except certificates.CertificateError as error:
                self.problems.append(
                    Diagnostic(error.code, resource, "properties.data", error.message)
                )
            except ssl.SSLError as error:
                self.problems.append(
                    Diagnostic(
                        "ApplicationGatewaySslPolicyUnusable",
                        resource,
                        "",
                        f"this machine's OpenSSL cannot serve the certificate under the TLS "
                        f"policy: {error.reason or error}",
                    )
                )
        self.contexts[(certificate_name, profile_name)] = context
        return context
