"""Configuration blade: tier (read-only), capacity (manual or autoscale) and HTTP2, as Azure's
blade has them. HTTP2 is `enableHttp2`: HTTP/2 for the clients of HTTPS listeners (offered by
TLS ALPN); backends are always reached over HTTP/1.1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from appgw.model.ids import GatewayId
from appgw.model.validate import MAX_V1_INSTANCES
from appgw.portal.common import (
    FieldMapping,
    GatewayScreen,
    is_v2,
    text,
)
from appgw.portal.screens.rules import number_or_text

MANUAL = "Manual"
AUTOSCALE = "Autoscale"
# Azure's instance limits: v2 scales to 125 instances (autoscale minimum 0, maximum 2-125).
MAX_V2_INSTANCES = 125
MIN_AUTOSCALE_MAXIMUM = 2
# Azure's portal proposes these when autoscale is switched on.
DEFAULT_AUTOSCALE = (0, 10)
ENABLED = "Enabled"
DISABLED = "Disabled"
HTTP2_CHOICES = (DISABLED, ENABLED)


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
            http2=_http2(props),
        )

    @classmethod
    def of_form(cls, form: FormData, view: dict[str, Any]) -> ConfigurationForm:
        http2 = text(form, "http2")
        return cls(
            capacity_type=text(form, "capacity_type", MANUAL),
            instance_count=text(form, "instance_count"),
            minimum=text(form, "autoscale_min"),
            maximum=text(form, "autoscale_max"),
            # A form without the choice (or with another value) keeps what is stored.
            http2=http2 if http2 in HTTP2_CHOICES else _http2(view["properties"]),
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
        enabled = self.http2 == ENABLED
        # Disabled is Azure's default: a gateway that never had the property is left without it.
        if enabled or props.get("enableHttp2") is not None:
            props["enableHttp2"] = enabled


def _http2(props: dict[str, Any]) -> str:
    return ENABLED if props.get("enableHttp2") else DISABLED


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


def _context(view: dict[str, Any], settings: ConfigurationForm) -> dict[str, Any]:
    return {
        "config": settings,
        "max_instances": MAX_V2_INSTANCES if is_v2(view) else MAX_V1_INSTANCES,
        "min_autoscale_maximum": MIN_AUTOSCALE_MAXIMUM,
        "http2_choices": [(choice, choice) for choice in HTTP2_CHOICES],
    }


BLADE = GatewayScreen(
    screen="configuration",
    saved="Saved the configuration.",
    form_of_view=ConfigurationForm.of_view,
    form_of_post=ConfigurationForm.of_form,
    context=_context,
    apply=lambda document, settings: settings.apply(document),
    fields=_fields,
)
register = BLADE.register
