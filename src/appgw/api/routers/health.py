"""Backend health: the report of the health monitor, and one probe run on demand.

Both are Azure long-running operations: they answer 200 with the result when the monitor can
answer at once, and 202 with Location / Azure-AsyncOperation while it is starting, so a client
(the Azure SDK's poller included) gets the result when it is ready, never a raw error.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from appgw.api.common import (
    GATEWAY,
    ApiVersion,
    Authenticated,
    Gateway,
    Service,
    body_schema,
    in_thread,
    json_body,
    operation_links,
)
from appgw.control.service import HealthPending

router = APIRouter(tags=["ApplicationGateways"])
# How soon a client polls a pending backend-health operation: the monitor starts in seconds.
RETRY_AFTER_SECONDS = 1


@router.post(GATEWAY + "/backendhealth", response_model=None)
def backend_health(
    request: Request,
    version: ApiVersion,
    _c: Authenticated,
    target: Gateway,
    service: Service,
    expand: Annotated[str | None, Query(alias="$expand")] = None,
) -> dict[str, Any] | JSONResponse:
    """Per pool, per settings, per server: Healthy / Unhealthy / Unknown / Partial and why."""
    try:
        return service.backend_health(target, expand=bool(expand))
    except HealthPending as pending:
        return accepted(request, version, pending)


@router.post(
    GATEWAY + "/getBackendHealthOnDemand",
    response_model=None,
    openapi_extra=body_schema("OnDemandProbe"),
)
async def backend_health_on_demand(
    request: Request, version: ApiVersion, _c: Authenticated, target: Gateway, service: Service
) -> dict[str, Any] | JSONResponse:
    """Run one probe now without changing the configuration (the portal's "Test")."""
    body = await json_body(request)
    try:
        result: dict[str, Any] = await in_thread(service.backend_health_on_demand, target, body)
    except HealthPending as pending:
        return accepted(request, version, pending)
    return result


def accepted(request: Request, version: str, pending: HealthPending) -> JSONResponse:
    headers = operation_links(request, version, pending.operation_id, "")
    headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return JSONResponse({"status": "InProgress"}, status_code=202, headers=headers)
