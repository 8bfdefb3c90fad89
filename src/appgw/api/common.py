"""What every API router shares: Azure's paths, the dependencies (service, api-version, caller),
request bodies, async-operation headers, and what `configure` adds to the app (body limit,
ARM error bodies, the OpenAPI schema of the resource model).

Handlers translate HTTP to `GatewayService` calls and back; they hold no rules. Most are plain
(non-async) functions so FastAPI runs the blocking store calls in its thread pool.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appgw import json_text
from appgw.control.service import Caller, GatewayService, ServiceError
from appgw.model.ids import GatewayId
from appgw.model.json_body import InvalidJson, parse_json_body
from appgw.model.resource import ApplicationGateway, OnDemandProbe, TagsObject

NETWORK = "Microsoft.Network"
SUBSCRIPTION = "/subscriptions/{subscription_id}"
RESOURCE_GROUP = SUBSCRIPTION + "/resourceGroups/{resource_group}"
GATEWAYS = "/providers/Microsoft.Network/applicationGateways"
GATEWAY = RESOURCE_GROUP + GATEWAYS + "/{name}"

# 100 certificates of 16 KB in base64 make ~2.2 MB; 8 MiB leaves room and bounds memory.
MAX_BODY_BYTES = 8 * 1024 * 1024
# ARM api-versions are dates; the oldest Azure service versions date from 2014.
OLDEST_API_VERSION = date(2014, 1, 1)
_API_VERSION = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(-preview)?$")


class ArmJson(JSONResponse):
    """A JSON answer written by orjson (json_text): a gateway at Azure's limits is 14 MB as the
    API shows it, ~0.15 s for Starlette's encoder on the event loop's thread."""

    def render(self, content: Any) -> bytes:
        return json_text.dumps(content)


def configure(app: FastAPI, service: GatewayService, routers: Sequence[APIRouter]) -> None:
    """Make `app` answer as ARM does: the routers with the service, paths matched without
    regard to case, the body limit, error bodies `{"error": {...}}`, and the resource model in
    the OpenAPI schema."""
    app.state.service = service
    for router in routers:
        app.include_router(router)
    paths = [str(getattr(route, "path", "")) for router in routers for route in router.routes]
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(ArmPathCase, paths=paths)
    app.add_middleware(SecurityHeaders)  # the last added is outermost: every answer gets them
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_error)  # type: ignore[arg-type]
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]


async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(error.to_json(), status_code=error.status, headers=headers)


async def _request_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return JSONResponse(
        ServiceError(400, "InvalidRequestFormat", f"{where}: {first['msg']}").to_json(),
        status_code=400,
    )


# --- dependencies ------------------------------------------------------------------------------


def service(request: Request) -> GatewayService:
    found: GatewayService = request.app.state.service
    return found


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
    # Credentials of another scheme are refused like a wrong token (and counted as one).
    presented = token.strip() if scheme.lower() == "bearer" else header
    return service(request).authenticate(
        presented, request.client.host if request.client else None, "api"
    )


def gateway_id(subscription_id: str, resource_group: str, name: str) -> GatewayId:
    """The gateway a path names (the service refuses names ARM would refuse)."""
    return GatewayId(subscription_id, resource_group, name)


Service = Annotated[GatewayService, Depends(service)]
ApiVersion = Annotated[str, Depends(api_version)]
Authenticated = Annotated[Caller, Depends(caller)]
# Declare it after ApiVersion and Authenticated: those are checked first, as ARM does.
Gateway = Annotated[GatewayId, Depends(gateway_id)]


# --- helpers of the handlers ----------------------------------------------------------------------


async def json_body(request: Request) -> object:
    try:
        return parse_json_body(await request.body())
    except InvalidJson as error:
        raise ServiceError(400, "InvalidRequestContent", str(error)) from None


async def in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await run_in_threadpool(function, *args, **kwargs)


def operation_links(
    request: Request, version: str, operation_id: str, location: str
) -> dict[str, str]:
    """ARM's headers of an asynchronous operation: where to poll its status and result."""
    base = str(request.base_url).rstrip("/")
    sub = request.path_params["subscription_id"]
    query = urlencode({"api-version": version})
    prefix = f"{base}/subscriptions/{sub}/providers/{NETWORK}/locations/{location or 'local'}"
    return {
        "Azure-AsyncOperation": f"{prefix}/operations/{operation_id}?{query}",
        "Location": f"{prefix}/operationResults/{operation_id}?{query}",
    }


def body_schema(name: str) -> dict[str, Any]:
    """A route's request body in the OpenAPI schema: the model `name` (see `_openapi`)."""
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
    # Bodies are read as raw JSON (Azure's error codes, not FastAPI's), so the models the
    # handlers validate against are added to the schema here.
    for model in (ApplicationGateway, TagsObject, OnDemandProbe):
        generated = model.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}"
        )
        components.update(generated.pop("$defs", {}))
        components[model.__name__] = generated
    app.openapi_schema = schema
    return schema


# --- ARM's case-insensitive paths ----------------------------------------------------------------


class ArmPathCase:
    """ARM matches the fixed segments of its paths without regard to case
    (`/SUBSCRIPTIONS/s/RESOURCEGROUPS/rg/PROVIDERS/MICROSOFT.NETWORK/...` is the same request):
    a path under /subscriptions is rewritten to the spelling of the route it matches so, before
    routing. The names in it are left as sent; the service compares them folded."""

    def __init__(self, app: ASGIApp, paths: Sequence[str]) -> None:
        self.app = app
        # The route paths under /subscriptions, split at '/', those with more fixed segments
        # first (the most specific wins).
        routes = [path.split("/") for path in set(paths) if path.startswith("/subscriptions/")]
        self.routes = sorted(routes, key=lambda parts: -sum(not p.startswith("{") for p in parts))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"][:15].casefold() == "/subscriptions/":
            path = _canonical_path(self.routes, scope["path"])
            if path != scope["path"]:
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)


def _canonical_path(routes: list[list[str]], path: str) -> str:
    parts = path.split("/")
    folded = [part.casefold() for part in parts]
    for route in routes:
        if len(route) == len(parts) and all(
            fixed.startswith("{") or fixed.casefold() == part
            for fixed, part in zip(route, folded, strict=True)
        ):
            return "/".join(
                part if fixed.startswith("{") else fixed
                for fixed, part in zip(route, parts, strict=True)
            )
    return path


# --- headers of every answer ---------------------------------------------------------------------

# The portal and the API share one origin that holds the admin session: no other site may frame
# it (clickjacking), no answer is sniffed into another type, and no URL (they name gateways and
# resource groups) leaks to other sites as a Referer.
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every answer that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _value in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- request body limit ---------------------------------------------------------------------------


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
