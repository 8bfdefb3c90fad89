"""Backend health in Azure's shape (spec §3.2), built from the monitor's latest results."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from appgw.compile.gateway import parse_status_range
from appgw.compile.snapshot import HealthKey, ProbeSpec
from appgw.health.monitor import HealthMonitor
from appgw.health.server_entry import ProbedMember, server_entry
from appgw.model.ids import GatewayId
from appgw.model.resource import OnDemandProbe
from appgw.state import traffic

# The portal's Test button waits at most this long for an on-demand probe (Azure's default
# probe timeout is 30 s; a longer test would look hung).
ON_DEMAND_DEFAULT_TIMEOUT = 30


class HealthReports(Protocol):
    """Where the API gets backend health from (the monitor process, through its client)."""

    def backend_health(
        self, gateway_id: GatewayId, view: dict[str, Any] | None
    ) -> dict[str, Any]: ...

    def on_demand(self, gateway_id: GatewayId, probe: OnDemandProbe) -> dict[str, Any]: ...


class HealthReportError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class MonitorNotReachable(HealthReportError):
    """The health monitor cannot answer now (starting, or being restarted): ask again later."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "BackendHealthUnavailable", message)


def backend_health(
    monitor: HealthMonitor, gateway_id: GatewayId, view: dict[str, Any] | None
) -> dict[str, Any]:
    """`view` (the gateway as GET returns it) expands pools and settings ($expand)."""
    members = {m.key: m for m in monitor.members_of(gateway_id.key)}
    snapshot = monitor.current_snapshot(gateway_id.key)
    refusals = traffic.load(monitor.state)
    children = _children_by_id(view) if view is not None else {}
    pools: dict[str, dict[str, Any]] = {}
    for spec in snapshot.probe_specs if snapshot is not None else ():
        pool_id = gateway_id.child("backendAddressPools", spec.pool.name)
        settings_id = gateway_id.child("backendHttpSettingsCollection", spec.settings.name)
        pool = pools.setdefault(
            pool_id,
            {
                "backendAddressPool": children.get(pool_id.casefold(), {"id": pool_id}),
                "backendHttpSettingsCollection": [],
            },
        )
        servers = []
        assert snapshot is not None
        pair = (spec.pool.name, spec.settings.name)
        for member in spec.pool.members:
            key = (gateway_id.key, *pair, member.address)
            health = members.get(key)
            servers.append(
                server_entry(
                    spec,
                    member,
                    health.last if health is not None else None,
                    sku_v1=snapshot.sku_v1,
                    probed=ProbedMember(
                        health.state,
                        health.consecutive_failures,
                        health.last_success,
                        health.last_failure,
                    )
                    if health is not None
                    else None,
                    request_hosts=snapshot.request_hosts.get(pair, ()),
                    refusals=refusals.get(HealthKey(*key, spec.fingerprint)),
                )
            )
        pool["backendHttpSettingsCollection"].append(
            {
                "backendHttpSettings": children.get(settings_id.casefold(), {"id": settings_id}),
                "servers": servers,
            }
        )
    return {"backendAddressPools": list(pools.values())}


def on_demand(
    monitor: HealthMonitor, gateway_id: GatewayId, probe: OnDemandProbe
) -> dict[str, Any]:
    snapshot = monitor.current_snapshot(gateway_id.key)
    if snapshot is None:
        raise HealthReportError(
            404, "ResourceNotFound", f"Gateway '{gateway_id}' is not running, or has no rules."
        )
    if probe.backend_address_pool is None or probe.backend_http_settings is None:
        raise HealthReportError(
            400,
            "MissingRequiredProperty",
            "an on-demand probe needs 'backendAddressPool' and 'backendHttpSettings' ids",
        )
    pool_name = probe.backend_address_pool.id.rsplit("/", 1)[-1].casefold()
    settings_name = probe.backend_http_settings.id.rsplit("/", 1)[-1].casefold()
    base = _base_spec(snapshot.probe_specs, pool_name, settings_name)
    if base is None:
        raise HealthReportError(
            400,
            "InvalidResourceReference",
            f"no rule sends pool '{pool_name}' with settings '{settings_name}' in '{gateway_id}'",
        )
    protocol = probe.protocol.value if probe.protocol is not None else None
    wants_https = base.settings.trust is not None
    if protocol is not None and (protocol == "Https") != wants_https:
        raise HealthReportError(
            400,
            "ApplicationGatewayProbeProtocolMismatch",
            f"the probe uses {protocol} but the settings '{base.settings.name}' use "
            f"{'Https' if wants_https else 'Http'}",
        )
    codes = (probe.match.status_codes if probe.match else None) or ["200-399"]
    spec = replace(
        base,
        probe_name="on-demand",
        host=probe.host,
        pick_host_from_settings=bool(probe.pick_host_name_from_backend_http_settings),
        path=probe.path or "/",
        timeout=float(probe.timeout or ON_DEMAND_DEFAULT_TIMEOUT),
        status_ranges=tuple(_status_range(code) for code in codes),
        body=(probe.match.body if probe.match else None) or None,
    )
    results = monitor.probe_now(spec, snapshot.sku_v1, spec.timeout)
    return {
        "backendAddressPool": {"id": gateway_id.child("backendAddressPools", spec.pool.name)},
        "backendHealthHttpSettings": {
            "backendHttpSettings": {
                "id": gateway_id.child("backendHttpSettingsCollection", spec.settings.name)
            },
            "servers": [
                server_entry(
                    spec,
                    member,
                    result,
                    sku_v1=snapshot.sku_v1,
                    request_hosts=snapshot.request_hosts.get(
                        (spec.pool.name, spec.settings.name), ()
                    ),
                )
                for member, result in zip(spec.pool.members, results, strict=True)
            ],
        },
    }


def _base_spec(specs: tuple[ProbeSpec, ...], pool: str, settings: str) -> ProbeSpec | None:
    for spec in specs:
        if spec.pool.name.casefold() == pool and spec.settings.name.casefold() == settings:
            return spec
    return None


def _status_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    if not (low.isdigit() and (not high or high.isdigit())):
        raise HealthReportError(
            400, "ApplicationGatewayInvalidProbeStatusCodes", f"'{text}' is not a status range"
        )
    return parse_status_range(text)


def _children_by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    properties = view.get("properties", {})
    found: dict[str, dict[str, Any]] = {}
    for collection in ("backendAddressPools", "backendHttpSettingsCollection"):
        for child in properties.get(collection, []):
            found[child["id"].casefold()] = child
    return found
