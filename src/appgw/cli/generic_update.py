"""az's generic update arguments, `--set`, `--add` and `--remove`, on an ARM document.

az addresses a resource's fields with `properties` flattened away (`--set sku.capacity=3`,
`--set gatewayIpConfigurations[0].subnet.id=...`) and matches names regardless of case; these
functions do the same on the JSON the API returns. Every error names the path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from appgw.cli.client import fail

# Top-level envelope fields; any other new field of a resource goes under `properties`.
_ENVELOPE = frozenset({"id", "name", "type", "etag", "location", "tags", "properties", "sku"})
_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[-?\d+\])*)")


def set_value(document: dict[str, Any], assignment: str) -> None:
    path, separator, raw = assignment.partition("=")
    if not separator or not path:
        fail(f"--set {assignment!r}: expected PATH=VALUE", 2)
    parent, last = _parent(document, path, "--set", create=True)
    _store(parent, last, _value(raw), path, "--set")


def add_item(document: dict[str, Any], list_path: str, values: Sequence[str]) -> None:
    if not values:
        fail(f"--add {list_path}: give the item as KEY=VALUE pairs or as JSON", 2)
    target = _resolve(document, list_path, "--add")
    if not isinstance(target, list):
        fail(f"--add {list_path}: not a list", 2)
    if len(values) == 1 and values[0].lstrip().startswith(("{", "[", '"')):
        target.append(_value(values[0]))
    else:
        target.append({k: _value(v) for k, v in key_values(values, "--add").items()})


def remove_item(document: dict[str, Any], path: str, index: str | None) -> None:
    if index is not None:
        target = _resolve(document, path, "--remove")
        if not isinstance(target, list):
            fail(f"--remove {path}: not a list", 2)
        try:
            del target[int(index)]
        except (ValueError, IndexError):
            fail(f"--remove {path} {index}: no such index (the list has {len(target)} items)", 2)
        return
    parent, last = _parent(document, path, "--remove", create=False)
    name, indexes = last
    container = _field_owner(parent, name)
    if container is None:
        fail(f"--remove {path}: no such property", 2)
    if indexes:
        items = container[_key(container, name)]
        _remove_index(items, indexes, path)
    else:
        del container[_key(container, name)]


def tag_values(values: list[str] | None) -> dict[str, str] | None:
    """az's --tags: None when not given, {} for '' (clear them), else KEY[=VALUE] pairs."""
    if values is None:
        return None
    if values == [""]:
        return {}
    return key_values(values, "--tags", require_value=False)


def key_values(values: Sequence[str], flag: str, *, require_value: bool = True) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, separator, item = value.partition("=")
        if not key or (require_value and not separator):
            fail(f"{flag} {value!r}: expected KEY=VALUE", 2)
        pairs[key] = item
    return pairs


# --- paths ---------------------------------------------------------------------------------------

Segment = tuple[str, list[int]]


def _segments(path: str, flag: str) -> list[Segment]:
    segments: list[Segment] = []
    for part in path.split("."):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            fail(f"{flag} {path!r}: {part!r} is not a property name or name[index]", 2)
        segments.append((match[1], [int(i) for i in re.findall(r"-?\d+", match[2])]))
    return segments


def _resolve(document: dict[str, Any], path: str, flag: str) -> Any:
    node: Any = document
    for name, indexes in _segments(path, flag):
        node = _child(node, name, path, flag)
        for index in indexes:
            node = _item(node, index, path, flag)
    return node


def _parent(document: dict[str, Any], path: str, flag: str, *, create: bool) -> tuple[Any, Segment]:
    *leading, last = _segments(path, flag)
    node: Any = document
    for name, indexes in leading:
        if create and isinstance(node, dict) and _field_owner(node, name) is None:
            _owner_for_new(node, name)[name] = {}
        node = _child(node, name, path, flag)
        for index in indexes:
            node = _item(node, index, path, flag)
    return node, last


def _child(node: Any, name: str, path: str, flag: str) -> Any:
    if not isinstance(node, dict):
        fail(f"{flag} {path}: {name!r} is inside a value that has no properties", 2)
    owner = _field_owner(node, name)
    if owner is None:
        fail(f"{flag} {path}: no property {name!r} (there are: {', '.join(_names(node))})", 2)
    return owner[_key(owner, name)]


def _item(node: Any, index: int, path: str, flag: str) -> Any:
    if not isinstance(node, list):
        fail(f"{flag} {path}: [{index}] on something that is not a list", 2)
    try:
        return node[index]
    except IndexError:
        fail(f"{flag} {path}: no item [{index}] (the list has {len(node)} items)", 2)


def _field_owner(node: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The dict that holds `name`: the node itself, or its flattened-away `properties`."""
    if _key(node, name) is not None:
        return node
    properties = node.get("properties")
    if isinstance(properties, dict) and _key(properties, name) is not None:
        return properties
    return None


def _owner_for_new(node: dict[str, Any], name: str) -> dict[str, Any]:
    properties = node.get("properties")
    if isinstance(properties, dict) and name.casefold() not in _ENVELOPE:
        return properties
    return node


def _key(node: dict[str, Any], name: str) -> Any:
    for key in node:
        if key.casefold() == name.casefold():
            return key
    return None


def _names(node: dict[str, Any]) -> list[str]:
    names = [key for key in node if key != "properties"]
    properties = node.get("properties")
    if isinstance(properties, dict):
        names += list(properties)
    return sorted(names)


def _store(parent: Any, last: Segment, value: Any, path: str, flag: str) -> None:
    name, indexes = last
    if not isinstance(parent, dict):
        fail(f"{flag} {path}: {name!r} is inside a value that has no properties", 2)
    owner = _field_owner(parent, name)
    if owner is None:
        if indexes:
            fail(f"{flag} {path}: no list {name!r} to index", 2)
        _owner_for_new(parent, name)[name] = value
        return
    key = _key(owner, name)
    if not indexes:
        owner[key] = value
        return
    target = owner[key]
    for index in indexes[:-1]:
        target = _item(target, index, path, flag)
    _item(target, indexes[-1], path, flag)  # the item must exist
    target[indexes[-1]] = value


def _remove_index(items: Any, indexes: list[int], path: str) -> None:
    for index in indexes[:-1]:
        items = _item(items, index, path, "--remove")
    _item(items, indexes[-1], path, "--remove")
    del items[indexes[-1]]


def _value(raw: str) -> Any:
    """JSON when it parses (numbers, true/false, objects), else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw
