"""The immutable runtime snapshot the data plane reads: data-plane words, everything precomputed.

A request reads the current snapshot once and keeps it, so a configuration change never tears
a request. Nothing here is validated again on the hot path.
"""

from __future__ import annotations

import functools
import hashlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from appgw.compile.identity import BackendIdentity, ProbeHost, backend_identity
from appgw.compile.matching import CertificateSelector, HostMatcher, PathMatcher
from appgw.compile.rewrite import RewriteSet
from appgw.model.ids import GatewayId
from appgw.tls.client_auth import ClientAuth
from appgw.tls.server import TlsPolicy
from appgw.tls.trust import BackendTrust
from appgw.waf.engine import Firewall


@dataclass(frozen=True, slots=True)
class BackendMember:
    address: str  # IP literal or FQDN, as configured
    is_fqdn: bool


@dataclass(frozen=True, slots=True)
class BackendPool:
    name: str
    members: tuple[BackendMember, ...]


@dataclass(frozen=True, slots=True)
class BackendSettings:
    name: str
    port: int
    https: bool
    host_override: str | None  # hostName: Host header (and v2 SNI)
    pick_host_from_member: bool
    path_override: str | None
    request_timeout: float
    affinity_cookie: str | None  # cookie name when cookie-based affinity is on
    drain_timeout: float  # seconds a removed member keeps its in-flight connections
    trust: BackendTrust | None  # Https only
    sni_name: str | None  # v2 explicit SNI / expected name


@functools.lru_cache(maxsize=256)
def gateway_label(gateway_id: str) -> str:
    """'resource group/name' of a gateway id: enough to tell gateways apart in a log line, as
    Azure's default child names (appGatewayBackendPool, ...) are the same in every gateway."""
    parsed = GatewayId.parse(gateway_id)
    return f"{parsed.resource_group}/{parsed.name}" if parsed is not None else gateway_id


def backend_where(
    gateway_id: str,
    pool: str,
    settings: BackendSettings,
    address: str,
    port: int,
    rule: str | None = None,
) -> str:
    """How every log line about a backend names it (health probes and traffic alike):
    "backend https://10.0.0.4:443 (gateway 'rg1/appgw', pool 'p', settings 's', rule 'r')"."""
    scheme = "https" if settings.trust is not None else "http"
    named = f"gateway '{gateway_label(gateway_id)}', pool '{pool}', settings '{settings.name}'"
    if rule is not None:
        named += f", rule '{rule}'"
    return f"backend {scheme}://{address}:{port} ({named})"


@dataclass(frozen=True, slots=True)
class UpstreamKey:
    """A backend connection's identity: a connection verified for one never serves another."""

    address: str  # IP literal or FQDN of the pool member
    port: int
    sni: str | None  # None: no SNI (IP literals, v1 IP members)
    verify_name: str | None
    trust: BackendTrust | None  # None: plain HTTP

    def describe(self) -> str:
        scheme = "https" if self.trust is not None else "http"
        return f"{scheme}://{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    """How traffic reaches one member under one backend settings (compile/identity.py's rule,
    applied once per version). Only `identity.from_request` needs the request: `key` is then
    None and `key_for` completes it."""

    member: BackendMember
    identity: BackendIdentity
    port: int
    trust: BackendTrust | None
    key: UpstreamKey | None
    host_header: bytes | None  # None: the request's own Host (the member's address without one)

    def key_for(self, request_host: str) -> UpstreamKey:
        if self.key is not None:
            return self.key
        identity = self.identity.with_request_host(request_host)
        return UpstreamKey(
            self.member.address, self.port, identity.sni, identity.verify_name, self.trust
        )


@dataclass(frozen=True, slots=True)
class FirewallScope:
    """The WAF that inspects a rule's (or path rule's) requests: the rules loaded for the
    policy (or the gateway's inline configuration) in force there, and what the firewall log
    says of it. Azure: a path rule's policy wins over its listener's, which wins over the
    gateway's."""

    firewall: Firewall
    policy_id: str  # the policy's resource id; "default" for the inline configuration
    scope: str  # Azure's policyScope: Global, Listener or Location (a path rule)
    scope_name: str  # the listener's or path rule's name; "Global"
    block_status: int = 403  # customBlockResponseStatusCode
    block_body: bytes | None = None  # customBlockResponseBody, decoded


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    rule_name: str
    pool: BackendPool
    settings: BackendSettings
    path_rule_name: str | None = None
    # member address -> how traffic reaches it; shared by every rule using this pool + settings
    upstreams: Mapping[str, UpstreamSpec] = field(default_factory=dict, compare=False)
    rewrite: RewriteSet | None = field(default=None, compare=False)  # the rule's rewrite set
    waf: FirewallScope | None = field(default=None, compare=False)  # None: not inspected

    def upstream(self, member: BackendMember, *, sku_v1: bool) -> UpstreamSpec:
        """How traffic reaches `member`: precompiled, or made now for a member that left the
        pool and still drains its affinity sessions."""
        spec = self.upstreams.get(member.address)
        return spec if spec is not None else upstream_spec(self.settings, member, sku_v1=sku_v1)


def upstream_spec(
    settings: BackendSettings, member: BackendMember, *, sku_v1: bool
) -> UpstreamSpec:
    """compile/identity.py's rule for traffic to `member`, with what needs no request made."""
    identity = backend_identity(settings, member, sku_v1=sku_v1)
    key = None
    if not identity.from_request:
        key = UpstreamKey(
            member.address, settings.port, identity.sni, identity.verify_name, settings.trust
        )
    host = identity.host_header
    return UpstreamSpec(
        member,
        identity,
        settings.port,
        settings.trust,
        key,
        host.encode("latin-1") if host is not None else None,
    )


class HealthKey(NamedTuple):
    """One member as one (pool, settings) pair probes it: what the health board keys on."""

    gateway: str  # the case-folded gateway id
    pool: str
    settings: str
    member: str  # the member's address
    probe: str  # the probe's fingerprint: a verdict about another probe never applies


@dataclass(frozen=True, slots=True)
class RedirectTarget:
    rule_name: str
    status: int  # 301 / 302 / 303 / 307
    target_url: str | None  # external site
    target_scheme: str | None  # target listener: http or https
    target_host: str | None  # target listener's host name; None = keep the request's host
    target_port: int | None
    include_path: bool
    include_query: bool
    path_rule_name: str | None = None
    waf: FirewallScope | None = field(default=None, compare=False)  # None: not inspected


Target = ForwardTarget | RedirectTarget


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """How one (pool, settings) pair that a rule uses is probed (spec §3.4, §3.5)."""

    pool: BackendPool
    settings: BackendSettings
    probe_name: str | None  # None: Azure's default probe
    host: str | None  # custom probe host (Host header; on v2 also SNI)
    pick_host_from_settings: bool
    path: str
    port: int
    interval: float
    timeout: float
    unhealthy_threshold: int
    status_ranges: tuple[tuple[int, int], ...]
    body: str | None
    min_servers: int

    @property
    def host_rule(self) -> ProbeHost:
        """What the probe says about names, for compile/identity.py's rule."""
        return ProbeHost(self.probe_name is not None, self.host, self.pick_host_from_settings)

    def probe_of(self, member: BackendMember, *, sku_v1: bool) -> tuple[object, ...]:
        """What probing `member` sends and how its answers are judged and counted. Equal
        before and after a change (another member in the pool, the settings' request
        timeout, affinity or path), the member is probed as before and keeps its health."""
        identity = backend_identity(self.settings, member, sku_v1=sku_v1, probe=self.host_rule)
        return (
            identity,
            member,
            self.settings.trust,
            self.path,
            self.port,
            self.interval,
            self.timeout,
            self.unhealthy_threshold,
            self.status_ranges,
            self.body,
        )

    @property
    def fingerprint(self) -> str:
        """Stable across processes: the monitor and the workers compute the same value."""
        known = _fingerprints.get(self)
        if known is None:
            known = hashlib.sha256(repr(self).encode()).hexdigest()[:16]
            if len(_fingerprints) >= _FINGERPRINTS_KEPT:
                _fingerprints.clear()
            _fingerprints[self] = known
        return known


# Fingerprints by spec: the repr of a pool of 1,200 members costs ~2 ms, paid per compile for
# every (pool, settings) pair and by the monitor per member out of rotation on every board
# write. Cleared when full: Azure's 100 pairs per gateway, for ten gateways.
_FINGERPRINTS_KEPT = 1000
_fingerprints: dict[ProbeSpec, str] = {}


@dataclass(frozen=True, slots=True)
class PathRoute:
    rule_name: str
    paths: PathMatcher[Target]


Route = ForwardTarget | RedirectTarget | PathRoute


@dataclass(frozen=True, slots=True)
class Site:
    """One listener and the rule that uses it."""

    listener_name: str
    route: Route
    custom_errors: Mapping[int, str] = field(default_factory=dict)
    # HTTPS: the name of the sslCertificates entry the listener presents, and of its SSL
    # profile; a request whose connection negotiated another pair is misdirected (a request
    # for a listener that requires client certificates on a connection that was not asked for
    # one, too). By name: a certificate renewed under the same name keeps its open
    # connections valid.
    certificate: str | None = None
    ssl_profile: str | None = None
    client_auth: ClientAuth | None = None  # the profile asks clients for certificates


class ListenerTls(NamedTuple):
    """What a listener's TLS context is: its certificate's and SSL profile's names."""

    certificate: str
    ssl_profile: str | None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Everything served on one bound address and port."""

    bind_host: str
    port: int
    https: bool
    sites: HostMatcher[Site]
    certificates: CertificateSelector[ssl.SSLContext] | None  # Https only
    tls_policy: TlsPolicy | None  # Https only; changing it re-creates the listening socket
    # The listener TLS (certificate and SSL profile) of each context SNI may choose.
    certificate_names: Mapping[ssl.SSLContext, ListenerTls] = field(
        default_factory=dict, compare=False
    )
    # The contexts that ask clients for a certificate, and how to judge it.
    client_auths: Mapping[ssl.SSLContext, ClientAuth] = field(default_factory=dict, compare=False)
    # Contexts of SSL profiles whose policy is not the endpoint's: OpenSSL takes the TLS
    # version range from the listening socket's context, so a profile's narrower range is
    # checked once the handshake is done.
    profile_policies: Mapping[ssl.SSLContext, TlsPolicy] = field(
        default_factory=dict, compare=False
    )

    @property
    def key(self) -> tuple[str, int]:
        return (self.bind_host, self.port)


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int  # the store's global sequence number of this version
    gateway_id: str
    version: int
    running: bool
    sku_v1: bool
    endpoints: Mapping[tuple[str, int], Endpoint]
    custom_errors: Mapping[int, str] = field(default_factory=dict)
    # (member address, port) of every backend a rule can send to: what upstream pools keep.
    backend_addresses: frozenset[tuple[str, int]] = frozenset()
    # One target per pool + settings pair a rule can send to (what draining compares across
    # versions; the first rule using the pair names it).
    forward_targets: tuple[ForwardTarget, ...] = ()
    # What the health monitor probes: one entry per (pool, settings) pair a rule uses.
    probe_specs: tuple[ProbeSpec, ...] = ()
    # (pool, settings) -> that pair's probe fingerprint, for health-board lookups
    probe_fingerprints: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # (pool, settings) -> the host names of the listeners whose rules reach the pair ("" for a
    # basic listener: any host): the names traffic may verify when it takes the request's Host.
    request_hosts: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # Every custom error page URL of the gateway and its listeners (fetched off the hot path).
    custom_error_urls: frozenset[str] = frozenset()
    # The case-folded id: how the store, the health board and the balancer key this gateway
    # (computed once here rather than per request).
    gateway_key: str = field(init=False)
    gateway_id_upper: str = field(init=False)  # the access log's resourceId

    def __post_init__(self) -> None:
        object.__setattr__(self, "gateway_key", self.gateway_id.casefold())
        object.__setattr__(self, "gateway_id_upper", self.gateway_id.upper())

    def health_key(self, target: ForwardTarget, member: BackendMember) -> HealthKey:
        pair = (target.pool.name, target.settings.name)
        return HealthKey(
            self.gateway_key, *pair, member.address, self.probe_fingerprints.get(pair, "")
        )

    @property
    def keep_alive_timeout(self) -> float:
        # Azure's client keep-alive timeouts: 120 s on v1, 75 s on v2.
        return 120.0 if self.sku_v1 else 75.0
