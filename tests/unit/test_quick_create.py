"""The gateway `appgw create` builds: Azure's default names and defaults (spec §5.4, §6.1)."""

from __future__ import annotations

import pytest

from appgw.model.ids import GatewayId
from appgw.model.quick_create import ListenerCertificate, QuickCreate, quick_create_document
from appgw.model.validate import validate_gateway
from appgw.model.wire import parse_gateway

GATEWAY = GatewayId("sub", "rg", "gw")


def test_defaults_follow_az() -> None:
    document = quick_create_document(GATEWAY, QuickCreate())
    properties = document["properties"]
    assert properties["sku"] == {"name": "Standard_Medium", "tier": "Standard", "capacity": 2}
    assert properties["frontendPorts"][0]["properties"]["port"] == 80
    assert properties["httpListeners"][0]["properties"]["protocol"] == "Http"
    settings = properties["backendHttpSettingsCollection"][0]["properties"]
    assert settings["port"] == 80 and settings["protocol"] == "Http"
    assert settings["requestTimeout"] == 30
    # az writes draining off as enabled:false with a 1 s timeout.
    assert settings["connectionDraining"] == {"enabled": False, "drainTimeoutInSec": 1}
    names = {
        collection: [child["name"] for child in properties[collection]]
        for collection in ("frontendIPConfigurations", "backendAddressPools", "httpListeners")
    }
    assert names == {
        "frontendIPConfigurations": ["appGatewayFrontendIP"],
        "backendAddressPools": ["appGatewayBackendPool"],
        "httpListeners": ["appGatewayHttpListener"],
    }
    assert properties["requestRoutingRules"][0]["name"] == "rule1"
    parse_gateway(document, GATEWAY)  # the model accepts what quick-create builds


def test_certificate_means_https_on_443_and_autoscale_drops_capacity() -> None:
    options = QuickCreate(
        sku="WAF_v2",
        certificate=ListenerCertificate("gwSslCert", "AAAA", "pw"),
        min_capacity=0,
        max_capacity=10,
        private_ip_address="10.0.0.10",
        priority=7,
    )
    properties = quick_create_document(GATEWAY, options)["properties"]
    assert properties["frontendPorts"][0]["properties"]["port"] == 443
    assert properties["httpListeners"][0]["properties"]["protocol"] == "Https"
    assert properties["sku"] == {"name": "WAF_v2", "tier": "WAF_v2"}
    # A WAF SKU gets Azure's default inline WAF configuration: on, detecting only.
    assert properties["webApplicationFirewallConfiguration"] == {
        "enabled": True,
        "firewallMode": "Detection",
        "ruleSetType": "OWASP",
        "ruleSetVersion": "3.2",
    }
    assert properties["autoscaleConfiguration"] == {"minCapacity": 0, "maxCapacity": 10}
    assert properties["frontendIPConfigurations"][0]["name"] == "appGatewayPrivateFrontendIP"
    assert properties["requestRoutingRules"][0]["properties"]["priority"] == 7


def test_priority_only_for_v2_and_unknown_sku() -> None:
    rule = quick_create_document(GATEWAY, QuickCreate(priority=3))["properties"][
        "requestRoutingRules"
    ][0]
    assert "priority" not in rule["properties"]
    with pytest.raises(ValueError, match="--sku 'Premium'"):
        quick_create_document(GATEWAY, QuickCreate(sku="Premium"))


def test_the_portal_names_children_and_sets_host_names_and_v1_trust() -> None:
    """What the Create wizard adds to az's flags: its own names, a multi-site listener, the
    v1 backend's authentication certificate and the portal's request time-out."""
    options = QuickCreate(
        certificate=ListenerCertificate("gwSslCert", "AAAA", ""),
        host_names=("www.contoso.com",),
        request_timeout=20,
        authentication_certificates=(("backendCert", "BBBB"),),
        backend_pool_name="pool",
        http_settings_name="settings",
        listener_name="listener",
        rule_name="rule",
    )
    properties = quick_create_document(GATEWAY, options)["properties"]
    listener = properties["httpListeners"][0]
    assert listener["name"] == "listener"
    assert listener["properties"]["hostName"] == "www.contoso.com"
    assert listener["properties"]["requireServerNameIndication"] is True
    settings = properties["backendHttpSettingsCollection"][0]
    assert settings["name"] == "settings" and settings["properties"]["requestTimeout"] == 20
    assert settings["properties"]["authenticationCertificates"] == [
        {"id": GATEWAY.child("authenticationCertificates", "backendCert")}
    ]
    assert properties["authenticationCertificates"] == [
        {"name": "backendCert", "properties": {"data": "BBBB"}}
    ]
    rule = properties["requestRoutingRules"][0]
    assert rule["name"] == "rule"
    assert rule["properties"]["backendAddressPool"]["id"].endswith("/backendAddressPools/pool")
    parse_gateway(quick_create_document(GATEWAY, options), GATEWAY)

    wildcard = QuickCreate(host_names=("*.contoso.com",))
    listener = quick_create_document(GATEWAY, wildcard)["properties"]["httpListeners"][0]
    assert listener["properties"]["hostNames"] == ["*.contoso.com"]
    assert listener["properties"]["requireServerNameIndication"] is False


@pytest.mark.parametrize("sku", ["WAF_v2", "WAF_Medium", "WAF_Large", "Standard_v2"])
def test_quick_created_waf_gateways_validate(sku: str) -> None:
    """A WAF SKU needs a WAF configuration: quick-create writes the default one."""
    document = quick_create_document(GATEWAY, QuickCreate(sku=sku, servers=("10.0.0.4",)))
    gateway = parse_gateway(document, GATEWAY)
    assert validate_gateway(gateway, GATEWAY) == []
    waf = "webApplicationFirewallConfiguration" in document["properties"]
    assert waf == sku.startswith("WAF")
