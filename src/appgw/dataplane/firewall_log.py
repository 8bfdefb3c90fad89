"""The firewall log: one JSON line per WAF rule a request matched, in the shape of Azure's
ApplicationGatewayFirewallLog, with the access log's transactionId so the two can be joined."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from appgw.compile.snapshot import FirewallScope
from appgw.dataplane.access_log import LineLog, Rotation, utc_timestamp
from appgw.observability import WafMetrics
from appgw.waf.engine import RuleMatch, WafVerdict
from appgw.waf.seclang import group_of

FIREWALL_LOG_FILE = "firewall.log"


class FirewallRecord(NamedTuple):
    resource_id: str
    instance_id: str
    client_ip: str
    client_port: int
    request_uri: str
    scope: FirewallScope
    match: RuleMatch
    # Azure's: Matched (a rule's score, a Log custom rule), Blocked or Detected (the verdict),
    # Allowed (an Allow custom rule)
    action: str
    hostname: str
    transaction_id: str
    time_stamp: str


def render_firewall(r: FirewallRecord) -> str:
    match, scope = r.match, r.scope
    custom = scope.firewall.settings.custom_rule(match.rule_id)
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
                    "ruleSetType": "Custom" if custom else "OWASP",
                    "ruleSetVersion": "" if custom else scope.firewall.settings.rule_set_version,
                    "ruleId": custom.name if custom else str(match.rule_id),
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
                    "policyId": scope.policy_id,
                    "policyScope": scope.scope,
                    "policyScopeName": scope.scope_name,
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
    scope: FirewallScope,
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
    evaluation (949110) or custom rule is Blocked in Prevention; the matches that scored are
    Matched; in Detection every match is Detected. An Allow custom rule is Allowed, a Log one
    Matched."""
    settings = scope.firewall.settings
    metrics.inspected(
        gateway_id,
        prevention=settings.prevention,
        blocked=verdict.blocked,
        rules=[(group_of(m.rule_id), str(m.rule_id)) for m in verdict.matches],
    )
    stamp = utc_timestamp()
    blocking, scoring = ("Blocked", "Matched") if verdict.blocked else ("Detected", "Detected")
    for match in verdict.matches:
        custom = settings.custom_rule(match.rule_id)
        if custom is not None and custom.action != "Block":
            action = "Allowed" if custom.action == "Allow" else "Matched"
        elif match.disruptive or (custom is not None and not verdict.blocked):
            action = blocking
        else:
            action = scoring
        log.write(
            FirewallRecord(
                resource_id,
                instance_id,
                client_ip,
                client_port,
                request_uri,
                scope,
                match,
                action,
                hostname,
                transaction_id,
                stamp,
            )
        )
