"""Listeners: the list, the listener TLS certificates, and Add/Edit listener (Basic or
Multi site, HTTP or HTTPS with an uploaded PFX or an existing certificate)."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives.serialization import pkcs7
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from appgw.certificates import inspect_certificate
from appgw.portal.common import (
    Blade,
    CertificateChoice,
    FormErrors,
    Portal,
    child_of,
    copy_of,
    find_child,
    name_of,
    put_child,
    ref,
    text,
)

SCREEN = "listeners"
PATH = "/portal/gateways/{subscription}/{resource_group}/{name}/listeners"
PFX = CertificateChoice(
    "cert", "Choose the PFX certificate file to upload.", "Enter a certificate name.", password=True
)


def register(app: FastAPI, portal: Portal) -> None:
    @app.get(PATH, include_in_schema=False, response_class=HTMLResponse)
    def listeners(request: Request, subscription: str, resource_group: str, name: str) -> Response:
        blade = portal.opened(request, subscription, resource_group, name, SCREEN)
        props = blade.view["properties"]
        ports = {p["id"].casefold(): p["properties"].get("port") for p in props["frontendPorts"]}
        rules = {
            r["properties"]["httpListener"]["id"].casefold(): r["name"]
            for r in props["requestRoutingRules"]
            if r["properties"].get("httpListener")
        }
        rows = []
        for listener in props["httpListeners"]:
            p = listener["properties"]
            hosts = [p["hostName"]] if p.get("hostName") else p.get("hostNames", [])
            rows.append(
                {
                    "name": listener["name"],
                    "protocol": p.get("protocol", ""),
                    "port": ports.get(p.get("frontendPort", {}).get("id", "").casefold(), ""),
                    "type": "Multi site" if hosts else "Basic",
                    "hosts": ", ".join(hosts),
                    "rule": rules.get(listener["id"].casefold(), ""),
                    "certificate": name_of(p.get("sslCertificate")),
                }
            )
        return blade.page("listeners.html", rows=rows, certificates=_certificates(blade.view))

    @app.get(PATH + "/edit", include_in_schema=False, response_class=HTMLResponse)
    def edit_page(
        request: Request, subscription: str, resource_group: str, name: str, listener: str = ""
    ) -> Response:
        blade = portal.opened(request, subscription, resource_group, name, SCREEN)
        return _form(blade, _values(blade.view, listener), None)

    @app.post(PATH + "/edit", include_in_schema=False)
    async def save(request: Request, subscription: str, resource_group: str, name: str) -> Response:
        blade, form = await portal.submitted(request, subscription, resource_group, name, SCREEN)
        values = {key: text(form, key) for key in _FIELDS}
        errors = FormErrors()
        document = copy_of(blade.view)
        listener_name = values["listener_name"]
        if not listener_name:
            errors.add("listener_name", "Enter a listener name.")
        port_text = values["port"]
        if not port_text.isdigit():
            errors.add("port", "Enter a port number.")
        certificate_name: str | None = None
        if values["protocol"] == "Https":
            certificate_name = await PFX.read(form, document, "sslCertificates", errors)
        if errors:
            return _form(blade, values, errors)
        gateway_id = blade.gateway_id
        port_name = _frontend_port(document, int(port_text))
        properties: dict[str, Any] = {
            "frontendIPConfiguration": ref(
                gateway_id, "frontendIPConfigurations", values["frontend_ip"]
            ),
            "frontendPort": ref(gateway_id, "frontendPorts", port_name),
            "protocol": values["protocol"],
        }
        if certificate_name:
            properties["sslCertificate"] = ref(gateway_id, "sslCertificates", certificate_name)
        if values["listener_type"] == "multi":
            names = [n.strip() for n in values["host_names"].split(",") if n.strip()]
            if values["host_type"] == "multiple":
                properties["hostNames"] = names
            elif names:
                properties["hostName"] = names[0]
            properties["requireServerNameIndication"] = values["protocol"] == "Https"
        put_child(document, "httpListeners", {"name": listener_name, "properties": properties})
        errors = blade.save(document, _mapping(listener_name, certificate_name, port_name))
        if errors:
            return _form(blade, values, errors)
        return blade.done(f"Listener '{listener_name}' saved.")


_FIELDS = (
    "editing",
    "listener_name",
    "frontend_ip",
    "protocol",
    "port",
    *PFX.fields,
    "listener_type",
    "host_type",
    "host_names",
)


def _values(view: dict[str, Any], listener_name: str) -> dict[str, str]:
    props = view["properties"]
    frontends = props.get("frontendIPConfigurations", [])
    values = {
        "listener_name": "",
        "frontend_ip": frontends[0]["name"] if frontends else "",
        "protocol": "Http",
        "port": "80",
        **PFX.values(""),
        "listener_type": "basic",
        "host_type": "single",
        "host_names": "",
        "editing": "",
    }
    listener = find_child(view, "httpListeners", listener_name) if listener_name else None
    if listener is not None:
        p = listener["properties"]
        port = next(
            (
                fp["properties"].get("port")
                for fp in props["frontendPorts"]
                if fp["id"].casefold() == p.get("frontendPort", {}).get("id", "").casefold()
            ),
            "",
        )
        hosts = [p["hostName"]] if p.get("hostName") else p.get("hostNames", [])
        values.update(
            {
                "listener_name": listener["name"],
                "frontend_ip": name_of(p.get("frontendIPConfiguration")),
                "protocol": p.get("protocol", "Http"),
                "port": str(port),
                **PFX.values(name_of(p.get("sslCertificate"))),
                "listener_type": "multi" if hosts else "basic",
                "host_type": "multiple" if p.get("hostNames") else "single",
                "host_names": ", ".join(hosts),
                "editing": listener["name"],
            }
        )
    return values


def _form(blade: Blade, values: dict[str, str], errors: FormErrors | None) -> Response:
    props = blade.view["properties"]
    return blade.page(
        "listeners_form.html",
        values=values,
        errors=errors,
        frontends=[(f["name"], f["name"]) for f in props["frontendIPConfigurations"]],
        certificates=[(c["name"], c["name"]) for c in props["sslCertificates"]],
    )


def _frontend_port(document: dict[str, Any], port: int) -> str:
    """The frontend port entry for this number, created with the portal's name if missing."""
    for entry in document["properties"]["frontendPorts"]:
        if entry["properties"].get("port") == port:
            return str(entry["name"])
    name = f"port_{port}"
    document["properties"]["frontendPorts"].append({"name": name, "properties": {"port": port}})
    return name


def _mapping(listener: str, certificate: str | None, port_name: str) -> Any:
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
            if "frontendPort" in path:
                return "port"
            if "protocol" in path:
                return "protocol"
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
        if data:
            certificates = pkcs7.load_der_pkcs7_certificates(base64.b64decode(data))
            leaf = next((c for c in certificates if not inspect_certificate(c).is_ca), None)
            if leaf is not None:
                info = inspect_certificate(leaf)
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
