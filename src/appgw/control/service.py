"""The service layer: the only code that changes desired state.

API, CLI and portal call these methods and translate their results; none of them holds a rule.
A write is: shape check -> cross-object validation -> certificate checks -> commit of a new
version -> activity log entry. Reads return the ARM view of the stored document.
"""

from __future__ import annotations

import errno
import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from appgw.compile.firewall import LINKED_POLICIES
from appgw.compile.gateway import (
    ALL_ADDRESSES,
    WILDCARDS,
    CompileError,
    bound_listeners,
    compile_model,
    endpoints_overlap,
    listening_endpoints,
)
from appgw.control import sessions
from appgw.control.auth import caller_for_token
from appgw.control.certificates import check_certificates
from appgw.control.operations import Operations
from appgw.control.throttle import AuthThrottle, Entry
from appgw.gc_pause import collector_paused
from appgw.health.report import HealthReportError, HealthReports, MonitorNotReachable
from appgw.model.diagnostics import Diagnostic, ValidationFailed
from appgw.model.document import document_links
from appgw.model.enums import OperationalState
from appgw.model.ids import (
    RESOURCE_GROUP_NAME,
    SUBSCRIPTION_ID,
    GatewayId,
    ResourceId,
    shown_name,
)
from appgw.model.resource import ApplicationGateway, OnDemandProbe, TagsObject
from appgw.model.validate import is_v1, tag_problems, validate_gateway
from appgw.model.wire import canonical_document, parse_gateway, parse_model, read_view
from appgw.store.sql import (
    # Re-exported: adapters read activity events through the service, never from the store.
    ActivityEvent as ActivityEvent,
    GatewayVersion,
    LinkChanged,
    PreconditionFailed,
    SqlStore,
    StoreCorrupt,
    StoreFailure,
    StoreFull,
    utcnow,
)

WRITE = "Microsoft.Network/applicationGateways/write"
DELETE = "Microsoft.Network/applicationGateways/delete"
START = "Microsoft.Network/applicationGateways/start/action"
STOP = "Microsoft.Network/applicationGateways/stop/action"
MAX_PAGE_SIZE = 100  # ARM pages lists; 100 keeps one page of full gateways to a few MB
# Refused authentication in the activity log: an action on the server itself (resource '/'),
# by a caller that is nobody yet.
AUTHENTICATE = "appgw/authenticate/action"
SERVER_RESOURCE = "/"
UNAUTHENTICATED = "unauthenticated"
# Retry-After of a 503 StoreUnavailable: PostgreSQL restarts or fails over in seconds, and
# clients asking sooner would only add load to a server that is coming back.
STORE_RETRY_AFTER_SECONDS = 5
STORE_UNAVAILABLE = "StoreUnavailable"  # the code of that 503: adapters tell it by this

log = logging.getLogger("appgw.control")


class ServiceError(Exception):
    """A refused request: HTTP status, stable code, message, and per-problem details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        *,
        retry_after: int | None = None,
        diagnostics: list[Diagnostic] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        # The problems `details` was made of, for adapters that show each where it belongs.
        self.diagnostics = diagnostics or []
        self.retry_after = retry_after  # seconds, for a Retry-After header

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    @classmethod
    def invalid(cls, diagnostics: list[Diagnostic]) -> ServiceError:
        details = [diagnostic.to_json() for diagnostic in diagnostics]
        if len(diagnostics) == 1:
            return cls(
                400, diagnostics[0].code, diagnostics[0].message, details, diagnostics=diagnostics
            )
        codes = ", ".join(sorted({d.code for d in diagnostics}))
        return cls(
            400,
            "MultipleErrorsOccurred",
            f"{len(diagnostics)} problems ({codes}); see details. First: {diagnostics[0].message}",
            details,
            diagnostics=diagnostics,
        )


P = ParamSpec("P")
R = TypeVar("R")


def port_in_use(endpoint: tuple[str, int], listener: str, gateway_resource_id: str) -> str:
    """Why a port cannot be listened on: the listener and gateway already on it, by name."""
    other = GatewayId.parse(gateway_resource_id)
    gateway = f"{other.resource_group}/{other.name}" if other else gateway_resource_id
    address = f"{endpoint[0]} (all addresses)" if endpoint[0] in WILDCARDS else endpoint[0]
    return (
        f"port {endpoint[1]} on {address} is already used by listener '{listener}' "
        f"of gateway '{gateway}'"
    )


def store_answers(method: Callable[P, R]) -> Callable[P, R]:
    """A method whose store cannot do what it asked raises the ARM error for it: 507
    StorageFull (no room), 503 StoreUnavailable (unreachable, read-only, busy) with
    Retry-After, 500 StoreCorrupt (a damaged file). The store kept nothing of a write that
    failed."""

    @functools.wraps(method)
    def answering(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except StoreFull as failure:
            raise _storage_full(str(failure)) from None
        except StoreCorrupt as failure:
            raise ServiceError(500, "StoreCorrupt", str(failure)) from None
        except StoreFailure as failure:
            raise _store_unavailable(failure) from None
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
            raise _storage_full(error.strerror or str(error)) from None

    return answering


def _store_unavailable(failure: StoreFailure) -> ServiceError:
    """The 503 of a store that cannot be used now: what API, portal and CLI show."""
    return ServiceError(
        503,
        STORE_UNAVAILABLE,
        f"The configuration store is unavailable: {failure.store} ({failure}). Changes cannot "
        "be saved; traffic is still served with the last applied configuration. Try again in "
        "a few seconds.",
        retry_after=STORE_RETRY_AFTER_SECONDS,
    )


def _storage_full(reason: str) -> ServiceError:
    return ServiceError(
        507,
        "StorageFull",
        f"The store has no room for this change, so nothing of it was kept ({reason}). Free "
        "space where the store lives and send the request again.",
    )


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    source_ip: str | None = None


class HealthPending(Exception):
    """The health monitor is not reachable yet: the answer comes with operation_id (ARM's
    202 Accepted, then poll)."""

    def __init__(self, operation_id: str, message: str) -> None:
        super().__init__(message)
        self.operation_id = operation_id
        self.message = message


@dataclass(frozen=True, slots=True)
class OperationResult:
    status: str  # InProgress, Succeeded or Failed
    result: dict[str, Any] | None = None  # what a finished backend-health operation answered
    error: ServiceError | None = None  # why a failed one failed


@dataclass(frozen=True, slots=True)
class WriteResult:
    view: dict[str, Any]
    created: bool
    operation_id: str
    version: int
    location: str = ""  # the gateway's, also for a delete (whose view is empty)


@dataclass(frozen=True, slots=True)
class GatewaySummary:
    """What a list of every gateway shows (the portal's All resources)."""

    gateway_id: GatewayId
    location: str
    sku_name: str
    sku_tier: str
    operational_state: str


@dataclass(frozen=True, slots=True)
class Page:
    views: list[dict[str, Any]]
    next_after: str | None  # key of the last gateway returned when more may follow


@dataclass(frozen=True, slots=True)
class ResolvedPolicies:
    """What a gateway write keeps of the policies it links: their content (for its secrets)
    and their etags (which must still hold when it commits)."""

    content: dict[str, Any]
    etags: dict[str, str]


def resolve_links(
    store: SqlStore, document: Mapping[str, Any], gateway_id: GatewayId
) -> tuple[ResolvedPolicies, list[Diagnostic]]:
    """The policies `document` links, read from the store; a diagnostic per missing one."""
    content: dict[str, Any] = {}
    etags: dict[str, str] = {}
    problems: list[Diagnostic] = []
    for link in document_links(document, str(gateway_id)):
        if link.policy_key in content:
            continue
        stored = store.policy(link.policy_key)
        if stored is None:
            problems.append(
                Diagnostic(
                    "InvalidResourceReference",
                    link.owner_id,
                    "properties.firewallPolicy",
                    f"the WAF policy '{link.policy_id}' does not exist; create it first "
                    "(PUT it, or `appgw waf-policy create`)",
                )
            )
            continue
        content[link.policy_key] = stored.document
        etags[link.policy_key] = stored.etag
    return ResolvedPolicies(content, etags), problems


class GatewayService:
    def __init__(
        self,
        store: SqlStore,
        clock: Callable[[], datetime] = utcnow,
        *,
        frontend_address: str = ALL_ADDRESSES,
    ) -> None:
        self.store = store
        self.clock = clock
        self.frontend_address = frontend_address
        self.health: HealthReports | None = None  # set by `appgw serve`
        self.throttle = AuthThrottle(wall_clock=lambda: self.clock().timestamp())
        self.operations = Operations()  # `appgw serve` tells it what its processes serve

    # --- backend health -------------------------------------------------------------------------

    def backend_health(self, gateway_id: GatewayId, *, expand: bool) -> dict[str, Any]:
        """The report; HealthPending while the monitor is not reachable (starting)."""
        view = self.get(gateway_id)
        health = self._health()
        return self._ask_health(lambda: health.backend_health(gateway_id, view if expand else None))

    def backend_health_on_demand(self, gateway_id: GatewayId, body: object) -> dict[str, Any]:
        self.get(gateway_id)  # 404 for an unknown gateway
        try:
            probe = parse_model(OnDemandProbe, body, str(gateway_id))
        except ValidationFailed as failed:
            raise ServiceError.invalid(failed.diagnostics) from None
        health = self._health()
        return self._ask_health(lambda: health.on_demand(gateway_id, probe))

    def _ask_health(self, ask: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return ask()
        except MonitorNotReachable as error:
            raise HealthPending(self.operations.start_health(ask), error.message) from None
        except HealthReportError as error:
            raise ServiceError(error.status, error.code, error.message) from None

    def _health(self) -> HealthReports:
        if self.health is None:
            raise ServiceError(
                503, "BackendHealthUnavailable", "this appgw instance runs no health monitor"
            )
        return self.health

    # --- callers --------------------------------------------------------------------------------

    @store_answers
    def start_session(self, caller: str) -> str:
        """A portal session for a caller the portal authenticated; its id, for the cookie."""
        return sessions.start(self.store, caller)

    @store_answers
    def session_caller(self, session_id: str) -> str | None:
        return sessions.caller(self.store, session_id)

    @store_answers
    def end_session(self, session_id: str) -> None:
        sessions.end(self.store, session_id)

    @store_answers
    def authenticate(self, token: str, source_ip: str | None, via: str) -> Caller:
        """The caller `token` proves, presented from `source_ip` through `via` ('api' or
        'portal'). A wrong token is a 401; an address that presented too many is a 429 with
        Retry-After, whatever it presents (see appgw.control.throttle). Refusals go to the
        activity log, counted per address and minute; the tokens never do."""
        wait = self.throttle.retry_after(source_ip)
        if wait is not None:
            self._log_refusals(self.throttle.refused(source_ip, token, via, limited=True))
            raise ServiceError(
                429,
                "TooManyRequests",
                f"Too many refused tokens came from {source_ip}; no token from there is checked "
                f"for {wait} s. Retry after that with the right token.",
                retry_after=wait,
            )
        try:
            name = caller_for_token(self.store, token)
        except StoreFailure:
            # Without the store only a token this address was refused for is known: still a
            # 401 (a script resending a stale token learns it is wrong). Any other is a 503.
            if not self.throttle.was_refused(source_ip, token):
                raise
            name = None
        if name is None:
            self._log_refusals(self.throttle.refused(source_ip, token, via, limited=False))
            raise ServiceError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid. Send 'Authorization: Bearer <token>' with an "
                "appgw token.",
            )
        return Caller(name, source_ip)

    def write_pending_activity(self) -> None:
        """Write the refusal counts not in the activity log yet (before it is read, at exit)."""
        self._log_refusals(self.throttle.pending())

    def _log_refusals(self, entries: list[Entry]) -> None:
        for entry in entries:
            tally = entry.tally
            try:
                if not entry.new:
                    self.store.update_activity_detail(tally.event_id, tally.detail())
                    continue
                self.store.record_activity(
                    ActivityEvent(
                        event_id=tally.event_id,
                        time=datetime.fromtimestamp(tally.started, UTC),
                        caller=UNAUTHENTICATED,
                        source_ip=tally.address,
                        operation=AUTHENTICATE,
                        resource_id=SERVER_RESOURCE,
                        status="Failed",
                        version=None,
                        correlation_id=tally.event_id,
                        detail=tally.detail(),
                    )
                )
            except StoreFailure as failure:
                # A refusal is answered all the same; the log misses these counts.
                log.warning("could not log refused authentication: %s", failure)

    # --- reads ----------------------------------------------------------------------------------

    @store_answers
    def get(self, gateway_id: GatewayId) -> dict[str, Any]:
        return _view(self._require(gateway_id))

    @store_answers
    def list_gateways(
        self,
        subscription: str,
        resource_group: str | None,
        *,
        after: str | None = None,
        limit: int = MAX_PAGE_SIZE,
    ) -> Page:
        problems = [SUBSCRIPTION_ID.problem(subscription)]
        if resource_group is not None:
            problems.append(RESOURCE_GROUP_NAME.problem(resource_group))
        refuse_names([problem for problem in problems if problem is not None])
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        versions = self.store.list_current(
            subscription, resource_group, after_key=after, limit=limit + 1
        )
        more = len(versions) > limit
        versions = versions[:limit]
        next_after = versions[-1].resource_id.casefold() if more and versions else None
        return Page([_view(version) for version in versions], next_after)

    @store_answers
    def all_gateways(self) -> list[GatewaySummary]:
        """Every gateway of every subscription, ordered by resource id."""
        summaries = []
        for version in self.store.current_all():
            sku = version.document.get("properties", {}).get("sku", {})
            summaries.append(
                GatewaySummary(
                    gateway_id=_gateway_id_of(version),
                    location=str(version.document.get("location", "")),
                    sku_name=str(sku.get("name", "")),
                    sku_tier=str(sku.get("tier", "")),
                    operational_state=version.operational_state,
                )
            )
        return summaries

    @store_answers
    def history(self, gateway_id: GatewayId) -> list[dict[str, Any]]:
        versions = self.store.history(gateway_id.key)
        if not versions:
            raise not_found(gateway_id)
        return [
            {
                "version": version.version,
                "etag": version.etag,
                "createdAt": _iso(version.created_at),
                "caller": version.actor,
                "operationalState": version.operational_state,
                "deleted": version.deleted,
                "gateway": None if version.deleted else _view(version),
            }
            for version in versions
        ]

    @store_answers
    def activity(
        self, *, resource_prefix: str | None = None, since: datetime | None = None, limit: int = 200
    ) -> list[ActivityEvent]:
        self.write_pending_activity()
        return self.store.activity(resource_prefix=resource_prefix, since=since, limit=limit)

    @store_answers
    def operation(self, operation_id: str) -> OperationResult | None:
        """An asynchronous operation of this instance, or None for an unknown id."""
        health = self.operations.health(operation_id)
        if health is not None:
            error = None
            if health.failure is not None:
                failure = health.failure
                error = (
                    ServiceError(failure.status, failure.code, failure.message)
                    if isinstance(failure, HealthReportError)
                    else ServiceError(500, "InternalServerError", str(failure))
                )
            return OperationResult(health.status, health.result, error)
        found = self.store.operation(operation_id)
        if found is None:
            return None
        return OperationResult(self.operations.write_status(operation_id, found[0]))

    # --- writes ---------------------------------------------------------------------------------

    @store_answers
    def put(
        self,
        gateway_id: GatewayId,
        body: object,
        caller: Caller,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> WriteResult:
        refuse_names(gateway_id.problems())
        with collector_paused():
            return self._put(gateway_id, body, caller, if_match, if_none_match)

    @store_answers
    def validate(self, gateway_id: GatewayId, body: object) -> None:
        """Every check a PUT of `body` makes (shape, rules, certificates and their passwords,
        the compile every worker runs, ports of the other gateways), without writing or
        recording anything: the portal's Review + create runs it."""
        refuse_names(gateway_id.problems())
        with collector_paused():
            self._prepared(gateway_id, body, None)

    def _put(
        self,
        gateway_id: GatewayId,
        body: object,
        caller: Caller,
        if_match: str | None,
        if_none_match: str | None,
    ) -> WriteResult:
        document, secrets, policies = self._prepared(gateway_id, body, caller)
        # Azure: any PUT on a stopped gateway starts it.
        return self._commit(
            gateway_id,
            WRITE,
            caller,
            document,
            secrets,
            OperationalState.RUNNING.value,
            if_match=if_match,
            if_none_match=if_none_match,
            linked_policies=policies.etags,
        )

    def _prepared(
        self, gateway_id: GatewayId, body: object, caller: Caller | None
    ) -> tuple[dict[str, Any], dict[str, Any], ResolvedPolicies]:
        """The document and secrets to store for `body` and the WAF policies it links, or the
        ServiceError that refuses it (recorded in the activity log when a `caller` wrote it)."""

        def refused(diagnostics: list[Diagnostic]) -> ServiceError:
            if caller is None:
                return ServiceError.invalid(diagnostics)
            return self.refused(gateway_id, WRITE, caller, diagnostics)

        try:
            gateway = parse_gateway(body, gateway_id)
        except ValidationFailed as failed:
            raise refused(failed.diagnostics) from None
        current = self.store.current(gateway_id.key)
        previous_secrets = self.store.secrets(current) if current is not None else {}
        diagnostics = validate_gateway(gateway, gateway_id)
        outcome = check_certificates(
            gateway, gateway_id, previous_secrets, v1=is_v1(gateway), now=self.clock()
        )
        diagnostics += outcome.diagnostics
        if diagnostics:
            raise refused(diagnostics)
        # Certificates as stored (base64 DER), in the model itself: the stored document is
        # made from it, and the dry run compiles exactly what every worker will.
        for collection, certs in (
            ("authenticationCertificates", gateway.properties.authentication_certificates),
            ("trustedRootCertificates", gateway.properties.trusted_root_certificates),
        ):
            for model in certs:
                normalized = outcome.normalized_data.get((collection, model.name.casefold()))
                if normalized is not None:
                    model.properties.data = normalized
        document = canonical_document(gateway)
        properties = document["properties"]
        properties["resourceGuid"] = (
            current.document["properties"].get("resourceGuid")
            if current is not None
            else str(uuid.uuid4())
        )
        for cert in properties.get("sslCertificates", []):
            cert["properties"]["publicCertData"] = outcome.public_cert_data[cert["name"].casefold()]
        for entry in properties.get("trustedClientCertificates", []):
            # Azure's read-only fields: the chain as validated, and the issuer DN checked by
            # verifyClientCertIssuerDN.
            stored_chain, issuer_dn = outcome.client_chains[entry["name"].casefold()]
            entry["properties"].update(
                data=stored_chain, validatedCertData=stored_chain, clientCertIssuerDN=issuer_dn
            )
        policies, diagnostics = resolve_links(self.store, document, gateway_id)
        if diagnostics:
            raise refused(diagnostics)
        secrets = {**outcome.secrets, LINKED_POLICIES: policies.content}
        diagnostics = self._dry_run(gateway_id, gateway, secrets)
        if diagnostics:
            raise refused(diagnostics)
        return document, secrets, policies

    @store_answers
    def patch_tags(
        self, gateway_id: GatewayId, body: object, caller: Caller, *, if_match: str | None = None
    ) -> WriteResult:
        refuse_names(gateway_id.problems())
        try:
            tags = parse_model(TagsObject, body, str(gateway_id))
        except ValidationFailed as failed:
            raise self.refused(gateway_id, WRITE, caller, failed.diagnostics) from None
        problems = tag_problems(tags.tags or {}, str(gateway_id))
        if problems:
            raise self.refused(gateway_id, WRITE, caller, problems)
        current = self._require(gateway_id)
        document = dict(current.document)
        document["tags"] = tags.tags or {}
        return self._commit(
            gateway_id,
            WRITE,
            caller,
            document,
            self.store.secrets(current),
            current.operational_state,
            if_match=if_match,
            expected_etag=current.etag,  # the secrets read hold that version's WAF policies
        )

    @store_answers
    def set_operational_state(
        self, gateway_id: GatewayId, caller: Caller, state: OperationalState
    ) -> WriteResult:
        refuse_names(gateway_id.problems())
        current = self._require(gateway_id)
        return self._commit(
            gateway_id,
            START if state == OperationalState.RUNNING else STOP,
            caller,
            current.document,
            self.store.secrets(current),
            state.value,
            if_match=current.etag,
        )

    @store_answers
    def delete(
        self, gateway_id: GatewayId, caller: Caller, *, if_match: str | None = None
    ) -> WriteResult | None:
        """None when there was nothing to delete (ARM answers 204). (A name ARM refuses is
        looked up all the same: a gateway stored before names were checked can be removed.)"""
        current = self.store.current(gateway_id.key)
        if current is None:
            if if_match is not None:
                raise ServiceError(412, "PreconditionFailed", "the gateway does not exist")
            return None
        # Secrets of a deleted gateway are not carried into its tombstone.
        return self._commit(
            gateway_id,
            DELETE,
            caller,
            current.document,
            {},
            OperationalState.STOPPED.value,
            if_match=if_match,
            deleted=True,
        )

    # --- internals ------------------------------------------------------------------------------

    def _dry_run(
        self, gateway_id: GatewayId, gateway: ApplicationGateway, secrets: dict[str, Any]
    ) -> list[Diagnostic]:
        """Compile as every worker will, and check the ports against the other gateways."""
        try:
            compile_model(
                gateway,
                secrets,
                gateway_id=str(gateway_id),
                frontend_address=self.frontend_address,
            )
        except CompileError as error:
            return error.diagnostics
        problems: list[Diagnostic] = []
        mine = bound_listeners(gateway, self.frontend_address)
        for other in self.store.current_all(excluding=gateway_id.key):
            taken = listening_endpoints(other.document, self.frontend_address)
            for endpoint, listeners in mine.items():
                clash = next((t for t in taken if endpoints_overlap(endpoint, t)), None)
                if clash is None:
                    continue
                # Named as the operator knows them (not by resource id), on each listener's
                # frontend port: that is the field to change.
                text = port_in_use(clash, taken[clash][0], other.resource_id)
                problems.extend(
                    Diagnostic(
                        "ApplicationGatewayFrontendPortInUse",
                        f"{gateway_id}/httpListeners/{listener}",
                        "properties.frontendPort",
                        text,
                    )
                    for listener in listeners
                )
        return problems

    def _require(self, gateway_id: GatewayId) -> GatewayVersion:
        current = self.store.current(gateway_id.key)
        if current is None:
            raise not_found(gateway_id)
        return current

    def _commit(
        self,
        gateway_id: GatewayId,
        operation: str,
        caller: Caller,
        document: dict[str, Any],
        secrets: dict[str, Any],
        state: str,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
        deleted: bool = False,
        linked_policies: Mapping[str, str] | None = None,
        expected_etag: str | None = None,
    ) -> WriteResult:
        existed = self.store.current_etag(gateway_id.key) is not None
        operation_id = str(uuid.uuid4())
        try:
            # The version, its operation and its activity entry: one transaction.
            version = self.store.commit(
                str(gateway_id),
                gateway_id.key,
                document,
                secrets,
                operational_state=state,
                actor=caller.name,
                if_match=if_match,
                if_none_match=if_none_match,
                deleted=deleted,
                operation_id=operation_id,
                activity=self.event(gateway_id, operation, caller, "Succeeded", None),
                linked_policies=linked_policies,
                expected_etag=expected_etag,
            )
        except LinkChanged as changed:
            raise ServiceError(409, "Conflict", f"{changed}; retry the request") from None
        except PreconditionFailed as failed:
            refused = {"code": "PreconditionFailed"}
            self.store.record_activity(self.event(gateway_id, operation, caller, "Failed", refused))
            raise ServiceError(
                412,
                "PreconditionFailed",
                f"{failed} for '{gateway_id}'; GET the gateway again and retry with its etag",
            ) from None
        self.operations.committed(operation_id, gateway_id.key, version.seq)
        location = str(document.get("location", ""))
        return WriteResult(
            # The committed document is not used again: it becomes the response as it is.
            view={} if deleted else _view(version, owned=True),
            created=not existed,
            operation_id=operation_id,
            version=version.version,
            location=location,
        )

    def refused(
        self, resource: ResourceId, operation: str, caller: Caller, diagnostics: list[Diagnostic]
    ) -> ServiceError:
        """The 400 refusing a write of `resource`, recorded in the activity log."""
        error = ServiceError.invalid(diagnostics)
        detail = {"code": error.code, "problems": [d.code for d in diagnostics]}
        self.store.record_activity(self.event(resource, operation, caller, "Failed", detail))
        return error

    def event(
        self,
        resource: ResourceId,
        operation: str,
        caller: Caller,
        status: str,
        detail: dict[str, Any] | None,
    ) -> ActivityEvent:
        return ActivityEvent(
            event_id=str(uuid.uuid4()),
            time=self.clock(),
            caller=caller.name,
            source_ip=caller.source_ip,
            operation=operation,
            resource_id=str(resource),
            status=status,
            version=None,
            correlation_id=str(uuid.uuid4()),
            detail=detail,
        )


def _gateway_id_of(version: GatewayVersion) -> GatewayId:
    gateway_id = GatewayId.parse(version.resource_id)
    assert gateway_id is not None, "the store holds only valid gateway ids"
    return gateway_id


def _view(version: GatewayVersion, *, owned: bool = False) -> dict[str, Any]:
    return read_view(
        version.document,
        _gateway_id_of(version),
        etag=version.etag,
        operational_state=version.operational_state,
        owned=owned,
    )


def refuse_names(problems: list[str]) -> None:
    """A write (or a list) naming what ARM's naming rules refuse is a 400, before anything is
    read, stored or logged under that name. Reads and deletes just find nothing by it."""
    if problems:
        raise ServiceError(400, "InvalidResourceName", "; ".join(problems))


def not_found(resource: ResourceId) -> ServiceError:
    return ServiceError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource.TYPE}/{shown_name(resource.name)}' "
        f"under resource group '{shown_name(resource.resource_group)}' was not found.",
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
