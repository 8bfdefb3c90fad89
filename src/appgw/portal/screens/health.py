"""Backend health: one row per server x (pool, backend settings), as Azure's blade (spec §5.3),
each row expandable to what appgw can say beyond Azure (certificate chain, SNI, failed check)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appgw.control.service import GatewayService, HealthPending, ServiceError
from appgw.model.ids import GatewayId
from appgw.portal.common import Blade, ViewScreen, find_child, name_of

SETTINGS = "backendHttpSettingsCollection"
# Partial: the probe passes but live traffic is refused (or certainly will be).
STATES = ("Healthy", "Partial", "Unhealthy", "Unknown", "Draining")
# A page shown while the health monitor starts reloads itself after this many seconds.
STARTING_REFRESH_SECONDS = 2


@dataclass(frozen=True, slots=True)
class HealthView:
    report: dict[str, Any]
    starting: bool = False  # the monitor is starting: the report is empty for now
    unavailable: str | None = None  # why there is no report at all


def health_report(service: GatewayService, gateway_id: GatewayId) -> HealthView:
    """The report, or what the page says instead of it."""
    empty: dict[str, Any] = {"backendAddressPools": []}
    try:
        return HealthView(service.backend_health(gateway_id, expand=False))
    except HealthPending:
        return HealthView(empty, starting=True)
    except ServiceError as error:
        if error.status != 503:
            raise
        return HealthView(empty, unavailable=error.message)


def summary_of(report: dict[str, Any]) -> dict[str, int]:
    summary = {state: 0 for state in STATES}
    for pool in report["backendAddressPools"]:
        for group in pool["backendHttpSettingsCollection"]:
            for server in group["servers"]:
                summary[server["health"]] = summary.get(server["health"], 0) + 1
    return summary


def _context(blade: Blade) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    health = health_report(blade.portal.service, blade.gateway_id)
    report = health.report
    for pool in report["backendAddressPools"]:
        pool_name = name_of(pool["backendAddressPool"])
        for group in pool["backendHttpSettingsCollection"]:
            settings = find_child(blade.view, SETTINGS, name_of(group["backendHttpSettings"]))
            rows += server_rows(group["servers"], pool_name, settings)
    return {
        "rows": rows,
        "summary": summary_of(report),
        "starting": health.starting,
        "refresh": STARTING_REFRESH_SECONDS if health.starting else None,
        "unavailable": health.unavailable,
        "running": blade.view["properties"].get("operationalState") == "Running",
        "url": blade.url,
    }


BLADE = ViewScreen(screen="health", context=_context)
register = BLADE.register


def server_rows(
    servers: list[dict[str, Any]], pool: str, settings: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Grid rows (shared with the probe Test results) from `servers[]` entries."""
    props = settings["properties"] if settings is not None else {}
    rows = []
    for server in servers:
        details = server.get("appgwProbeDetails") or {}
        status = str(server.get("health", "Unknown"))
        if status == "Up":  # REST enum aliases (spec §3.1)
            status = "Healthy"
        elif status == "Down":
            status = "Unhealthy"
        rows.append(
            {
                "server": server.get("address", ""),
                "pool": pool,
                "settings": settings["name"] if settings is not None else "",
                "port": details.get("port") or props.get("port", ""),
                "protocol": str(props.get("protocol", "")).upper(),
                "status": status,
                "log": server.get("healthProbeLog", ""),
                "extra": _extra(details),
            }
        )
    return rows


def _extra(details: dict[str, Any]) -> dict[str, Any]:
    """The expandable part of a row: only what the monitor actually reported."""
    facts: list[tuple[str, str]] = []
    for label, key in (
        ("Probe", "probe"),
        ("Result category", "category"),
        ("Failed check", "failedCheck"),
        ("Host header", "hostHeader"),
        ("SNI", "sni"),
        ("Name verified against the certificate", "verifyName"),
        ("Port", "port"),
        ("Resolved address", "resolvedAddress"),
        ("Received status code", "statusCode"),
        ("Last probe", "lastProbeTime"),
        ("Probe duration (seconds)", "probeDurationSeconds"),
        ("Last success", "lastSuccessTime"),
        ("Last failure", "lastFailureTime"),
        ("Consecutive failures", "consecutiveFailures"),
        ("Certificate expires in (days)", "certificateDaysToExpiry"),
    ):
        value = details.get(key)
        if key == "sni" and "sni" in details and value is None:
            value = "(none sent)"
        if value is not None and value != "":
            facts.append((label, str(value)))
    traffic = details.get("traffic") or {}
    for label, key in (
        ("Traffic: SNI", "sni"),
        ("Traffic: name verified", "verifyName"),
        ("Traffic: requests refused (last 5 minutes)", "failedRequests"),
        ("Traffic: failed check", "failedCheck"),
        ("Traffic: SNI of refused requests", "failedSni"),
    ):
        value = traffic.get(key)
        if value is not None and value != "":
            facts.append((label, str(value)))
    if traffic.get("certificateNames"):
        names = ", ".join(traffic["certificateNames"])
        facts.append(("Traffic: certificate names seen", names))
    chain = [
        {
            "subject": cert.get("subject", ""),
            "issuer": cert.get("issuer", ""),
            "sans": ", ".join(cert.get("subjectAlternativeNames") or []) or "(none)",
            "not_before": cert.get("notBefore", ""),
            "not_after": cert.get("notAfter", ""),
            "sha256": cert.get("sha256Fingerprint", ""),
            "self_signed": bool(cert.get("selfSigned")),
            "is_ca": bool(cert.get("isCa")),
        }
        for cert in details.get("presentedChain") or []
    ]
    return {
        "facts": facts,
        "chain": chain,
        "tls": "presentedChain" in details,
        "warnings": list(details.get("warnings") or []),
    }
