"""WAF_v2 over real sockets (issue 18): ModSecurity with the OWASP CRS in front of a backend that
records what reaches it. Prevention answers 403 and forwards nothing; Detection forwards and
logs; each match is a firewall-log line sharing the access log's transactionId; bodies are
inspected up to the limit; exclusions and disabled rules remove a false positive; the metrics
carry Azure's names. One `appgw serve` (one worker) serves the module; tests reconfigure it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backends import free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway
from e2e.special_backends import SpecialBackend
from helpers import TOKEN, start_serve

pytestmark = pytest.mark.slow

HOST = "shop.contoso.test"
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "Accept": "*/*"}


@dataclass
class Site:
    gateway: Gateway
    backend: SpecialBackend
    port: int
    data_dir: Path

    def configure(self, waf: dict[str, Any]) -> None:
        document = (
            GatewayBuilder()
            .pool("pool", "127.0.0.1")
            .settings("settings", self.backend.port)
            .listener("listener", self.port, "Http")
            .rule("rule", "listener", pool="pool", settings="settings")
            .build()
        )
        document["properties"]["sku"] = {"name": "WAF_v2", "tier": "WAF_v2", "capacity": 1}
        document["properties"]["webApplicationFirewallConfiguration"] = {
            "enabled": True,
            "firewallMode": "Prevention",
            "ruleSetType": "OWASP",
            "ruleSetVersion": "3.2",
            **waf,
        }
        self.gateway.apply(document)

    def lines(self, name: str, mark: str) -> list[dict[str, Any]]:
        path = self.data_dir / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if mark in line]

    def saw(self, mark: str) -> bool:
        return bool(self.backend.requests_for(mark)) or self.backend.saw_bytes(mark.encode())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    backend = SpecialBackend("app").start()
    data_dir = tmp_path_factory.mktemp("waf") / "data"
    server = start_serve(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}, workers=1)
    try:
        yield Site(Gateway(server, workers=1), backend, free_port(), data_dir)
    finally:
        server.stop()
        backend.stop()


def mark() -> str:
    return uuid.uuid4().hex[:12]


def get(site: Site, target: str, **kwargs: Any) -> httpx.Response:
    headers = {"Host": HOST, **BROWSER, **kwargs.pop("headers", {})}
    return httpx.request(
        kwargs.pop("method", "GET"),
        f"http://127.0.0.1:{site.port}{target}",
        headers=headers,
        timeout=10,
        **kwargs,
    )


ATTACKS = {
    "sqli": "?id=1%27%20OR%20%271%27%3D%271",
    "xss": "?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "lfi": "?file=..%2F..%2F..%2Fetc%2Fpasswd",
    "rfi": "?include=http%3A%2F%2F203.0.113.9%2Fshell.txt%3F",
    "rce": "?host=127.0.0.1%3Bcat%20%2Fetc%2Fpasswd",
    "protocol": "?name=report%00.php",
}


def test_prevention_blocks_each_family_forwards_nothing_and_logs_each_match(site: Site) -> None:
    site.configure({})
    for family, query in ATTACKS.items():
        m = mark()
        response = get(site, f"/{m}{query}")
        assert response.status_code == 403, family
        time.sleep(0.1)
        assert not site.saw(m), f"{family} reached the backend"
        wait_until(lambda m=m: bool(site.lines("access.log", m)), what="the access log line")
        access = site.lines("access.log", m)[0]["properties"]
        assert access["httpStatus"] == 403 and access["error_info"] == "ERRORINFO_WAF_BLOCKED"
        assert access["WAFMode"] == "Prevention" and float(access["WAFEvaluationTime"]) > 0
        wait_until(lambda m=m: bool(site.lines("firewall.log", m)), what="firewall log lines")
        firewall = [line["properties"] for line in site.lines("firewall.log", m)]
        assert {line["transactionId"] for line in firewall} == {access["transactionId"]}
        assert any(line["action"] == "Blocked" and line["ruleId"] == "949110" for line in firewall)
        assert all(
            line["ruleSetType"] == "OWASP" and line["ruleSetVersion"] == "3.2" for line in firewall
        )
    clean = get(site, f"/{mark()}/products?id=42")
    assert clean.status_code == 200


def test_detection_forwards_and_logs(site: Site) -> None:
    site.configure({"firewallMode": "Detection"})
    m = mark()
    response = get(site, f"/{m}{ATTACKS['sqli']}")
    assert response.status_code == 200 and site.saw(m)
    wait_until(lambda: bool(site.lines("firewall.log", m)), what="firewall log lines")
    actions = {line["properties"]["action"] for line in site.lines("firewall.log", m)}
    assert actions == {"Detected"}


def test_a_body_attack_is_blocked_and_a_body_over_the_limit_is_413(site: Site) -> None:
    site.configure({"maxRequestBodySizeInKb": 16})
    m = mark()
    attack = get(
        site,
        f"/{m}/login",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        content=f"user=admin&m={m}&password=x%27%20OR%201%3D1--".encode(),
    )
    assert attack.status_code == 403
    m2 = mark()
    big = get(
        site,
        f"/{m2}/upload",
        method="POST",
        headers={"Content-Type": "application/octet-stream"},
        content=b"a" * (17 * 1024),
    )
    assert big.status_code == 413
    fine = get(site, f"/{mark()}/upload", method="POST", content=b"a" * (15 * 1024))
    assert fine.status_code == 200 and fine.json()["body_size"] == 15 * 1024
    time.sleep(0.1)
    assert not site.saw(m) and not site.saw(m2)


def test_detection_inspects_the_limit_of_a_large_body_and_forwards_all_of_it(site: Site) -> None:
    site.configure({"firewallMode": "Detection", "maxRequestBodySizeInKb": 16})
    response = get(site, f"/{mark()}/upload", method="POST", content=b"a" * (300 * 1024))
    assert response.status_code == 200 and response.json()["body_size"] == 300 * 1024


FALSE_POSITIVE = "/forum/post?comment=select%20*%20from%20users%20where%20id%3D1"


@pytest.mark.parametrize(
    "waf",
    [
        {
            "exclusions": [
                {
                    "matchVariable": "RequestArgNames",
                    "selectorMatchOperator": "Equals",
                    "selector": "comment",
                }
            ]
        },
        {
            "disabledRuleGroups": [
                {"ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI", "rules": [942100]}
            ]
        },
        {"disabledRuleGroups": [{"ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI"}]},
    ],
    ids=["exclusion", "disabled-rule", "disabled-group"],
)
def test_a_false_positive_is_removed_by_configuration(site: Site, waf: dict[str, Any]) -> None:
    site.configure({})
    assert get(site, f"/{mark()}{FALSE_POSITIVE}").status_code == 403
    site.configure(waf)
    m = mark()
    assert get(site, f"/{m}{FALSE_POSITIVE}").status_code == 200 and site.saw(m)


def test_the_waf_metrics_have_azure_names(site: Site) -> None:
    site.configure({})
    get(site, f"/{mark()}{ATTACKS['xss']}")

    def exposed() -> list[str]:
        with site.gateway.api() as api:
            text = api.get("/metrics").text
        return [line for line in text.splitlines() if not line.startswith("#")]

    def blocked_counted() -> bool:
        return any(
            line.startswith("appgw_AzwafTotalRequests_total") and 'Action="Block"' in line
            for line in exposed()
        )

    wait_until(blocked_counted, what="AzwafTotalRequests with Action=Block")
    lines = exposed()
    assert any(line.startswith("appgw_BlockedCount_total") and "941100" in line for line in lines)
    assert any(line.startswith("appgw_AzwafSecRule_total") for line in lines)
