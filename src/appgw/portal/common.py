"""What every portal screen shares: sessions, CSRF, rendering, saving through the service."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
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

    def opened(
        self, request: Request, subscription: str, resource_group: str, name: str, screen: str
    ) -> Blade:
        """The signed-in operator's page `screen` of that gateway."""
        session = self.session(request)
        gateway_id, view = self.gateway(subscription, resource_group, name)
        return Blade(self, request, session, gateway_id, view, screen)

    async def submitted(
        self, request: Request, subscription: str, resource_group: str, name: str, screen: str
    ) -> tuple[Blade, FormData]:
        """The page `screen` of that gateway and the form posted to it (CSRF checked first)."""
        session = self.session(request)
        form = await self.form(request, session)
        gateway_id, view = self.gateway(subscription, resource_group, name)
        return Blade(self, request, session, gateway_id, view, screen), form

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


@dataclass(frozen=True)
class Blade:
    """A request to one of a gateway's blades (Azure's word for a portal page): the signed-in
    operator, the gateway as this request loaded it, and what pages of the blade share."""

    portal: Portal
    request: Request
    session: Session
    gateway_id: GatewayId
    view: dict[str, Any]
    screen: str  # the menu entry and URL segment, e.g. "pools"

    @property
    def url(self) -> str:
        return gateway_url(self.gateway_id, self.screen)

    def page(self, template: str, *, status: int | None = None, **context: Any) -> HTMLResponse:
        """A page of the blade: the menu, the gateway and its SKU generation around it.
        A form shown again with `errors` is a 400 unless the status says otherwise."""
        if status is None:
            status = 400 if context.get("errors") else 200
        return self.portal.render(
            self.request,
            template,
            self.session,
            status=status,
            gateway=self.view,
            gateway_id=self.gateway_id,
            screen=self.screen,
            base=gateway_url(self.gateway_id, ""),
            v2=is_v2(self.view),
            **context,
        )

    def save(self, document: dict[str, Any], mapping: FieldMapping) -> FormErrors:
        return self.portal.save(self.session, self.gateway_id, document, mapping, self.request)

    def done(self, message: str) -> Response:
        """After a change: say what was done, back to the blade's list."""
        self.session.flash.append(message)
        return redirect(self.url)


def copy_of(view: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(view)


def draft(view: dict[str, Any], etag: str) -> dict[str, Any]:
    """A copy of the gateway to change and PUT If-Match `etag`, the version the form was built
    from: a change made meanwhile is refused, not lost."""
    document = copy_of(view)
    document["etag"] = etag
    return document


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


def require_child(view: dict[str, Any], collection: str, name: str, noun: str) -> dict[str, Any]:
    """The child a page's URL names, or the portal's Not found page."""
    child = find_child(view, collection, name)
    if child is None:
        raise PageNotFound(f"There is no {noun} '{name}' on this application gateway.")
    return child


def name_of(reference: dict[str, Any] | None) -> str:
    """The child name a `{"id": ...}` reference ends with ('' when absent)."""
    return str(reference["id"]).rsplit("/", 1)[-1] if reference else ""


def child_of(resource: str) -> tuple[str, str]:
    """(collection, child name) of a child resource id; ('', '') for the gateway itself."""
    parts = resource.rsplit("/", 2)
    return (parts[-2], parts[-1]) if len(parts) == 3 else ("", "")


# --- a blade of one child collection: list, Add, Edit, Delete ------------------------------------

Form = TypeVar("Form")


def _no_problems(_form: Any) -> FormErrors:
    return FormErrors()


def _nothing_else(_document: dict[str, Any], _child: dict[str, Any]) -> None:
    return None


def _no_reason(_view: dict[str, Any], _child: dict[str, Any]) -> str:
    return ""


@dataclass(frozen=True)
class ChildScreen(Generic[Form]):
    """A blade of one child collection (Backend pools, Rules) at Azure's portal URLs:
    `{screen}` lists, `{screen}/add` and `{screen}/edit/{child}` show and post the editor,
    `{screen}/delete/{child}` deletes. The screen states what is its own; saving, the
    If-Match of the form's version, flash messages and Not found pages are the same for all."""

    screen: str  # the URL segment and menu entry, e.g. "pools"
    collection: str  # e.g. "backendAddressPools"
    noun: str  # in messages, e.g. "backend pool"
    # The list template's variables (besides the gateway and `errors`).
    list_context: Callable[[dict[str, Any]], dict[str, Any]]
    # The editor template's variables for (view, form, adding).
    editor_context: Callable[[dict[str, Any], Form, bool], dict[str, Any]]
    blank_form: Callable[[], Form]
    form_of_child: Callable[[dict[str, Any], dict[str, Any]], Form]
    # The posted form; the child's name comes from the URL when editing.
    form_of_post: Callable[[FormData, str | None], Form]
    child_name: Callable[[Form], str]  # the name the form gives the child
    # Writes the form into the document (the previous child, if editing); says where problems go.
    apply: Callable[[dict[str, Any], GatewayId, Form, dict[str, Any] | None], FieldMapping]
    # Problems of the form itself, found before anything is sent to the service.
    check: Callable[[Form], FormErrors] = _no_problems
    # What else goes when a child is deleted (e.g. a rule's own redirect and path map).
    delete_also: Callable[[dict[str, Any], dict[str, Any]], None] = _nothing_else
    # Why a refused delete was refused, in a sentence after "... was not deleted.".
    delete_refusal: Callable[[dict[str, Any], dict[str, Any]], str] = _no_reason

    def register(self, app: FastAPI, portal: Portal) -> None:
        prefix = f"/portal/gateways/{{subscription}}/{{resource_group}}/{{name}}/{self.screen}"

        def listing(blade: Blade, errors: FormErrors | None = None) -> HTMLResponse:
            context = self.list_context(blade.view)
            return blade.page(f"{self.screen}.html", errors=errors, **context)

        def editor(
            blade: Blade, form: Form, *, adding: bool, etag: str, errors: FormErrors | None = None
        ) -> HTMLResponse:
            return blade.page(
                f"{self.screen}_edit.html",
                adding=adding,
                etag=etag,
                errors=errors,
                **self.editor_context(blade.view, form, adding),
            )

        async def save(
            request: Request,
            gateway_id: GatewayId,
            view: dict[str, Any],
            previous: dict[str, Any] | None,
        ) -> Response:
            session = portal.session(request)
            posted = await portal.form(request, session)
            blade = Blade(portal, request, session, gateway_id, view, self.screen)
            form = self.form_of_post(posted, previous["name"] if previous else None)
            etag = text(posted, "etag") or view["etag"]
            errors = self.check(form)
            if not errors:
                document = draft(view, etag)
                errors = blade.save(document, self.apply(document, gateway_id, form, previous))
            if errors:
                return editor(blade, form, adding=previous is None, etag=etag, errors=errors)
            return blade.done(f"Saved {self.noun} '{self.child_name(form)}'.")

        def require(view: dict[str, Any], child: str) -> dict[str, Any]:
            return require_child(view, self.collection, child, self.noun)

        @app.get(prefix, include_in_schema=False, response_class=HTMLResponse)
        def list_page(
            request: Request, subscription: str, resource_group: str, name: str
        ) -> Response:
            return listing(portal.opened(request, subscription, resource_group, name, self.screen))

        @app.get(f"{prefix}/add", include_in_schema=False, response_class=HTMLResponse)
        def add_page(
            request: Request, subscription: str, resource_group: str, name: str
        ) -> Response:
            blade = portal.opened(request, subscription, resource_group, name, self.screen)
            return editor(blade, self.blank_form(), adding=True, etag=blade.view["etag"])

        @app.post(f"{prefix}/add", include_in_schema=False)
        async def add(
            request: Request, subscription: str, resource_group: str, name: str
        ) -> Response:
            gateway_id, view = portal.gateway(subscription, resource_group, name)
            return await save(request, gateway_id, view, None)

        @app.get(f"{prefix}/edit/{{child}}", include_in_schema=False, response_class=HTMLResponse)
        def edit_page(
            request: Request, subscription: str, resource_group: str, name: str, child: str
        ) -> Response:
            blade = portal.opened(request, subscription, resource_group, name, self.screen)
            form = self.form_of_child(blade.view, require(blade.view, child))
            return editor(blade, form, adding=False, etag=blade.view["etag"])

        @app.post(f"{prefix}/edit/{{child}}", include_in_schema=False)
        async def edit(
            request: Request, subscription: str, resource_group: str, name: str, child: str
        ) -> Response:
            gateway_id, view = portal.gateway(subscription, resource_group, name)
            return await save(request, gateway_id, view, require(view, child))

        @app.post(f"{prefix}/delete/{{child}}", include_in_schema=False)
        async def delete(
            request: Request, subscription: str, resource_group: str, name: str, child: str
        ) -> Response:
            blade, posted = await portal.submitted(
                request, subscription, resource_group, name, self.screen
            )
            found = require(blade.view, child)
            document = draft(blade.view, text(posted, "etag") or blade.view["etag"])
            document["properties"][self.collection] = [
                other
                for other in document["properties"][self.collection]
                if other["name"].casefold() != found["name"].casefold()
            ]
            self.delete_also(document, found)
            # A child still in use makes the service refuse; its words go below ours.
            errors = blade.save(document, lambda _r, _p: None)
            if errors:
                reason = self.delete_refusal(blade.view, found)
                errors.general.insert(
                    0, f"{self.noun.capitalize()} '{found['name']}' was not deleted.{reason}"
                )
                return listing(blade, errors)
            return blade.done(f"Deleted {self.noun} '{found['name']}'.")


# --- certificates: upload a new one or pick one the gateway has ----------------------------------


@dataclass(frozen=True)
class CertificateChoice:
    """Azure's "upload a certificate / choose existing" fields, named after `prefix`:
    `{prefix}_choice` (upload or existing), `existing_{prefix}`, `{prefix}_name`, `{prefix}_file`
    and, for a PFX, `{prefix}_password`."""

    prefix: str  # "cert" for a listener's PFX, "cer" for backend settings' CER
    missing_file: str
    missing_name: str
    password: bool = False  # a PFX comes with its password

    @property
    def fields(self) -> tuple[str, ...]:
        """The text fields the form carries back when shown again (never the password)."""
        return (f"{self.prefix}_choice", f"existing_{self.prefix}", f"{self.prefix}_name")

    def values(self, existing: str) -> dict[str, str]:
        """The fields as an Add form (no certificate) or an Edit form (`existing`) shows them."""
        return {
            f"{self.prefix}_choice": "existing" if existing else "upload",
            f"existing_{self.prefix}": existing,
            f"{self.prefix}_name": "",
        }

    async def read(
        self, form: FormData, document: dict[str, Any], collection: str, errors: FormErrors
    ) -> str | None:
        """The chosen certificate's name; an uploaded one is put into `collection` of
        `document` (replacing one of that name). Missing choices are added to `errors`."""
        if text(form, f"{self.prefix}_choice") == "existing":
            existing = text(form, f"existing_{self.prefix}")
            if not existing:
                errors.add(f"existing_{self.prefix}", "Choose a certificate.")
            return existing or None
        data = await upload(form, f"{self.prefix}_file")
        name = text(form, f"{self.prefix}_name")
        if data is None:
            errors.add(f"{self.prefix}_file", self.missing_file)
        if not name:
            errors.add(f"{self.prefix}_name", self.missing_name)
        if data is not None and name:
            properties = {"data": certificate_field(data)}
            if self.password:
                properties["password"] = text(form, f"{self.prefix}_password")
            put_child(document, collection, {"name": name, "properties": properties})
        return name or None

    def field(self, path: str) -> str:
        """The form field for a problem the service found in the uploaded certificate."""
        if self.password and path.endswith("password"):
            return f"{self.prefix}_password"
        return f"{self.prefix}_file"


# --- a blade of the gateway's own properties: one form --------------------------------------------


@dataclass(frozen=True)
class GatewayScreen(Generic[Form]):
    """A blade that edits properties of the gateway itself in one form (Configuration, SSL
    settings), shown and posted at `{screen}` and rendered with `{screen}.html`."""

    screen: str
    saved: str  # the flash message after a save, e.g. "Saved the configuration."
    form_of_view: Callable[[dict[str, Any]], Form]
    # The posted form; the view is there for what the form builds on (e.g. a stored order).
    form_of_post: Callable[[FormData, dict[str, Any]], Form]
    # The template's variables (besides the gateway, `etag` and `errors`).
    context: Callable[[dict[str, Any], Form], dict[str, Any]]
    apply: Callable[[dict[str, Any], Form], None]
    # Where the service's problems go: (the gateway's id) -> mapping.
    fields: Callable[[GatewayId], FieldMapping]

    def register(self, app: FastAPI, portal: Portal) -> None:
        path = f"/portal/gateways/{{subscription}}/{{resource_group}}/{{name}}/{self.screen}"

        def page(
            blade: Blade, form: Form, *, etag: str, errors: FormErrors | None = None
        ) -> HTMLResponse:
            context = self.context(blade.view, form)
            return blade.page(f"{self.screen}.html", etag=etag, errors=errors, **context)

        @app.get(path, include_in_schema=False, response_class=HTMLResponse)
        def show(request: Request, subscription: str, resource_group: str, name: str) -> Response:
            blade = portal.opened(request, subscription, resource_group, name, self.screen)
            return page(blade, self.form_of_view(blade.view), etag=blade.view["etag"])

        @app.post(path, include_in_schema=False)
        async def save(
            request: Request, subscription: str, resource_group: str, name: str
        ) -> Response:
            blade, posted = await portal.submitted(
                request, subscription, resource_group, name, self.screen
            )
            form = self.form_of_post(posted, blade.view)
            etag = text(posted, "etag") or blade.view["etag"]
            document = draft(blade.view, etag)
            self.apply(document, form)
            errors = blade.save(document, self.fields(blade.gateway_id))
            if errors:
                return page(blade, form, etag=etag, errors=errors)
            return blade.done(self.saved)
