"""The store's WAF policy writes (store/sql.py, real SQLite): a policy and the versions of the
gateways that link it commit together or not at all, and writes that read something that
changed before they commit are refused (LinkChanged) instead of serving stale policy content."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from appgw.store.secrets import MasterKey
from appgw.store.sql import LinkChanged, PolicyInUse, Recommit, SqlStore

POLICY = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
    "ApplicationGatewayWebApplicationFirewallPolicies/p"
)
GATEWAY = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationGateways/gw"
LINKED = {"properties": {"firewallPolicy": {"id": POLICY}}}


def links(version: Any) -> list[str]:
    return [version.resource_id] if version.document == LINKED else []


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return SqlStore(f"sqlite:///{tmp_path / 'appgw.db'}", MasterKey(os.urandom(32)))


def put_policy(store: SqlStore, content: str, recommits: list[Recommit]) -> Any:
    return store.commit_policy(
        POLICY,
        POLICY.casefold(),
        {"properties": {"x": content}},
        actor="t",
        recommits=recommits,
        linking=links,
    )


def test_a_policy_and_its_gateways_commit_together(store: SqlStore) -> None:
    policy, _ = put_policy(store, "one", [])
    gateway = store.commit(
        GATEWAY,
        GATEWAY.casefold(),
        LINKED,
        {"firewallPolicies": {"p": "one"}},
        operational_state="Running",
        actor="t",
        linked_policies={POLICY.casefold(): policy.etag},
    )
    # A policy write that does not re-commit a gateway linking it is refused, and keeps nothing.
    with pytest.raises(LinkChanged):
        put_policy(store, "two", [])
    stored = store.policy(POLICY.casefold())
    assert stored is not None and stored.document == {"properties": {"x": "one"}}
    stored_policy, versions = put_policy(
        store, "two", [Recommit(gateway, {"firewallPolicies": {"p": "two"}})]
    )
    assert [v.version for v in versions] == [2]
    current = store.current(GATEWAY.casefold())
    assert current is not None and store.secrets(current) == {"firewallPolicies": {"p": "two"}}
    # The gateway moved on since `gateway` was read: re-committing that version is refused.
    with pytest.raises(LinkChanged):
        put_policy(store, "three", [Recommit(gateway, {})])
    # A gateway write made from a policy etag that is no longer current is refused too.
    with pytest.raises(LinkChanged):
        store.commit(
            GATEWAY,
            GATEWAY.casefold(),
            LINKED,
            {"firewallPolicies": {"p": "one"}},
            operational_state="Running",
            actor="t",
            linked_policies={POLICY.casefold(): policy.etag},
        )
    assert stored_policy is not None
    # A linked policy cannot be deleted; unlinked, it can.
    with pytest.raises(PolicyInUse, match="applicationGateways/gw"):
        store.commit_policy(POLICY, POLICY.casefold(), None, actor="t", linking=links)
    assert store.policy(POLICY.casefold()) is not None
    store.commit(
        GATEWAY, GATEWAY.casefold(), {"properties": {}}, {}, operational_state="Running", actor="t"
    )
    store.commit_policy(POLICY, POLICY.casefold(), None, actor="t", linking=links)
    assert store.policy(POLICY.casefold()) is None
