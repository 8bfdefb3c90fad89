"""Backend pools blade: list the pools, add or edit one (IP address or FQDN targets), delete one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from appgw.hostnames import is_ip_address
from appgw.model.ids import GatewayId
from appgw.portal.common import (
    ChildScreen,
    FieldMapping,
    FormErrors,
    find_child,
    put_child,
    text,
)
from appgw.portal.screens.rules import refused_while_used, rules_using

COLLECTION = "backendAddressPools"
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


def _list_context(view: dict[str, Any]) -> dict[str, Any]:
    pools = [
        {
            "name": pool["name"],
            "targets": len(pool["properties"].get("backendAddresses", [])),
            "rules": rules_using(view, COLLECTION, pool["name"]),
        }
        for pool in view["properties"].get(COLLECTION, [])
    ]
    return {"pools": pools}


def _editor_context(_view: dict[str, Any], pool: PoolForm, _adding: bool) -> dict[str, Any]:
    return {"pool": pool.padded(), "target_types": TARGET_TYPES}


def _check(_view: dict[str, Any], pool: PoolForm, _adding: bool) -> FormErrors:
    errors = FormErrors()
    if not pool.without_targets and not pool.filled_rows():
        errors.add(
            "target_0",
            "Add at least one target, or choose 'Yes' for 'Add backend pool without targets'.",
        )
    return errors


def _apply(
    document: dict[str, Any],
    gateway_id: GatewayId,
    pool: PoolForm,
    previous: dict[str, Any] | None,
) -> FieldMapping:
    child = find_child(document, COLLECTION, previous["name"]) if previous else None
    if child is None:
        child = {"name": pool.name, "properties": {}}
        # Appended, never merged: an existing pool of that name is the service's
        # DuplicateResourceName, shown next to the name.
        document["properties"].setdefault(COLLECTION, []).append(child)
    else:
        put_child(document, COLLECTION, child)
    child["properties"]["backendAddresses"] = pool.addresses()
    index = next(i for i, c in enumerate(document["properties"][COLLECTION]) if c is child)
    return _pool_fields(gateway_id, pool, index)


BLADE = ChildScreen(
    screen="pools",
    collection=COLLECTION,
    noun="backend pool",
    name_field="pool_name",
    list_context=_list_context,
    editor_context=_editor_context,
    blank_form=lambda _view: PoolForm(),
    form_of_child=lambda _view, pool: PoolForm.of_pool(pool),
    form_of_post=PoolForm.of_form,
    child_name=lambda pool: pool.name,
    apply=_apply,
    check=_check,
    delete_refusal=refused_while_used(COLLECTION),
)
register = BLADE.register


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
