"""Backend settings (the older portal's "HTTP settings"): the list and Add/Edit/Delete, with the
end-to-end TLS fields: HTTPS, well-known CA or CER certificates (trusted roots on v2,
authentication certificates on v1; several of the gateway's, and another uploaded), host name
override and SNI options."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.datastructures import FormData

from appgw.model.ids import GatewayId
from appgw.portal.common import (
    GATEWAY_PATH,
    CertificateChoice,
    ChildScreen,
    FieldMapping,
    FieldsForm,
    FormErrors,
    Portal,
    child_of,
    gateway_url,
    is_v2,
    name_of,
    redirect,
    ref,
    save_child,
    text,
)
from appgw.portal.screens.rules import refused_while_used

SCREEN = "settings"
COLLECTION = "backendHttpSettingsCollection"
# Trusted root certificates (v2) and authentication certificates (v1) are uploaded as .cer.
CER = CertificateChoice(
    "cer", "Choose the .cer file to upload.", "Enter a name for the certificate."
)
_FIELDS = (
    "settings_name",
    "protocol",
    "port",
    "well_known",
    "cer_name",
    "affinity",
    "affinity_cookie_name",
    "draining",
    "drain_timeout",
    "request_timeout",
    "path",
    "host_override",
    "host_name",
    "probe",
    "sni_name",
)
# Properties the form does not show, kept when the settings are edited.
_KEPT = ("connectionDraining", "path", "probe", "dedicatedBackendConnection")


def _list_context(view: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for item in view["properties"][COLLECTION]:
        p = item["properties"]
        certificates = [
            name_of(ref_)
            for ref_ in p.get("trustedRootCertificates", [])
            + p.get("authenticationCertificates", [])
        ]
        rows.append(
            {
                "name": item["name"],
                "protocol": p.get("protocol", ""),
                "port": p.get("port", ""),
                "affinity": p.get("cookieBasedAffinity", "Disabled"),
                "timeout": p.get("requestTimeout", 20),
                "host": p.get("hostName")
                or ("(backend target)" if p.get("pickHostNameFromBackendAddress") else ""),
                "certificates": ", ".join(certificates)
                or ("Well-known CA" if p.get("protocol") == "Https" else ""),
            }
        )
    return {"rows": rows}


def _blank(_view: dict[str, Any]) -> FieldsForm:
    return FieldsForm(
        {
            "settings_name": "",
            "protocol": "Http",
            "port": "80",
            # Azure's portal defaults the well-known CA toggle to No for v2 (spec §2.5).
            "well_known": "no",
            "cer_name": "",
            "affinity": "disable",
            "affinity_cookie_name": "",
            "draining": "disable",
            "drain_timeout": "60",
            "request_timeout": "20",
            "path": "",
            "host_override": "no",
            "host_name": "",
            "probe": "",
            "sni_name": "",
            "validate_chain": "on",
            "validate_sni": "on",
        }
    )


def _of_settings(_view: dict[str, Any], settings: dict[str, Any]) -> FieldsForm:
    p = settings["properties"]
    certificates = p.get("trustedRootCertificates", []) + p.get("authenticationCertificates", [])
    draining = p.get("connectionDraining") or {}
    return FieldsForm(
        selected=tuple(name_of(certificate) for certificate in certificates),
        values={
            "settings_name": settings["name"],
            "protocol": p.get("protocol", "Http"),
            "port": str(p.get("port", "")),
            "well_known": "no" if certificates else "yes",
            "cer_name": "",
            "affinity": "enable" if p.get("cookieBasedAffinity") == "Enabled" else "disable",
            "affinity_cookie_name": p.get("affinityCookieName", ""),
            "draining": "enable" if draining.get("enabled") else "disable",
            "drain_timeout": str(draining.get("drainTimeoutInSec", 60)),
            "request_timeout": str(p.get("requestTimeout", 20)),
            "path": p.get("path", ""),
            "host_override": "specific"
            if p.get("hostName")
            else ("pick" if p.get("pickHostNameFromBackendAddress") else "no"),
            "host_name": p.get("hostName", ""),
            "probe": name_of(p.get("probe")),
            "sni_name": p.get("sniName", ""),
            "validate_chain": "" if p.get("validateCertChainAndExpiry") is False else "on",
            "validate_sni": "" if p.get("validateSNI") is False else "on",
        },
    )


def _of_post(form: FormData, name: str | None) -> FieldsForm:
    values = {key: text(form, key) for key in _FIELDS}
    for flag in ("validate_chain", "validate_sni"):
        values[flag] = "on" if text(form, flag) else ""
    if name is not None:
        values["settings_name"] = name
    selected = tuple(
        value for value in form.getlist("existing_cer") if isinstance(value, str) and value
    )
    # A file or a name means another certificate is being added besides the ticked ones.
    upload = CER.posted(form)
    certificate = upload if upload.data is not None or upload.name else None
    if values["protocol"] != "Https":
        return FieldsForm(values)
    return FieldsForm(values, certificate, selected)


def _trusts_own(view: dict[str, Any], form: FieldsForm) -> bool:
    """Whether the settings trust their own certificates (not the well-known CAs, v2 only)."""
    return form.values["protocol"] == "Https" and not (
        is_v2(view) and form.values["well_known"] == "yes"
    )


def _certificates_collection(view: dict[str, Any]) -> str:
    return "trustedRootCertificates" if is_v2(view) else "authenticationCertificates"


def _editor_context(view: dict[str, Any], form: FieldsForm, _adding: bool) -> dict[str, Any]:
    props = view["properties"]
    return {
        "values": form.values,
        "certificates": [
            (c["name"], c["name"].casefold() in {s.casefold() for s in form.selected})
            for c in props[_certificates_collection(view)]
        ],
        "probes": [("", "No custom probe")] + [(p["name"], p["name"]) for p in props["probes"]],
    }


def _check(view: dict[str, Any], form: FieldsForm, _adding: bool) -> FormErrors:
    errors = FormErrors()
    if not form.values["settings_name"]:
        errors.add("settings_name", "Enter a name for the backend settings.")
    for field, label in (("port", "backend port"), ("request_timeout", "request time-out")):
        if not form.values[field].isdigit():
            errors.add(field, f"Enter the {label} as a whole number.")
    if _trusts_own(view, form):
        if form.certificate is not None:
            CER.check(form.certificate, errors)
        elif not form.selected:
            errors.add("existing_cer", "Tick a certificate the gateway has, or upload one.")
    return errors


def _apply(
    document: dict[str, Any],
    gateway_id: GatewayId,
    form: FieldsForm,
    previous: dict[str, Any] | None,
) -> FieldMapping:
    values = form.values
    v2 = is_v2(document)
    collection = _certificates_collection(document)
    own = _trusts_own(document, form)
    certificate_name = (
        CER.apply(form.certificate, document, collection) if own and form.certificate else None
    )
    trusted = list(form.selected) if own else []
    if certificate_name and certificate_name.casefold() not in {t.casefold() for t in trusted}:
        trusted.append(certificate_name)
    properties: dict[str, Any] = {
        key: value for key, value in (previous or {}).get("properties", {}).items() if key in _KEPT
    }
    properties.update(
        {
            "port": int(values["port"]),
            "protocol": values["protocol"],
            "cookieBasedAffinity": "Enabled" if values["affinity"] == "enable" else "Disabled",
            "requestTimeout": int(values["request_timeout"]),
            "pickHostNameFromBackendAddress": values["host_override"] == "pick",
        }
    )
    if values["affinity"] == "enable" and values["affinity_cookie_name"]:
        properties["affinityCookieName"] = values["affinity_cookie_name"]
    if values["draining"] == "enable":
        properties["connectionDraining"] = {
            "enabled": True,
            "drainTimeoutInSec": int(values["drain_timeout"] or 0),
        }
    else:
        properties.pop("connectionDraining", None)
    if values["path"]:
        properties["path"] = values["path"]
    else:
        properties.pop("path", None)
    if values["host_override"] == "specific":
        properties["hostName"] = values["host_name"]
    if values["probe"]:
        properties["probe"] = ref(gateway_id, "probes", values["probe"])
    else:
        properties.pop("probe", None)
    https = values["protocol"] == "Https"
    if https and trusted:
        properties[collection] = [ref(gateway_id, collection, name) for name in trusted]
    if https and v2:
        if not values["validate_chain"]:
            properties["validateCertChainAndExpiry"] = False
        if not values["validate_sni"]:
            properties["validateSNI"] = False
        if values["sni_name"]:
            properties["sniName"] = values["sni_name"]
    settings = {"name": values["settings_name"], "properties": properties}
    save_child(document, COLLECTION, settings, previous)
    return _mapping(values["settings_name"], certificate_name)


BLADE = ChildScreen(
    screen=SCREEN,
    collection=COLLECTION,
    noun="backend settings",
    name_field="settings_name",
    list_context=_list_context,
    editor_context=_editor_context,
    blank_form=_blank,
    form_of_child=_of_settings,
    form_of_post=_of_post,
    child_name=lambda form: form.values["settings_name"],
    apply=_apply,
    check=_check,
    delete_refusal=refused_while_used(COLLECTION),
)


def register(router: APIRouter, portal: Portal) -> None:
    BLADE.register(router, portal)

    @router.get(f"{GATEWAY_PATH}/http-settings")
    def http_settings(subscription: str, resource_group: str, name: str) -> Response:
        """The v1-era name of the same blade."""
        return redirect(gateway_url(GatewayId(subscription, resource_group, name), SCREEN))


def _mapping(settings: str, certificate: str | None) -> FieldMapping:
    fields = {
        "port": "port",
        "protocol": "protocol",
        "requestTimeout": "request_timeout",
        "affinityCookieName": "affinity_cookie_name",
        "connectionDraining": "drain_timeout",
        "path": "path",
        "hostName": "host_name",
        "probe": "probe",
        "sniName": "sni_name",
        "trustedRootCertificates": "existing_cer",
        "authenticationCertificates": "existing_cer",
    }

    def field(resource: str, path: str) -> str | None:
        collection, child = child_of(resource)
        if (
            collection in ("trustedRootCertificates", "authenticationCertificates")
            and certificate
            and child.casefold() == certificate.casefold()
        ):
            return CER.field(path)
        if (
            collection == "backendHttpSettingsCollection"
            and child.casefold() == settings.casefold()
        ):
            if path in ("name", "id"):
                return "settings_name"
            key = path.removeprefix("properties.").split(".")[0].split("[")[0]
            return fields.get(key)
        return None

    return field
