"""Overview blade: the gateway's essentials, how many children it has, and their health."""

from __future__ import annotations

from typing import Any

from appgw.portal.common import Blade, ViewScreen


def _context(blade: Blade) -> dict[str, Any]:
    props = blade.view["properties"]
    counts = {
        label: len(props.get(collection, []))
        for label, collection in (
            ("Listeners", "httpListeners"),
            ("Rules", "requestRoutingRules"),
            ("Backend pools", "backendAddressPools"),
            ("Backend settings", "backendHttpSettingsCollection"),
            ("Health probes", "probes"),
            ("Listener TLS certificates", "sslCertificates"),
        )
    }
    summary = {"Healthy": 0, "Unhealthy": 0, "Unknown": 0}
    service = blade.portal.service
    if service.health is not None:
        report = service.backend_health(blade.gateway_id, expand=False)
        for pool in report["backendAddressPools"]:
            for group in pool["backendHttpSettingsCollection"]:
                for server in group["servers"]:
                    summary[server["health"]] = summary.get(server["health"], 0) + 1
    frontends = [
        {
            "name": f["name"],
            "kind": "Private" if f["properties"].get("privateIPAddress") else "Public",
            "address": f["properties"].get("privateIPAddress", "(all addresses)"),
        }
        for f in props.get("frontendIPConfigurations", [])
    ]
    return {"counts": counts, "health": summary, "frontends": frontends}


BLADE = ViewScreen(screen="overview", context=_context)
register = BLADE.register
