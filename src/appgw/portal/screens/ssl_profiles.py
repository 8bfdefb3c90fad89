"""SSL profiles and trusted client certificates (Azure: SSL settings > SSL profiles): their
Add/Edit/Delete forms. Both are listed on the SSL settings page (screens/ssl.py), which their
forms go back to.

The profile form has Azure's tabs as sections: "Client Authentication" (trusted client CA
certificates ticked or uploaded, verify the issuer's DN, verify revocation) and "SSL Policy"
(the same fields as the gateway's policy, or none: the gateway's applies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData

from appgw.model.enums import ClientRevocationOptions
from appgw.model.ids import GatewayId
from appgw.portal.common import (
    CertificateChoice,
    ChildScreen,
    ChosenCertificate,
    FieldMapping,
    FieldsForm,
    FormErrors,
    Portal,
    child_of,
    find_child,
    name_of,
    ref,
    save_child,
    text,
)
from appgw.portal.screens.ssl import PolicyForm, policy_choices, policy_field, settings_page

PROFILES = "sslProfiles"
CLIENT_CERTIFICATES = "trustedClientCertificates"
# The SSL Policy section's choice besides Azure's types: the profile sets none of its own.
GATEWAY_POLICY = "gateway"
CA = CertificateChoice(
    "ca",
    "Choose the CA certificate file (.cer or .pem) to upload.",
    "Enter a name for the trusted client certificate.",
)
REVOCATION = [(option.value, option.value) for option in ClientRevocationOptions]


def _uploaded(form: FormData) -> ChosenCertificate | None:
    """A CA certificate uploaded with the form (a file or a name typed), else None."""
    chosen = CA.posted(form)
    return chosen if chosen.data is not None or chosen.name else None


def _ca_field(certificate: str | None, resource: str, path: str) -> str | None:
    """The form field of a problem in the CA certificate uploaded as `certificate`."""
    collection, child = child_of(resource)
    if (
        collection == CLIENT_CERTIFICATES
        and certificate
        and child.casefold() == certificate.casefold()
    ):
        return "ca_name" if path in ("name", "id") else "ca_file"
    return None


# --- SSL profiles --------------------------------------------------------------------------------


@dataclass
class ProfileForm:
    # profile_name, verify_issuer_dn ("on"/""), revocation, ca_name (of an upload)
    values: dict[str, str]
    trusted: tuple[str, ...]  # the gateway's trusted client certificates ticked
    upload: ChosenCertificate | None
    policy: PolicyForm


def _blank(view: dict[str, Any]) -> ProfileForm:
    return ProfileForm(
        {"profile_name": "", "verify_issuer_dn": "", "revocation": "None", "ca_name": ""},
        (),
        None,
        # Azure's form starts on its recommended predefined policy.
        PolicyForm.of_policy({}, view["properties"].get("defaultPredefinedSslPolicy", "")),
    )


def _of_profile(view: dict[str, Any], profile: dict[str, Any]) -> ProfileForm:
    p = profile["properties"]
    auth = p.get("clientAuthConfiguration") or {}
    policy = p.get("sslPolicy")
    form = PolicyForm.of_policy(policy) if policy else PolicyForm.of_view(view)
    if not policy:
        form.policy_type = GATEWAY_POLICY
    return ProfileForm(
        {
            "profile_name": profile["name"],
            "verify_issuer_dn": "on" if auth.get("verifyClientCertIssuerDN") else "",
            "revocation": auth.get("verifyClientRevocation") or "None",
            "ca_name": "",
        },
        tuple(name_of(reference) for reference in p.get("trustedClientCertificates") or []),
        None,
        form,
    )


def _of_post(form: FormData, name: str | None) -> ProfileForm:
    return ProfileForm(
        {
            "profile_name": name if name is not None else text(form, "profile_name"),
            "verify_issuer_dn": "on" if text(form, "verify_issuer_dn") else "",
            "revocation": text(form, "revocation") or "None",
            "ca_name": text(form, "ca_name"),
        },
        tuple(v for v in form.getlist("existing_ca") if isinstance(v, str) and v),
        _uploaded(form),
        # The stored suites' order is the edited profile's: known when it is applied.
        PolicyForm.of_form(form, []),
    )


def _editor_context(view: dict[str, Any], form: ProfileForm, _adding: bool) -> dict[str, Any]:
    ticked = {name.casefold() for name in form.trusted}
    choices = policy_choices(view)
    choices["policy_types"] = [(GATEWAY_POLICY, "The gateway's SSL policy")] + choices[
        "policy_types"
    ]
    return {
        "values": form.values,
        "policy": form.policy,
        **choices,
        "certificates": [
            (
                c["name"],
                c["properties"].get("clientCertIssuerDN") or "",
                c["name"].casefold() in ticked,
            )
            for c in view["properties"].get(CLIENT_CERTIFICATES, [])
        ],
        "revocations": REVOCATION,
    }


def _check(_view: dict[str, Any], form: ProfileForm, _adding: bool) -> FormErrors:
    errors = FormErrors()
    if not form.values["profile_name"]:
        errors.add("profile_name", "Enter a name for the SSL profile.")
    if form.upload is not None:
        CA.check(form.upload, errors)
    return errors


def _apply(
    document: dict[str, Any],
    gateway_id: GatewayId,
    form: ProfileForm,
    previous: dict[str, Any] | None,
) -> FieldMapping:
    name = form.values["profile_name"]
    stored = (previous or {}).get("properties", {})
    form.policy.stored_order = list((stored.get("sslPolicy") or {}).get("cipherSuites") or [])
    uploaded = CA.apply(form.upload, document, CLIENT_CERTIFICATES) if form.upload else None
    trusted = list(form.trusted)
    if uploaded and uploaded.casefold() not in {t.casefold() for t in trusted}:
        trusted.append(uploaded)
    auth: dict[str, Any] = {
        "verifyClientCertIssuerDN": form.values["verify_issuer_dn"] == "on",
        "verifyClientRevocation": form.values["revocation"],
    }
    # Not on Azure's form (Strict or Passthrough): kept as the API set it.
    mode = (stored.get("clientAuthConfiguration") or {}).get("verifyClientAuthMode")
    if mode:
        auth["verifyClientAuthMode"] = mode
    properties: dict[str, Any] = {
        "trustedClientCertificates": [ref(gateway_id, CLIENT_CERTIFICATES, t) for t in trusted],
        "clientAuthConfiguration": auth,
    }
    if form.policy.policy_type != GATEWAY_POLICY:
        policy = form.policy.policy()
        properties["sslPolicy"] = {k: v for k, v in policy.items() if v is not None}
    save_child(document, PROFILES, {"name": name, "properties": properties}, previous)
    return _profile_mapping(name, uploaded)


def _profile_mapping(profile: str, uploaded: str | None) -> FieldMapping:
    def field(resource: str, path: str) -> str | None:
        found = _ca_field(uploaded, resource, path)
        if found is not None:
            return found
        collection, child = child_of(resource)
        if collection != PROFILES or child.casefold() != profile.casefold():
            return None
        if path in ("name", "id"):
            return "profile_name"
        if path.startswith("properties.sslPolicy"):
            return policy_field(path.removeprefix("properties.sslPolicy"))
        if path.startswith("properties.trustedClientCertificates"):
            return "existing_ca"
        if path.endswith("verifyClientRevocation"):
            return "revocation"
        if path.startswith("properties.clientAuthConfiguration"):
            return "verify_issuer_dn"
        return None

    return field


def _listeners_using(view: dict[str, Any], profile: dict[str, Any]) -> list[str]:
    return [
        listener["name"]
        for listener in view["properties"].get("httpListeners", [])
        if name_of(listener["properties"].get("sslProfile")).casefold()
        == profile["name"].casefold()
    ]


def _profile_refusal(view: dict[str, Any], profile: dict[str, Any]) -> str:
    users = _listeners_using(view, profile)
    if not users:
        return ""
    return f" Listeners using it: {', '.join(users)}; turn its SSL profile off there first."


PROFILE_BLADE = ChildScreen(
    screen="sslprofiles",
    collection=PROFILES,
    noun="SSL profile",
    name_field="profile_name",
    list_context=settings_page,
    editor_context=_editor_context,
    blank_form=_blank,
    form_of_child=_of_profile,
    form_of_post=_of_post,
    child_name=lambda form: form.values["profile_name"],
    apply=_apply,
    check=_check,
    delete_refusal=_profile_refusal,
    menu="ssl",
)


# --- trusted client certificates -----------------------------------------------------------------


def _blank_certificate(_view: dict[str, Any]) -> FieldsForm:
    return FieldsForm(CA.values(""))


def _of_certificate(_view: dict[str, Any], certificate: dict[str, Any]) -> FieldsForm:
    return FieldsForm({**CA.values(""), "ca_name": certificate["name"]})


def _certificate_of_post(form: FormData, name: str | None) -> FieldsForm:
    values = {key: text(form, key) for key in CA.fields}
    values["ca_choice"] = "upload"  # this form only uploads
    if name is not None:
        values["ca_name"] = name
    chosen = CA.posted(form)
    return FieldsForm(values, ChosenCertificate(True, "", values["ca_name"], chosen.data, ""))


def _certificate_editor_context(
    view: dict[str, Any], form: FieldsForm, adding: bool
) -> dict[str, Any]:
    found = None if adding else find_child(view, CLIENT_CERTIFICATES, form.values["ca_name"])
    issuer = (found or {}).get("properties", {}).get("clientCertIssuerDN") or ""
    return {"values": form.values, "issuer_dn": issuer}


def _certificate_check(_view: dict[str, Any], form: FieldsForm, _adding: bool) -> FormErrors:
    errors = FormErrors()
    if form.certificate is not None:
        CA.check(form.certificate, errors)
    return errors


def _certificate_apply(
    document: dict[str, Any],
    _gateway_id: GatewayId,
    form: FieldsForm,
    _previous: dict[str, Any] | None,
) -> FieldMapping:
    # A new file replaces the stored chain (Azure's edit uploads the certificate again).
    name = CA.apply(form.certificate, document, CLIENT_CERTIFICATES) if form.certificate else ""

    def field(resource: str, path: str) -> str | None:
        return _ca_field(name, resource, path)

    return field


def _certificate_refusal(view: dict[str, Any], certificate: dict[str, Any]) -> str:
    wanted = certificate["name"].casefold()
    users = [
        profile["name"]
        for profile in view["properties"].get(PROFILES, [])
        if any(
            name_of(reference).casefold() == wanted
            for reference in profile["properties"].get("trustedClientCertificates") or []
        )
    ]
    if not users:
        return ""
    return f" SSL profiles trusting it: {', '.join(users)}; untick it there first."


CLIENT_CERTIFICATE_BLADE = ChildScreen(
    screen="clientcertificates",
    collection=CLIENT_CERTIFICATES,
    noun="trusted client certificate",
    name_field="ca_name",
    list_context=settings_page,
    editor_context=_certificate_editor_context,
    blank_form=_blank_certificate,
    form_of_child=_of_certificate,
    form_of_post=_certificate_of_post,
    child_name=lambda form: form.values["ca_name"],
    apply=_certificate_apply,
    check=_certificate_check,
    delete_refusal=_certificate_refusal,
    menu="ssl",
)


def register(router: APIRouter, portal: Portal) -> None:
    PROFILE_BLADE.register(router, portal)
    CLIENT_CERTIFICATE_BLADE.register(router, portal)
