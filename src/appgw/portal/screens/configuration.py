"""Configuration blade: tier (read-only) and capacity (manual or autoscale).

Azure's blade also has HTTP2; appgw does not serve HTTP/2, so that choice is not offered (and the
stored `enableHttp2` is left as it is) rather than offered and always refused."""

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


@dataclass
class ConfigurationForm:
    capacity_type: str = MANUAL
    instance_count: str = ""
    minimum: str = ""
    maximum: str = ""

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
        )

    @classmethod
    def of_form(cls, form: FormData) -> ConfigurationForm:
        return cls(
            capacity_type=text(form, "capacity_type", MANUAL),
            instance_count=text(form, "instance_count"),
            minimum=text(form, "autoscale_min"),
            maximum=text(form, "autoscale_max"),
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


def _fields(gateway_id: GatewayId) -> FieldMapping:
    by_path = {
        "properties.sku.capacity": "instance_count",
        "properties.autoscaleConfiguration": "capacity_type",
        "properties.autoscaleConfiguration.minCapacity": "autoscale_min",
        "properties.autoscaleConfiguration.maxCapacity": "autoscale_max",
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
    }


BLADE = GatewayScreen(
    screen="configuration",
    saved="Saved the configuration.",
    form_of_view=ConfigurationForm.of_view,
    form_of_post=lambda form, _view: ConfigurationForm.of_form(form),
    context=_context,
    apply=lambda document, settings: settings.apply(document),
    fields=_fields,
)
register = BLADE.register
