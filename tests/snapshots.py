"""Compiled-snapshot pieces for tests that drive the data plane's code directly."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from appgw.compile.gateway import upstream_specs
from appgw.compile.snapshot import BackendMember, BackendPool, BackendSettings, ForwardTarget

PLAIN_SETTINGS = BackendSettings(
    name="settings",
    port=8080,
    https=False,
    host_override=None,
    pick_host_from_member=False,
    path_override=None,
    request_timeout=20.0,
    affinity_cookie=None,
    drain_timeout=30.0,
    trust=None,
    sni_name=None,
)


def settings(**changes: Any) -> BackendSettings:
    return replace(PLAIN_SETTINGS, **changes)


def forward_target(
    members: tuple[BackendMember, ...],
    backend_settings: BackendSettings = PLAIN_SETTINGS,
    rule: str = "rule1",
) -> ForwardTarget:
    """A rule's target as compile makes it, upstream specs included."""
    return ForwardTarget(
        rule,
        BackendPool("pool", members),
        backend_settings,
        upstreams=upstream_specs(backend_settings, members, sku_v1=False),
    )
