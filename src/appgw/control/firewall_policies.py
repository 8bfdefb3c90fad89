"""WAF policies (ApplicationGatewayWebApplicationFirewallPolicies): reads, writes and deletes,
and what a gateway write needs of the policies it links.

A policy's content reaches the data plane only inside gateway versions (compile/firewall.py):
a gateway PUT copies the content of every policy it links into its version, and a policy PUT
commits a new version of every gateway that links it, in the same transaction; each is first
compiled as the workers will, so a policy no gateway can serve is refused, not stored.
"""

from __future__ import annotations

import uuid
from typing import Any

from appgw.compile.firewall import LINKED_POLICIES, linked_policies
from appgw.compile.gateway import CompileError, compile_gateway
from appgw.control.service import (
    WRITE as GATEWAY_WRITE,
    Caller,
    GatewayService,
    ServiceError,
    not_found,
    refuse_names,
    store_answers,
)
from appgw.gc_pause import collector_paused
from appgw.model.diagnostics import Diagnostic, ValidationFailed
from appgw.model.document import document_links
from appgw.model.firewall_policy import READ_ONLY_PROPERTIES, FirewallPolicy
from appgw.model.ids import FIREWALL_POLICY_TYPE, FirewallPolicyId, GatewayId
from appgw.model.validate_firewall_policy import check_firewall_policy, policy_view_defaults
from appgw.model.wire import parse_model
from appgw.store.sql import (
    GatewayVersion,
    LinkChanged,
    PolicyInUse,
    PreconditionFailed,
    Recommit,
    StoredPolicy,
)

WRITE = "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies/write"
DELETE = "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies/delete"


class FirewallPolicies:
    """The service's WAF policy operations (the API, CLI and portal call these)."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self.store = service.store

    # --- reads ----------------------------------------------------------------------------------

    @store_answers
    def get(self, policy_id: FirewallPolicyId) -> dict[str, Any]:
        stored = self.store.policy(policy_id.key)
        if stored is None:
            raise not_found(policy_id)
        return self._view(stored, self.store.current_all())

    @store_answers
    def list_policies(self, subscription: str, resource_group: str | None) -> list[dict[str, Any]]:
        gateways = self.store.current_all()
        return [
            self._view(stored, gateways)
            for stored in self.store.list_policies(subscription, resource_group)
        ]

    def _view(self, stored: StoredPolicy, gateways: list[GatewayVersion]) -> dict[str, Any]:
        policy_id = FirewallPolicyId.parse(stored.resource_id)
        assert policy_id is not None, "the store holds only valid policy ids"
        view = dict(stored.document)
        properties = dict(view["properties"])
        view.update(
            id=str(policy_id),
            name=policy_id.name,
            type=FIREWALL_POLICY_TYPE,
            etag=stored.etag,
            properties=properties,
        )
        view.setdefault("tags", {})
        properties["provisioningState"] = "Succeeded"
        properties["resourceState"] = "Enabled"
        associations: dict[str, list[dict[str, str]]] = {
            "applicationGateways": [],
            "httpListeners": [],
            "pathBasedRules": [],
        }
        for gateway in gateways:
            for link in document_links(gateway.document, gateway.resource_id):
                if link.policy_key == policy_id.key:
                    associations[link.kind].append({"id": link.owner_id})
        properties.update(associations)
        return view

    # --- writes ---------------------------------------------------------------------------------

    @store_answers
    def put(
        self,
        policy_id: FirewallPolicyId,
        body: object,
        caller: Caller,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """(the view, whether it was created)."""
        refuse_names(policy_id.problems())
        with collector_paused():
            document = self._checked(policy_id, body, caller)
            existed = self.store.policy(policy_id.key) is not None
            recommits = self._recommits(policy_id, document, caller)
            stored, _versions = self._commit(
                policy_id, document, caller, recommits, if_match, if_none_match, WRITE
            )
        assert stored is not None
        return self._view(stored, self.store.current_all()), not existed

    @store_answers
    def delete(
        self, policy_id: FirewallPolicyId, caller: Caller, *, if_match: str | None = None
    ) -> bool:
        """False when there was nothing to delete (ARM answers 204)."""
        if self.store.policy(policy_id.key) is None:
            if if_match is not None:
                raise ServiceError(412, "PreconditionFailed", "the WAF policy does not exist")
            return False
        self._commit(policy_id, None, caller, [], if_match, None, DELETE)
        return True

    def _checked(self, policy_id: FirewallPolicyId, body: object, caller: Caller) -> dict[str, Any]:
        """The document to store for `body`, or the refusal."""
        try:
            policy = parse_model(FirewallPolicy, body, str(policy_id))
        except ValidationFailed as failed:
            raise self.refused(policy_id, caller, failed.diagnostics) from None
        problems = check_firewall_policy(policy, policy_id)
        if problems:
            raise self.refused(policy_id, caller, problems)
        document = policy.model_dump(by_alias=True, exclude_none=True)
        for field in ("id", "type", "etag"):
            document.pop(field, None)
        document["name"] = policy_id.name
        properties = document["properties"]
        for field in READ_ONLY_PROPERTIES:
            properties.pop(field, None)
        for rule_set in properties["managedRules"]["managedRuleSets"]:
            rule_set.pop("computedDisabledRules", None)
        policy_view_defaults(properties)
        return document

    def _recommits(
        self, policy_id: FirewallPolicyId, document: dict[str, Any], caller: Caller
    ) -> list[Recommit]:
        """A new version of each gateway linking the policy, compiled as workers will."""
        recommits = []
        problems: list[Diagnostic] = []
        for gateway in self.store.current_all():
            if not any(
                link.policy_key == policy_id.key
                for link in document_links(gateway.document, gateway.resource_id)
            ):
                continue
            secrets = dict(self.store.secrets(gateway))
            secrets[LINKED_POLICIES] = {**linked_policies(secrets), policy_id.key: document}
            try:
                compile_gateway(
                    gateway.document,
                    secrets,
                    gateway_id=gateway.resource_id,
                    frontend_address=self.service.frontend_address,
                )
            except CompileError as error:
                problems += error.diagnostics
            gateway_id = GatewayId.parse(gateway.resource_id)
            assert gateway_id is not None, "the store holds only valid gateway ids"
            # The gateway's activity log says why it changed: its policy did.
            event = self.service.event(
                gateway_id, GATEWAY_WRITE, caller, "Succeeded", {"firewallPolicy": str(policy_id)}
            )
            recommits.append(Recommit(gateway, secrets, event))
        if problems:
            raise self.refused(policy_id, caller, problems)
        return recommits

    def _commit(
        self,
        policy_id: FirewallPolicyId,
        document: dict[str, Any] | None,
        caller: Caller,
        recommits: list[Recommit],
        if_match: str | None,
        if_none_match: str | None,
        operation: str,
    ) -> tuple[StoredPolicy | None, list[GatewayVersion]]:
        operation_id = str(uuid.uuid4())
        service = self.service
        event = service.event(policy_id, operation, caller, "Succeeded", None)
        try:
            stored, versions = self.store.commit_policy(
                str(policy_id),
                policy_id.key,
                document,
                actor=caller.name,
                recommits=recommits,
                if_match=if_match,
                if_none_match=if_none_match,
                operation_id=operation_id,
                activity=event,
                linking=lambda gateway: [
                    link.owner_id
                    for link in document_links(gateway.document, gateway.resource_id)
                    if link.policy_key == policy_id.key
                ],
            )
        except PreconditionFailed as failed:
            raise ServiceError(
                412,
                "PreconditionFailed",
                f"{failed} for '{policy_id}'; GET the policy again and retry with its etag",
            ) from None
        except PolicyInUse as in_use:
            raise ServiceError(
                400,
                "InUseWebApplicationFirewallPolicyCannotBeDeleted",
                f"the WAF policy '{policy_id}' is linked by {in_use}; remove the links "
                "(firewallPolicy) first",
            ) from None
        except LinkChanged as changed:
            raise ServiceError(409, "Conflict", f"{changed}; retry the request") from None
        if versions:
            last = versions[-1]
            service.operations.committed(operation_id, last.resource_id.casefold(), last.seq)
        return stored, versions

    def refused(
        self, policy_id: FirewallPolicyId, caller: Caller, problems: list[Diagnostic]
    ) -> ServiceError:
        return self.service.refused(policy_id, WRITE, caller, problems)
