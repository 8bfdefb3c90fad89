"""Overview blade: the gateway's essentials, how many children it has, and their health."""

from __future__ import annotations

from typing import Any

from appgw.portal.common import Blade, ViewScreen
from appgw.portal.screens.health import STARTING_REFRESH_SECONDS, health_report, summary_of


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
    health = health_report(blade.portal.service, blade.gateway_id)
    frontends = [
        {
            "name": f["name"],
            "kind": "Private" if f["properties"].get("privateIPAddress") else "Public",
            "address": f["properties"].get("privateIPAddress", "(all addresses)"),
        }
        for f in props.get("frontendIPConfigurations", [])
    ]
    return {
        "counts": counts,
        "health": summary_of(health.report),
        "health_starting": health.starting,
        "health_unavailable": health.unavailable,
        "refresh": STARTING_REFRESH_SECONDS if health.starting else None,
        "frontends": frontends,
    }


BLADE = ViewScreen(screen="overview", context=_context)
register = BLADE.register
