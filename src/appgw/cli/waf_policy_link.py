"""What a --waf-policy value links (`appgw update`, `http-listener`, `url-path-map rule`): a
module of its own, as the child groups and `appgw waf-policy` both load it."""

from __future__ import annotations

from appgw.cli.client import fail
from appgw.model.ids import FIREWALL_POLICY_TYPE, FirewallPolicyId, GatewayId


def policy_ref(gateway: GatewayId, value: str, flag: str) -> dict[str, str] | None:
    """The `{"id": ...}` a --waf-policy value links: a policy id, or the name of a policy in
    the gateway's resource group; None (the link removed) for an empty value."""
    if not value:
        return None
    if value.startswith("/"):
        parsed = FirewallPolicyId.parse(value)
        if parsed is None:
            fail(
                f"{flag} {value!r}: not the id of a WAF policy (/subscriptions/S/resourceGroups/"
                f"RG/providers/{FIREWALL_POLICY_TYPE}/NAME); or give a policy's name",
                2,
            )
        return {"id": str(parsed)}
    found = FirewallPolicyId(gateway.subscription, gateway.resource_group, value)
    problems = found.problems()
    if problems:
        fail(f"{flag} {value!r}: {'; '.join(problems)}", 2)
    return {"id": str(found)}
