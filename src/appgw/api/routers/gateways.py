"""The applicationGateways resource: GET, PUT, PATCH (tags), DELETE, start, stop, the lists of a
resource group and of a subscription, and appgw's revisions."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from appgw.api.common import (
    GATEWAY,
    GATEWAYS,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    ApiVersion,
    ArmJson,
    Authenticated,
    Gateway,
    Service,
    body_schema,
    in_thread,
    json_body,
    operation_links,
)
from appgw.control.service import GatewayService, WriteResult
from appgw.model.enums import OperationalState

SkipToken = Annotated[str | None, Query(alias="$skiptoken")]
Top = Annotated[int | None, Query(alias="$top", ge=1, le=100)]

# Tags per route: the router's would be added to revisions' own.
TAGS: list[str | Enum] = ["ApplicationGateways"]
router = APIRouter()


@router.get(GATEWAY, tags=TAGS, response_model=None)
def get_gateway(_v: ApiVersion, _c: Authenticated, target: Gateway, service: Service) -> ArmJson:
    # Not through FastAPI's jsonable_encoder: the view is JSON already, 14 MB at Azure's limits.
    return ArmJson(service.get(target))


@router.put(
    GATEWAY,
    tags=TAGS,
    status_code=200,
    response_model=None,
    openapi_extra=body_schema("ApplicationGateway"),
    responses={201: {"description": "Created"}, 200: {"description": "Updated"}},
)
async def put_gateway(
    request: Request, version: ApiVersion, who: Authenticated, target: Gateway, service: Service
) -> Response:
    body = await json_body(request)
    result: WriteResult = await in_thread(
        service.put,
        target,
        body,
        who,
        if_match=request.headers.get("if-match"),
        if_none_match=request.headers.get("if-none-match"),
    )
    headers = operation_links(request, version, result.operation_id, result.location)
    del headers["Location"]
    return ArmJson(result.view, status_code=201 if result.created else 200, headers=headers)


@router.patch(GATEWAY, tags=TAGS, response_model=None, openapi_extra=body_schema("TagsObject"))
async def patch_gateway(
    request: Request, _v: ApiVersion, who: Authenticated, target: Gateway, service: Service
) -> dict[str, Any]:
    body = await json_body(request)
    result: WriteResult = await in_thread(
        service.patch_tags, target, body, who, if_match=request.headers.get("if-match")
    )
    return result.view


@router.delete(GATEWAY, tags=TAGS, status_code=202, response_model=None)
def delete_gateway(
    request: Request, version: ApiVersion, who: Authenticated, target: Gateway, service: Service
) -> Response:
    result = service.delete(target, who, if_match=request.headers.get("if-match"))
    if result is None:
        return Response(status_code=204)
    links = operation_links(request, version, result.operation_id, result.location)
    return Response(status_code=202, headers=links)


def _state_action(state: OperationalState) -> Callable[..., Response]:
    """POST .../start or .../stop: 202 with the operation's links."""

    def action(
        request: Request,
        version: ApiVersion,
        who: Authenticated,
        target: Gateway,
        service: Service,
    ) -> Response:
        result = service.set_operational_state(target, who, state)
        links = operation_links(request, version, result.operation_id, result.location)
        return Response(status_code=202, headers=links)

    return action


for _path, _state in (("start", OperationalState.RUNNING), ("stop", OperationalState.STOPPED)):
    router.post(
        f"{GATEWAY}/{_path}",
        tags=TAGS,
        status_code=202,
        name=f"{_path}_gateway",
        response_model=None,
    )(_state_action(_state))


@router.get(RESOURCE_GROUP + GATEWAYS, tags=TAGS, response_model=None)
def list_in_group(
    request: Request,
    subscription_id: str,
    resource_group: str,
    version: ApiVersion,
    _c: Authenticated,
    service: Service,
    skip_token: SkipToken = None,
    top: Top = None,
) -> dict[str, Any]:
    return _page(request, version, service, subscription_id, resource_group, skip_token, top)


@router.get(SUBSCRIPTION + GATEWAYS, tags=TAGS, response_model=None)
def list_all(
    request: Request,
    subscription_id: str,
    version: ApiVersion,
    _c: Authenticated,
    service: Service,
    skip_token: SkipToken = None,
    top: Top = None,
) -> dict[str, Any]:
    return _page(request, version, service, subscription_id, None, skip_token, top)


def _page(
    request: Request,
    version: str,
    service: GatewayService,
    subscription_id: str,
    resource_group: str | None,
    skip_token: str | None,
    top: int | None,
) -> dict[str, Any]:
    page = service.list_gateways(
        subscription_id, resource_group, after=skip_token, limit=top or 100
    )
    body: dict[str, Any] = {"value": page.views}
    if page.next_after is not None:
        query: dict[str, str | int] = {"api-version": version, "$skiptoken": page.next_after}
        if top:
            query["$top"] = top
        body["nextLink"] = f"{str(request.url).split('?')[0]}?{urlencode(query)}"
    return body


@router.get(GATEWAY + "/revisions", tags=["appgw extensions"], response_model=None)
def revisions(
    _v: ApiVersion, _c: Authenticated, target: Gateway, service: Service
) -> dict[str, Any]:
    """Every accepted version of the gateway, oldest first (an appgw extension)."""
    return {"value": service.history(target)}
