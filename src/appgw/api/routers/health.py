"""Backend health: the report of the health monitor, and one probe run on demand."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from appgw.api.common import (
    GATEWAY,
    ApiVersion,
    Authenticated,
    Gateway,
    Service,
    body_schema,
    in_thread,
    json_body,
)

router = APIRouter(tags=["ApplicationGateways"])


@router.post(GATEWAY + "/backendhealth", response_model=None)
def backend_health(
    _v: ApiVersion,
    _c: Authenticated,
    target: Gateway,
    service: Service,
    expand: Annotated[str | None, Query(alias="$expand")] = None,
) -> dict[str, Any]:
    """Per pool, per settings, per server: Healthy / Unhealthy / Unknown and why."""
    return service.backend_health(target, expand=bool(expand))


@router.post(
    GATEWAY + "/getBackendHealthOnDemand",
    response_model=None,
    openapi_extra=body_schema("OnDemandProbe"),
)
async def backend_health_on_demand(
    request: Request, _v: ApiVersion, _c: Authenticated, target: Gateway, service: Service
) -> dict[str, Any]:
    """Run one probe now without changing the configuration (the portal's "Test")."""
    body = await json_body(request)
    result: dict[str, Any] = await in_thread(service.backend_health_on_demand, target, body)
    return result
