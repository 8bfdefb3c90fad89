"""ARM's asynchronous operations: the status and the result of a write or a backend-health
request, by operation id (control/operations.py says when each is done)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from appgw.api.common import SUBSCRIPTION, ApiVersion, Authenticated, Service
from appgw.api.routers.health import RETRY_AFTER_SECONDS
from appgw.control.service import GatewayService, OperationResult, ServiceError

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
    """Azure-AsyncOperation: {"status": "InProgress" | "Succeeded" | "Failed"[, "error"]}."""
    operation = _operation(service, operation_id)
    body: dict[str, Any] = {"name": operation_id, "status": operation.status}
    if operation.error is not None:
        body["error"] = operation.error.to_json()["error"]
    return body


@router.get(OPERATIONS + "/operationResults/{operation_id}", response_model=None)
def operation_result(
    subscription_id: str,
    location: str,
    operation_id: str,
    _v: ApiVersion,
    _c: Authenticated,
    service: Service,
) -> Response:
    """Location: 202 while in progress; then the result (backend health) or 204 (a write)."""
    operation = _operation(service, operation_id)
    if operation.status == "InProgress":
        return Response(status_code=202, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if operation.error is not None:
        raise operation.error
    if operation.result is not None:
        return JSONResponse(operation.result)
    return Response(status_code=204)


def _operation(service: GatewayService, operation_id: str) -> OperationResult:
    operation = service.operation(operation_id)
    if operation is None:
        raise ServiceError(404, "OperationNotFound", f"Operation '{operation_id}' was not found.")
    return operation
