"""Backend settings (the older portal's "HTTP settings"): the list and Add/Edit, with the
end-to-end TLS fields: HTTPS, well-known CA or an uploaded CER (trusted root on v2,
authentication certificate on v1), host name override and SNI options."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from appgw.model.ids import GatewayId
from appgw.portal.common import (
    Blade,
    CertificateChoice,
    FormErrors,
    Portal,
    child_of,
    copy_of,
    find_child,
    gateway_url,
    is_v2,
    name_of,
    put_child,
    redirect,
    ref,
    text,
)

SCREEN = "settings"
PATH = "/portal/gateways/{subscription}/{resource_group}/{name}/settings"
# Trusted root certificates (v2) and authentication certificates (v1) are uploaded as .cer.
CER = CertificateChoice(
    "cer", "Choose the .cer file to upload.", "Enter a name for the certificate."
)


def register(app: FastAPI, portal: Portal) -> None:
    @app.get(
        "/portal/gateways/{subscription}/{resource_group}/{name}/http-settings",
        include_in_schema=False,
    )
    def http_settings(subscription: str, resource_group: str, name: str) -> Response:
        """The v1-era name of the same blade."""
        return redirect(gateway_url(GatewayId(subscription, resource_group, name), SCREEN))

    @app.get(PATH, include_in_schema=False, response_class=HTMLResponse)
    def settings_list(
        request: Request, subscription: str, resource_group: str, name: str
    ) -> Response:
        blade = portal.opened(request, subscription, resource_group, name, SCREEN)
        rows = []
        for item in blade.view["properties"]["backendHttpSettingsCollection"]:
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
        return blade.page("settings.html", rows=rows)

    @app.get(PATH + "/edit", include_in_schema=False, response_class=HTMLResponse)
    def edit_page(
        request: Request, subscription: str, resource_group: str, name: str, settings: str = ""
    ) -> Response:
        blade = portal.opened(request, subscription, resource_group, name, SCREEN)
        return _form(blade, _values(blade.view, settings), None)

    @app.post(PATH + "/edit", include_in_schema=False)
    async def save(request: Request, subscription: str, resource_group: str, name: str) -> Response:
        blade, form = await portal.submitted(request, subscription, resource_group, name, SCREEN)
        gateway_id, view = blade.gateway_id, blade.view
        values = {key: text(form, key) for key in _FIELDS}
        for flag in ("validate_chain", "validate_sni"):
            values[flag] = "on" if text(form, flag) else ""
        v2 = is_v2(view)
        errors = FormErrors()
        document = copy_of(view)
        settings_name = values["settings_name"]
        if not settings_name:
            errors.add("settings_name", "Enter a name for the backend settings.")
        for field, label in (("port", "backend port"), ("request_timeout", "request time-out")):
            if not values[field].isdigit():
                errors.add(field, f"Enter the {label} as a whole number.")
        collection = "trustedRootCertificates" if v2 else "authenticationCertificates"
        certificate_name: str | None = None
        https = values["protocol"] == "Https"
        if https and not (v2 and values["well_known"] == "yes"):
            certificate_name = await CER.read(form, document, collection, errors)
        if errors:
            return _form(blade, values, errors)
        existing = find_child(view, "backendHttpSettingsCollection", settings_name)
        properties: dict[str, Any] = {
            key: value
            for key, value in (existing or {}).get("properties", {}).items()
            if key in ("connectionDraining", "path", "probe", "dedicatedBackendConnection")
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
        if https and certificate_name:
            properties[collection] = [ref(gateway_id, collection, certificate_name)]
        if https and v2:
            if not values["validate_chain"]:
                properties["validateCertChainAndExpiry"] = False
            if not values["validate_sni"]:
                properties["validateSNI"] = False
            if values["sni_name"]:
                properties["sniName"] = values["sni_name"]
        put_child(
            document,
            "backendHttpSettingsCollection",
            {"name": settings_name, "properties": properties},
        )
        errors = blade.save(document, _mapping(settings_name, certificate_name))
        if errors:
            return _form(blade, values, errors)
        return blade.done(f"Backend settings '{settings_name}' saved.")


_FIELDS = (
    "editing",
    "settings_name",
    "protocol",
    "port",
    "well_known",
    *CER.fields,
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


def _values(view: dict[str, Any], name: str) -> dict[str, str]:
    values = {
        "settings_name": "",
        "protocol": "Http",
        "port": "80",
        # Azure's portal defaults the well-known CA toggle to No for v2 (spec §2.5).
        "well_known": "no",
        **CER.values(""),
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
        "editing": "",
    }
    settings = find_child(view, "backendHttpSettingsCollection", name) if name else None
    if settings is not None:
        p = settings["properties"]
        certificates = p.get("trustedRootCertificates", []) + p.get(
            "authenticationCertificates", []
        )
        draining = p.get("connectionDraining") or {}
        values.update(
            {
                "settings_name": settings["name"],
                "protocol": p.get("protocol", "Http"),
                "port": str(p.get("port", "")),
                "well_known": "no" if certificates else "yes",
                **CER.values(name_of(certificates[0] if certificates else None)),
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
                "editing": settings["name"],
            }
        )
    return values


def _form(blade: Blade, values: dict[str, str], errors: FormErrors | None) -> Response:
    props = blade.view["properties"]
    v2 = is_v2(blade.view)
    collection = "trustedRootCertificates" if v2 else "authenticationCertificates"
    return blade.page(
        "settings_form.html",
        values=values,
        errors=errors,
        certificates=[(c["name"], c["name"]) for c in props.get(collection, [])],
        probes=[("", "No custom probe")] + [(p["name"], p["name"]) for p in props["probes"]],
    )


def _mapping(settings: str, certificate: str | None) -> Any:
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
