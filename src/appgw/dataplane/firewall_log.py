"""The firewall log: one JSON line per WAF rule a request matched, in the shape of Azure's
ApplicationGatewayFirewallLog, with the access log's transactionId so the two can be joined."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from appgw.dataplane.access_log import LineLog, Rotation, utc_timestamp
from appgw.observability import WafMetrics
from appgw.waf.engine import RuleMatch, WafVerdict
from appgw.waf.seclang import WafSettings, group_of

FIREWALL_LOG_FILE = "firewall.log"


class FirewallRecord(NamedTuple):
    resource_id: str
    instance_id: str
    client_ip: str
    client_port: int
    request_uri: str
    rule_set_version: str
    match: RuleMatch
    action: str  # Azure's: Matched (a rule's score), Blocked or Detected (the verdict)
    hostname: str
    transaction_id: str
    time_stamp: str


def render_firewall(r: FirewallRecord) -> str:
    match = r.match
    return (
        json.dumps(
            {
                "timeStamp": r.time_stamp,
                "resourceId": r.resource_id,
                "operationName": "ApplicationGatewayFirewall",
                "category": "ApplicationGatewayFirewallLog",
                "properties": {
                    "instanceId": r.instance_id,
                    "clientIp": r.client_ip,
                    "clientPort": str(r.client_port),
                    "requestUri": r.request_uri,
                    "ruleSetType": "OWASP",
                    "ruleSetVersion": r.rule_set_version,
                    "ruleId": str(match.rule_id),
                    "ruleGroup": group_of(match.rule_id),
                    "message": match.message,
                    "action": r.action,
                    "site": "Global",
                    "details": {
                        "message": match.message,
                        "data": match.data,
                        "file": match.file,
                        "line": str(match.line),
                    },
                    "hostname": r.hostname,
                    "transactionId": r.transaction_id,
                    "policyId": "default",
                    "policyScope": "Global",
                    "policyScopeName": "Global",
                },
            },
            separators=(",", ":"),
        )
        + "\n"
    )


class FirewallLog(LineLog[FirewallRecord]):
    def __init__(self, path: Path | None, rotation: Rotation | None = None) -> None:
        super().__init__(path, render_firewall, rotation)


def report(
    verdict: WafVerdict,
    settings: WafSettings,
    *,
    log: FirewallLog,
    metrics: WafMetrics,
    gateway_id: str,
    resource_id: str,
    instance_id: str,
    client_ip: str,
    client_port: int,
    request_uri: str,
    hostname: str,
    transaction_id: str,
) -> None:
    """An inspected request's metrics, and a firewall-log line per match. The blocking
    evaluation (949110) is Blocked in Prevention; the matches that scored are Matched; in
    Detection every match is Detected."""
    metrics.inspected(
        gateway_id,
        prevention=settings.prevention,
        blocked=verdict.blocked,
        rules=[(group_of(m.rule_id), str(m.rule_id)) for m in verdict.matches],
    )
    stamp = utc_timestamp()
    blocking, scoring = ("Blocked", "Matched") if verdict.blocked else ("Detected", "Detected")
    for match in verdict.matches:
        action = blocking if match.disruptive else scoring
        log.write(
            FirewallRecord(
                resource_id,
                instance_id,
                client_ip,
                client_port,
                request_uri,
                settings.rule_set_version,
                match,
                action,
                hostname,
                transaction_id,
                stamp,
            )
        )
