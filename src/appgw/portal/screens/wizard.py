"""Create application gateway: Azure's wizard (spec §5.1), tab by tab, with the default names of
spec §5.4. The tabs are sections of one form, posted at each step: Next checks the tabs it
leaves behind, Previous checks nothing, Review + create runs every check of a PUT without
writing and shows what will be created, and Create writes the gateway: the quick-create
document (as `appgw create` makes it) of what the form says, in one PUT through the service with
If-None-Match "*". Uploaded files stay as the session's drafts between steps (portal.drafts)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from appgw.control.service import Caller, ServiceError
from appgw.hostnames import is_ip_address
from appgw.model.ids import (
    GATEWAY_NAME,
    RESOURCE_GROUP_NAME,
    SUBSCRIPTION_ID,
    GatewayId,
    parse_child_ref,
)
from appgw.model.quick_create import ListenerCertificate, QuickCreate, quick_create_document
from appgw.model.validate import MAX_TAGS, tag_problems
from appgw.portal.common import (
    FormErrors,
    Portal,
    certificate_field,
    gateway_url,
    place_problems,
    redirect,
    text,
    upload,
)
from appgw.portal.sessions import Session

URL = "/portal/create"
PORTAL_REQUEST_TIMEOUT = 20  # seconds; what Azure's portal proposes (az's is 30)

TIERS = (
    ("Standard_v2", "Standard V2"),
    ("WAF_v2", "WAF V2"),
    ("Standard", "Standard (v1)"),
    ("WAF", "WAF (v1)"),
)
V1_TIERS = ("Standard", "WAF")
# Standard (v1) comes in sizes (sku.name Standard_Small...); v2 has none. Azure preselects Medium.
V1_SIZES = (("Small", "Small"), ("Medium", "Medium"), ("Large", "Large"))
MIN_TARGET_ROWS = 4
MIN_TAG_ROWS = 3

# Azure's tabs, in order: (step, title).
TABS = (
    ("basics", "Basics"),
    ("frontends", "Frontends"),
    ("backends", "Backends"),
    ("configuration", "Configuration"),
    ("tags", "Tags"),
    ("review", "Review + create"),
)
STEPS = tuple(step for step, _title in TABS)
_FIELD_STEPS = {
    **dict.fromkeys(
        (
            "subscription",
            "resource_group",
            "gateway_name",
            "region",
            "tier",
            "size",
            "capacity",
            "http2",
        ),
        "basics",
    ),
    **dict.fromkeys(("frontend_type", "public_ip_name", "private_ip"), "frontends"),
    **dict.fromkeys(("pool_name", "pool_empty", "targets"), "backends"),
}

DEFAULTS: dict[str, str] = {
    "subscription": "default",
    "resource_group": "",
    "gateway_name": "",
    "region": "local",
    "tier": "Standard_v2",
    "size": "Medium",
    "capacity": "2",
    "http2": "Disabled",
    "frontend_type": "Private",
    "public_ip_name": "",
    "private_ip": "127.0.0.1",
    "pool_name": "appGatewayBackendPool",
    "pool_empty": "",
    "rule_name": "rule1",
    "priority": "100",
    "listener_name": "appGatewayHttpListener",
    "listener_protocol": "Http",
    "listener_port_http": "80",
    "listener_port_https": "443",
    "cert_name": "",
    "listener_type": "Basic",
    "host_name": "",
    "settings_name": "appGatewayBackendHttpSettings",
    "settings_protocol": "Http",
    "settings_port_http": "80",
    "settings_port_https": "443",
    "well_known": "yes",
    "backend_cer_name": "",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "tier": tuple(value for value, _label in TIERS),
    "size": tuple(value for value, _label in V1_SIZES),
    "http2": ("Disabled", "Enabled"),
    "frontend_type": ("Public", "Private"),
    "listener_protocol": ("Http", "Https"),
    "listener_type": ("Basic", "MultiSite"),
    "settings_protocol": ("Http", "Https"),
    "well_known": ("yes", "no"),
}


@dataclass
class Wizard:
    """The form as entered (never passwords or files) and where each target row went."""

    values: dict[str, str]
    targets: list[str]
    tags: list[tuple[str, str]] = field(default_factory=list)  # (name, value) rows as typed
    errors: FormErrors = field(default_factory=FormErrors)
    target_rows: list[int] = field(default_factory=list)  # backendAddresses[i] -> row

    @property
    def v2(self) -> bool:
        return self.values["tier"] not in V1_TIERS

    def port_field(self, prefix: str) -> str:
        protocol = self.values[f"{prefix}_protocol"]
        return f"{prefix}_port_{'https' if protocol == 'Https' else 'http'}"

    def tag_row(self, name: str) -> str:
        """The name field of the row that typed tag `name`."""
        for row, (typed, _value) in enumerate(self.tags):
            if typed.strip() == name:
                return f"tag_name_{row}"
        return "tags"

    def steps_with_errors(self) -> list[str]:
        """The tabs that show a problem, in the wizard's order."""
        found = {step_of(name) for name in self.errors.fields}
        if self.errors.general:
            found.add("review")
        return [step for step in STEPS if step in found]

    def keep_errors_before(self, step: str) -> None:
        """Only the problems of the tabs before `step`: those it takes to go there."""
        limit = STEPS.index(step)
        for name in [n for n in self.errors.fields if STEPS.index(step_of(n)) >= limit]:
            del self.errors.fields[name]
        self.errors.general.clear()  # the service's, which only Create and Review ask


def step_of(field_name: str) -> str:
    """The tab that holds form field `field_name`."""
    if field_name.startswith("target_"):
        return "backends"
    if field_name.startswith("tag_") or field_name == "tags":
        return "tags"
    return _FIELD_STEPS.get(field_name, "configuration")


def register(router: APIRouter, portal: Portal) -> None:
    @router.get(URL)
    def wizard_page(request: Request) -> Response:
        session = portal.session(request)
        wizard = Wizard(dict(DEFAULTS), [])
        return _page(_Step(portal, request, session, FormData()), wizard, "basics")

    @router.post(URL)
    async def wizard_step(request: Request) -> Response:
        session = portal.session(request)
        form = await portal.form(request, session)
        # The uploads are read and the service asked in a worker thread: both block.
        return await run_in_threadpool(_step, portal, request, session, form)


@dataclass(frozen=True)
class _Step:
    """One post of the wizard: its form and what came with it."""

    portal: Portal
    request: Request
    session: Session
    form: FormData

    @property
    def caller(self) -> Caller:
        client = self.request.client
        return Caller(self.session.caller, client.host if client else None)


def _step(portal: Portal, request: Request, session: Session, form: FormData) -> Response:
    post = _Step(portal, request, session, form)
    wizard = _read(form)
    shown = text(form, "step")
    shown = shown if shown in STEPS else "basics"
    # A form posted without a step button (a script, or a browser's Enter before the page had
    # one) asks to create, as the one-page form did.
    go = text(form, "go") or "create"
    if go == "create":
        return _create(post, wizard)
    target = go if go in STEPS else shown
    if STEPS.index(target) <= STEPS.index(shown):  # Previous, or a tab already passed
        return _page(post, wizard, target)
    gateway_id, document = _checked(wizard, form)
    wizard.keep_errors_before(target)
    if not wizard.errors and gateway_id is not None and STEPS.index(target) > 0:
        _name_is_free(post, wizard, gateway_id)
    if wizard.errors:
        return _page(post, wizard, wizard.steps_with_errors()[0], status=400)
    if target != "review":
        return _page(post, wizard, target)
    assert gateway_id is not None and document is not None, "checked above"
    try:
        post.portal.service.validate(gateway_id, document)
    except ServiceError as error:
        _explain(wizard, gateway_id, error)
        return _page(post, wizard, wizard.steps_with_errors()[0], status=error.status)
    return _page(post, wizard, "review", summary=review_summary(gateway_id, document))


def _create(post: _Step, wizard: Wizard) -> Response:
    gateway_id, document = _checked(wizard, post.form)
    if wizard.errors or gateway_id is None or document is None:
        return _page(post, wizard, wizard.steps_with_errors()[0], status=400)
    try:
        post.portal.service.put(gateway_id, document, post.caller, if_none_match="*")
    except ServiceError as error:
        _explain(wizard, gateway_id, error)
        return _page(post, wizard, wizard.steps_with_errors()[0], status=error.status)
    post.session.flash.append(
        f"Created application gateway '{gateway_id.name}' in resource group "
        f"'{gateway_id.resource_group}'."
    )
    return redirect(gateway_url(gateway_id, "overview"))


def _checked(wizard: Wizard, form: FormData) -> tuple[GatewayId | None, dict[str, Any] | None]:
    """The gateway and the document the form describes, after the form's own checks (every
    tab's; `wizard.errors` says what is missing or malformed)."""
    gateway_id = _gateway_id(wizard)
    options = _options(wizard, form, upload(form, "cert_file"), upload(form, "backend_cer"))
    if wizard.errors or gateway_id is None or options is None:
        return gateway_id, None
    return gateway_id, quick_create_document(gateway_id, options)


def _name_is_free(post: _Step, wizard: Wizard, gateway_id: GatewayId) -> None:
    """Azure checks the name on Basics: a taken one is said there, not at the end."""
    try:
        post.portal.service.get(gateway_id)
    except ServiceError as error:
        if error.status == 404:
            return
        raise
    _name_taken(wizard, gateway_id)


def _page(
    post: _Step,
    wizard: Wizard,
    step: str,
    *,
    status: int = 200,
    summary: Summary | None = None,
) -> Response:
    filled = [target for target in wizard.targets if target]
    rows = filled + [""] * max(MIN_TARGET_ROWS - len(filled), 1)
    tags = [(n, v) for n, v in wizard.tags if n or v]
    tags += [("", "")] * max(MIN_TAG_ROWS - len(tags), 1)
    index = STEPS.index(step)
    return post.portal.render(
        post.request,
        "wizard.html",
        post.session,
        status=status,
        values=wizard.values,
        errors=wizard.errors,
        targets=rows,
        tags=tags[: MAX_TAGS + 1],
        tiers=TIERS,
        sizes=V1_SIZES,
        action=URL,
        tabs=TABS,
        step=step,
        previous_step=STEPS[index - 1] if index > 0 else None,
        next_step=TABS[index + 1] if index + 1 < len(TABS) else None,
        steps_with_errors=wizard.steps_with_errors(),
        # The tab of each field with a problem, for those the summary cannot link to.
        error_tabs={name: dict(TABS)[step_of(name)] for name in wizard.errors.fields},
        summary=summary,
    )


# --- Review + create: what will be created -----------------------------------------------------

Summary = list[tuple[str, list[tuple[str, str]]]]  # (tab, [(label, value)])


def review_summary(gateway_id: GatewayId, document: dict[str, Any]) -> Summary:
    """Everything the Create button writes, tab by tab, read back from the document itself (not
    from the form): the review shows what will be stored."""
    props = document["properties"]
    sku = props["sku"]
    tiers = dict(TIERS)
    frontend = props["frontendIPConfigurations"][0]
    address = frontend["properties"].get("privateIPAddress")
    public = frontend["properties"].get("publicIPAddress")
    pool = props["backendAddressPools"][0]
    targets = [
        a.get("ipAddress") or a.get("fqdn", "") for a in pool["properties"]["backendAddresses"]
    ]
    listener = props["httpListeners"][0]
    lp = listener["properties"]
    hosts = lp.get("hostNames") or ([lp["hostName"]] if lp.get("hostName") else [])
    settings = props["backendHttpSettingsCollection"][0]
    sp = settings["properties"]
    rule = props["requestRoutingRules"][0]
    basics = [
        ("Subscription", gateway_id.subscription),
        ("Resource group", gateway_id.resource_group),
        ("Name", gateway_id.name),
        ("Region", document["location"]),
        ("Tier", tiers.get(sku["tier"], sku["tier"])),
        ("SKU", sku["name"]),
        ("Instance count", str(sku.get("capacity", ""))),
        ("HTTP2", "Enabled" if props.get("enableHttp2") else "Disabled"),
    ]
    frontends = [
        ("Frontend IP configuration", frontend["name"]),
        (
            "Private IP address" if address else "Public IP address",
            address or _last_segment(public["id"]),
        ),
        ("Frontend port", f"{props['frontendPorts'][0]['properties']['port']}"),
    ]
    backends = [
        ("Backend pool", pool["name"]),
        ("Targets", ", ".join(targets) if targets else "None (added without targets)"),
    ]
    configuration = [("Routing rule", rule["name"])]
    if "priority" in rule["properties"]:
        configuration.append(("Priority", str(rule["properties"]["priority"])))
    configuration += [
        ("Listener", f"{listener['name']} ({lp['protocol'].upper()})"),
        ("Listener type", f"Multiple sites: {', '.join(hosts)}" if hosts else "Basic"),
    ]
    if "sslCertificate" in lp:
        configuration.append(("Listener certificate", _last_segment(lp["sslCertificate"]["id"])))
    configuration += [
        ("Backend settings", f"{settings['name']} ({sp['protocol'].upper()}, port {sp['port']})"),
        ("Request time-out", f"{sp['requestTimeout']} seconds"),
        ("Cookie-based affinity", sp["cookieBasedAffinity"]),
    ]
    if sp["protocol"] == "Https":
        for key, label in (
            ("trustedRootCertificates", "Trusted root certificate"),
            ("authenticationCertificates", "Authentication certificate"),
        ):
            for reference in sp.get(key, []):
                configuration.append((label, _last_segment(reference["id"])))
        if not sp.get("trustedRootCertificates") and not sp.get("authenticationCertificates"):
            configuration.append(("Trusted root certificate", "Well-known CA certificates"))
    configuration.append(("Health probe", "The default probe of the backend settings"))
    tags = [(name, value) for name, value in sorted(document.get("tags", {}).items())]
    return [
        ("Basics", basics),
        ("Frontends", frontends),
        ("Backends", backends),
        ("Configuration", configuration),
        ("Tags", tags or [("Tags", "None")]),
    ]


def _last_segment(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1]


# --- reading the form -----------------------------------------------------------------------


def _read(form: FormData) -> Wizard:
    values = {key: text(form, key, default) for key, default in DEFAULTS.items()}
    for key, allowed in CHOICES.items():
        if values[key] not in allowed:
            values[key] = DEFAULTS[key]
    values["pool_empty"] = "yes" if values["pool_empty"] == "yes" else ""
    targets: list[str] = []
    index = 0
    while f"target_{index}" in form and index < 1200:
        targets.append(text(form, f"target_{index}"))
        index += 1
    tags: list[tuple[str, str]] = []
    # One row more than a gateway may have tags: the rule says so instead of a lost row.
    while f"tag_name_{len(tags)}" in form and len(tags) <= MAX_TAGS:
        row = len(tags)
        raw = form.get(f"tag_value_{row}")
        # A tag's value is kept as typed (spaces included), as ARM keeps it.
        tags.append((text(form, f"tag_name_{row}"), raw if isinstance(raw, str) else ""))
    return Wizard(values, targets, tags)


def _whole(wizard: Wizard, key: str, label: str) -> int | None:
    raw = wizard.values[key]
    if not raw:
        wizard.errors.add(key, f"Enter the {label}.")
        return None
    try:
        return int(raw)
    except ValueError:
        wizard.errors.add(key, f"The {label} must be a whole number.")
        return None


def _required(wizard: Wizard, key: str, label: str) -> str:
    value = wizard.values[key]
    if not value:
        wizard.errors.add(key, f"Enter {label}.")
    return value


def _gateway_id(wizard: Wizard) -> GatewayId | None:
    """The gateway the Basics tab names, or None when a part is missing or malformed."""
    subscription = _required(wizard, "subscription", "a subscription")
    group = _required(wizard, "resource_group", "a resource group")
    name = _required(wizard, "gateway_name", "a name for the application gateway")
    for field_name, rule, value in (
        ("subscription", SUBSCRIPTION_ID, subscription),
        ("resource_group", RESOURCE_GROUP_NAME, group),
        ("gateway_name", GATEWAY_NAME, name),
    ):
        if value and rule.problem(value):
            wizard.errors.add(field_name, f"The {rule.what} has {rule.words}.")
    gateway_id = GatewayId(subscription, group, name)
    return gateway_id if gateway_id.is_valid else None


def _options(
    wizard: Wizard, form: FormData, pfx: bytes | None, cer: bytes | None
) -> QuickCreate | None:
    """The quick-create inputs the other tabs describe, or None when the form itself is
    incomplete (errors say why)."""
    v = wizard.values
    _required(wizard, "region", "a region")
    if v["tier"] == "WAF" and v["size"] == "Small":  # Azure has no WAF_Small
        wizard.errors.add("size", "WAF (v1) comes in sizes Medium and Large; choose one.")
    capacity = _whole(wizard, "capacity", "instance count")
    listener_port = _whole(wizard, wizard.port_field("listener"), "port")
    settings_port = _whole(wizard, wizard.port_field("settings"), "backend port")
    # v1 evaluates rules in list order: as az does, a priority is kept on v2 only.
    priority = _whole(wizard, "priority", "priority") if wizard.v2 else None
    for key, label in (
        ("pool_name", "a name for the backend pool"),
        ("rule_name", "a rule name"),
        ("listener_name", "a listener name"),
        ("settings_name", "a name for the backend settings"),
    ):
        _required(wizard, key, label)
    public = v["frontend_type"] == "Public"
    if not public:
        address = _required(wizard, "private_ip", "the private IP address")
        if address and not is_ip_address(address):
            wizard.errors.add("private_ip", f"'{address}' is not an IPv4 or IPv6 address.")

    https = v["listener_protocol"] == "Https"
    if https and pfx is None:
        wizard.errors.add("cert_file", "Choose the PFX certificate file of the listener.")
    hosts: tuple[str, ...] = ()
    if v["listener_type"] == "MultiSite":
        hosts = tuple(h.strip() for h in v["host_name"].split(",") if h.strip())
        if not hosts:
            wizard.errors.add("host_name", "Enter the host name this listener serves.")

    servers: list[str] = []
    if v["pool_empty"] != "yes":
        for row, target in enumerate(wizard.targets):
            if target:
                wizard.target_rows.append(row)
                servers.append(target)
        if not servers:
            wizard.errors.add(
                "targets",
                "Add at least one target (IP address or FQDN), or choose "
                "'Add backend pool without targets'.",
            )

    # v1 trusts no well-known CA: it allow-lists the backend's own certificate, so HTTPS to the
    # backend needs one whatever the (v2-only) well-known choice says.
    own_ca = v["settings_protocol"] == "Https" and (v["well_known"] == "no" or not wizard.v2)
    if own_ca:
        if cer is None:
            wizard.errors.add(
                "backend_cer",
                "Choose the CER certificate file."
                if wizard.v2
                else "Choose the backend's certificate (.cer): Standard (v1) connects over "
                "HTTPS only to a backend whose certificate is uploaded.",
            )
        _required(wizard, "backend_cer_name", "a name for the certificate")

    tags = _tags(wizard)
    if wizard.errors or capacity is None or listener_port is None or settings_port is None:
        return None
    certificate = None
    if https and pfx is not None:
        password = form.get("cert_password")
        certificate = ListenerCertificate(
            v["cert_name"] or f"{v['gateway_name']}SslCert",
            base64.b64encode(pfx).decode(),
            password if isinstance(password, str) else "",
        )
    backend_certificates: tuple[tuple[str, str], ...] = ()
    if own_ca and cer is not None:
        backend_certificates = ((v["backend_cer_name"], certificate_field(cer)),)
    tier = v["tier"]
    return QuickCreate(
        location=v["region"],
        sku=tier if wizard.v2 else f"{tier}_{v['size']}",
        capacity=capacity,
        frontend_port=listener_port,
        certificate=certificate,
        host_names=hosts,
        servers=tuple(servers),
        http_settings_port=settings_port,
        http_settings_protocol=v["settings_protocol"],
        request_timeout=PORTAL_REQUEST_TIMEOUT,
        trusted_root_certificates=backend_certificates if wizard.v2 else (),
        authentication_certificates=() if wizard.v2 else backend_certificates,
        priority=priority,
        private_ip_address=None if public else v["private_ip"],
        public_ip_address=v["public_ip_name"] or None,
        backend_pool_name=v["pool_name"],
        http_settings_name=v["settings_name"],
        listener_name=v["listener_name"],
        rule_name=v["rule_name"],
        # Written either way, as Azure's portal does (az create only with --http2).
        http2=v["http2"] == "Enabled",
        tags=tags,
    )


def _tags(wizard: Wizard) -> dict[str, str]:
    """The Tags tab's rows as the gateway's tags; ARM's rules on the rows that break them."""
    tags: dict[str, str] = {}
    rows: dict[str, int] = {}  # tag names are case-insensitive in ARM
    for row, (name, value) in enumerate(wizard.tags):
        if not name:
            if value:
                wizard.errors.add(
                    f"tag_name_{row}", "Enter a name for this tag, or clear its value."
                )
            continue
        if name.casefold() in rows:
            wizard.errors.add(
                f"tag_name_{row}", f"Tag '{name}' is already on row {rows[name.casefold()] + 1}."
            )
            continue
        rows[name.casefold()] = row
        tags[name] = value
    for problem in tag_problems(tags, "wizard"):
        _, _, name = problem.field.partition(".")
        wizard.errors.add(
            wizard.tag_row(name) if name else "tags",
            f"{problem.text[:1].upper()}{problem.text[1:]}.",
        )
    return tags


# --- the service's answer, next to the fields --------------------------------------------------


def _explain(wizard: Wizard, gateway_id: GatewayId, error: ServiceError) -> None:
    if error.status == 412:  # If-None-Match "*": the name was taken meanwhile
        _name_taken(wizard, gateway_id)
        return
    place_problems(wizard.errors, error, _mapping(wizard, gateway_id))


def _name_taken(wizard: Wizard, gateway_id: GatewayId) -> None:
    wizard.errors.add(
        "gateway_name",
        f"An application gateway named '{gateway_id.name}' already exists in resource group "
        f"'{gateway_id.resource_group}'. Choose another name.",
    )


def _mapping(wizard: Wizard, gateway_id: GatewayId) -> Callable[[str, str], str | None]:
    listener_port = wizard.port_field("listener")
    settings_port = wizard.port_field("settings")

    def under(path: str, prefix: str) -> bool:
        return path == prefix or path.startswith((prefix + ".", prefix + "["))

    def target_row(path: str) -> str:
        match = re.match(r"properties\.backendAddresses\[(\d+)\]", path)
        if match and int(match[1]) < len(wizard.target_rows):
            return f"target_{wizard.target_rows[int(match[1])]}"
        return "targets"

    def mapping(resource: str, path: str) -> str | None:
        if resource.casefold() == gateway_id.key:
            if path.startswith("tags."):
                return wizard.tag_row(path.removeprefix("tags."))
            if path == "tags":
                return "tags"
            if path == "location":
                return "region"
            if path == "name":
                return "gateway_name"
            if under(path, "properties.sku.capacity"):
                return "capacity"
            if under(path, "properties.sku") or under(path, "properties.autoscaleConfiguration"):
                return "tier"
            if under(path, "properties.frontendPorts"):
                return listener_port
            if under(path, "properties.enableHttp2"):
                return "http2"
            return None
        child = parse_child_ref(resource)
        if child is None or child.gateway_key != gateway_id.key:
            return None
        collection = child.collection.casefold()
        if collection == "sslcertificates":
            if under(path, "properties.password"):
                return "cert_password"
            if under(path, "properties.data"):
                return "cert_file"
            return "cert_name"
        if collection in ("trustedrootcertificates", "authenticationcertificates"):
            return "backend_cer" if under(path, "properties.data") else "backend_cer_name"
        if collection == "frontendipconfigurations":
            if under(path, "properties.privateIPAddress"):
                return "private_ip"
            if under(path, "properties.publicIPAddress"):
                return "public_ip_name"
            return None
        if collection == "frontendports":
            return listener_port
        if collection == "backendaddresspools":
            return target_row(path) if under(path, "properties.backendAddresses") else "pool_name"
        if collection == "backendhttpsettingscollection":
            if under(path, "properties.port"):
                return settings_port
            if under(path, "properties.protocol"):
                return "settings_protocol"
            if under(path, "properties.trustedRootCertificates") or under(
                path, "properties.authenticationCertificates"
            ):
                return "backend_cer"
            return "settings_name" if path == "name" else None
        if collection == "httplisteners":
            if under(path, "properties.hostName") or under(path, "properties.hostNames"):
                return "host_name"
            if under(path, "properties.sslCertificate"):
                return "cert_file"
            if under(path, "properties.protocol"):
                return "listener_protocol"
            if under(path, "properties.frontendPort"):
                return listener_port
            return "listener_name" if path == "name" else None
        if collection == "requestroutingrules":
            if under(path, "properties.priority"):
                return "priority"
            return "rule_name" if path == "name" else None
        return None

    return mapping
