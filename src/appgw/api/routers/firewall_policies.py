"""ApplicationGatewayWebApplicationFirewallPolicies: GET, PUT, DELETE, and the lists of a
resource group and of a subscription."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from appgw.api.common import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    ApiVersion,
    ArmJson,
    Authenticated,
    Service,
    in_thread,
    json_body,
)
from appgw.control.firewall_policies import FirewallPolicies
from appgw.model.ids import FIREWALL_POLICY_TYPE, FirewallPolicyId

POLICIES = f"/providers/{FIREWALL_POLICY_TYPE}"
POLICY = RESOURCE_GROUP + POLICIES + "/{name}"
TAGS: list[str | Enum] = ["WebApplicationFirewallPolicies"]
router = APIRouter()


def policy_id(subscription_id: str, resource_group: str, name: str) -> FirewallPolicyId:
    """The policy a path names (the service refuses names ARM would refuse)."""
    return FirewallPolicyId(subscription_id, resource_group, name)


# Declared after ApiVersion and Authenticated in each handler: those are checked first.
Policy = Annotated[FirewallPolicyId, Depends(policy_id)]


@router.get(POLICY, tags=TAGS, response_model=None)
def get_policy(_v: ApiVersion, _c: Authenticated, target: Policy, service: Service) -> ArmJson:
    return ArmJson(FirewallPolicies(service).get(target))


@router.put(
    POLICY,
    tags=TAGS,
    status_code=200,
    response_model=None,
    responses={201: {"description": "Created"}, 200: {"description": "Updated"}},
)
async def put_policy(
    request: Request, _v: ApiVersion, who: Authenticated, target: Policy, service: Service
) -> Response:
    body = await json_body(request)
    view, created = await in_thread(
        FirewallPolicies(service).put,
        target,
        body,
        who,
        if_match=request.headers.get("if-match"),
        if_none_match=request.headers.get("if-none-match"),
    )
    return ArmJson(view, status_code=201 if created else 200)


@router.delete(POLICY, tags=TAGS, status_code=200, response_model=None)
def delete_policy(
    request: Request, _v: ApiVersion, who: Authenticated, target: Policy, service: Service
) -> Response:
    deleted = FirewallPolicies(service).delete(
        target, who, if_match=request.headers.get("if-match")
    )
    return Response(status_code=200 if deleted else 204)


@router.get(RESOURCE_GROUP + POLICIES, tags=TAGS, response_model=None)
def list_in_group(
    subscription_id: str, resource_group: str, _v: ApiVersion, _c: Authenticated, service: Service
) -> dict[str, Any]:
    return {"value": FirewallPolicies(service).list_policies(subscription_id, resource_group)}


@router.get(SUBSCRIPTION + POLICIES, tags=TAGS, response_model=None)
def list_all(
    subscription_id: str, _v: ApiVersion, _c: Authenticated, service: Service
) -> dict[str, Any]:
    return {"value": FirewallPolicies(service).list_policies(subscription_id, None)}
