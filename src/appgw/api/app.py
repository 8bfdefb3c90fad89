"""The ARM-shaped REST API: Azure's paths, verbs, status codes, headers and error bodies.

Handlers translate HTTP to `GatewayService` calls and back; they hold no rules. They are plain
(non-async) functions so FastAPI runs the blocking store calls in its thread pool.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appgw import __version__
from appgw.control.auth import caller_for_token
from appgw.control.service import Caller, GatewayService, ServiceError, WriteResult
from appgw.model.enums import OperationalState
from appgw.model.ids import GatewayId
from appgw.model.resource import ApplicationGateway, OnDemandProbe, TagsObject
from appgw.model.ssl_policies import LEGACY_CIPHER_SUITES, PREDEFINED_POLICIES, TLS13_CIPHER_SUITES
from appgw.observability import metrics_response
from appgw.portal.app import mount_portal
from appgw.portal.common import Portal

NETWORK = "Microsoft.Network"
SUBSCRIPTION = "/subscriptions/{subscription_id}"
RESOURCE_GROUP = SUBSCRIPTION + "/resourceGroups/{resource_group}"
GATEWAYS = "/providers/Microsoft.Network/applicationGateways"
GATEWAY = RESOURCE_GROUP + GATEWAYS + "/{name}"
SSL_OPTIONS = SUBSCRIPTION + "/providers/Microsoft.Network/applicationGatewayAvailableSslOptions"
OPERATIONS = SUBSCRIPTION + "/providers/Microsoft.Network/locations/{location}"
ACTIVITY = SUBSCRIPTION + "/providers/Microsoft.Insights/eventtypes/management/values"

# 100 certificates of 16 KB in base64 make ~2.2 MB; 8 MiB leaves room and bounds memory.
MAX_BODY_BYTES = 8 * 1024 * 1024
# ARM api-versions are dates; the oldest Azure service versions date from 2014.
OLDEST_API_VERSION = date(2014, 1, 1)
_API_VERSION = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(-preview)?$")
_FILTER_CLAUSE = re.compile(r"(\w+)\s+(eq|ge|le)\s+'([^']*)'", re.IGNORECASE)


def create_app(service: GatewayService) -> FastAPI:
    app = FastAPI(
        title="appgw",
        version=__version__,
        description="Azure Application Gateway's management API, self-hosted.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse(error.to_json(), status_code=error.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _request_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        return JSONResponse(
            ServiceError(400, "InvalidRequestFormat", f"{where}: {first['msg']}").to_json(),
            status_code=400,
        )

    _add_routes(app, service)
    mount_portal(app, Portal(service))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


# --- dependencies ------------------------------------------------------------------------------


def api_version(
    request: Request, version: Annotated[str | None, Query(alias="api-version")] = None
) -> str:
    if not version:
        raise ServiceError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    match = _API_VERSION.match(version)
    try:
        stamp = date(int(match[1]), int(match[2]), int(match[3])) if match else None
    except ValueError:
        stamp = None
    if stamp is None or not OLDEST_API_VERSION <= stamp <= datetime.now(UTC).date():
        raise ServiceError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are dates from "
            f"'{OLDEST_API_VERSION.isoformat()}' to today, such as '2024-05-01' or '2026-03-01'.",
        )
    return version


def caller(request: Request) -> Caller:
    header = request.headers.get("authorization")
    if not header:
        raise ServiceError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
    scheme, _, token = header.partition(" ")
    service: GatewayService = request.app.state.service
    name = caller_for_token(service.store, token.strip()) if scheme.lower() == "bearer" else None
    if name is None:
        raise ServiceError(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid. Send 'Authorization: Bearer <token>' with an appgw "
            "token.",
        )
    return Caller(name, request.client.host if request.client else None)


ApiVersion = Annotated[str, Depends(api_version)]
Authenticated = Annotated[Caller, Depends(caller)]


def _gateway_id(subscription_id: str, resource_group: str, name: str) -> GatewayId:
    gateway_id = GatewayId(subscription_id, resource_group, name)
    if GatewayId.parse(str(gateway_id)) is None:
        raise ServiceError(400, "InvalidResourceName", f"'{name}' is not a valid resource name")
    return gateway_id


async def _json_body(request: Request) -> object:
    raw = await request.body()
    if not raw.strip():
        raise ServiceError(400, "InvalidRequestContent", "The request content is empty.")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ServiceError(
            400, "InvalidRequestContent", f"The request content is not valid JSON: {error}"
        ) from None


# --- routes --------------------------------------------------------------------------------------


def _add_routes(app: FastAPI, service: GatewayService) -> None:
    def links(request: Request, version: str, operation_id: str, location: str) -> dict[str, str]:
        base = str(request.base_url).rstrip("/")
        sub = request.path_params["subscription_id"]
        query = urlencode({"api-version": version})
        prefix = f"{base}/subscriptions/{sub}/providers/{NETWORK}/locations/{location or 'local'}"
        return {
            "Azure-AsyncOperation": f"{prefix}/operations/{operation_id}?{query}",
            "Location": f"{prefix}/operationResults/{operation_id}?{query}",
        }

    @app.get("/metrics", include_in_schema=False)
    def metrics(_c: Authenticated) -> Response:
        """Prometheus text format, added up over every worker (token required: the labels
        name backends and listeners)."""
        body, content_type = metrics_response()
        return Response(content=body, media_type=content_type)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(GATEWAY, tags=["ApplicationGateways"], response_model=None)
    def get_gateway(
        subscription_id: str, resource_group: str, name: str, _v: ApiVersion, _c: Authenticated
    ) -> dict[str, Any]:
        return service.get(_gateway_id(subscription_id, resource_group, name))

    @app.put(
        GATEWAY,
        tags=["ApplicationGateways"],
        status_code=200,
        response_model=None,
        openapi_extra=_body_schema("ApplicationGateway"),
        responses={201: {"description": "Created"}, 200: {"description": "Updated"}},
    )
    async def put_gateway(
        request: Request,
        subscription_id: str,
        resource_group: str,
        name: str,
        version: ApiVersion,
        who: Authenticated,
    ) -> Response:
        gateway_id = _gateway_id(subscription_id, resource_group, name)
        body = await _json_body(request)
        result = await _in_thread(
            service.put,
            gateway_id,
            body,
            who,
            if_match=request.headers.get("if-match"),
            if_none_match=request.headers.get("if-none-match"),
        )
        headers = links(request, version, result.operation_id, result.view.get("location", ""))
        del headers["Location"]
        return JSONResponse(
            result.view, status_code=201 if result.created else 200, headers=headers
        )

    @app.patch(
        GATEWAY,
        tags=["ApplicationGateways"],
        response_model=None,
        openapi_extra=_body_schema("TagsObject"),
    )
    async def patch_gateway(
        request: Request,
        subscription_id: str,
        resource_group: str,
        name: str,
        _v: ApiVersion,
        who: Authenticated,
    ) -> dict[str, Any]:
        gateway_id = _gateway_id(subscription_id, resource_group, name)
        body = await _json_body(request)
        result: WriteResult = await _in_thread(
            service.patch_tags, gateway_id, body, who, if_match=request.headers.get("if-match")
        )
        return result.view

    @app.delete(GATEWAY, tags=["ApplicationGateways"], status_code=202, response_model=None)
    def delete_gateway(
        request: Request,
        subscription_id: str,
        resource_group: str,
        name: str,
        version: ApiVersion,
        who: Authenticated,
    ) -> Response:
        gateway_id = _gateway_id(subscription_id, resource_group, name)
        existing = service.store.current(gateway_id.key)
        result = service.delete(gateway_id, who, if_match=request.headers.get("if-match"))
        if result is None or existing is None:
            return Response(status_code=204)
        location = existing.document.get("location", "")
        return Response(
            status_code=202, headers=links(request, version, result.operation_id, location)
        )

    for action, state in (("start", OperationalState.RUNNING), ("stop", OperationalState.STOPPED)):

        def make(target: OperationalState) -> Callable[..., Response]:
            def run_action(
                request: Request,
                subscription_id: str,
                resource_group: str,
                name: str,
                version: ApiVersion,
                who: Authenticated,
            ) -> Response:
                gateway_id = _gateway_id(subscription_id, resource_group, name)
                result = service.set_operational_state(gateway_id, who, target)
                location = result.view.get("location", "")
                return Response(
                    status_code=202, headers=links(request, version, result.operation_id, location)
                )

            return run_action

        app.post(
            f"{GATEWAY}/{action}",
            tags=["ApplicationGateways"],
            status_code=202,
            name=f"{action}_gateway",
            response_model=None,
        )(make(state))

    def list_page(
        request: Request,
        version: str,
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

    @app.get(RESOURCE_GROUP + GATEWAYS, tags=["ApplicationGateways"], response_model=None)
    def list_in_group(
        request: Request,
        subscription_id: str,
        resource_group: str,
        version: ApiVersion,
        _c: Authenticated,
        skip_token: Annotated[str | None, Query(alias="$skiptoken")] = None,
        top: Annotated[int | None, Query(alias="$top", ge=1, le=100)] = None,
    ) -> dict[str, Any]:
        return list_page(request, version, subscription_id, resource_group, skip_token, top)

    @app.get(SUBSCRIPTION + GATEWAYS, tags=["ApplicationGateways"], response_model=None)
    def list_all(
        request: Request,
        subscription_id: str,
        version: ApiVersion,
        _c: Authenticated,
        skip_token: Annotated[str | None, Query(alias="$skiptoken")] = None,
        top: Annotated[int | None, Query(alias="$top", ge=1, le=100)] = None,
    ) -> dict[str, Any]:
        return list_page(request, version, subscription_id, None, skip_token, top)

    @app.get(OPERATIONS + "/operations/{operation_id}", tags=["Operations"], response_model=None)
    def operation_status(
        subscription_id: str, location: str, operation_id: str, _v: ApiVersion, _c: Authenticated
    ) -> dict[str, Any]:
        status = service.operation_status(operation_id)
        if status is None:
            raise ServiceError(
                404, "OperationNotFound", f"Operation '{operation_id}' was not found."
            )
        return {"name": operation_id, "status": status}

    @app.get(OPERATIONS + "/operationResults/{operation_id}", tags=["Operations"], status_code=204)
    def operation_result(
        subscription_id: str, location: str, operation_id: str, _v: ApiVersion, _c: Authenticated
    ) -> Response:
        if service.operation_status(operation_id) is None:
            raise ServiceError(
                404, "OperationNotFound", f"Operation '{operation_id}' was not found."
            )
        return Response(status_code=204)

    @app.post(GATEWAY + "/backendhealth", tags=["ApplicationGateways"], response_model=None)
    def backend_health(
        subscription_id: str,
        resource_group: str,
        name: str,
        _v: ApiVersion,
        _c: Authenticated,
        expand: Annotated[str | None, Query(alias="$expand")] = None,
    ) -> dict[str, Any]:
        """Per pool, per settings, per server: Healthy / Unhealthy / Unknown and why."""
        return service.backend_health(
            _gateway_id(subscription_id, resource_group, name), expand=bool(expand)
        )

    @app.post(
        GATEWAY + "/getBackendHealthOnDemand",
        tags=["ApplicationGateways"],
        response_model=None,
        openapi_extra=_body_schema("OnDemandProbe"),
    )
    async def backend_health_on_demand(
        request: Request,
        subscription_id: str,
        resource_group: str,
        name: str,
        _v: ApiVersion,
        _c: Authenticated,
    ) -> dict[str, Any]:
        """Run one probe now without changing the configuration (the portal's "Test")."""
        body = await _json_body(request)
        result: dict[str, Any] = await _in_thread(
            service.backend_health_on_demand,
            _gateway_id(subscription_id, resource_group, name),
            body,
        )
        return result

    @app.get(GATEWAY + "/revisions", tags=["appgw extensions"], response_model=None)
    def revisions(
        subscription_id: str, resource_group: str, name: str, _v: ApiVersion, _c: Authenticated
    ) -> dict[str, Any]:
        """Every accepted version of the gateway, oldest first (an appgw extension)."""
        return {"value": service.history(_gateway_id(subscription_id, resource_group, name))}

    @app.get(ACTIVITY, tags=["ActivityLogs"], response_model=None)
    def activity_log(
        subscription_id: str,
        _v: ApiVersion,
        _c: Authenticated,
        filter_: Annotated[str | None, Query(alias="$filter")] = None,
    ) -> dict[str, Any]:
        """Azure Monitor's activity log shape, for this server's management operations."""
        prefix, since = _parse_activity_filter(subscription_id, filter_)
        events = service.activity(resource_prefix=prefix, since=since)
        return {"value": [_event_json(subscription_id, event) for event in events]}

    @app.get(SSL_OPTIONS + "/default", tags=["SslOptions"], response_model=None)
    def ssl_options(subscription_id: str, _v: ApiVersion, _c: Authenticated) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{subscription_id}/providers/{NETWORK}/"
            "applicationGatewayAvailableSslOptions/default",
            "name": "default",
            "type": f"{NETWORK}/applicationGatewayAvailableSslOptions",
            "properties": {
                "predefinedPolicies": [
                    {"id": _policy_id(subscription_id, name.value)} for name in PREDEFINED_POLICIES
                ],
                "defaultPolicy": "AppGwSslPolicy20220101",
                "availableCipherSuites": [suite.value for suite in LEGACY_CIPHER_SUITES],
                "availableProtocols": ["TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"],
            },
        }

    @app.get(SSL_OPTIONS + "/default/predefinedPolicies", tags=["SslOptions"], response_model=None)
    def predefined_policies(
        subscription_id: str, _v: ApiVersion, _c: Authenticated
    ) -> dict[str, Any]:
        return {
            "value": [_policy_json(subscription_id, name.value) for name in PREDEFINED_POLICIES]
        }

    @app.get(
        SSL_OPTIONS + "/default/predefinedPolicies/{policy_name}",
        tags=["SslOptions"],
        response_model=None,
    )
    def predefined_policy(
        subscription_id: str, policy_name: str, _v: ApiVersion, _c: Authenticated
    ) -> dict[str, Any]:
        for name in PREDEFINED_POLICIES:
            if name.value.casefold() == policy_name.casefold():
                return _policy_json(subscription_id, name.value)
        raise ServiceError(
            404,
            "ApplicationGatewaySslPredefinedPolicyNotFound",
            f"'{policy_name}' is not a predefined SSL policy; known: "
            + ", ".join(name.value for name in PREDEFINED_POLICIES),
        )


async def _in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await run_in_threadpool(function, *args, **kwargs)


def _policy_id(subscription_id: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups//providers/{NETWORK}/"
        f"ApplicationGatewayAvailableSslOptions/default/ApplicationGatewaySslPredefinedPolicy/{name}"
    )


def _policy_json(subscription_id: str, name: str) -> dict[str, Any]:
    policy = next(p for p in PREDEFINED_POLICIES.values() if p.name.value == name)
    return {
        "name": name,
        "id": _policy_id(subscription_id, name),
        "properties": {
            # TLS 1.3 suites are implicit in Azure's output, as in GET of a gateway.
            "cipherSuites": [
                suite.value for suite in policy.cipher_suites if suite not in TLS13_CIPHER_SUITES
            ],
            "minProtocolVersion": policy.min_protocol_version.value,
        },
    }


def _parse_activity_filter(subscription_id: str, text: str | None) -> tuple[str, datetime | None]:
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


def _event_json(subscription_id: str, event: Any) -> dict[str, Any]:
    parts = event.resource_id.split("/")
    return {
        "authorization": {"action": event.operation, "scope": event.resource_id},
        "caller": event.caller,
        "correlationId": event.correlation_id,
        "eventDataId": event.event_id,
        "eventName": {"value": "EndRequest", "localizedValue": "End request"},
        "eventTimestamp": event.time.isoformat().replace("+00:00", "Z"),
        "operationName": {"value": event.operation, "localizedValue": event.operation},
        "resourceGroupName": parts[4] if len(parts) > 4 else None,
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


def _body_schema(name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ApplicationGateway, TagsObject, OnDemandProbe):
        generated = model.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}"
        )
        components.update(generated.pop("$defs", {}))
        components[model.__name__] = generated
    app.openapi_schema = schema
    return schema


class BodyLimit:
    """413 for request bodies over the limit, before they are buffered whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(self.limit, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(limit: int, send: Send) -> None:
    body = json.dumps(
        ServiceError(
            413, "RequestEntityTooLarge", f"The request body exceeds {limit} bytes."
        ).to_json()
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
