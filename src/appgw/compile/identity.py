"""The backend TLS identity: the one rule for the Host header, the SNI sent and the name verified.

Traffic, Azure's default probe, custom probes, the on-demand probe and the reports that compare
probes with traffic all call `backend_identity`; nothing else decides these names (spec §2.4,
§2.5, §3.4, §3.5).

* Host header. Traffic: the settings' `hostName`; else the member's address when
  `pickHostNameFromBackendAddress`; else the request's own Host. Probes: the probe's `host`;
  else, with `pickHostNameFromBackendHttpSettings`, what the settings would send without a
  request (`hostName`, else the member's address); else `127.0.0.1` for Azure's default probe
  and the member's address for a custom one.
* TLS name (sent as SNI unless it is an IP literal, RFC 6066; and the name the certificate must
  match when the settings validate it). v1: the member's FQDN, none for an IP member, probes and
  traffic alike (the probe host sets only the Host header). v2: the first of a custom probe's
  `host` (probes only), `sniName`, `hostName`, the member's FQDN, and, for traffic only, the
  request's Host. Azure's default probe has no host of its own: its 127.0.0.1 is never a name.

The one case that depends on the request (v2, an IP member, no `sniName` and no `hostName`) is
marked `from_request`: the snapshot precompiles every other identity, and `with_request_host`
completes this one per request. A request without a Host then verifies the empty name, which
matches no certificate: an unnamed request never skips the name check.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from appgw.hostnames import is_ip_address

if TYPE_CHECKING:  # the snapshot holds identities; this module only reads its fields
    from appgw.compile.snapshot import BackendMember, BackendSettings

# Where a TLS name came from, in the words reports use.
FROM_PROBE_HOST: Final = "the probe's host"
FROM_SNI_NAME: Final = "the backend settings' SNI name"
FROM_HOST_NAME: Final = "the backend settings' host name"
FROM_MEMBER_FQDN: Final = "the backend member's FQDN"
FROM_REQUEST_HOST: Final = "the request's Host"
NO_NAME: Final = "none (an IP member without a host name)"
DEFAULT_PROBE_HOST: Final = "127.0.0.1"  # Azure's default probe sends it as Host, never as SNI

# Parsing an address costs more than the rest of choosing a connection; the names seen are few
# (configured ones and the gateway's own host names), the bound only caps odd Host values.
_is_ip = functools.lru_cache(maxsize=1024)(is_ip_address)


@dataclass(frozen=True, slots=True)
class ProbeHost:
    """What a probe says about names: its own host, or take the settings'."""

    custom: bool  # False: Azure's default probe
    host: str | None = None
    pick_from_settings: bool = False


DEFAULT_PROBE: Final = ProbeHost(custom=False)


@dataclass(frozen=True, slots=True)
class BackendIdentity:
    host_header: str | None  # None: the request's own Host header (traffic only)
    tls_name: str | None  # None: no TLS, or no name to send or verify
    source: str  # where tls_name comes from (FROM_* / NO_NAME); "" without TLS
    https: bool

    @property
    def from_request(self) -> bool:
        """The TLS name is the request's Host: known per request only."""
        return self.source == FROM_REQUEST_HOST

    @property
    def sni(self) -> str | None:
        name = self.tls_name
        return name if name and not _is_ip(name) else None

    @property
    def verify_name(self) -> str | None:
        return self.tls_name

    def with_request_host(self, request_host: str) -> BackendIdentity:
        """This identity for one request (`request_host`: normalized, "" when absent)."""
        if not self.from_request:
            return self
        return replace(self, tls_name=request_host)


def backend_identity(
    settings: BackendSettings,
    member: BackendMember,
    *,
    sku_v1: bool,
    probe: ProbeHost | None = None,
) -> BackendIdentity:
    """The identity towards `member` for traffic (`probe` None) or for a probe."""
    https = settings.trust is not None
    host_header = _host_header(settings, member, probe)
    if not https:
        return BackendIdentity(host_header, None, "", https=False)
    fqdn = member.address if member.is_fqdn else None
    if sku_v1:
        return BackendIdentity(host_header, fqdn, FROM_MEMBER_FQDN if fqdn else NO_NAME, https=True)
    candidates = (
        (probe.host if probe is not None and probe.custom else None, FROM_PROBE_HOST),
        (settings.sni_name, FROM_SNI_NAME),
        (settings.host_override, FROM_HOST_NAME),
        (fqdn, FROM_MEMBER_FQDN),
    )
    for name, source in candidates:
        if name:
            return BackendIdentity(host_header, name, source, https=True)
    if probe is None:
        return BackendIdentity(host_header, None, FROM_REQUEST_HOST, https=True)
    return BackendIdentity(host_header, None, NO_NAME, https=True)


def _host_header(
    settings: BackendSettings, member: BackendMember, probe: ProbeHost | None
) -> str | None:
    if probe is None:
        if settings.host_override:
            return settings.host_override
        return member.address if settings.pick_host_from_member else None
    if probe.host:
        return probe.host
    if probe.pick_from_settings:
        return settings.host_override or member.address
    return member.address if probe.custom else DEFAULT_PROBE_HOST


def difference(traffic: BackendIdentity, probe: BackendIdentity) -> str | None:
    """Why a healthy probe does not prove that traffic passes the same certificate checks, in
    one sentence; None when both send the same SNI and verify the same name."""
    if not traffic.https:
        return None
    if traffic.from_request:
        return (
            f"Traffic sends {FROM_REQUEST_HOST} as SNI and the certificate must match it (the "
            "member is an IP address and these backend settings have no host name or SNI "
            f"name), while the probe {_probe_names(probe)}; set the backend settings' host "
            "name (or SNI name) to the name on the backend's certificate."
        )
    if (traffic.sni, traffic.verify_name) == (probe.sni, probe.verify_name):
        return None
    return (
        f"The probe {_probe_names(probe)}, while traffic {_traffic_names(traffic)}: a healthy "
        "probe does not prove that traffic passes the same certificate checks."
    )


def _probe_names(probe: BackendIdentity) -> str:
    if probe.tls_name is None:
        return "sends no SNI and checks no name"
    return _traffic_names(probe)


def _traffic_names(identity: BackendIdentity) -> str:
    name = identity.tls_name
    if name is None:
        return "sends no SNI and checks no name"
    sent = f"sends SNI {name}" if identity.sni else "sends no SNI (an IP address)"
    return f"{sent} and checks the name {name} ({identity.source})"
