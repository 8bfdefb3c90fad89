"""Every screen is usable at 1280x800 and at phone width, and every input has a label."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import trustme
from playwright.sync_api import Browser, Page

from backends import free_port
from browser.conftest import screenshot
from builders import GatewayBuilder
from e2e.harness import Gateway
from helpers import TOKEN, gateway_id, start_serve

pytestmark = pytest.mark.slow

SCREENS = (
    "overview",
    "configuration",
    "listeners",
    "listeners/add",
    "listeners/appGatewayHttpListener/edit",
    "pools",
    "pools/add",
    "settings",
    "settings/add",
    "rules",
    "rules/add",
    "rewrites",
    "rewrites/add",
    "rewrites/securityHeaders/edit",
    "probes",
    "probes/add",
    "health",
    "ssl",
    "sslprofiles/add",
    "sslprofiles/mutual/edit",
    "clientcertificates/add",
    "clientcertificates/contoso-clients/edit",
    "waf",
    "activity",
)

REWRITE_SET = {
    "name": "securityHeaders",
    "properties": {
        "rewriteRules": [
            {
                "name": "articles",
                "ruleSequence": 100,
                "conditions": [
                    {"variable": "var_uri_path", "pattern": "^/article/([0-9]+)/(.*)$"},
                ],
                "actionSet": {
                    "requestHeaderConfigurations": [
                        {"headerName": "X-Article-Id", "headerValue": "{var_uri_path_1}"}
                    ],
                    "responseHeaderConfigurations": [
                        {
                            "headerName": "Strict-Transport-Security",
                            "headerValue": "max-age=31536000",
                        },
                        {"headerName": "Server"},
                    ],
                    "urlConfiguration": {
                        "modifiedPath": "/article.aspx",
                        "modifiedQueryString": "id={var_uri_path_1}&title={var_uri_path_2}",
                    },
                },
            }
        ]
    },
}


SSL_PROFILE = {
    "name": "mutual",
    "properties": {
        "trustedClientCertificates": [
            {"id": f"{gateway_id()}/trustedClientCertificates/contoso-clients"}
        ],
        "clientAuthConfiguration": {"verifyClientCertIssuerDN": True},
        "sslPolicy": {
            "policyType": "CustomV2",
            "minProtocolVersion": "TLSv1_2",
            "cipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        },
    },
}

WAF_CONFIGURATION = {
    "enabled": True,
    "firewallMode": "Prevention",
    "ruleSetType": "OWASP",
    "ruleSetVersion": "3.2",
    "disabledRuleGroups": [
        {"ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI", "rules": [942100, 942110]}
    ],
    "exclusions": [
        {
            "matchVariable": "RequestHeaderNames",
            "selectorMatchOperator": "StartsWith",
            "selector": "x-contoso-",
        }
    ],
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = start_serve(
        tmp_path_factory.mktemp("layout") / "data", {"APPGW_ADMIN_TOKEN": TOKEN}, workers=1
    )
    running = Gateway(server, workers=1)
    document = (
        GatewayBuilder()
        .pool("appGatewayBackendPool", "127.0.0.1")
        .settings("appGatewayBackendHttpSettings", free_port(), "Http")
        .listener("appGatewayHttpListener", free_port(), "Http")
        .rule(
            "rule1",
            "appGatewayHttpListener",
            pool="appGatewayBackendPool",
            settings="appGatewayBackendHttpSettings",
        )
        .build()
    )
    # The Rewrites blade's edit form at its widest: a condition, header actions, a URL rewrite.
    document["properties"]["rewriteRuleSets"] = [REWRITE_SET]
    document["properties"]["requestRoutingRules"][0]["properties"]["rewriteRuleSet"] = {
        "id": f"{gateway_id()}/rewriteRuleSets/securityHeaders"
    }
    # SSL settings with its lists filled: a profile trusting a client CA, on a custom policy.
    client_ca = trustme.CA(organization_name="Contoso Clients Root")
    chain = client_ca.cert_pem.bytes() + client_ca.create_child_ca().cert_pem.bytes()
    document["properties"]["trustedClientCertificates"] = [
        {"name": "contoso-clients", "properties": {"data": base64.b64encode(chain).decode()}}
    ]
    document["properties"]["sslProfiles"] = [SSL_PROFILE]
    # A WAF tier, so the Web application firewall blade shows its form, with an exclusion row.
    document["properties"]["sku"].update(name="WAF_v2", tier="WAF_v2")
    document["properties"]["webApplicationFirewallConfiguration"] = WAF_CONFIGURATION
    running.apply(document)
    try:
        yield running
    finally:
        server.stop()


def signed_in(browser: Browser, gateway: Gateway, width: int, height: int) -> Page:
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(f"{gateway.server.base_url}/portal/signin")
    page.get_by_label("Admin token").fill(TOKEN)
    page.keyboard.press("Enter")  # keyboard only
    page.wait_for_url("**/portal/resources")
    return page


@pytest.mark.parametrize(
    ("width", "height", "label"), [(1280, 800, "desktop"), (390, 844, "phone")]
)
def test_screens_fit_and_label_every_input(
    browser: Browser, gateway: Gateway, width: int, height: int, label: str
) -> None:
    page = signed_in(browser, gateway, width, height)
    try:
        for screen in SCREENS:
            response = page.goto(
                f"{gateway.server.base_url}/portal/gateways/sub1/rg1/appgw/{screen}"
            )
            assert response is not None and response.status == 200, screen
            screenshot(page, f"{label}-{screen.replace('/', '-')}")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{screen} scrolls sideways by {overflow}px at {width}px"
            unlabelled = page.evaluate(
                """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                   .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                   .map(e => e.name || e.id)"""
            )
            assert unlabelled == [], f"{screen}: inputs without a label: {unlabelled}"
    finally:
        page.context.close()
