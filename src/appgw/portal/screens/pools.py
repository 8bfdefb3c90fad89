"""Backend pools blade: list the pools, add or edit one (IP address or FQDN targets), delete one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from appgw.hostnames import is_ip_address
from appgw.model.ids import GatewayId
from appgw.portal.common import (
    FieldMapping,
    FormErrors,
    PageNotFound,
    Portal,
    copy_of,
    find_child,
    gateway_url,
    is_v2,
    put_child,
    redirect,
    text,
)
from appgw.portal.screens.rules import rules_using
from appgw.portal.sessions import Session

SCREEN = "pools"
COLLECTION = "backendAddressPools"
PREFIX = "/portal/gateways/{subscription}/{resource_group}/{name}/pools"
# Azure's "IP address or FQDN" target type; virtual machines, VMSS and App Services need Azure.
TARGET_TYPES = (("IPAddressOrFQDN", "IP address or FQDN"),)
# Blank rows to offer below the existing targets: there is no "add row" button without JS.
MIN_TARGET_ROWS = 5
SPARE_TARGET_ROWS = 3


@dataclass
class TargetRow:
    kind: str = TARGET_TYPES[0][0]
    target: str = ""


@dataclass
class PoolForm:
    name: str = ""
    without_targets: bool = False
    rows: list[TargetRow] = field(default_factory=list)

    @classmethod
    def of_pool(cls, pool: dict[str, Any]) -> PoolForm:
        addresses = pool["properties"].get("backendAddresses", [])
        rows = [TargetRow(target=a.get("ipAddress") or a.get("fqdn") or "") for a in addresses]
        return cls(pool["name"], not addresses, rows)

    @classmethod
    def of_form(cls, form: FormData, name: str | None) -> PoolForm:
        rows: list[TargetRow] = []
        index = 0
        while f"target_{index}" in form or f"target_type_{index}" in form:
            kind, target = text(form, f"target_type_{index}"), text(form, f"target_{index}")
            rows.append(TargetRow(kind, target))
            index += 1
        return cls(
            name if name is not None else text(form, "pool_name"),
            text(form, "without_targets") == "Yes",
            rows,
        )

    def filled_rows(self) -> list[int]:
        """Indexes of the rows that hold a target: blank rows are ignored, like Azure's grid."""
        return [index for index, row in enumerate(self.rows) if row.target]

    def padded(self) -> PoolForm:
        spare = max(MIN_TARGET_ROWS - len(self.rows), SPARE_TARGET_ROWS)
        blank = [TargetRow() for _ in range(spare)]
        return PoolForm(self.name, self.without_targets, self.rows + blank)

    def addresses(self) -> list[dict[str, str]]:
        if self.without_targets:
            return []
        return [_address(self.rows[index].target) for index in self.filled_rows()]


def _address(target: str) -> dict[str, str]:
    # Azure's single "IP address or FQDN" box decides by the value what kind of address it is.
    return {"ipAddress": target} if is_ip_address(target) else {"fqdn": target}


def register(app: FastAPI, portal: Portal) -> None:
    def page(
        request: Request,
        session: Session,
        gateway_id: GatewayId,
        view: dict[str, Any],
        template: str,
        *,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        return portal.render(
            request,
            template,
            session,
            status=status,
            gateway=view,
            gateway_id=gateway_id,
            screen=SCREEN,
            base=gateway_url(gateway_id, ""),
            v2=is_v2(view),
            **context,
        )

    def pool_list(
        request: Request,
        session: Session,
        gateway_id: GatewayId,
        view: dict[str, Any],
        errors: FormErrors | None = None,
    ) -> HTMLResponse:
        pools = [
            {
                "name": pool["name"],
                "targets": len(pool["properties"].get("backendAddresses", [])),
                "rules": rules_using(view, COLLECTION, pool["name"]),
            }
            for pool in view["properties"].get(COLLECTION, [])
        ]
        return page(
            request,
            session,
            gateway_id,
            view,
            "pools.html",
            status=400 if errors else 200,
            pools=pools,
            errors=errors,
        )

    def pool_editor(
        request: Request,
        session: Session,
        gateway_id: GatewayId,
        view: dict[str, Any],
        pool: PoolForm,
        *,
        adding: bool,
        etag: str,
        errors: FormErrors | None = None,
    ) -> HTMLResponse:
        return page(
            request,
            session,
            gateway_id,
            view,
            "pools_edit.html",
            status=400 if errors else 200,
            pool=pool.padded(),
            adding=adding,
            etag=etag,
            target_types=TARGET_TYPES,
            errors=errors,
        )

    async def save_pool(
        request: Request, gateway_id: GatewayId, view: dict[str, Any], existing: str | None
    ) -> Response:
        session = portal.session(request)
        form = await portal.form(request, session)
        pool = PoolForm.of_form(form, existing)
        etag = text(form, "etag") or view["etag"]
        errors = FormErrors()
        if not pool.without_targets and not pool.filled_rows():
            errors.add(
                "target_0",
                "Add at least one target, or choose 'Yes' for 'Add backend pool without targets'.",
            )
        else:
            document = copy_of(view)
            # The version the form was built from: a change made meanwhile is refused, not lost.
            document["etag"] = etag
            child = find_child(document, COLLECTION, existing) if existing else None
            if child is None:
                child = {"name": pool.name, "properties": {}}
                # Appended, never merged: an existing pool of that name is the service's
                # DuplicateResourceName, shown next to the name.
                document["properties"].setdefault(COLLECTION, []).append(child)
            else:
                put_child(document, COLLECTION, child)
            child["properties"]["backendAddresses"] = pool.addresses()
            index = next(i for i, c in enumerate(document["properties"][COLLECTION]) if c is child)
            errors = portal.save(
                session, gateway_id, document, _pool_fields(gateway_id, pool, index), request
            )
        if errors:
            return pool_editor(
                request,
                session,
                gateway_id,
                view,
                pool,
                adding=existing is None,
                etag=etag,
                errors=errors,
            )
        session.flash.append(f"Saved backend pool '{pool.name}'.")
        return redirect(gateway_url(gateway_id, SCREEN))

    @app.get(PREFIX, include_in_schema=False, response_class=HTMLResponse)
    def list_pools(request: Request, subscription: str, resource_group: str, name: str) -> Response:
        session = portal.session(request)
        gateway_id, view = portal.gateway(subscription, resource_group, name)
        return pool_list(request, session, gateway_id, view)

    @app.get(f"{PREFIX}/add", include_in_schema=False, response_class=HTMLResponse)
    def add_pool_page(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        session = portal.session(request)
        gateway_id, view = portal.gateway(subscription, resource_group, name)
        return pool_editor(
            request, session, gateway_id, view, PoolForm(), adding=True, etag=view["etag"]
        )

    @app.post(f"{PREFIX}/add", include_in_schema=False)
    async def add_pool(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        gateway_id, view = portal.gateway(subscription, resource_group, name)
        return await save_pool(request, gateway_id, view, None)

    @app.get(f"{PREFIX}/edit/{{pool}}", include_in_schema=False, response_class=HTMLResponse)
    def edit_pool_page(
        request: Request, subscription: str, resource_group: str, name: str, pool: str
    ) -> Response:
        session = portal.session(request)
        gateway_id, view = portal.gateway(subscription, resource_group, name)
        child = _require_pool(view, pool)
        return pool_editor(
            request,
            session,
            gateway_id,
            view,
            PoolForm.of_pool(child),
            adding=False,
            etag=view["etag"],
        )

    @app.post(f"{PREFIX}/edit/{{pool}}", include_in_schema=False)
    async def edit_pool(
        request: Request, subscription: str, resource_group: str, name: str, pool: str
    ) -> Response:
        gateway_id, view = portal.gateway(subscription, resource_group, name)
        return await save_pool(request, gateway_id, view, _require_pool(view, pool)["name"])

    @app.post(f"{PREFIX}/delete/{{pool}}", include_in_schema=False)
    async def delete_pool(
        request: Request, subscription: str, resource_group: str, name: str, pool: str
    ) -> Response:
        session = portal.session(request)
        form = await portal.form(request, session)
        gateway_id, view = portal.gateway(subscription, resource_group, name)
        pool_name = _require_pool(view, pool)["name"]
        document = copy_of(view)
        document["etag"] = text(form, "etag") or view["etag"]
        document["properties"][COLLECTION] = [
            child
            for child in document["properties"][COLLECTION]
            if child["name"].casefold() != pool_name.casefold()
        ]
        # A rule still sending to the pool makes the service refuse; its words go on top.
        errors = portal.save(session, gateway_id, document, lambda _r, _p: None, request)
        if errors:
            users = rules_using(view, COLLECTION, pool_name)
            reason = (
                f" Rules using it: {', '.join(users)}; change or delete them first."
                if users
                else ""
            )
            errors.general.insert(0, f"Backend pool '{pool_name}' was not deleted.{reason}")
            return pool_list(request, session, gateway_id, view, errors)
        session.flash.append(f"Deleted backend pool '{pool_name}'.")
        return redirect(gateway_url(gateway_id, SCREEN))


def _require_pool(view: dict[str, Any], name: str) -> dict[str, Any]:
    pool = find_child(view, COLLECTION, name)
    if pool is None:
        raise PageNotFound(f"There is no backend pool '{name}' on this application gateway.")
    return pool


def _pool_fields(gateway_id: GatewayId, pool: PoolForm, index: int) -> FieldMapping:
    """Service problems -> form fields: the name, or the row of the target at fault."""
    # A child without a valid name is reported under its position in the list, e.g. ".../[3]".
    own_ids = {
        gateway_id.child(COLLECTION, pool.name).casefold(),
        gateway_id.child(COLLECTION, f"[{index}]").casefold(),
    }
    rows = pool.filled_rows()

    def mapping(resource: str, path: str) -> str | None:
        if resource.casefold() == str(gateway_id).casefold():
            return "pool_name" if path == f"properties.{COLLECTION}" else None
        if resource.casefold() not in own_ids:
            return None
        if path == "name":
            return "pool_name"
        prefix = "properties.backendAddresses["
        if path.startswith(prefix):
            address = int(path[len(prefix) :].split("]", 1)[0])
            if address < len(rows):
                return f"target_{rows[address]}"
        return "target_0" if path.startswith("properties.backendAddresses") else None

    return mapping
