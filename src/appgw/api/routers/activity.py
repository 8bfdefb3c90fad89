"""The activity log in Azure Monitor's shape, for this server's management operations."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from appgw.api.common import NETWORK, SUBSCRIPTION, ApiVersion, Authenticated, Service
from appgw.control.service import ActivityEvent, ServiceError
from appgw.model.ids import FirewallPolicyId, GatewayId

ACTIVITY = SUBSCRIPTION + "/providers/Microsoft.Insights/eventtypes/management/values"
_FILTER_CLAUSE = re.compile(r"(\w+)\s+(eq|ge|le)\s+'([^']*)'", re.IGNORECASE)

router = APIRouter(tags=["ActivityLogs"])


@router.get(ACTIVITY, response_model=None)
def activity_log(
    subscription_id: str,
    _v: ApiVersion,
    _c: Authenticated,
    service: Service,
    filter_: Annotated[str | None, Query(alias="$filter")] = None,
) -> dict[str, Any]:
    """Azure Monitor's activity log shape, for this server's management operations."""
    prefix, since = _parse_filter(subscription_id, filter_)
    events = service.activity(resource_prefix=prefix, since=since)
    return {"value": [_event_json(subscription_id, event) for event in events]}


def _parse_filter(subscription_id: str, text: str | None) -> tuple[str, datetime | None]:
    prefix = f"/subscriptions/{subscription_id}"
    since: datetime | None = None
    for field, operator, value in _FILTER_CLAUSE.findall(text or ""):
        field = field.casefold()
        if field == "resourceuri" and operator.lower() == "eq":
            prefix = value
        elif field == "resourcegroupname" and operator.lower() == "eq":
            prefix = f"/subscriptions/{subscription_id}/resourceGroups/{value}/"
        elif field == "eventtimestamp" and operator.lower() == "ge":
            try:
                since = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ServiceError(
                    400, "InvalidFilter", f"'{value}' is not an ISO 8601 time in $filter"
                ) from None
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
    return prefix, since


def _event_json(subscription_id: str, event: ActivityEvent) -> dict[str, Any]:
    resource = GatewayId.parse(event.resource_id) or FirewallPolicyId.parse(event.resource_id)
    return {
        "authorization": {"action": event.operation, "scope": event.resource_id},
        "caller": event.caller,
        "correlationId": event.correlation_id,
        "eventDataId": event.event_id,
        "eventName": {"value": "EndRequest", "localizedValue": "End request"},
        "eventTimestamp": event.time.isoformat().replace("+00:00", "Z"),
        "operationName": {"value": event.operation, "localizedValue": event.operation},
        "resourceGroupName": resource.resource_group if resource is not None else None,
        "resourceId": event.resource_id,
        "resourceProviderName": {"value": NETWORK, "localizedValue": NETWORK},
        "status": {"value": event.status, "localizedValue": event.status},
        "subscriptionId": subscription_id,
        "httpRequest": {"clientIpAddress": event.source_ip},
        "properties": {
            "version": event.version,
            **({"detail": event.detail} if event.detail else {}),
        },
    }
