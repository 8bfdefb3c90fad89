"""Configuration blade: tier (read-only), capacity (manual or autoscale) and HTTP2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from appgw.model.ids import GatewayId
from appgw.model.validate import MAX_V1_INSTANCES
from appgw.portal.common import (
    FieldMapping,
    FormErrors,
    Portal,
    copy_of,
    gateway_url,
    is_v2,
    redirect,
    text,
)
from appgw.portal.screens.rules import number_or_text
from appgw.portal.sessions import Session

SCREEN = "configuration"
PATH = "/portal/gateways/{subscription}/{resource_group}/{name}/configuration"
MANUAL = "Manual"
AUTOSCALE = "Autoscale"
ENABLED = "Enabled"
DISABLED = "Disabled"
# Azure's instance limits: v2 scales to 125 instances (autoscale minimum 0, maximum 2-125).
MAX_V2_INSTANCES = 125
MIN_AUTOSCALE_MAXIMUM = 2
# Azure's portal proposes these when autoscale is switched on.
DEFAULT_AUTOSCALE = (0, 10)


@dataclass
class ConfigurationForm:
    capacity_type: str = MANUAL
    instance_count: str = ""
    minimum: str = ""
    maximum: str = ""
    http2: str = DISABLED

    @classmethod
    def of_view(cls, view: dict[str, Any]) -> ConfigurationForm:
        props = view["properties"]
        autoscale = props.get("autoscaleConfiguration")
        capacity = props.get("sku", {}).get("capacity")
        return cls(
            capacity_type=AUTOSCALE if autoscale else MANUAL,
            instance_count="" if capacity is None else str(capacity),
            minimum=str(autoscale["minCapacity"]) if autoscale else str(DEFAULT_AUTOSCALE[0]),
            maximum=(
                str(autoscale.get("maxCapacity", "")) if autoscale else str(DEFAULT_AUTOSCALE[1])
            ),
            http2=ENABLED if props.get("enableHttp2") else DISABLED,
        )

    @classmethod
    def of_form(cls, form: FormData) -> ConfigurationForm:
        return cls(
            capacity_type=text(form, "capacity_type", MANUAL),
            instance_count=text(form, "instance_count"),
            minimum=text(form, "autoscale_min"),
            maximum=text(form, "autoscale_max"),
            http2=text(form, "http2", DISABLED),
        )

    def apply(self, document: dict[str, Any]) -> None:
        props = document["properties"]
        sku = props.setdefault("sku", {})
        if self.capacity_type == AUTOSCALE:
            # As Azure's CLI does: with autoscale there is no fixed instance count.
            sku.pop("capacity", None)
            autoscale: dict[str, Any] = {}
            if self.minimum:
                autoscale["minCapacity"] = number_or_text(self.minimum)
            if self.maximum:
                autoscale["maxCapacity"] = number_or_text(self.maximum)
            props["autoscaleConfiguration"] = autoscale
        else:
            props.pop("autoscaleConfiguration", None)
            sku["capacity"] = number_or_text(self.instance_count)
        props["enableHttp2"] = self.http2 == ENABLED


def _fields(gateway_id: GatewayId) -> FieldMapping:
    by_path = {
        "properties.sku.capacity": "instance_count",
        "properties.autoscaleConfiguration": "capacity_type",
        "properties.autoscaleConfiguration.minCapacity": "autoscale_min",
        "properties.autoscaleConfiguration.maxCapacity": "autoscale_max",
        "properties.enableHttp2": "http2",
    }

    def mapping(resource: str, path: str) -> str | None:
        if resource.casefold() != str(gateway_id).casefold():
            return None
        return by_path.get(path)

    return mapping


def register(app: FastAPI, portal: Portal) -> None:
    def page(
        request: Request,
        session: Session,
        gateway_id: GatewayId,
        view: dict[str, Any],
        settings: ConfigurationForm,
        *,
        etag: str,
        errors: FormErrors | None = None,
    ) -> HTMLResponse:
        v2 = is_v2(view)
        return portal.page(
            request,
            session,
            gateway_id,
            view,
            SCREEN,
            "configuration.html",
            status=400 if errors else 200,
            config=settings,
            etag=etag,
            max_instances=MAX_V2_INSTANCES if v2 else MAX_V1_INSTANCES,
            min_autoscale_maximum=MIN_AUTOSCALE_MAXIMUM,
            errors=errors,
        )

    @app.get(PATH, include_in_schema=False, response_class=HTMLResponse)
    def show(request: Request, subscription: str, resource_group: str, name: str) -> Response:
        session = portal.session(request)
        gateway_id, view = portal.gateway(subscription, resource_group, name)
        return page(
            request,
            session,
            gateway_id,
            view,
            ConfigurationForm.of_view(view),
            etag=view["etag"],
        )

    @app.post(PATH, include_in_schema=False)
    async def save(request: Request, subscription: str, resource_group: str, name: str) -> Response:
        session = portal.session(request)
        form = await portal.form(request, session)
        gateway_id, view = portal.gateway(subscription, resource_group, name)
        settings = ConfigurationForm.of_form(form)
        etag = text(form, "etag") or view["etag"]
        document = copy_of(view)
        # The version the form was built from: a change made meanwhile is refused, not lost.
        document["etag"] = etag
        settings.apply(document)
        errors = portal.save(session, gateway_id, document, _fields(gateway_id), request)
        if errors:
            return page(request, session, gateway_id, view, settings, etag=etag, errors=errors)
        session.flash.append("Saved the configuration.")
        return redirect(gateway_url(gateway_id, SCREEN))
