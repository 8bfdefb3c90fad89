"""Activity log blade: who changed the gateway, when, and why a change was refused."""

from __future__ import annotations

from typing import Any

from appgw.control.service import DELETE, START, STOP, WRITE, ActivityEvent
from appgw.portal.common import Blade, ViewScreen

# Azure's Activity log shows operations by display name; the raw operation is shown below it.
OPERATION_NAMES = {
    WRITE: "Create or Update Application Gateway",
    DELETE: "Delete Application Gateway",
    START: "Start Application Gateway",
    STOP: "Stop Application Gateway",
}
MAX_EVENTS = 200  # the newest ones; older events stay available through the REST API


def _row(event: ActivityEvent) -> dict[str, Any]:
    detail = event.detail or {}
    codes = [str(code) for code in detail.get("problems", [])]
    if not codes and detail.get("code"):
        codes = [str(detail["code"])]
    return {
        "time": event.time.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "iso_time": event.time.isoformat(),
        "operation": OPERATION_NAMES.get(event.operation, event.operation),
        "operation_id": event.operation,
        "status": event.status,
        "caller": event.caller,
        "source_ip": event.source_ip,
        "version": event.version,
        "codes": codes,
        "correlation_id": event.correlation_id,
    }


def _context(blade: Blade) -> dict[str, Any]:
    gateway_id = blade.gateway_id
    events = blade.portal.service.activity(resource_prefix=str(gateway_id), limit=MAX_EVENTS)
    # A prefix also matches longer names ('appgw' -> 'appgw2'): keep this gateway's only.
    own = [e for e in events if e.resource_id.casefold() == gateway_id.key]
    return {"events": [_row(event) for event in own], "max_events": MAX_EVENTS}


BLADE = ViewScreen(screen="activity", context=_context)
register = BLADE.register
