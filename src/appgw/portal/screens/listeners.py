"""Listeners: the list, the listener TLS certificates, and Add/Edit/Delete listener (Basic or
Multi site, HTTP or HTTPS with an uploaded PFX or an existing certificate)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData

from appgw.certificates import public_cert_data_leaf
from appgw.model.ids import GatewayId
from appgw.portal.common import (
    CertificateChoice,
    ChildScreen,
    FieldMapping,
    FieldsForm,
    FormErrors,
    Portal,
    child_of,
    name_of,
    ref,
    save_child,
    text,
)
from appgw.portal.screens.rules import refused_while_used, rules_using
from appgw.portal.screens.waf_policies import policy_options

COLLECTION = "httpListeners"
PFX = CertificateChoice(
    "cert", "Choose the PFX certificate file to upload.", "Enter a certificate name.", password=True
)
_FIELDS = (
    "listener_name",
    "frontend_ip",
    "protocol",
    "port",
    *PFX.fields,
    "listener_type",
    "host_type",
    "host_names",
    "ssl_profile",
    "waf_policy",
)


def _list_context(view: dict[str, Any]) -> dict[str, Any]:
    props = view["properties"]
    ports = {p["id"].casefold(): p["properties"].get("port") for p in props["frontendPorts"]}
    rows = []
    for listener in props[COLLECTION]:
        p = listener["properties"]
        hosts = [p["hostName"]] if p.get("hostName") else p.get("hostNames", [])
        rows.append(
            {
                "name": listener["name"],
                "protocol": p.get("protocol", ""),
                "port": ports.get(p.get("frontendPort", {}).get("id", "").casefold(), ""),
                "type": "Multi site" if hosts else "Basic",
                "hosts": ", ".join(hosts),
                "rule": ", ".join(rules_using(view, COLLECTION, listener["name"])),
                "certificate": name_of(p.get("sslCertificate")),
            }
        )
    return {"rows": rows, "certificates": _certificates(view)}


def _blank(view: dict[str, Any]) -> FieldsForm:
    frontends = view["properties"].get("frontendIPConfigurations", [])
    return FieldsForm(
        {
            "listener_name": "",
            "frontend_ip": frontends[0]["name"] if frontends else "",
            "protocol": "Http",
            "port": "80",
            **PFX.values(""),
            "listener_type": "basic",
            "host_type": "single",
            "host_names": "",
            "ssl_profile_on": "",
            "ssl_profile": "",
            "waf_policy": "",
        }
    )


def _of_listener(view: dict[str, Any], listener: dict[str, Any]) -> FieldsForm:
    p = listener["properties"]
    port = next(
        (
            fp["properties"].get("port")
            for fp in view["properties"]["frontendPorts"]
            if fp["id"].casefold() == p.get("frontendPort", {}).get("id", "").casefold()
        ),
        "",
    )
    hosts = [p["hostName"]] if p.get("hostName") else p.get("hostNames", [])
    return FieldsForm(
        {
            "listener_name": listener["name"],
            "frontend_ip": name_of(p.get("frontendIPConfiguration")),
            "protocol": p.get("protocol", "Http"),
            "port": str(port),
            **PFX.values(name_of(p.get("sslCertificate"))),
            "listener_type": "multi" if hosts else "basic",
            "host_type": "multiple" if p.get("hostNames") else "single",
            "host_names": ", ".join(hosts),
            "ssl_profile_on": "on" if p.get("sslProfile") else "",
            "ssl_profile": name_of(p.get("sslProfile")),
            "waf_policy": str((p.get("firewallPolicy") or {}).get("id", "")),
        }
    )


def _of_post(form: FormData, name: str | None) -> FieldsForm:
    values = {key: text(form, key) for key in _FIELDS}
    values["ssl_profile_on"] = "on" if text(form, "ssl_profile_on") else ""
    if name is not None:
        values["listener_name"] = name
    certificate = PFX.posted(form) if values["protocol"] == "Https" else None
    return FieldsForm(values, certificate)


def _editor_context(view: dict[str, Any], form: FieldsForm, _adding: bool) -> dict[str, Any]:
    props = view["properties"]
    return {
        "values": form.values,
        "frontends": [(f["name"], f["name"]) for f in props["frontendIPConfigurations"]],
        "certificates": [(c["name"], c["name"]) for c in props["sslCertificates"]],
        "ssl_profiles": [(p["name"], p["name"]) for p in props.get("sslProfiles", [])],
    }


def _check(_view: dict[str, Any], form: FieldsForm, _adding: bool) -> FormErrors:
    errors = FormErrors()
    if not form.values["listener_name"]:
        errors.add("listener_name", "Enter a listener name.")
    if not form.values["port"].isdigit():
        errors.add("port", "Enter a port number.")
    if form.certificate is not None:
        PFX.check(form.certificate, errors)
    if _ssl_profile(form) == "":
        errors.add("ssl_profile", "Choose an SSL profile, or untick Enable SSL Profile.")
    return errors


def _ssl_profile(form: FieldsForm) -> str | None:
    """The SSL profile the form gives the listener ('' when enabled without one), or None."""
    values = form.values
    if values["protocol"] != "Https" or not values["ssl_profile_on"]:
        return None
    return values["ssl_profile"]


def _apply(
    document: dict[str, Any],
    gateway_id: GatewayId,
    form: FieldsForm,
    previous: dict[str, Any] | None,
) -> FieldMapping:
    values = form.values
    certificate_name = None
    if form.certificate is not None:
        certificate_name = PFX.apply(form.certificate, document, "sslCertificates")
    port_name = _frontend_port(document, int(values["port"]))
    properties: dict[str, Any] = {
        "frontendIPConfiguration": ref(
            gateway_id, "frontendIPConfigurations", values["frontend_ip"]
        ),
        "frontendPort": ref(gateway_id, "frontendPorts", port_name),
        "protocol": values["protocol"],
    }
    if certificate_name:
        properties["sslCertificate"] = ref(gateway_id, "sslCertificates", certificate_name)
    profile = _ssl_profile(form)
    if profile:
        properties["sslProfile"] = ref(gateway_id, "sslProfiles", profile)
    if values["listener_type"] == "multi":
        names = [n.strip() for n in values["host_names"].split(",") if n.strip()]
        if values["host_type"] == "multiple":
            properties["hostNames"] = names
        elif names:
            properties["hostName"] = names[0]
        properties["requireServerNameIndication"] = values["protocol"] == "Https"
    if values["waf_policy"]:
        properties["firewallPolicy"] = {"id": values["waf_policy"]}
    listener = {"name": values["listener_name"], "properties": properties}
    save_child(document, COLLECTION, listener, previous)
    return _mapping(values["listener_name"], certificate_name, port_name)


BLADE = ChildScreen(
    screen="listeners",
    collection=COLLECTION,
    noun="listener",
    name_field="listener_name",
    list_context=_list_context,
    editor_context=_editor_context,
    blank_form=_blank,
    form_of_child=_of_listener,
    form_of_post=_of_post,
    child_name=lambda form: form.values["listener_name"],
    apply=_apply,
    check=_check,
    delete_refusal=refused_while_used(COLLECTION),
)


def register(router: APIRouter, portal: Portal) -> None:
    """The blade, its editor offering the WAF policies of the gateway's subscription."""

    def editor_context(view: dict[str, Any], form: FieldsForm, adding: bool) -> dict[str, Any]:
        context = _editor_context(view, form, adding)
        chosen = form.values.get("waf_policy", "")
        sku = str((view["properties"].get("sku") or {}).get("name", ""))
        options: list[tuple[str, str]] = []
        gateway_id = GatewayId.parse(str(view["id"]))
        if gateway_id is not None and (sku == "WAF_v2" or chosen):
            options = policy_options(portal, gateway_id.subscription)
        if chosen and chosen.casefold() not in {o.casefold() for o, _ in options}:
            options.append((chosen, chosen))
        context["waf_policies"] = options
        return context

    replace(BLADE, editor_context=editor_context).register(router, portal)


def _frontend_port(document: dict[str, Any], port: int) -> str:
    """The frontend port entry for this number, created with the portal's name if missing."""
    for entry in document["properties"]["frontendPorts"]:
        if entry["properties"].get("port") == port:
            return str(entry["name"])
    name = f"port_{port}"
    document["properties"]["frontendPorts"].append({"name": name, "properties": {"port": port}})
    return name


def _mapping(listener: str, certificate: str | None, port_name: str) -> FieldMapping:
    def field(resource: str, path: str) -> str | None:
        collection, child = child_of(resource)
        if (
            collection == "sslCertificates"
            and certificate
            and child.casefold() == certificate.casefold()
        ):
            return PFX.field(path)
        if collection == "frontendPorts" and child == port_name:
            return "port"
        if collection == "httpListeners" and child.casefold() == listener.casefold():
            if path in ("name", "id"):
                return "listener_name"
            if "hostName" in path or "hostNames" in path:
                return "host_names"
            if "sslCertificate" in path:
                return "existing_cert"
            if "sslProfile" in path:
                return "ssl_profile"
            if "frontendPort" in path:
                return "port"
            if "protocol" in path:
                return "protocol"
            if "firewallPolicy" in path:
                return "waf_policy"
        return None

    return field


def _certificates(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Listener TLS certificates with what their public data says (subject, expiry)."""
    users: dict[str, list[str]] = {}
    for listener in view["properties"]["httpListeners"]:
        cert = (listener["properties"].get("sslCertificate") or {}).get("id", "")
        users.setdefault(cert.casefold(), []).append(listener["name"])
    rows = []
    for cert in view["properties"]["sslCertificates"]:
        subject = expires = ""
        data = cert["properties"].get("publicCertData")
        info = public_cert_data_leaf(data) if data else None
        if info is not None:
            subject = info.subject
            expires = info.not_after.date().isoformat()
        rows.append(
            {
                "name": cert["name"],
                "type": "Uploaded",
                "subject": subject,
                "expires": expires,
                "listeners": ", ".join(users.get(cert["id"].casefold(), [])),
            }
        )
    return rows
