"""What every portal screen shares: sessions, CSRF, rendering, saving through the service."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData, UploadFile

from appgw.control.service import Caller, GatewayService, ServiceError

# Re-exported: the screens edit documents through these.
from appgw.model.document import (
    certificate_field as certificate_field,
    child_names as child_names,
    find_child as find_child,
    is_v2 as is_v2,
    put_child as put_child,
    ref as ref,
)
from appgw.model.ids import GatewayId
from appgw.portal.sessions import COOKIE, Session, Sessions

TEMPLATES = Path(__file__).parent / "templates"
# An uploaded certificate larger than this is refused before it is read whole (Azure's PFX
# limit is 16 KB and a CER is smaller; 1 MiB leaves room for a bad file to be named clearly).
MAX_UPLOAD_BYTES = 1024 * 1024

MENU = (
    ("overview", "Overview"),
    ("configuration", "Configuration"),
    ("listeners", "Listeners"),
    ("pools", "Backend pools"),
    ("settings", "Backend settings"),
    ("rules", "Rules"),
    ("probes", "Health probes"),
    ("health", "Backend health"),
    ("ssl", "SSL settings"),
    ("activity", "Activity log"),
)


class NotSignedIn(Exception):
    pass


class CsrfRejected(Exception):
    pass


class PageNotFound(Exception):
    pass


@dataclass
class FormErrors:
    fields: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, name: str | None, message: str) -> None:
        if name is None:
            self.general.append(message)
        else:
            self.fields.setdefault(name, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


# (resource id, property path) -> the form field that shows the problem, or None (top of form)
FieldMapping = Callable[[str, str], str | None]


class Portal:
    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self.sessions = Sessions()
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        self.templates.env.globals["menu"] = MENU

    # --- sessions and CSRF ----------------------------------------------------------------------

    def session(self, request: Request) -> Session:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise NotSignedIn
        return session

    async def form(self, request: Request, session: Session) -> FormData:
        """The posted form, after the CSRF token and the Origin were checked."""
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.url.netloc:
            raise CsrfRejected
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise CsrfRejected
        form = await request.form(max_part_size=MAX_UPLOAD_BYTES)
        token = form.get("csrf")
        if not session.csrf_matches(token if isinstance(token, str) else None):
            raise CsrfRejected
        return form

    # --- rendering --------------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        *,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        flash = list(session.flash) if session is not None else []
        if session is not None:
            session.flash.clear()
        response = self.templates.TemplateResponse(
            request,
            template,
            {"session": session, "flash": flash, **context},
            status_code=status,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    # --- gateways --------------------------------------------------------------------------------

    def gateway(
        self, subscription: str, resource_group: str, name: str
    ) -> tuple[GatewayId, dict[str, Any]]:
        gateway_id = GatewayId(subscription, resource_group, name)
        try:
            return gateway_id, self.service.get(gateway_id)
        except ServiceError as error:
            if error.status == 404:
                raise PageNotFound(
                    f"There is no application gateway '{name}' in '{resource_group}'."
                ) from None
            raise

    def save(
        self,
        session: Session,
        gateway_id: GatewayId,
        document: dict[str, Any],
        mapping: FieldMapping,
        request: Request,
    ) -> FormErrors:
        """PUT through the service (If-Match the version the form was built from); problems
        are returned per form field. Nothing is stored when there is any."""
        errors = FormErrors()
        try:
            self.service.put(
                gateway_id,
                document,
                Caller(session.caller, request.client.host if request.client else None),
                if_match=document.get("etag"),
            )
        except ServiceError as error:
            if error.status == 412:
                errors.add(
                    None,
                    "This gateway was changed by someone else after this page was loaded; nothing "
                    "was saved. Reload the page to see the current configuration, then try again.",
                )
            elif not error.details:
                errors.add(None, error.message)
            for detail in error.details:
                target = detail.get("target", "")
                resource, _, path = target.partition("#")
                errors.add(mapping(resource, path), detail["message"])
        return errors


def copy_of(view: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(view)


def text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


async def upload(form: FormData, name: str) -> bytes | None:
    value = form.get(name)
    if isinstance(value, UploadFile) and value.filename:
        data = await value.read()
        return data or None
    return None


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def gateway_url(gateway_id: GatewayId, screen: str) -> str:
    return (
        f"/portal/gateways/{gateway_id.subscription}/{gateway_id.resource_group}/"
        f"{gateway_id.name}/{screen}"
    )
