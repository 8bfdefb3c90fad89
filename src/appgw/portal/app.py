"""The portal as a whole: sign-in, All resources, every screen's routes, and its error pages."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from appgw.control.service import STORE_UNAVAILABLE, ServiceError
from appgw.control.sessions import csrf_token
from appgw.portal.common import (
    CsrfRejected,
    NotSignedIn,
    PageNotFound,
    Portal,
    gateway_url,
    redirect,
    text,
)
from appgw.portal.screens import (
    activity,
    configuration,
    health,
    listeners,
    overview,
    pools,
    probes,
    rewrites,
    rules,
    settings,
    ssl,
    ssl_profiles,
    waf,
    waf_policies,
    wizard,
)
from appgw.portal.sessions import COOKIE

PREFIX = "/portal/"
SCREENS = (
    overview,
    configuration,
    listeners,
    pools,
    settings,
    rules,
    rewrites,
    probes,
    health,
    ssl,
    ssl_profiles,
    waf,
    waf_policies,
    activity,
    wizard,
)
# The error pages for what the router itself refuses: (title, message about {method} {path}).
_HTTP_ERRORS = {
    404: ("Not found", "There is no portal page at {path}."),
    405: ("Not allowed", "{method} is not allowed at {path}."),
}


def mount_portal(app: FastAPI, portal: Portal) -> None:
    """Serve the portal from `app`: its static files, its routes and its error pages."""
    app.mount(
        "/portal/static",
        StaticFiles(packages=[("appgw.portal", "static")]),
        name="portal-static",
    )
    app.include_router(portal_router(portal))

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, _error: NotSignedIn) -> Response:
        return redirect(f"/portal/signin?next={quote(str(request.url.path))}")

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, _error: CsrfRejected) -> Response:
        return portal.error_page(
            request,
            403,
            "Request refused",
            "The form was not sent from this portal page (missing or wrong CSRF token). "
            "Nothing was changed. Go back, reload the page and try again.",
        )

    @app.exception_handler(PageNotFound)
    async def _not_found(request: Request, error: PageNotFound) -> Response:
        return portal.error_page(request, 404, "Not found", str(error))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> Response:
        # What no route matches: the portal's page under /portal/, FastAPI's JSON elsewhere
        # (the API's own errors are ServiceErrors, in ARM's shape).
        if not request.url.path.startswith(PREFIX):
            return await http_exception_handler(request, error)
        title, message = "Request refused", f"{error.detail} ({error.status_code})."
        if error.status_code in _HTTP_ERRORS:
            title, template = _HTTP_ERRORS[error.status_code]
            message = template.format(method=request.method, path=request.url.path)
        return portal.error_page(request, error.status_code, title, message, headers=error.headers)


def portal_router(portal: Portal) -> APIRouter:
    class PortalRoute(APIRoute):
        """A refusal of the service that a portal page does not handle itself (the store
        being unavailable, most of all) is a portal page, not the API's JSON."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()

            async def answer(request: Request) -> Response:
                try:
                    response = await handle(request)
                except ServiceError as refusal:
                    return portal.refused_page(request, refusal)
                session_id = request.cookies.get(COOKIE)
                if request.method == "POST" and response.status_code == 303 and session_id:
                    # Saved: the form's kept files (private keys among them) are not needed.
                    portal.drafts.forget(csrf_token(session_id), request.url.path)
                return response

            return answer

    router = APIRouter(include_in_schema=False, route_class=PortalRoute)

    @router.get("/")
    def root() -> Response:
        return redirect("/portal/resources")

    @router.get("/portal")
    def portal_root() -> Response:
        return redirect("/portal/resources")

    @router.get("/portal/signin")
    def signin_page(request: Request, next: str = "/portal/resources") -> Response:
        return portal.render(request, "signin.html", None, next=_safe_next(next), error=None)

    @router.post("/portal/signin")
    async def signin(request: Request) -> Response:
        form = await request.form()
        token = text(form, "token")
        target = _safe_next(text(form, "next", "/portal/resources"))
        address = request.client.host if request.client else None
        try:
            if not token:
                raise ServiceError(401, "InvalidAuthenticationToken", "no token")
            caller = await run_in_threadpool(portal.service.authenticate, token, address, "portal")
        except ServiceError as error:
            if error.status == 429:
                return portal.error_page(
                    request,
                    429,
                    "Too many sign-in attempts",
                    f"Too many wrong tokens came from your address. Wait {error.retry_after} "
                    "seconds, then sign in with the admin token.",
                    headers={"Retry-After": str(error.retry_after)},
                )
            if error.code == STORE_UNAVAILABLE:  # the form again, to sign in once it is back
                return portal.refused_page(
                    request, error, template="signin.html", next=target, error=None
                )
            if error.status != 401:
                raise
            return portal.render(
                request,
                "signin.html",
                None,
                status=401,
                next=target,
                error="That token is not valid. Use the admin token appgw printed on its "
                "first start.",
            )
        session_id = portal.sessions.create(caller.name)
        response = redirect(target)
        response.set_cookie(
            COOKIE,
            session_id,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @router.post("/portal/signout")
    async def signout(request: Request) -> Response:
        session = portal.session(request)
        await portal.form(request, session)
        portal.drafts.forget(session.csrf)
        portal.sessions.end(request.cookies.get(COOKIE))
        response = redirect("/portal/signin")
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/portal/resources")
    def resources(request: Request) -> Response:
        session = portal.session(request)
        gateways = [
            {
                "name": summary.gateway_id.name,
                "resource_group": summary.gateway_id.resource_group,
                "subscription": summary.gateway_id.subscription,
                "sku": summary.sku_name,
                "tier": summary.sku_tier,
                "state": summary.operational_state,
                "location": summary.location,
                "url": gateway_url(summary.gateway_id, "overview"),
            }
            for summary in portal.service.all_gateways()
        ]
        policies = waf_policies.all_policies(portal)
        return portal.render(
            request, "resources.html", session, gateways=gateways, policies=policies
        )

    for screen in SCREENS:
        screen.register(router, portal)
    return router


def _safe_next(target: str) -> str:
    """Only local paths: a sign-in link must not send the operator elsewhere."""
    return target if target.startswith("/portal/") and "//" not in target else "/portal/resources"
