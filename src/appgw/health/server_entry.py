"""One server of Backend health: the probe's verdict, and traffic's beside it.

Azure's fields (`address`, `health`, `healthProbeLog`) come first; `appgwProbeDetails` adds what
appgw can say beyond them. A probe and live traffic may judge one backend differently (another
SNI, the request's Host as the name): the entry compares both identities with the one rule of
compile/identity.py, checks the names traffic verifies against the certificate the probe saw,
and adds the refusals traffic actually met (state/traffic.py). A Healthy probe with failing
traffic is shown as `Partial`, never as plain Healthy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appgw.certificates import CertificateInfo
from appgw.compile.identity import BackendIdentity, backend_identity, difference
from appgw.compile.snapshot import BackendMember, ProbeSpec
from appgw.health.probe import ProbeResult
from appgw.state.traffic import WINDOW_SECONDS, Refusals

EXPIRY_WARNING_DAYS = 30  # warn when a backend certificate expires within this many days
PARTIAL = "Partial"  # Azure's server health value for "some of it works"
# Wildcard listener names are checked with this label in place of the wildcard.
_EXAMPLE_LABEL = "example"


@dataclass(frozen=True, slots=True)
class ProbedMember:
    """What the monitor knows about one member of a probed (pool, settings) pair."""

    state: str  # Healthy / Unhealthy / Unknown
    consecutive_failures: int
    last_success: dt.datetime | None
    last_failure: dt.datetime | None


def server_entry(
    spec: ProbeSpec,
    member: BackendMember,
    result: ProbeResult | None,
    *,
    sku_v1: bool,
    probed: ProbedMember | None = None,
    request_hosts: Sequence[str] = (),
    refusals: Refusals | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """`request_hosts`: the listener host names whose rules reach the pair ("" for a basic
    listener). `probed` is None for an on-demand probe, judged on its one result."""
    if probed is not None:
        state = probed.state
    elif result is None:
        state = "Unknown"  # listed before its first probe
    else:
        state = "Healthy" if result.healthy else "Unhealthy"
    log_text = (
        "The backend has not been probed yet; results appear after the first probe."
        if result is None
        else result.message
    )
    details: dict[str, Any] = {"warnings": []}
    warnings: list[str] = details["warnings"]
    leaf: CertificateInfo | None = None
    if result is not None:
        details.update(_probe_details(result))
        if result.verdict is not None and result.verdict.presented:
            leaf = result.verdict.presented[0]
            warnings += _expiry_warning(leaf, sku_v1)
    if probed is not None:
        details["consecutiveFailures"] = probed.consecutive_failures
        details["lastSuccessTime"] = _iso(probed.last_success) if probed.last_success else None
        details["lastFailureTime"] = _iso(probed.last_failure) if probed.last_failure else None
        details["probe"] = spec.probe_name or "(default probe)"
    traffic = backend_identity(spec.settings, member, sku_v1=sku_v1)
    details["traffic"] = _traffic_identity(traffic)
    certain_failure = False
    if result is not None:
        different = difference(traffic, result.identity)
        if different is not None:
            warnings.append(different)
        if leaf is not None:
            certain_failure, notes = _names_traffic_fails(spec, traffic, leaf, request_hosts)
            warnings += notes
    if refusals is not None and (count := refusals.count(now if now is not None else _now())):
        summary = _refusal_summary(count, refusals)
        details["traffic"].update(_refusal_details(count, refusals))
        warnings.insert(0, summary)
        log_text = f"{log_text} {summary}"
        if state == "Healthy":
            state = PARTIAL
    elif certain_failure and state == "Healthy":
        # Every name traffic can verify fails: no request passes, whatever the probe says.
        state = PARTIAL
        log_text = f"{log_text} {warnings[-1]}"
    return {
        "address": member.address,
        "health": state,
        "healthProbeLog": log_text,
        "ipConfiguration": None,
        "appgwProbeDetails": details,
    }


def _probe_details(result: ProbeResult) -> dict[str, Any]:
    details: dict[str, Any] = {
        "category": result.category,
        "lastProbeTime": _iso(result.at),
        "probeDurationSeconds": round(result.duration, 4),
        "hostHeader": result.identity.host_header,
        "sni": result.identity.sni,
        "verifyName": result.identity.verify_name,
        "port": result.port,
        "resolvedAddress": result.resolved_address,
        "statusCode": result.status,
    }
    if result.verdict is not None:
        details["failedCheck"] = None if result.verdict.ok else result.verdict.check
        details["presentedChain"] = [info.to_json() for info in result.verdict.presented]
        if result.verdict.presented:
            details["certificateDaysToExpiry"] = result.verdict.presented[0].days_until_expiry()
    return details


def _expiry_warning(leaf: CertificateInfo, sku_v1: bool) -> list[str]:
    days = leaf.days_until_expiry()
    if days >= EXPIRY_WARNING_DAYS:
        return []
    upload = " and upload the new leaf .cer" if sku_v1 else ""
    return [
        f"The backend certificate '{leaf.subject}' expires in {days} days "
        f"({_iso(leaf.not_after)}); renew it{upload}."
    ]


def _traffic_identity(traffic: BackendIdentity) -> dict[str, Any]:
    """What live traffic sends this member, by the same rule the probe follows."""
    return {
        "hostHeader": traffic.host_header or "(the request's Host)",
        "sni": "(the request's Host)" if traffic.from_request else traffic.sni,
        "verifyName": "(the request's Host)" if traffic.from_request else traffic.verify_name,
        "nameSource": traffic.source or None,
    }


def _names_traffic_fails(
    spec: ProbeSpec, traffic: BackendIdentity, leaf: CertificateInfo, request_hosts: Sequence[str]
) -> tuple[bool, list[str]]:
    """Whether no name traffic verifies is covered by the probed certificate (no request can
    pass), and what to say about the names it does not cover."""
    trust = spec.settings.trust
    if trust is None or not trust.validate_name or not traffic.https:
        return False, []
    if traffic.from_request:
        names = list(request_hosts)
    elif traffic.verify_name is not None:
        names = [traffic.verify_name]
    else:
        return False, []
    covered = ", ".join(leaf.names) or "no name"
    failing = [n for n in names if n and not leaf.covers(n.replace("*", _EXAMPLE_LABEL))]
    notes = []
    if failing:
        fix = (
            "set the backend settings' host name (or SNI name) to a name the certificate "
            "covers, or install a certificate for that name on the backend"
        )
        notes.append(
            f"Requests for {', '.join(failing)} will fail the backend certificate check "
            f"(NameMismatch): traffic verifies that name ({traffic.source}), and the "
            f"certificate '{leaf.subject}' covers {covered}; {fix}."
        )
    if "" in names:
        notes.append(
            "A basic listener routes here: traffic verifies whatever Host a client sends, and "
            f"only requests for names the certificate covers ({covered}) pass."
        )
    return bool(failing) and len(failing) == len(names), notes


def _refusal_summary(count: int, refusals: Refusals) -> str:
    names = ", ".join(refusals.certificate_names) or "none"
    minutes = WINDOW_SECONDS // 60
    return (
        f"{count} request{'s' if count != 1 else ''} in the last {minutes} minutes failed: "
        f"{refusals.check}, SNI {refusals.sni or '(none)'}, certificate names {names}. "
        f"{refusals.message}"
    )


def _refusal_details(count: int, refusals: Refusals) -> dict[str, Any]:
    return {
        "failedRequests": count,
        "windowSeconds": WINDOW_SECONDS,
        "failedCheck": refusals.check,
        "failedSni": refusals.sni,
        "failedVerifyName": refusals.verify_name,
        "certificateNames": refusals.certificate_names,
        "certificateSubject": refusals.subject,
        "lastFailureTime": _iso(dt.datetime.fromtimestamp(refusals.last, dt.UTC)),
        "message": refusals.message,
    }


def _now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
