"""The balancer keeps its state per gateway: gateways made with Azure's default names share
pool names, and one gateway's members (draining ones included) must never serve another."""

from __future__ import annotations

from dataclasses import replace

from appgw.compile.snapshot import (
    BackendMember,
    BackendPool,
    BackendSettings,
    ForwardTarget,
    Snapshot,
)
from appgw.core.balancer import Balancer

POOL = "appGatewayBackendPool"
GATEWAY = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationGateways/gw"


def target(*addresses: str) -> ForwardTarget:
    settings = BackendSettings(
        name="appGatewayBackendHttpSettings",
        port=80,
        https=False,
        host_override=None,
        pick_host_from_member=False,
        path_override=None,
        request_timeout=30.0,
        affinity_cookie="ApplicationGatewayAffinity",
        drain_timeout=60.0,
        trust=None,
        sni_name=None,
    )
    members = tuple(BackendMember(address, False) for address in addresses)
    return ForwardTarget("rule1", BackendPool(POOL, members), settings)


def test_a_draining_member_of_one_gateway_never_serves_another() -> None:
    balancer = Balancer()
    gateway_a, gateway_b = "/subscriptions/s/.../gw-a", "/subscriptions/s/.../gw-b"
    removed = BackendMember("10.0.0.9", False)
    cookie_a = balancer.cookie_value(gateway_a, target("10.0.0.9"), removed).encode()
    balancer.drain(gateway_a, POOL, 80, removed, 60.0)
    # Gateway A still honours the cookie of its draining member (Azure's draining) ...
    assert balancer.by_cookie(gateway_a, target("10.0.0.1"), cookie_a) == removed
    # ... gateway B, with a pool of the same name and port, does not know that member.
    assert balancer.by_cookie(gateway_b, target("10.0.0.1"), cookie_a) is None
    assert balancer.cookie_value(gateway_b, target("10.0.0.9"), removed) != cookie_a.decode()


def test_round_robin_is_per_gateway() -> None:
    balancer = Balancer()
    members = target("10.0.0.1", "10.0.0.2").pool.members
    picks_a = [balancer.pick("gw-a", POOL, members, None) for _ in range(2)]
    first_b = balancer.pick("gw-b", POOL, members, None)
    assert [m.address for m in picks_a] == ["10.0.0.1", "10.0.0.2"]
    assert first_b is not None and first_b.address == "10.0.0.1"


def _snapshot(version: int, probe_fingerprint: str) -> Snapshot:
    return Snapshot(
        seq=version,
        gateway_id=GATEWAY,
        version=version,
        running=True,
        sku_v1=False,
        endpoints={},
        probe_fingerprints={(POOL, "appGatewayBackendHttpSettings"): probe_fingerprint},
    )


def test_a_verdict_on_an_older_probe_does_not_follow_the_same_members_into_a_new_version() -> None:
    """Compile shares an unchanged member tuple between versions; a new version whose settings
    change the probe (its fingerprint) must not inherit the rotation computed for the old one:
    it sent every request of a fresh, healthy configuration to 502 NO_LIVE."""
    balancer = Balancer()
    old_target = target("127.0.0.1")
    new_target = ForwardTarget("rule1", old_target.pool, replace(old_target.settings, port=8443))
    assert new_target.pool.members is old_target.pool.members
    old, new = _snapshot(4, "old-probe"), _snapshot(5, "new-probe")
    (member,) = old_target.pool.members
    balancer.unhealthy = frozenset({old.health_key(old_target, member)})

    assert balancer.choose(old, old_target, []) is None  # out of rotation in the old version
    choice = balancer.choose(new, new_target, [])

    assert choice is not None and choice.member == member
    assert balancer.choose(old, old_target, []) is None  # and still out in the old one
