"""The shape `az` prints network resources in, and back.

az deserialises ARM's JSON into SDK models whose `properties` are flattened: every key of a
resource's `properties` becomes a key of the resource itself, at every level (the gateway, its
children, nested objects), and az adds `resourceGroup` (parsed from `id`) to every object that
has an id, sub-resource references included. `flatten` prints that shape; `unflatten` (used by
`appgw import`) undoes it.
"""

from __future__ import annotations

from typing import Any

from appgw.model.ids import CHILD_COLLECTIONS, PATH_RULES

# Fields ARM puts around a resource (not in `properties`).
GATEWAY_ENVELOPE = {"id", "name", "type", "location", "tags", "etag", "zones", "identity"}
CHILD_ENVELOPE = {"id", "name", "etag", "type"}
# What az adds that carries no information of its own.
AZ_ONLY = "resourceGroup"
# az leaves a Key Vault reference's id alone (it names the vault's group, not the resource's).
_NOT_A_RESOURCE = "sourceVault"


def flatten(value: Any) -> Any:
    """ARM's JSON as az prints it: `properties` lifted into its object, `resourceGroup` added
    next to every `id` that names one."""
    if isinstance(value, list):
        return [flatten(item) for item in value]
    if not isinstance(value, dict):
        return value
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if key == "properties" and isinstance(item, dict):
            flat.update((inner, flatten(v)) for inner, v in item.items())
        elif key == _NOT_A_RESOURCE:
            flat[key] = item
        else:
            flat[key] = flatten(item)
    group = resource_group_of(flat.get("id"))
    if group is not None and not any(key.casefold() == "resourcegroup" for key in flat):
        flat[AZ_ONLY] = group
    return flat


def resource_group_of(resource_id: Any) -> str | None:
    if not isinstance(resource_id, str):
        return None
    parts = resource_id.split("/")
    for index, part in enumerate(parts[:-1]):
        if part.casefold() == "resourcegroups":
            return parts[index + 1] or None
    return None


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """az's flattened gateway back in ARM's shape (`properties` around what is not envelope)."""
    gateway, properties = _split(flat, GATEWAY_ENVELOPE | {AZ_ONLY})
    for collection in CHILD_COLLECTIONS:
        children = properties.get(collection)
        if not isinstance(children, list):
            continue
        unflattened = [_unflatten_child(child) for child in children]
        if collection == "urlPathMaps":
            for path_map in unflattened:
                rules = path_map.get("properties", {}).get(PATH_RULES)
                if isinstance(rules, list):
                    path_map["properties"][PATH_RULES] = [_unflatten_child(r) for r in rules]
        properties[collection] = unflattened
    gateway["properties"] = properties
    return gateway


def _unflatten_child(child: Any) -> Any:
    if not isinstance(child, dict):
        return {"properties": {}}  # not an object: the server names the entry as invalid
    if isinstance(child.get("properties"), dict):
        return child
    envelope, properties = _split(child, CHILD_ENVELOPE | {AZ_ONLY})
    envelope["properties"] = properties
    return envelope


def _split(flat: dict[str, Any], envelope: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    outer = {k: v for k, v in flat.items() if k in envelope}
    inner = {k: v for k, v in flat.items() if k not in envelope}
    return outer, inner
