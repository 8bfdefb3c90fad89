"""applicationGatewayAvailableSslOptions: the TLS policies, cipher suites and protocols offered."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from appgw.api.common import NETWORK, SUBSCRIPTION, ApiVersion, Authenticated
from appgw.control.service import ServiceError
from appgw.model.ssl_policies import LEGACY_CIPHER_SUITES, PREDEFINED_POLICIES, TLS13_CIPHER_SUITES

SSL_OPTIONS = SUBSCRIPTION + "/providers/Microsoft.Network/applicationGatewayAvailableSslOptions"

router = APIRouter(tags=["SslOptions"])


@router.get(SSL_OPTIONS + "/default", response_model=None)
def ssl_options(subscription_id: str, _v: ApiVersion, _c: Authenticated) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{subscription_id}/providers/{NETWORK}/"
        "applicationGatewayAvailableSslOptions/default",
        "name": "default",
        "type": f"{NETWORK}/applicationGatewayAvailableSslOptions",
        "properties": {
            "predefinedPolicies": [
                {"id": _policy_id(subscription_id, name.value)} for name in PREDEFINED_POLICIES
            ],
            "defaultPolicy": "AppGwSslPolicy20220101",
            "availableCipherSuites": [suite.value for suite in LEGACY_CIPHER_SUITES],
            "availableProtocols": ["TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"],
        },
    }


@router.get(SSL_OPTIONS + "/default/predefinedPolicies", response_model=None)
def predefined_policies(subscription_id: str, _v: ApiVersion, _c: Authenticated) -> dict[str, Any]:
    return {"value": [_policy_json(subscription_id, name.value) for name in PREDEFINED_POLICIES]}


@router.get(SSL_OPTIONS + "/default/predefinedPolicies/{policy_name}", response_model=None)
def predefined_policy(
    subscription_id: str, policy_name: str, _v: ApiVersion, _c: Authenticated
) -> dict[str, Any]:
    for name in PREDEFINED_POLICIES:
        if name.value.casefold() == policy_name.casefold():
            return _policy_json(subscription_id, name.value)
    raise ServiceError(
        404,
        "ApplicationGatewaySslPredefinedPolicyNotFound",
        f"'{policy_name}' is not a predefined SSL policy; known: "
        + ", ".join(name.value for name in PREDEFINED_POLICIES),
    )


def _policy_id(subscription_id: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups//providers/{NETWORK}/"
        f"ApplicationGatewayAvailableSslOptions/default/ApplicationGatewaySslPredefinedPolicy/{name}"
    )


def _policy_json(subscription_id: str, name: str) -> dict[str, Any]:
    policy = next(p for p in PREDEFINED_POLICIES.values() if p.name.value == name)
    return {
        "name": name,
        "id": _policy_id(subscription_id, name),
        "properties": {
            # TLS 1.3 suites are implicit in Azure's output, as in GET of a gateway.
            "cipherSuites": [
                suite.value for suite in policy.cipher_suites if suite not in TLS13_CIPHER_SUITES
            ],
            "minProtocolVersion": policy.min_protocol_version.value,
        },
    }
