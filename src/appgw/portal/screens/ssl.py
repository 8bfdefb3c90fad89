"""SSL settings blade: the gateway's TLS policy (Predefined, Custom or CustomV2), and the lists
of its SSL profiles and trusted client certificates (their forms: screens/ssl_profiles.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from appgw.model.enums import SslCipherSuite, SslPolicyType, SslProtocol
from appgw.model.ids import GatewayId
from appgw.model.ssl_policies import (
    PREDEFINED_POLICIES,
    RETIRED_CUSTOM_SUITES,
    TLS13_CIPHER_SUITES,
)
from appgw.portal.common import (
    FieldMapping,
    GatewayScreen,
    is_v2,
    name_of,
    text,
)

POLICY = "properties.sslPolicy"
PROTOCOL_LABELS = {
    SslProtocol.TLS_1_0: "TLSv1_0 (retired)",
    SslProtocol.TLS_1_1: "TLSv1_1 (retired)",
    SslProtocol.TLS_1_2: "TLSv1_2",
    SslProtocol.TLS_1_3: "TLSv1_3 (CustomV2 only)",
}


@dataclass
class PolicyForm:
    policy_type: str = SslPolicyType.PREDEFINED.value
    policy_name: str = ""
    min_protocol_version: str = SslProtocol.TLS_1_2.value
    cipher_suites: list[str] = field(default_factory=list)
    # The server-preference order the stored policy had: kept when suites are ticked or unticked.
    stored_order: list[str] = field(default_factory=list)

    @classmethod
    def of_view(cls, view: dict[str, Any]) -> PolicyForm:
        # No policy set: Azure applies its default predefined policy, so that one is shown.
        default = view["properties"].get("defaultPredefinedSslPolicy", "")
        return cls.of_policy(view["properties"].get("sslPolicy") or {}, default)

    @classmethod
    def of_policy(cls, policy: dict[str, Any], default_name: str = "") -> PolicyForm:
        """The form showing `policy` (the gateway's or an SSL profile's)."""
        suites = list(policy.get("cipherSuites") or [])
        return cls(
            policy_type=policy.get("policyType") or SslPolicyType.PREDEFINED.value,
            policy_name=policy.get("policyName", "") if policy else default_name,
            min_protocol_version=policy.get("minProtocolVersion") or SslProtocol.TLS_1_2.value,
            cipher_suites=suites,
            stored_order=suites,
        )

    @classmethod
    def of_form(cls, form: FormData, stored_order: list[str]) -> PolicyForm:
        return cls(
            policy_type=text(form, "policy_type"),
            policy_name=text(form, "policy_name"),
            min_protocol_version=text(form, "min_protocol_version"),
            cipher_suites=[
                value for value in form.getlist("cipher_suites") if isinstance(value, str)
            ],
            stored_order=stored_order,
        )

    def policy(self) -> dict[str, Any]:
        if self.policy_type == SslPolicyType.PREDEFINED.value:
            # A Predefined policy takes its name and nothing else (Azure refuses extra fields).
            return {"policyType": self.policy_type, "policyName": self.policy_name or None}
        ticked = set(self.cipher_suites)
        ordered = [s for s in self.stored_order if s in ticked]
        ordered += [s.value for s in SslCipherSuite if s.value in ticked and s.value not in ordered]
        # TLS 1.3 suites are implicit in CustomV2 and impossible in Custom: never listed.
        implicit = {s.value for s in TLS13_CIPHER_SUITES}
        return {
            "policyType": self.policy_type or None,
            "minProtocolVersion": self.min_protocol_version or None,
            "cipherSuites": [s for s in ordered if s not in implicit],
        }


def policy_field(rest: str) -> str:
    """The form field of a problem at `rest`, a path inside an `sslPolicy` (the gateway's or
    an SSL profile's: both forms name their fields alike)."""
    rest = rest.removeprefix(".")
    if rest.startswith("cipherSuites"):
        return "cipher_suites"
    if rest in ("policyName", "minProtocolVersion"):
        return "policy_name" if rest == "policyName" else "min_protocol_version"
    return "policy_type"  # the policy as a whole, its type, or legacy disabledSslProtocols


def _fields(gateway_id: GatewayId) -> FieldMapping:
    def mapping(resource: str, path: str) -> str | None:
        if resource.casefold() != str(gateway_id).casefold() or not path.startswith(POLICY):
            return None
        return policy_field(path.removeprefix(POLICY))

    return mapping


def _predefined(v2: bool) -> list[dict[str, Any]]:
    return [
        {
            "name": policy.name.value,
            "min_version": policy.min_protocol_version.value,
            "suites": [suite.value for suite in policy.cipher_suites],
            "retired": policy.retired,
            "v2_only": policy.v2_only,
        }
        for policy in PREDEFINED_POLICIES.values()
        # The 2022 generation does not exist on v1 SKUs; retired ones stay visible (and refused).
        if v2 or not policy.v2_only
    ]


def _cipher_choices() -> list[dict[str, Any]]:
    return [
        {"value": suite.value, "retired_for_custom": suite in RETIRED_CUSTOM_SUITES}
        for suite in SslCipherSuite
        if suite not in TLS13_CIPHER_SUITES
    ]


def policy_choices(view: dict[str, Any]) -> dict[str, Any]:
    """What the policy fields (ssl_policy_fields.html) offer on this gateway's SKU."""
    v2 = is_v2(view)
    types = [
        (SslPolicyType.PREDEFINED.value, "Predefined"),
        (SslPolicyType.CUSTOM.value, "Custom"),
    ]
    if v2:
        types.append((SslPolicyType.CUSTOM_V2.value, "CustomV2"))
    protocols = [
        (protocol.value, label)
        for protocol, label in PROTOCOL_LABELS.items()
        if v2 or protocol != SslProtocol.TLS_1_3
    ]
    return {
        "policy_types": types,
        "predefined": _predefined(v2),
        "protocols": protocols,
        "ciphers": _cipher_choices(),
        "tls13_suites": [suite.value for suite in TLS13_CIPHER_SUITES],
    }


def _context(view: dict[str, Any], policy: PolicyForm) -> dict[str, Any]:
    stored = view["properties"].get("sslPolicy") or {}
    return {
        "policy": policy,
        **policy_choices(view),
        "uses_default": not stored,
        "legacy": bool(stored) and not stored.get("policyType") and not stored.get("policyName"),
        "default_policy": view["properties"].get("defaultPredefinedSslPolicy", ""),
        **_profile_lists(view),
    }


def settings_page(view: dict[str, Any]) -> dict[str, Any]:
    """The SSL settings page as opened afresh: where the SSL profiles and trusted client
    certificates blades list theirs (and show a refused delete)."""
    return {**_context(view, PolicyForm.of_view(view)), "etag": view["etag"]}


def policy_summary(policy: dict[str, Any] | None) -> str:
    """An SSL policy in a list cell: a predefined one by name, a custom one by its type and
    minimum version."""
    if not policy:
        return "The gateway's"
    if policy.get("policyName"):
        return str(policy["policyName"])
    kind = policy.get("policyType") or "Custom"
    minimum = policy.get("minProtocolVersion")
    return f"{kind} (min {minimum})" if minimum else str(kind)


def _users(children: list[dict[str, Any]], key: str, many: bool = False) -> dict[str, list[str]]:
    """By referenced id (folded): the names of `children` whose property `key` refers to it."""
    users: dict[str, list[str]] = {}
    for child in children:
        value = child["properties"].get(key)
        references = (value or []) if many else [value] if value else []
        for reference in references:
            users.setdefault(str(reference.get("id", "")).casefold(), []).append(child["name"])
    return users


def _profile_lists(view: dict[str, Any]) -> dict[str, Any]:
    props = view["properties"]
    profiles = props.get("sslProfiles", [])
    listeners = _users(props.get("httpListeners", []), "sslProfile")
    trusting = _users(profiles, "trustedClientCertificates", many=True)
    profile_rows = []
    for profile in profiles:
        p = profile["properties"]
        auth = p.get("clientAuthConfiguration") or {}
        trusted = [name_of(reference) for reference in p.get("trustedClientCertificates") or []]
        profile_rows.append(
            {
                "name": profile["name"],
                "client_auth": bool(trusted),
                "trusted": ", ".join(trusted),
                "issuer_dn": bool(auth.get("verifyClientCertIssuerDN")),
                "revocation": auth.get("verifyClientRevocation") or "None",
                "policy": policy_summary(p.get("sslPolicy")),
                "listeners": ", ".join(listeners.get(profile["id"].casefold(), [])),
            }
        )
    client_rows = [
        {
            "name": certificate["name"],
            "issuer_dn": certificate["properties"].get("clientCertIssuerDN") or "",
            "profiles": ", ".join(trusting.get(certificate["id"].casefold(), [])),
        }
        for certificate in props.get("trustedClientCertificates", [])
    ]
    return {"profiles": profile_rows, "client_certificates": client_rows}


def _apply(document: dict[str, Any], policy: PolicyForm) -> None:
    document["properties"]["sslPolicy"] = {
        key: value for key, value in policy.policy().items() if value is not None
    }


BLADE = GatewayScreen(
    screen="ssl",
    saved="Saved the SSL policy.",
    form_of_view=PolicyForm.of_view,
    form_of_post=lambda form, view: PolicyForm.of_form(form, PolicyForm.of_view(view).stored_order),
    context=_context,
    apply=_apply,
    fields=_fields,
)
register = BLADE.register
