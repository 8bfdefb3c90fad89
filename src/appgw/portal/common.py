"""What every portal screen shares: sessions, CSRF, rendering, saving through the service, and
the blade helpers every screen is declared with (one URL shape for all of them)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from appgw.control.service import STORE_UNAVAILABLE, Caller, GatewayService, ServiceError

# Re-exported: the screens edit documents through these.
from appgw.model.document import (
    certificate_field as certificate_field,
    child_names as child_names,
    find_child as find_child,
    is_v2 as is_v2,
    put_child as put_child,
    ref as ref,
    remove_child,
)
from appgw.model.ids import GatewayId, parse_child_ref
from appgw.portal.drafts import DraftStore, KeptFile
from appgw.portal.sessions import COOKIE, Session, Sessions

TEMPLATES = Path(__file__).parent / "templates"
# An uploaded certificate larger than this is refused before it is read whole (Azure's PFX
# limit is 16 KB and a CER is smaller; 1 MiB leaves room for a bad file to be named clearly).
MAX_UPLOAD_BYTES = 1024 * 1024

# Every blade of a gateway is below this path: `{GATEWAY_PATH}/{screen}`.
GATEWAY_PATH = "/portal/gateways/{subscription}/{resource_group}/{name}"

MENU = (
    ("overview", "Overview"),
    ("configuration", "Configuration"),
    ("waf", "Web application firewall"),
    ("listeners", "Listeners"),
    ("pools", "Backend pools"),
    ("settings", "Backend settings"),
    ("rules", "Rules"),
    ("rewrites", "Rewrites"),
    ("probes", "Health probes"),
    ("health", "Backend health"),
    ("ssl", "SSL settings"),
    ("activity", "Activity log"),
)

CHANGED = (
    "The application gateway was changed (in another tab, by the API or the CLI) since this form "
    "was opened, so nothing was saved. The form now builds on the current version: check the "
    "values and submit again."
)
CHANGED_BEFORE_DELETE = (
    "The application gateway was changed since this page was shown, so nothing was deleted. "
    "Check the list and delete again."
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
    # The gateway changed after the form was built (the service refused its If-Match).
    stale: bool = False
    # Nothing was saved because the store is unavailable: the banner's text.
    unavailable: str | None = None

    def add(self, name: str | None, message: str) -> None:
        if name is None:
            self.general.append(message)
        else:
            self.fields.setdefault(name, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general or self.stale or self.unavailable)


# (resource id, property path) -> the form field that shows the problem, or None (top of form)
FieldMapping = Callable[[str, str], str | None]


def _nowhere(_resource: str, _path: str) -> str | None:
    return None


class Portal:
    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self.sessions = Sessions(service)
        self.drafts = DraftStore()
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        self.templates.env.globals["menu"] = MENU

    # --- sessions and CSRF ----------------------------------------------------------------------

    def session(self, request: Request) -> Session:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise NotSignedIn
        return session

    def signed_in(self, request: Request) -> Session | None:
        """The session, if any: pages anyone may see show who is signed in (nobody while the
        store, which keeps the sessions, cannot say: those pages explain why)."""
        try:
            return self.sessions.get(request.cookies.get(COOKIE))
        except ServiceError:
            return None

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
        # Files come back from the session's drafts when the operator does not choose them again.
        return self.drafts.keep(session.csrf, request.url.path, form)

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
        kept: dict[str, KeptFile] = {}
        if session is not None:
            session.flash.clear()
            if request.method == "GET":  # a form opened afresh starts without drafts
                self.drafts.forget(session.csrf, request.url.path)
            else:
                kept = self.drafts.kept(session.csrf, request.url.path)
        response = self.templates.TemplateResponse(
            request,
            template,
            {"session": session, "flash": flash, "kept": kept, **context},
            status_code=status,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    def error_page(
        self,
        request: Request,
        status: int,
        title: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """The portal's own error page (with its top bar and a way back), not a JSON body."""
        response = self.render(
            request,
            "error.html",
            self.signed_in(request),
            status=status,
            title=title,
            message=message,
        )
        response.headers.update(headers or {})
        return response

    def refused_page(
        self,
        request: Request,
        refusal: ServiceError,
        *,
        template: str = "unavailable.html",
        **context: Any,
    ) -> HTMLResponse:
        """A refusal of the service that no page shows in its own way: the store being
        unavailable as a banner above `template` (which reloads itself on a GET until the
        store is back), anything else as the portal's error page."""
        headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else {}
        if refusal.code != STORE_UNAVAILABLE:
            return self.error_page(
                request, refusal.status, "Request refused", refusal.message, headers=headers
            )
        response = self.render(
            request,
            template,
            self.signed_in(request),
            status=refusal.status,
            store_unavailable=refusal.message,
            refresh=refusal.retry_after if request.method == "GET" else None,
            **context,
        )
        response.headers.update(headers)
        return response

    # --- gateways --------------------------------------------------------------------------------

    def gateway(
        self, subscription: str, resource_group: str, name: str
    ) -> tuple[GatewayId, dict[str, Any]]:
        gateway_id = GatewayId(subscription, resource_group, name)
        try:
            return gateway_id, self.service.get(gateway_id)
        except ServiceError as error:
            if error.status == 404 or error.code == "InvalidResourceName":
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
        """The page `screen` of that gateway and the form posted to it (CSRF checked first).
        The gateway is read in a worker thread: the store blocks."""
        session = self.session(request)
        form = await self.form(request, session)
        gateway_id, view = await run_in_threadpool(self.gateway, subscription, resource_group, name)
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
        are returned per form field. Nothing is stored when there is any. A version changed
        meanwhile is only flagged `stale`: what to say depends on the page."""
        errors = FormErrors()
        try:
            self.service.put(
                gateway_id,
                document,
                caller_of(session, request),
                if_match=document.get("etag"),
            )
        except ServiceError as error:
            if error.status == 412:
                errors.stale = True
                return errors
            if error.code == STORE_UNAVAILABLE:  # the form is shown again, as typed
                errors.unavailable = error.message
                return errors
            place_problems(errors, error, mapping)
        return errors


def place_problems(errors: FormErrors, refusal: ServiceError, mapping: FieldMapping) -> None:
    """The service's problems next to the fields `mapping` names (the rest above the form)."""
    for diagnostic in refusal.diagnostics:
        # Next to its field the problem needs no resource id to say where it is.
        field = mapping(diagnostic.resource_id, diagnostic.field)
        errors.add(field, diagnostic.text if field else diagnostic.message)
    if not refusal.diagnostics:
        errors.add(None, refusal.message)


def caller_of(session: Session, request: Request) -> Caller:
    """Who makes a change, for the activity log: the signed-in operator and where from."""
    return Caller(session.caller, request.client.host if request.client else None)


def form_status(errors: FormErrors | None, status: int | None) -> tuple[int, str | None]:
    """A page's status and why the store was unavailable (if it was): a form shown again with
    `errors` is a 400, or a 503 when the store was unavailable, unless `status` says
    otherwise."""
    unavailable = errors.unavailable if errors is not None else None
    if status is None:
        status = 503 if unavailable else 400 if errors else 200
    return status, unavailable


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
        A form shown again with `errors` is a 400 (503 when the store was unavailable) unless
        the status says otherwise."""
        errors = context.get("errors")
        status, unavailable = form_status(
            errors if isinstance(errors, FormErrors) else None, status
        )
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
            store_unavailable=unavailable,
            **context,
        )

    def save(self, document: dict[str, Any], mapping: FieldMapping) -> FormErrors:
        return self.portal.save(self.session, self.gateway_id, document, mapping, self.request)

    def reloaded(self) -> Blade:
        """The same blade on the gateway's current version (after a change made meanwhile)."""
        gateway = self.gateway_id
        _id, view = self.portal.gateway(gateway.subscription, gateway.resource_group, gateway.name)
        return replace(self, view=view)

    def done(self, message: str) -> Response:
        """After a change: say what was done, back to the blade's list."""
        self.session.flash.append(message)
        return redirect(self.url)


def draft(view: dict[str, Any], etag: str) -> dict[str, Any]:
    """A copy of the gateway to change and PUT If-Match `etag`, the version the form was built
    from: a change made meanwhile is refused, not lost."""
    document = copy.deepcopy(view)
    document["etag"] = etag
    return document


def text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def upload(form: FormData, name: str) -> bytes | None:
    """The file uploaded as `name` (None if none). Blocking: the form was spooled to a
    temporary file, so screens read it in the worker thread that handles the post."""
    value = form.get(name)
    if isinstance(value, UploadFile) and value.filename:
        value.file.seek(0)
        data = value.file.read()
        return data or None
    return None


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def gateway_url(gateway_id: GatewayId, screen: str) -> str:
    return (
        f"/portal/gateways/{gateway_id.subscription}/{gateway_id.resource_group}/"
        f"{gateway_id.name}/{screen}"
    )


def save_child(
    document: dict[str, Any],
    collection: str,
    child: dict[str, Any],
    previous: dict[str, Any] | None,
) -> None:
    """An edited child replaces the one it was (`previous`); a new one is appended, never
    merged: a name already taken is then the service's DuplicateResourceName, shown next to
    the name, not a silent replacement."""
    if previous is None:
        document["properties"].setdefault(collection, []).append(child)
    else:
        put_child(document, collection, child)


def name_of(reference: dict[str, Any] | None) -> str:
    """The child name a `{"id": ...}` reference ends with ('' when absent)."""
    parsed = parse_child_ref(str(reference["id"])) if reference else None
    return parsed.name if parsed is not None else ""


def child_of(resource: str) -> tuple[str, str]:
    """(collection, child name) of a child resource id; ('', '') for the gateway itself."""
    parsed = parse_child_ref(resource)
    return (parsed.collection, parsed.name) if parsed is not None else ("", "")


# --- a blade that shows the gateway ---------------------------------------------------------------


@dataclass(frozen=True)
class ViewScreen:
    """A blade that only shows the gateway (Overview, Backend health, Activity log), at
    `{screen}`, rendered with `{screen}.html` and the variables `context` gives."""

    screen: str
    context: Callable[[Blade], dict[str, Any]]

    def register(self, router: APIRouter, portal: Portal) -> None:
        @router.get(f"{GATEWAY_PATH}/{self.screen}", name=f"portal-{self.screen}")
        def show(request: Request, subscription: str, resource_group: str, name: str) -> Response:
            blade = portal.opened(request, subscription, resource_group, name, self.screen)
            return blade.page(f"{self.screen}.html", **self.context(blade))


# --- a blade of one child collection: list, Add, Edit, Delete ------------------------------------

Form = TypeVar("Form")


def _no_problems(_view: dict[str, Any], _form: Any, _adding: bool) -> FormErrors:
    return FormErrors()


def _nothing_else(_document: dict[str, Any], _child: dict[str, Any]) -> None:
    return None


def _no_reason(_view: dict[str, Any], _child: dict[str, Any]) -> str:
    return ""


@dataclass(frozen=True)
class Submission(Generic[Form]):
    """A form posted to a child blade's Add or Edit page, before it is checked and saved."""

    screen: ChildScreen[Form]
    blade: Blade
    posted: FormData
    form: Form
    previous: dict[str, Any] | None  # the child being edited; None when adding
    etag: str  # the gateway version the form was built from

    def editor(self, errors: FormErrors | None = None, *, status: int | None = None) -> Response:
        """The form shown again as posted."""
        return self.screen.editor(
            self.blade, self.form, self.previous, self.etag, errors, status=status
        )


@dataclass(frozen=True)
class ChildScreen(Generic[Form]):
    """A blade of one child collection (listeners, pools, settings, rules, probes), one URL
    shape for all:

        {screen}                     the list ({screen}.html, or its `menu` blade's page)
        {screen}/add                 the Add form ({screen}_edit.html), posted to the same URL
        {screen}/{child}/edit        the Edit form, posted to the same URL
        {screen}/{child}/delete      asks to confirm (GET); deletes (POST)

    The screen states what is its own; saving, the If-Match of the form's version, a change
    made meanwhile, flash messages and Not found pages are the same for all."""

    screen: str  # the URL segment and menu entry, e.g. "pools"
    collection: str  # e.g. "backendAddressPools"
    noun: str  # in messages, e.g. "backend pool"
    name_field: str  # the form field of the child's name, e.g. "pool_name"
    # The list template's variables (besides the gateway and `errors`).
    list_context: Callable[[dict[str, Any]], dict[str, Any]]
    # The editor template's variables for (view, form, adding).
    editor_context: Callable[[dict[str, Any], Form, bool], dict[str, Any]]
    blank_form: Callable[[dict[str, Any]], Form]
    form_of_child: Callable[[dict[str, Any], dict[str, Any]], Form]
    # The posted form; the child's name comes from the URL when editing (no renaming).
    form_of_post: Callable[[FormData, str | None], Form]
    child_name: Callable[[Form], str]  # the name the form gives the child
    # Writes the form into the document (the previous child, if editing); says where problems go.
    apply: Callable[[dict[str, Any], GatewayId, Form, dict[str, Any] | None], FieldMapping]
    # Problems of the form itself (view, form, adding), found before anything is sent.
    check: Callable[[dict[str, Any], Form, bool], FormErrors] = _no_problems
    # What else goes when a child is deleted (e.g. a rule's own redirect and path map).
    delete_also: Callable[[dict[str, Any], dict[str, Any]], None] = _nothing_else
    # Why a refused delete was refused, in a sentence after "... was not deleted.".
    delete_refusal: Callable[[dict[str, Any], dict[str, Any]], str] = _no_reason
    # What else a delete changes, said on the page that asks first ("" if nothing).
    delete_note: Callable[[dict[str, Any], dict[str, Any]], str] = _no_reason
    # A step before checking and saving (the probe's Test): a page to show instead, or None.
    intercept: Callable[[Submission[Form]], Response | None] | None = None
    # The blade whose page lists these children, when it is not `screen` itself (SSL settings
    # lists SSL profiles): its menu entry is marked, its page is the list and where saves go.
    menu: str = ""

    @property
    def title(self) -> str:
        return self.noun[:1].upper() + self.noun[1:]

    @property
    def list_screen(self) -> str:
        return self.menu or self.screen

    def own_url(self, blade: Blade) -> str:
        return gateway_url(blade.gateway_id, self.screen)

    def child_url(self, blade: Blade, child: str, action: str) -> str:
        return f"{self.own_url(blade)}/{quote(child, safe='')}/{action}"

    # --- pages ----------------------------------------------------------------------------------

    def listing(
        self, blade: Blade, errors: FormErrors | None = None, *, status: int | None = None
    ) -> HTMLResponse:
        context = self.list_context(blade.view)
        return blade.page(f"{self.list_screen}.html", status=status, errors=errors, **context)

    def editor(
        self,
        blade: Blade,
        form: Form,
        previous: dict[str, Any] | None,
        etag: str,
        errors: FormErrors | None = None,
        *,
        status: int | None = None,
    ) -> HTMLResponse:
        adding = previous is None
        if previous is None:
            action = f"{self.own_url(blade)}/add"
        else:
            action = self.child_url(blade, previous["name"], "edit")
        return blade.page(
            f"{self.screen}_edit.html",
            status=status,
            adding=adding,
            etag=etag,
            errors=errors,
            action=action,
            list_url=blade.url,
            **self.editor_context(blade.view, form, adding),
        )

    def _require(self, view: dict[str, Any], child: str) -> dict[str, Any]:
        """The child a page's URL names, or the portal's Not found page."""
        found = find_child(view, self.collection, child)
        if found is None:
            raise PageNotFound(f"There is no {self.noun} '{child}' on this application gateway.")
        return found

    # --- posts (run in a worker thread: the service blocks) -------------------------------------

    def _save(self, blade: Blade, posted: FormData, child: str | None) -> Response:
        view = blade.view
        previous = self._require(view, child) if child is not None else None
        form = self.form_of_post(posted, previous["name"] if previous else None)
        submission = Submission(
            self, blade, posted, form, previous, text(posted, "etag") or view["etag"]
        )
        if self.intercept is not None:
            shown = self.intercept(submission)
            if shown is not None:
                return shown
        errors = self.check(view, form, previous is None)
        if not errors:
            document = draft(view, submission.etag)
            mapping = self.apply(document, blade.gateway_id, form, previous)
            errors = blade.save(document, self._with_duplicates(blade.gateway_id, mapping))
        if errors.stale:
            errors.add(None, CHANGED)
            current = blade.reloaded()
            return self.editor(current, form, previous, current.view["etag"], errors, status=412)
        if errors:
            return submission.editor(errors)
        done = "added" if previous is None else "saved"
        return blade.done(f"{self.title} '{self.child_name(form)}' {done}.")

    def _delete(self, blade: Blade, posted: FormData, child: str) -> Response:
        found = self._require(blade.view, child)
        document = draft(blade.view, text(posted, "etag") or blade.view["etag"])
        remove_child(document, self.collection, found["name"])
        self.delete_also(document, found)
        # A child still in use makes the service refuse; its words go below ours.
        errors = blade.save(document, _nowhere)
        if errors.stale:
            refused = FormErrors(general=[CHANGED_BEFORE_DELETE])
            return self.listing(blade.reloaded(), refused, status=412)
        if errors:
            reason = self.delete_refusal(blade.view, found)
            errors.general.insert(0, f"{self.title} '{found['name']}' was not deleted.{reason}")
            return self.listing(blade, errors)
        return blade.done(f"{self.title} '{found['name']}' deleted.")

    def _with_duplicates(self, gateway_id: GatewayId, mapping: FieldMapping) -> FieldMapping:
        """The screen's mapping, plus: a name two children share goes next to the name."""
        own = f"properties.{self.collection}"

        def field(resource: str, path: str) -> str | None:
            found = mapping(resource, path)
            if found is None and path == own and resource.casefold() == gateway_id.key:
                return self.name_field
            return found

        return field

    # --- routes ---------------------------------------------------------------------------------

    def register(self, router: APIRouter, portal: Portal) -> None:
        base = f"{GATEWAY_PATH}/{self.screen}"

        @router.get(base, name=f"portal-{self.screen}")
        def list_page(
            request: Request, subscription: str, resource_group: str, name: str
        ) -> Response:
            return self.listing(
                portal.opened(request, subscription, resource_group, name, self.list_screen)
            )

        @router.get(f"{base}/add", name=f"portal-{self.screen}-add")
        def add_page(
            request: Request, subscription: str, resource_group: str, name: str
        ) -> Response:
            blade = portal.opened(request, subscription, resource_group, name, self.list_screen)
            return self.editor(blade, self.blank_form(blade.view), None, blade.view["etag"])

        @router.get(f"{base}/{{child}}/edit", name=f"portal-{self.screen}-edit")
        def edit_page(
            request: Request, subscription: str, resource_group: str, name: str, child: str
        ) -> Response:
            blade = portal.opened(request, subscription, resource_group, name, self.list_screen)
            found = self._require(blade.view, child)
            form = self.form_of_child(blade.view, found)
            return self.editor(blade, form, found, blade.view["etag"])

        @router.get(f"{base}/{{child}}/delete", name=f"portal-{self.screen}-delete")
        def delete_page(
            request: Request, subscription: str, resource_group: str, name: str, child: str
        ) -> Response:
            blade = portal.opened(request, subscription, resource_group, name, self.list_screen)
            found = self._require(blade.view, child)
            return blade.page(
                "child_delete.html",
                noun=self.noun,
                child=found["name"],
                action=self.child_url(blade, found["name"], "delete"),
                note=self.delete_note(blade.view, found),
            )

        @router.post(f"{base}/add")
        async def add(
            request: Request, subscription: str, resource_group: str, name: str
        ) -> Response:
            blade, posted = await portal.submitted(
                request, subscription, resource_group, name, self.list_screen
            )
            return await run_in_threadpool(self._save, blade, posted, None)

        @router.post(f"{base}/{{child}}/edit")
        async def edit(
            request: Request, subscription: str, resource_group: str, name: str, child: str
        ) -> Response:
            blade, posted = await portal.submitted(
                request, subscription, resource_group, name, self.list_screen
            )
            return await run_in_threadpool(self._save, blade, posted, child)

        @router.post(f"{base}/{{child}}/delete")
        async def delete(
            request: Request, subscription: str, resource_group: str, name: str, child: str
        ) -> Response:
            blade, posted = await portal.submitted(
                request, subscription, resource_group, name, self.list_screen
            )
            return await run_in_threadpool(self._delete, blade, posted, child)


# --- certificates: upload a new one or pick one the gateway has ----------------------------------


@dataclass(frozen=True)
class ChosenCertificate:
    """What the certificate fields of a posted form hold."""

    upload: bool  # a new file, else one the gateway has
    existing: str
    name: str
    data: bytes | None
    password: str


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

    def posted(self, form: FormData) -> ChosenCertificate:
        return ChosenCertificate(
            upload=text(form, f"{self.prefix}_choice") != "existing",
            existing=text(form, f"existing_{self.prefix}"),
            name=text(form, f"{self.prefix}_name"),
            data=upload(form, f"{self.prefix}_file"),
            password=text(form, f"{self.prefix}_password") if self.password else "",
        )

    def check(self, chosen: ChosenCertificate, errors: FormErrors) -> None:
        """What the operator left out: the file and its name, or the existing certificate."""
        if not chosen.upload:
            if not chosen.existing:
                errors.add(f"existing_{self.prefix}", "Choose a certificate.")
            return
        if chosen.data is None:
            errors.add(f"{self.prefix}_file", self.missing_file)
        if not chosen.name:
            errors.add(f"{self.prefix}_name", self.missing_name)

    def apply(self, chosen: ChosenCertificate, document: dict[str, Any], collection: str) -> str:
        """The chosen certificate's name; an uploaded one is put into `collection` of
        `document` (replacing one of that name)."""
        if not chosen.upload:
            return chosen.existing
        if chosen.data is not None:
            properties = {"data": certificate_field(chosen.data)}
            if self.password:
                properties["password"] = chosen.password
            put_child(document, collection, {"name": chosen.name, "properties": properties})
        return chosen.name

    def field(self, path: str) -> str:
        """The form field for a problem the service found in the uploaded certificate."""
        if self.password and path.endswith("password"):
            return f"{self.prefix}_password"
        return f"{self.prefix}_file"


@dataclass
class FieldsForm:
    """A form kept as its text fields (shown again as typed) and, when the form has one, the
    certificate chosen or uploaded with it."""

    values: dict[str, str]
    certificate: ChosenCertificate | None = None
    # Certificates the gateway has that the form ticks (backend settings trust several).
    selected: tuple[str, ...] = ()


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
    # A row button of the form ("+ Add", "Remove"; the posted `op` is not "save"): it changes
    # the form, which is shown again, nothing saved. Returns whether it did.
    rows: Callable[[FormData, Form], bool] | None = None
    # The form's own problems, found before anything is sent to the service.
    problems: Callable[[Form], FormErrors] | None = None

    def page(
        self,
        blade: Blade,
        form: Form,
        *,
        etag: str,
        errors: FormErrors | None = None,
        status: int | None = None,
    ) -> HTMLResponse:
        context = self.context(blade.view, form)
        return blade.page(f"{self.screen}.html", status=status, etag=etag, errors=errors, **context)

    def _save(self, blade: Blade, posted: FormData) -> Response:
        form = self.form_of_post(posted, blade.view)
        etag = text(posted, "etag") or blade.view["etag"]
        if self.rows is not None and self.rows(posted, form):
            return self.page(blade, form, etag=etag)
        own = self.problems(form) if self.problems is not None else None
        if own:
            return self.page(blade, form, etag=etag, errors=own)
        document = draft(blade.view, etag)
        self.apply(document, form)
        errors = blade.save(document, self.fields(blade.gateway_id))
        if errors.stale:
            errors.add(None, CHANGED)
            current = blade.reloaded()
            return self.page(current, form, etag=current.view["etag"], errors=errors, status=412)
        if errors:
            return self.page(blade, form, etag=etag, errors=errors)
        return blade.done(self.saved)

    def register(self, router: APIRouter, portal: Portal) -> None:
        path = f"{GATEWAY_PATH}/{self.screen}"

        @router.get(path, name=f"portal-{self.screen}")
        def show(request: Request, subscription: str, resource_group: str, name: str) -> Response:
            blade = portal.opened(request, subscription, resource_group, name, self.screen)
            return self.page(blade, self.form_of_view(blade.view), etag=blade.view["etag"])

        @router.post(path)
        async def save(
            request: Request, subscription: str, resource_group: str, name: str
        ) -> Response:
            blade, posted = await portal.submitted(
                request, subscription, resource_group, name, self.screen
            )
            return await run_in_threadpool(self._save, blade, posted)
