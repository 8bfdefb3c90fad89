"""The API's routers, one per area; `appgw.serve` includes them in this order."""

from __future__ import annotations

from fastapi import APIRouter

from appgw.api.routers import (
    activity,
    firewall_policies,
    gateways,
    health,
    monitoring,
    operations,
    ssl_options,
    waf_rule_sets,
)

ROUTERS: tuple[APIRouter, ...] = (
    monitoring.router,
    gateways.router,
    operations.router,
    health.router,
    activity.router,
    ssl_options.router,
    waf_rule_sets.router,
    firewall_policies.router,
)
