"""Health probes: list, Add / edit (with Azure's "Test" before adding), delete (spec §5.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import Response
from starlette.datastructures import FormData

from appgw.control.service import GatewayService, HealthPending, ServiceError
from appgw.model.ids import GatewayId
from appgw.portal.common import (
    ChildScreen,
    FieldMapping,
    FormErrors,
    Submission,
    find_child,
    is_v2,
    name_of,
    ref,
    save_child,
    text,
)
from appgw.portal.screens.health import server_rows

COLLECTION = "probes"
SETTINGS = "backendHttpSettingsCollection"

# The form's field names, in the order the results page carries them forward.
FIELDS = (
    "name",
    "protocol",
    "host",
    "pick_host",
    "pick_port",
    "port",
    "path",
    "interval",
    "timeout",
    "threshold",
    "use_match",
    "status_codes",
    "body",
    "settings",
    "test",
    "attached_before",
)

DEFAULTS = {
    "name": "",
    "protocol": "Http",
    "host": "",
    "pick_host": "no",
    "pick_port": "yes",
    "port": "",
    "path": "/",
    "interval": "30",
    "timeout": "30",
    "threshold": "3",
    "use_match": "no",
    "status_codes": "200-399",
    "body": "",
    "settings": "",
    "test": "",
    "attached_before": "",
}

# Service property path (below the probe) -> form field.
PROBE_FIELDS = {
    "name": "name",
    "properties.protocol": "protocol",
    "properties.host": "host",
    "properties.pickHostNameFromBackendHttpSettings": "pick_host",
    "properties.port": "port",
    "properties.path": "path",
    "properties.interval": "interval",
    "properties.timeout": "timeout",
    "properties.unhealthyThreshold": "threshold",
    "properties.match.body": "body",
    "properties.match": "status_codes",
}

# On-demand probe body path -> form field.
ON_DEMAND_FIELDS = {
    "protocol": "protocol",
    "host": "host",
    "path": "path",
    "timeout": "timeout",
    "pickHostNameFromBackendHttpSettings": "pick_host",
    "match.body": "body",
    "match": "status_codes",
    "backendAddressPool": "settings",
    "backendHttpSettings": "settings",
}
ON_DEMAND_CODES = {
    "ApplicationGatewayProbeProtocolMismatch": "protocol",
    "ApplicationGatewayInvalidProbeStatusCodes": "status_codes",
    "InvalidResourceReference": "settings",
}


@dataclass
class Built:
    """What the form describes: the probe child, and the on-demand probe body (minus targets)."""

    probe: dict[str, Any]
    on_demand: dict[str, Any]
    errors: FormErrors = field(default_factory=FormErrors)


# --- pages ---------------------------------------------------------------------------------------


def _list_context(view: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for probe in view["properties"].get(COLLECTION, []):
        p = probe["properties"]
        match = p.get("match") or {}
        rows.append(
            {
                "name": probe["name"],
                "protocol": p.get("protocol", ""),
                "host": "(from backend settings)"
                if p.get("pickHostNameFromBackendHttpSettings")
                else p.get("host", ""),
                "path": p.get("path", ""),
                "port": p.get("port") or "(from backend settings)",
                "interval": p.get("interval", ""),
                "timeout": p.get("timeout", ""),
                "threshold": p.get("unhealthyThreshold", ""),
                "match": ", ".join(match.get("statusCodes") or ["200-399"])
                + (f"; body contains '{match['body']}'" if match.get("body") else ""),
                "settings": _settings_using(view, probe["name"]),
            }
        )
    return {"rows": rows}


def _editor_context(view: dict[str, Any], values: dict[str, str], adding: bool) -> dict[str, Any]:
    return {
        "values": values,
        "settings_options": _settings_options(view, None if adding else values["name"]),
    }


def _test_first(submission: Submission[dict[str, str]]) -> Response | None:
    """Azure's "Test" before a probe is saved: the results page, or the form again ("Go back to
    probe"); None when the form is to be saved."""
    blade, values = submission.blade, submission.form
    action = text(submission.posted, "action", "save")
    if action == "back":
        return submission.editor(status=200)
    if action == "save" and values["test"]:
        action = "test"  # with the box ticked, the form's only way forward is Test
    if action != "test":
        return None
    errors = _check(blade.view, values, submission.previous is None)
    if not values["settings"]:
        errors.add("settings", "Choose the backend settings whose backends the test should probe.")
    if errors:
        return submission.editor(errors)
    service = blade.portal.service
    results, errors = _test(service, blade.gateway_id, blade.view, values)
    if errors:
        return submission.editor(errors)
    return blade.page(
        "probes_test.html",
        values=values,
        fields=FIELDS,
        etag=submission.etag,
        results=results,
        action=blade.request.url.path,
        editing=submission.previous is not None,
        custom_port=is_v2(blade.view) and values["pick_port"] == "no" and bool(values["port"]),
    )


def _check(view: dict[str, Any], values: dict[str, str], adding: bool) -> FormErrors:
    errors = _build(values, None, view, is_v2(view)).errors
    if adding and values["name"] and find_child(view, COLLECTION, values["name"]):
        errors.add("name", f"A health probe named '{values['name']}' already exists.")
    return errors


def _refusal(view: dict[str, Any], probe: dict[str, Any]) -> str:
    users = _settings_using(view, probe["name"])
    if not users:
        return ""
    return (
        f" Backend settings using it: {', '.join(users)}; choose another probe (or none) for "
        "them first."
    )


# --- the form -------------------------------------------------------------------------------------


def _settings_using(view: dict[str, Any], probe_name: str) -> list[str]:
    suffix = f"/probes/{probe_name}".casefold()
    return [
        s["name"]
        for s in view["properties"].get(SETTINGS, [])
        if str((s["properties"].get("probe") or {}).get("id", "")).casefold().endswith(suffix)
    ]


def _settings_options(view: dict[str, Any], probe_name: str | None) -> list[tuple[str, str]]:
    """Azure offers only backend settings without another custom probe."""
    options = [("", "(none: attach later)")]
    for settings in view["properties"].get(SETTINGS, []):
        p = settings["properties"]
        current = name_of(p.get("probe"))
        if current and (probe_name is None or current.casefold() != probe_name.casefold()):
            continue
        label = f"{settings['name']} ({str(p.get('protocol', '')).upper()}, port {p.get('port')})"
        options.append((settings["name"], label))
    return options


def _values_of(view: dict[str, Any], probe: dict[str, Any]) -> dict[str, str]:
    p = probe["properties"]
    match = p.get("match") or {}
    users = _settings_using(view, probe["name"])
    return {
        "name": probe["name"],
        "protocol": str(p.get("protocol", "Http")),
        "host": str(p.get("host") or ""),
        "pick_host": "yes" if p.get("pickHostNameFromBackendHttpSettings") else "no",
        "pick_port": "no" if p.get("port") else "yes",
        "port": str(p.get("port") or ""),
        "path": str(p.get("path") or "/"),
        "interval": str(p.get("interval", 30)),
        "timeout": str(p.get("timeout", 30)),
        "threshold": str(p.get("unhealthyThreshold", 3)),
        "use_match": "yes" if match.get("statusCodes") or match.get("body") else "no",
        "status_codes": ", ".join(match.get("statusCodes") or ["200-399"]),
        "body": str(match.get("body") or ""),
        "settings": users[0] if users else "",
        "test": "",
        "attached_before": users[0] if users else "",
    }


def _values_from(form: FormData, name: str | None) -> dict[str, str]:
    values = {key: text(form, key, DEFAULTS[key]) for key in FIELDS}
    # Absent radios/checkboxes (or sections hidden by the page's script) fall back to defaults.
    for key in ("pick_host", "pick_port", "use_match"):
        if values[key] not in ("yes", "no"):
            values[key] = DEFAULTS[key]
    values["test"] = "1" if values["test"] else ""
    if name is not None:
        values["name"] = name  # a probe cannot be renamed
    return values


def _whole(values: dict[str, str], key: str, label: str, errors: FormErrors) -> int | None:
    raw = values[key]
    if not raw:
        errors.add(key, f"Enter the {label}.")
        return None
    try:
        return int(raw)
    except ValueError:
        errors.add(key, f"The {label} must be a whole number.")
        return None


def _build(
    values: dict[str, str], existing: dict[str, Any] | None, view: dict[str, Any], v2: bool
) -> Built:
    errors = FormErrors()
    if not values["name"]:
        errors.add("name", "Enter a name for the health probe.")
    if values["protocol"] not in ("Http", "Https"):
        errors.add("protocol", "Choose HTTP or HTTPS.")
    pick_host = values["pick_host"] == "yes"
    if not pick_host and not values["host"]:
        errors.add(
            "host", "Enter the host name to probe, or pick the host name from backend settings."
        )
    path = values["path"] or "/"
    interval = _whole(values, "interval", "interval", errors)
    timeout = _whole(values, "timeout", "timeout", errors)
    threshold = _whole(values, "threshold", "unhealthy threshold", errors)
    port: int | None = None
    if v2 and values["pick_port"] == "no":
        port = _whole(values, "port", "port", errors)
    match: dict[str, Any] | None = None
    if values["use_match"] == "yes":
        codes = [c.strip() for c in values["status_codes"].split(",") if c.strip()]
        match = {"statusCodes": codes or ["200-399"]}
        if values["body"]:
            match["body"] = values["body"]
    if values["settings"] and find_child(view, SETTINGS, values["settings"]) is None:
        errors.add("settings", f"There are no backend settings named '{values['settings']}'.")

    properties: dict[str, Any] = dict(existing["properties"]) if existing else {"minServers": 0}
    for key in ("host", "port", "match", "pickHostNameFromBackendHttpSettings"):
        properties.pop(key, None)
    properties.update(
        {
            "protocol": values["protocol"],
            "path": path,
            "interval": interval,
            "timeout": timeout,
            "unhealthyThreshold": threshold,
            "pickHostNameFromBackendHttpSettings": pick_host,
        }
    )
    if not pick_host and values["host"]:
        properties["host"] = values["host"]
    if port is not None:
        properties["port"] = port
    if match is not None:
        properties["match"] = match
    probe = {"name": values["name"], "properties": properties}
    if existing is not None:
        probe = {**existing, "properties": properties}

    on_demand: dict[str, Any] = {
        "protocol": values["protocol"],
        "path": path,
        "timeout": timeout,
        "pickHostNameFromBackendHttpSettings": pick_host,
    }
    if not pick_host and values["host"]:
        on_demand["host"] = values["host"]
    if match is not None:
        on_demand["match"] = match
    return Built(probe, on_demand, errors)


def _apply(
    document: dict[str, Any],
    gateway_id: GatewayId,
    values: dict[str, str],
    previous: dict[str, Any] | None,
) -> FieldMapping:
    """The probe into the document, attached to the settings chosen (and detached from the
    settings it was moved away from)."""
    built = _build(values, previous, document, is_v2(document))
    save_child(document, COLLECTION, built.probe, previous)
    chosen = values["settings"]
    before = values["attached_before"]
    for settings in document["properties"].get(SETTINGS, []):
        folded = settings["name"].casefold()
        if chosen and folded == chosen.casefold():
            settings["properties"]["probe"] = ref(gateway_id, COLLECTION, values["name"])
        elif before and folded == before.casefold():
            # The operator moved the probe away from the settings the form showed.
            settings["properties"].pop("probe", None)
    return _fields(gateway_id, document, values["name"])


def _fields(gateway_id: GatewayId, document: dict[str, Any], probe: str) -> FieldMapping:
    probe_id = gateway_id.child(COLLECTION, probe).casefold()
    settings_ids = {
        gateway_id.child(SETTINGS, s["name"]).casefold()
        for s in document["properties"].get(SETTINGS, [])
    }

    def mapping(resource: str, path: str) -> str | None:
        folded = resource.casefold()
        if folded == probe_id:
            for prefix, target in PROBE_FIELDS.items():
                if path == prefix or path.startswith((prefix + ".", prefix + "[")):
                    return target
            return None
        if folded in settings_ids and path.startswith("properties.probe"):
            return "settings"
        return None

    return mapping


BLADE = ChildScreen(
    screen="probes",
    collection=COLLECTION,
    noun="health probe",
    name_field="name",
    list_context=_list_context,
    editor_context=_editor_context,
    blank_form=lambda _view: dict(DEFAULTS),
    form_of_child=_values_of,
    form_of_post=_values_from,
    child_name=lambda values: values["name"],
    apply=_apply,
    check=_check,
    delete_refusal=_refusal,
    intercept=_test_first,
)
register = BLADE.register


# --- Test ---------------------------------------------------------------------------------------


def pools_for(view: dict[str, Any], settings_name: str) -> list[str]:
    """The backend pools rules send with these settings (basic rules and path maps)."""
    wanted = settings_name.casefold()
    pools: list[str] = []

    pairs: list[tuple[str, str]] = []
    properties = view["properties"]
    for rule in properties.get("requestRoutingRules", []):
        p = rule["properties"]
        pairs.append((name_of(p.get("backendAddressPool")), name_of(p.get("backendHttpSettings"))))
    for path_map in properties.get("urlPathMaps", []):
        p = path_map["properties"]
        pairs.append(
            (
                name_of(p.get("defaultBackendAddressPool")),
                name_of(p.get("defaultBackendHttpSettings")),
            )
        )
        for rule in p.get("pathRules", []):
            rp = rule["properties"]
            pairs.append(
                (name_of(rp.get("backendAddressPool")), name_of(rp.get("backendHttpSettings")))
            )
    for pool, settings in pairs:
        if (
            pool
            and settings.casefold() == wanted
            and pool.casefold() not in map(str.casefold, pools)
        ):
            pools.append(pool)
    return pools


def _test(
    service: GatewayService, gateway_id: GatewayId, view: dict[str, Any], values: dict[str, str]
) -> tuple[list[dict[str, Any]], FormErrors]:
    errors = FormErrors()
    built = _build(values, None, view, is_v2(view))
    settings = find_child(view, SETTINGS, values["settings"])
    assert settings is not None  # checked by _build
    pools = pools_for(view, settings["name"])
    if not pools:
        errors.add(
            "settings",
            f"No rule sends traffic with the backend settings '{settings['name']}', so there are "
            "no backends to test. Add a rule that uses them first.",
        )
        return [], errors
    results: list[dict[str, Any]] = []
    for pool in pools:
        body = {
            **built.on_demand,
            "backendAddressPool": ref(gateway_id, "backendAddressPools", pool),
            "backendHttpSettings": ref(gateway_id, SETTINGS, settings["name"]),
        }
        try:
            # The monitor applies a gateway saved just now before it answers.
            report = service.backend_health_on_demand(gateway_id, body)
        except HealthPending:
            errors.add(None, "The health monitor is starting; test again in a moment.")
            return [], errors
        except ServiceError as error:
            if not error.details:
                errors.add(ON_DEMAND_CODES.get(error.code), error.message)
            for detail in error.details:
                path = detail.get("target", "").partition("#")[2]
                target = next(
                    (
                        f
                        for prefix, f in ON_DEMAND_FIELDS.items()
                        if path == prefix or path.startswith((prefix + ".", prefix + "["))
                    ),
                    None,
                )
                errors.add(target, detail["message"])
            return [], errors
        servers = report["backendHealthHttpSettings"]["servers"]
        results.append(
            {
                "pool": pool,
                "settings": settings["name"],
                "rows": server_rows(servers, pool, settings),
            }
        )
    return results, errors
