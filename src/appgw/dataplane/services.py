"""What every connection of a worker shares: the listener it came in on, and the worker's
services (backend connections, the balancer, logs, metrics, error pages, traffic reports)."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appgw.compile.snapshot import Endpoint, Snapshot
from appgw.core.balancer import Balancer
from appgw.core.limits import ClientLimits
from appgw.dataplane.access_log import AccessLog
from appgw.dataplane.admission import Admission
from appgw.dataplane.error_pages import ErrorPages
from appgw.dataplane.firewall_log import FirewallLog
from appgw.dataplane.revocation import RevocationChecks
from appgw.dataplane.upstream import UpstreamPool
from appgw.observability import RequestMetrics, WafMetrics
from appgw.state.traffic import TrafficFailures

if TYPE_CHECKING:
    from appgw.dataplane.downstream import ClientConnection


@dataclass
class Listener:
    """A bound endpoint and what it serves now; the runtime swaps `state` on every version."""

    key: tuple[str, int]
    https: bool
    state: tuple[Snapshot, Endpoint]
    server: asyncio.AbstractServer | None = None
    acceptor: Any = None  # the runtime's HttpsAcceptor on HTTPS ports
    tls_context: ssl.SSLContext | None = None
    connections: set[ClientConnection] = field(default_factory=set)


@dataclass
class Services:
    pool: UpstreamPool
    balancer: Balancer
    access_log: AccessLog
    instance_id: str
    error_pages: ErrorPages = field(default_factory=ErrorPages)
    metrics: RequestMetrics = field(default_factory=RequestMetrics)
    # Backend certificates live traffic refused, for Backend health (state/traffic.py).
    traffic: TrafficFailures = field(default_factory=TrafficFailures)
    limits: ClientLimits = field(default_factory=ClientLimits)
    # Client certificates' OCSP/CRL answers (SSL profiles with verifyClientRevocation).
    revocation: RevocationChecks = field(default_factory=RevocationChecks)
    # The WAF's ApplicationGatewayFirewallLog lines and metrics (WAF gateways only).
    firewall_log: FirewallLog = field(default_factory=lambda: FirewallLog(None))
    waf_metrics: WafMetrics = field(default_factory=WafMetrics)
    admission: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.admission = Admission(self.limits)
