"""Overview blade: the gateway's essentials, how many children it has, and their health; and
Azure's command bar: Start, Stop, Delete (after typing the gateway's name) and Refresh."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from appgw.control.service import STORE_UNAVAILABLE, ServiceError
from appgw.model.enums import OperationalState
from appgw.portal.common import (
    GATEWAY_PATH,
    Blade,
    FormErrors,
    Portal,
    ViewScreen,
    caller_of,
    redirect,
    text,
)
from appgw.portal.screens.health import STARTING_REFRESH_SECONDS, health_report, summary_of

CONFIRM_FIELD = "confirm_name"
CHANGED_BEFORE_DELETE = (
    "The application gateway was changed since this page was shown, so it was not deleted. "
    "Check it and delete again."
)


def _context(blade: Blade) -> dict[str, Any]:
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
    health = health_report(blade.portal.service, blade.gateway_id)
    frontends = [
        {
            "name": f["name"],
            "kind": "Private" if f["properties"].get("privateIPAddress") else "Public",
            "address": f["properties"].get("privateIPAddress", "(all addresses)"),
        }
        for f in props.get("frontendIPConfigurations", [])
    ]
    state = props.get("operationalState")
    return {
        "counts": counts,
        "health": summary_of(health.report),
        "health_starting": health.starting,
        "health_unavailable": health.unavailable,
        "refresh": STARTING_REFRESH_SECONDS if health.starting else None,
        "frontends": frontends,
        # As Azure's command bar: Start only when stopped, Stop only when running.
        "can_start": state == OperationalState.STOPPED.value,
        "can_stop": state == OperationalState.RUNNING.value,
    }


BLADE = ViewScreen(screen="overview", context=_context)


def _set_state(blade: Blade, state: OperationalState) -> Response:
    """Start or stop, as the API's start/stop do; back to the Overview, saying what was done."""
    try:
        blade.portal.service.set_operational_state(
            blade.gateway_id, caller_of(blade.session, blade.request), state
        )
    except ServiceError as error:
        return blade.portal.refused_page(blade.request, error)
    done = "started" if state == OperationalState.RUNNING else "stopped"
    return blade.done(f"Application gateway '{blade.gateway_id.name}' {done}.")


def _confirm_page(blade: Blade, errors: FormErrors | None = None, typed: str = "") -> Response:
    return blade.page(
        "overview_delete.html",
        errors=errors,
        typed=typed,
        confirm_field=CONFIRM_FIELD,
        status=412 if errors and errors.stale else None,
    )


def _delete(blade: Blade, posted: FormData) -> Response:
    name = blade.gateway_id.name
    typed = text(posted, CONFIRM_FIELD).strip()
    # Azure asks for the name typed exactly: a slip deletes nothing.
    if typed != name:
        errors = FormErrors()
        errors.add(CONFIRM_FIELD, f"Type the gateway's name, '{name}', to delete it.")
        return _confirm_page(blade, errors, typed)
    try:
        blade.portal.service.delete(
            blade.gateway_id,
            caller_of(blade.session, blade.request),
            if_match=text(posted, "etag") or None,
        )
    except ServiceError as error:
        if error.status == 412:
            return _confirm_page(
                blade.reloaded(), FormErrors(general=[CHANGED_BEFORE_DELETE], stale=True)
            )
        if error.code == STORE_UNAVAILABLE:
            return _confirm_page(blade, FormErrors(unavailable=error.message), typed)
        return blade.portal.refused_page(blade.request, error)
    blade.session.flash.append(f"Application gateway '{name}' deleted.")
    return redirect("/portal/resources")


def register(router: APIRouter, portal: Portal) -> None:
    BLADE.register(router, portal)
    base = f"{GATEWAY_PATH}/{BLADE.screen}"

    async def change(
        request: Request, subscription: str, resource_group: str, name: str, state: OperationalState
    ) -> Response:
        blade, _posted = await portal.submitted(
            request, subscription, resource_group, name, BLADE.screen
        )
        return await run_in_threadpool(_set_state, blade, state)

    @router.post(f"{base}/start")
    async def start(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        return await change(request, subscription, resource_group, name, OperationalState.RUNNING)

    @router.post(f"{base}/stop")
    async def stop(request: Request, subscription: str, resource_group: str, name: str) -> Response:
        return await change(request, subscription, resource_group, name, OperationalState.STOPPED)

    @router.get(f"{base}/delete", name="portal-overview-delete")
    def delete_page(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        return _confirm_page(portal.opened(request, subscription, resource_group, name, "overview"))

    @router.post(f"{base}/delete")
    async def delete(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        blade, posted = await portal.submitted(
            request, subscription, resource_group, name, BLADE.screen
        )
        return await run_in_threadpool(_delete, blade, posted)
