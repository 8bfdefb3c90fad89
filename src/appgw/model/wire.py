"""Azure JSON <-> model: parsing with errors that name the resource and field, and the GET view.

The stored document is the canonical desired state: no secrets, no read-only fields except the
ones the server computed once (`publicCertData`, `resourceGuid`). The GET view adds what ARM
adds on every read: ids, types, etags, provisioning states and back-references.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from appgw import json_text
from appgw.model.diagnostics import Diagnostic, ValidationFailed
from appgw.model.ids import CHILD_COLLECTIONS, PATH_RULES, GatewayId, child_type
from appgw.model.resource import ApplicationGateway

# Predefined policy applied when `sslPolicy` is absent (API >= 2023-02-01 behaviour).
DEFAULT_PREDEFINED_SSL_POLICY = "AppGwSslPolicy20220101"

M = TypeVar("M", bound=BaseModel)

_PATH_RULE_TYPE = f"{child_type('urlPathMaps')}/{PATH_RULES}"


def parse_gateway(raw: object, gateway_id: GatewayId) -> ApplicationGateway:
    """Shape-check a request body; raises ValidationFailed with one diagnostic per problem."""
    try:
        return ApplicationGateway.model_validate(raw)
    except ValidationError as error:
        raise ValidationFailed(
            [_diagnostic_from_pydantic(item, raw, gateway_id) for item in error.errors()]
        ) from None


def parse_model(model: type[M], raw: object, resource_id: str) -> M:
    """Shape-check a smaller body (e.g. PATCH tags) the same way."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ValidationFailed(
            [_diagnostic_from_pydantic(item, raw, None, resource_id) for item in error.errors()]
        ) from None


def _diagnostic_from_pydantic(
    error: Any, raw: object, gateway_id: GatewayId | None, resource_id: str | None = None
) -> Diagnostic:
    loc: Sequence[str | int] = error["loc"]
    rid, field = _locate(raw, loc, gateway_id, resource_id)
    kind: str = error["type"]
    last = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        return Diagnostic(
            "UnknownProperty", rid, field, f"'{last}' is not a property Azure defines here"
        )
    if kind == "missing":
        return Diagnostic("MissingRequiredProperty", rid, field, f"'{last}' is required")
    if kind == "string_pattern_mismatch" and last == "name":
        return Diagnostic(
            "InvalidResourceName",
            rid,
            field,
            "a name has 1-80 characters: letters, digits, '_', '.', '-'; it starts with a letter "
            "or digit and ends with a letter, digit or '_'",
        )
    if kind == "enum":
        expected = error.get("ctx", {}).get("expected", "")
        return Diagnostic(
            "InvalidPropertyValue",
            rid,
            field,
            f"value {error.get('input')!r} is not allowed; expected one of {expected}",
        )
    return Diagnostic(
        "InvalidPropertyValue", rid, field, f"value {error.get('input')!r}: {error['msg']}"
    )


def _locate(
    raw: object, loc: Sequence[str | int], gateway_id: GatewayId | None, resource_id: str | None
) -> tuple[str, str]:
    """Map a pydantic error location to (the innermost named child's id, field path below it)."""
    rid = str(gateway_id) if gateway_id is not None else (resource_id or "")
    parts: list[str | int] = []
    node: object = raw
    path_map: str | None = None
    for element in loc:
        child_collection = (
            isinstance(element, int)
            and len(parts) >= 2
            and parts[-2] == "properties"
            and isinstance(parts[-1], str)
        )
        if isinstance(node, dict):
            node = node.get(element) if isinstance(element, str) else None
        elif isinstance(node, list) and isinstance(element, int) and element < len(node):
            node = node[element]
        else:
            node = None
        if child_collection and gateway_id is not None:
            collection = parts[-1]
            name = node.get("name") if isinstance(node, dict) else None
            label = name if isinstance(name, str) and name else f"[{element}]"
            if len(parts) == 2 and collection in CHILD_COLLECTIONS:
                rid = gateway_id.child(str(collection), label)
                path_map = label if collection == "urlPathMaps" else None
                parts = []
                continue
            if collection == PATH_RULES and path_map is not None:
                rid = gateway_id.path_rule(path_map, label)
                parts = []
                continue
        parts.append(element)
    return rid, format_field(parts)


def format_field(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def canonical_document(gateway: ApplicationGateway) -> dict[str, Any]:
    """The stored form: no secrets, no per-read fields, no nulls."""
    document = gateway.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key in ("id", "etag", "type"):
        document.pop(key, None)
    properties = document["properties"]
    for key in ("provisioningState", "operationalState", "defaultPredefinedSslPolicy"):
        properties.pop(key, None)
    for collection, child in _children(properties):
        for key in ("id", "etag", "type"):
            child.pop(key, None)
        child_properties = child.setdefault("properties", {})
        child_properties.pop("provisioningState", None)
        for back_reference in _BACK_REFERENCES.get(collection, ()):
            child_properties.pop(back_reference, None)
        if collection == "sslCertificates":
            child_properties.pop("data", None)
            child_properties.pop("password", None)
    return document


def _children(properties: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for collection in CHILD_COLLECTIONS:
        for child in properties.get(collection, []):
            found.append((collection, child))
            if collection == "urlPathMaps":
                for rule in child.get("properties", {}).get(PATH_RULES, []):
                    found.append((PATH_RULES, rule))
    return found


# Read-only arrays ARM adds to a child, listing who refers to it: {collection: (field, ...)}.
_BACK_REFERENCES: dict[str, tuple[str, ...]] = {
    "frontendIPConfigurations": ("httpListeners",),
    "frontendPorts": ("httpListeners",),
    "sslCertificates": ("httpListeners",),
    "sslProfiles": ("httpListeners",),
    "probes": ("backendHttpSettings",),
    "backendAddressPools": ("requestRoutingRules", "urlPathMaps", "pathRules"),
    "backendHttpSettingsCollection": ("requestRoutingRules", "urlPathMaps", "pathRules"),
    "redirectConfigurations": ("requestRoutingRules", "urlPathMaps", "pathRules"),
}

# Which reference fields of which referrer produce a back-reference, by referrer collection.
_REFERRER_FIELDS: dict[str, tuple[str, ...]] = {
    "httpListeners": ("frontendIPConfiguration", "frontendPort", "sslCertificate", "sslProfile"),
    "backendHttpSettingsCollection": ("probe",),
    "requestRoutingRules": ("backendAddressPool", "backendHttpSettings", "redirectConfiguration"),
    "urlPathMaps": (
        "defaultBackendAddressPool",
        "defaultBackendHttpSettings",
        "defaultRedirectConfiguration",
    ),
    PATH_RULES: ("backendAddressPool", "backendHttpSettings", "redirectConfiguration"),
}
_BACK_REFERENCE_NAME = {
    "httpListeners": "httpListeners",
    "backendHttpSettingsCollection": "backendHttpSettings",
    "requestRoutingRules": "requestRoutingRules",
    "urlPathMaps": "urlPathMaps",
    PATH_RULES: "pathRules",
}


def read_view(
    document: dict[str, Any],
    gateway_id: GatewayId,
    *,
    etag: str,
    operational_state: str,
    provisioning_state: str = "Succeeded",
    owned: bool = False,
) -> dict[str, Any]:
    """The gateway as GET returns it. `owned`: the caller hands `document` over (it is changed
    into the view instead of copied; 0.1 s at Azure's limits)."""
    view: dict[str, Any] = document if owned else json_text.copied(document)
    view["id"] = str(gateway_id)
    view["name"] = gateway_id.name
    view["type"] = "Microsoft.Network/applicationGateways"
    view["etag"] = etag
    view.setdefault("tags", {})
    properties = view.setdefault("properties", {})
    properties["provisioningState"] = provisioning_state
    properties["operationalState"] = operational_state
    properties["defaultPredefinedSslPolicy"] = DEFAULT_PREDEFINED_SSL_POLICY
    for collection in CHILD_COLLECTIONS:
        properties.setdefault(collection, [])
    by_id: dict[str, dict[str, Any]] = {}
    for _collection, child in _children(properties):
        child_properties = child.setdefault("properties", {})
        child_properties["provisioningState"] = provisioning_state
        child["etag"] = etag
    for path_map in properties["urlPathMaps"]:
        path_map["id"] = gateway_id.child("urlPathMaps", path_map["name"])
        path_map["type"] = child_type("urlPathMaps")
        for rule in path_map["properties"].get(PATH_RULES, []):
            rule["id"] = gateway_id.path_rule(path_map["name"], rule["name"])
            rule["type"] = _PATH_RULE_TYPE
    for collection, child in _children(properties):
        if collection not in ("urlPathMaps", PATH_RULES):
            child["id"] = gateway_id.child(collection, child["name"])
            child["type"] = child_type(collection)
        by_id[child["id"].casefold()] = child
    # Ids already in each back-reference list: a pool that 10,000 path rules use (Azure's
    # limits) would otherwise be scanned once per rule, 100 million comparisons.
    listed: dict[tuple[str, str], set[str]] = {}
    for collection, child in _children(properties):
        for field in _REFERRER_FIELDS.get(collection, ()):
            reference = child["properties"].get(field)
            target = by_id.get(reference["id"].casefold()) if reference else None
            if target is None:
                continue
            name = _BACK_REFERENCE_NAME[collection]
            back = target["properties"].setdefault(name, [])
            seen = listed.get((target["id"].casefold(), name))
            if seen is None:
                seen = listed[(target["id"].casefold(), name)] = {entry["id"] for entry in back}
            if child["id"] not in seen:
                seen.add(child["id"])
                back.append({"id": child["id"]})
    return view
