"""Portal routes that every screen relies on: sign-in, All resources, a gateway's Overview."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from appgw.control.auth import caller_for_token
from appgw.portal.common import (
    CsrfRejected,
    NotSignedIn,
    PageNotFound,
    Portal,
    redirect,
    text,
)
from appgw.portal.screens import (
    activity,
    configuration,
    health,
    listeners,
    pools,
    probes,
    rules,
    settings,
    ssl,
    wizard,
)
from appgw.portal.sessions import COOKIE

SCREENS = (
    configuration,
    listeners,
    pools,
    settings,
    rules,
    probes,
    health,
    ssl,
    activity,
    wizard,
)


def mount_portal(app: FastAPI, portal: Portal) -> None:
    app.mount(
        "/portal/static",
        StaticFiles(packages=[("appgw.portal", "static")]),
        name="portal-static",
    )

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, _error: NotSignedIn) -> Response:
        return redirect(f"/portal/signin?next={quote(str(request.url.path))}")

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, _error: CsrfRejected) -> Response:
        return portal.render(
            request,
            "error.html",
            None,
            status=403,
            title="Request refused",
            message="The form was not sent from this portal page (missing or wrong CSRF token). "
            "Nothing was changed. Go back, reload the page and try again.",
        )

    @app.exception_handler(PageNotFound)
    async def _not_found(request: Request, error: PageNotFound) -> Response:
        return portal.render(
            request, "error.html", None, status=404, title="Not found", message=str(error)
        )

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return redirect("/portal/resources")

    @app.get("/portal/signin", include_in_schema=False, response_class=HTMLResponse)
    def signin_page(request: Request, next: str = "/portal/resources") -> Response:
        return portal.render(request, "signin.html", None, next=_safe_next(next), error=None)

    @app.post("/portal/signin", include_in_schema=False)
    async def signin(request: Request) -> Response:
        form = await request.form()
        token = text(form, "token")
        target = _safe_next(text(form, "next", "/portal/resources"))
        caller = caller_for_token(portal.service.store, token) if token else None
        if caller is None:
            return portal.render(
                request,
                "signin.html",
                None,
                status=401,
                next=target,
                error="That token is not valid. Use the admin token appgw printed on its "
                "first start.",
            )
        session_id, _session = portal.sessions.create(caller)
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

    @app.post("/portal/signout", include_in_schema=False)
    async def signout(request: Request) -> Response:
        session = portal.session(request)
        await portal.form(request, session)
        portal.sessions.end(request.cookies.get(COOKIE))
        response = redirect("/portal/signin")
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/portal/resources", include_in_schema=False, response_class=HTMLResponse)
    def resources(request: Request) -> Response:
        session = portal.session(request)
        gateways: list[dict[str, Any]] = []
        for version in portal.service.store.current_all():
            parts = version.resource_id.split("/")
            sku = version.document.get("properties", {}).get("sku", {})
            gateways.append(
                {
                    "name": parts[8],
                    "resource_group": parts[4],
                    "subscription": parts[2],
                    "sku": sku.get("name", ""),
                    "tier": sku.get("tier", ""),
                    "state": version.operational_state,
                    "location": version.document.get("location", ""),
                    "url": f"/portal/gateways/{parts[2]}/{parts[4]}/{parts[8]}/overview",
                }
            )
        return portal.render(request, "resources.html", session, gateways=gateways)

    @app.get(
        "/portal/gateways/{subscription}/{resource_group}/{name}/overview",
        include_in_schema=False,
        response_class=HTMLResponse,
    )
    def overview(request: Request, subscription: str, resource_group: str, name: str) -> Response:
        blade = portal.opened(request, subscription, resource_group, name, "overview")
        props = blade.view["properties"]
        counts = {
            label: len(props.get(collection, []))
            for label, collection in (
                ("Listeners", "httpListeners"),
                ("Rules", "requestRoutingRules"),
                ("Backend pools", "backendAddressPools"),
                ("Backend settings", "backendHttpSettingsCollection"),
                ("Health probes", "probes"),
                ("Listener TLS certificates", "sslCertificates"),
            )
        }
        summary = {"Healthy": 0, "Unhealthy": 0, "Unknown": 0}
        if portal.service.health is not None:
            report = portal.service.backend_health(blade.gateway_id, expand=False)
            for pool in report["backendAddressPools"]:
                for group in pool["backendHttpSettingsCollection"]:
                    for server in group["servers"]:
                        summary[server["health"]] = summary.get(server["health"], 0) + 1
        frontends = [
            {
                "name": f["name"],
                "kind": "Private" if f["properties"].get("privateIPAddress") else "Public",
                "address": f["properties"].get("privateIPAddress", "(all addresses)"),
            }
            for f in props.get("frontendIPConfigurations", [])
        ]
        return blade.page("overview.html", counts=counts, health=summary, frontends=frontends)

    for screen in SCREENS:
        screen.register(app, portal)


def _safe_next(target: str) -> str:
    """Only local paths: a sign-in link must not send the operator elsewhere."""
    return target if target.startswith("/portal/") and "//" not in target else "/portal/resources"
