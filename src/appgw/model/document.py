"""Editing a gateway document as the API returns it: find, replace or append a child by name.

The portal and the CLI both change one child and PUT the whole document back with If-Match;
these helpers are the one place that knows how children are looked up (by name, ignoring case,
as ARM does)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appgw.model.ids import GatewayId


def child_names(view: dict[str, Any], collection: str) -> list[str]:
    return [child["name"] for child in view["properties"].get(collection, [])]


def find_child(view: dict[str, Any], collection: str, name: str) -> dict[str, Any] | None:
    for child in view["properties"].get(collection, []):
        if child["name"].casefold() == name.casefold():
            return child  # type: ignore[no-any-return]
    return None


def put_child(view: dict[str, Any], collection: str, child: dict[str, Any]) -> None:
    """Replace the child of that name, or append it."""
    children = view["properties"].setdefault(collection, [])
    for index, existing in enumerate(children):
        if existing["name"].casefold() == child["name"].casefold():
            children[index] = child
            return
    children.append(child)


def remove_child(view: dict[str, Any], collection: str, name: str) -> bool:
    """Drop the child of that name; False when there was none."""
    children = view["properties"].get(collection, [])
    kept = [child for child in children if child["name"].casefold() != name.casefold()]
    if len(kept) == len(children):
        return False
    view["properties"][collection] = kept
    return True


def ref(gateway_id: GatewayId, collection: str, name: str) -> dict[str, str]:
    return {"id": gateway_id.child(collection, name)}


def certificate_field(data: bytes) -> str:
    """An uploaded .cer/.pfx as the API's base64 `data`. A file that already is base64 text
    (Azure's "Base-64 encoded X.509" export without PEM lines) is passed as it is."""
    stripped = data.strip()
    if stripped and _BASE64_TEXT.fullmatch(stripped):
        return stripped.decode()
    return base64.b64encode(data).decode()


_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=\r\n]+")


def is_v2(view: dict[str, Any]) -> bool:
    sku = view["properties"].get("sku", {}).get("name", "")
    return str(sku) in ("Standard_v2", "WAF_v2", "Basic")


@dataclass(frozen=True, slots=True)
class Link:
    """One firewallPolicy link in a gateway document."""

    owner_id: str  # the gateway, listener or path rule that links
    kind: str  # applicationGateways, httpListeners or pathBasedRules (the policy's lists)
    policy_key: str  # the folded policy id
    policy_id: str  # as the document spells it (for messages)


def document_links(document: Mapping[str, Any], gateway_id: str) -> list[Link]:
    """Every firewallPolicy link of a stored gateway document (read as JSON: parsing a large
    gateway's model costs far more than this walk)."""
    properties = document.get("properties") or {}
    found: list[Link] = []

    def linked(owner: str, kind: str, holder: Mapping[str, Any]) -> None:
        reference = (holder.get("properties") or {}).get("firewallPolicy") if holder else None
        if isinstance(reference, Mapping) and isinstance(reference.get("id"), str):
            found.append(Link(owner, kind, reference["id"].casefold(), reference["id"]))

    linked(gateway_id, "applicationGateways", {"properties": properties})
    for listener in properties.get("httpListeners") or []:
        linked(f"{gateway_id}/httpListeners/{listener.get('name')}", "httpListeners", listener)
    for path_map in properties.get("urlPathMaps") or []:
        for rule in (path_map.get("properties") or {}).get("pathRules") or []:
            owner = f"{gateway_id}/urlPathMaps/{path_map.get('name')}/pathRules/{rule.get('name')}"
            linked(owner, "pathBasedRules", rule)
    return found
