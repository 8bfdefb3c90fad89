"""The one way every child command changes a gateway: GET, change the document, PUT it back
with `If-Match: <etag of the GET>`.

ARM keeps the whole gateway in one document, so two operators editing different children
still write the same resource; If-Match turns the later write into a 412 instead of silently
dropping the earlier one. The command then stops: a retry would re-apply a change the
operator made against a configuration that no longer exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appgw.cli.client import Api, await_operation, fail
from appgw.model.document import child_names, ref
from appgw.model.ids import GatewayId

CONFLICT = "the gateway changed since it was read; nothing was saved; run the command again"

# What the messages call each collection.
NOUNS = {
    "sslCertificates": "SSL certificate",
    "authenticationCertificates": "authentication certificate",
    "trustedRootCertificates": "trusted root certificate",
    "trustedClientCertificates": "trusted client certificate",
    "sslProfiles": "SSL profile",
    "backendHttpSettingsCollection": "HTTP settings",
    "httpListeners": "HTTP listener",
    "frontendPorts": "frontend port",
    "frontendIPConfigurations": "frontend IP configuration",
    "backendAddressPools": "backend address pool",
    "probes": "probe",
    "requestRoutingRules": "request routing rule",
    "urlPathMaps": "URL path map",
    "pathRules": "path rule",
    "redirectConfigurations": "redirect configuration",
    "rewriteRuleSets": "rewrite rule set",
    "rewriteRules": "rewrite rule",
    "conditions": "rewrite condition",
}


def find_member(members: list[dict[str, Any]], key: str, value: str) -> dict[str, Any] | None:
    """The member whose `key` (a name; a condition's variable) is `value`, compared without
    regard to case as ARM compares names (and HTTP header names, which variables hold)."""
    folded = value.casefold()
    return next((m for m in members if str(m.get(key, "")).casefold() == folded), None)


def existing_member(
    members: list[dict[str, Any]], key: str, value: str, *, flag: str, noun: str, where: str
) -> dict[str, Any]:
    """The member `value`, or a failure that names the flag, where it was looked for, and the
    members that exist."""
    found = find_member(members, key, value)
    if found is None:
        listed = ", ".join(str(member.get(key)) for member in members) or "none"
        fail(f"{flag} {value!r}: {where} has no {noun} of that {key} (existing: {listed})")
    return found


def existing_child(view: dict[str, Any], collection: str, name: str, flag: str) -> dict[str, Any]:
    """The gateway's child `name` (`existing_member`)."""
    members = view["properties"].get(collection) or []
    return existing_member(
        members, "name", name, flag=flag, noun=NOUNS[collection], where="the gateway"
    )


@dataclass
class Edit:
    """A gateway document being changed, and name-to-id resolution against it."""

    view: dict[str, Any]
    gateway: GatewayId

    def ref(self, collection: str, name: str, flag: str) -> dict[str, str]:
        found = existing_child(self.view, collection, name, flag)
        return ref(self.gateway, collection, found["name"])

    def only_ref(self, collection: str, flag: str) -> dict[str, str]:
        """The reference a create makes when the flag is left out: the only child there is."""
        names = child_names(self.view, collection)
        if len(names) != 1:
            listed = f"one of: {', '.join(names)}" if names else "there is none; create one first"
            fail(
                f"{flag} is needed: the gateway has no single {NOUNS[collection]} to use ({listed})"
            )
        return ref(self.gateway, collection, names[0])


def read_gateway(api: Api, resource_group: str, name: str) -> dict[str, Any]:
    view: dict[str, Any] = api.call("GET", api.gateway_path(resource_group, name)).json()
    return view


def edit_gateway(
    api: Api,
    resource_group: str,
    name: str,
    change: Callable[[Edit], None],
    *,
    no_wait: bool = False,
) -> dict[str, Any]:
    """GET the gateway, let `change` edit the document (it fails the command on bad input,
    before anything is written), PUT it with If-Match, wait until it is applied (unless
    `no_wait`); the gateway as the API stored it."""
    view = read_gateway(api, resource_group, name)
    etag = view.get("etag")
    gateway = GatewayId.parse(str(view.get("id", "")))
    if not etag or gateway is None:
        fail("the API returned the gateway without an etag or id; refusing to write it back")
    change(Edit(view, gateway))
    path = api.gateway_path(resource_group, name)
    response = api.call("PUT", path, body=view, headers={"If-Match": etag}, allow=(412,))
    if response.status_code == 412:
        fail(CONFLICT)
    if not no_wait:
        await_operation(api, response)
    stored: dict[str, Any] = response.json()
    return stored
