"""ARM's asynchronous operations: the status and result of a write, by its operation id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from appgw.api.common import SUBSCRIPTION, ApiVersion, Authenticated, Service
from appgw.control.service import GatewayService, ServiceError

OPERATIONS = SUBSCRIPTION + "/providers/Microsoft.Network/locations/{location}"

router = APIRouter(tags=["Operations"])


@router.get(OPERATIONS + "/operations/{operation_id}", response_model=None)
def operation_status(
    subscription_id: str,
    location: str,
    operation_id: str,
    _v: ApiVersion,
    _c: Authenticated,
    service: Service,
) -> dict[str, Any]:
    return {"name": operation_id, "status": _status(service, operation_id)}


@router.get(OPERATIONS + "/operationResults/{operation_id}", status_code=204)
def operation_result(
    subscription_id: str,
    location: str,
    operation_id: str,
    _v: ApiVersion,
    _c: Authenticated,
    service: Service,
) -> Response:
    _status(service, operation_id)
    return Response(status_code=204)


def _status(service: GatewayService, operation_id: str) -> str:
    status = service.operation_status(operation_id)
    if status is None:
        raise ServiceError(404, "OperationNotFound", f"Operation '{operation_id}' was not found.")
    return status
