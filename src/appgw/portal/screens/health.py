"""Backend health: one row per server x (pool, backend settings), as Azure's blade (spec §5.3),
each row expandable to what appgw can say beyond Azure (certificate chain, SNI, failed check)."""

from __future__ import annotations

from typing import Any

from appgw.control.service import ServiceError
from appgw.portal.common import Blade, ViewScreen, find_child, name_of

SETTINGS = "backendHttpSettingsCollection"
STATES = ("Healthy", "Unhealthy", "Unknown", "Draining")


def _context(blade: Blade) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    unavailable: str | None = None
    try:
        report = blade.portal.service.backend_health(blade.gateway_id, expand=False)
    except ServiceError as error:
        if error.status != 503:
            raise
        unavailable = error.message
        report = {"backendAddressPools": []}
    for pool in report["backendAddressPools"]:
        pool_name = name_of(pool["backendAddressPool"])
        for group in pool["backendHttpSettingsCollection"]:
            settings = find_child(blade.view, SETTINGS, name_of(group["backendHttpSettings"]))
            rows += server_rows(group["servers"], pool_name, settings)
    summary = {state: 0 for state in STATES}
    for row in rows:
        summary[row["status"]] = summary.get(row["status"], 0) + 1
    return {
        "rows": rows,
        "summary": summary,
        "unavailable": unavailable,
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
