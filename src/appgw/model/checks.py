"""What model/validate.py's checker offers the modules that check one feature each
(validate_rewrite.py, validate_profiles.py): the gateway, its SKU, and how to report."""

from __future__ import annotations

from typing import Protocol

from appgw.model.ids import GatewayId
from appgw.model.resource import ApplicationGatewayProperties, ChildResource, SslPolicy, SubResource


class Checks(Protocol):
    """The checker of model/validate.py, as the feature modules see it."""

    props: ApplicationGatewayProperties
    v1: bool
    gid: GatewayId

    def add(self, code: str, resource_id: str, field: str, text: str) -> None: ...

    def rid(self, collection: str, child: ChildResource) -> str: ...

    def ref(
        self,
        owner: str,
        field: str,
        reference: SubResource | None,
        collection: str,
        *,
        required: bool = False,
    ) -> str | None: ...

    def require_v2(self, owner: str, field: str, code: str, what: str) -> None: ...

    def check_ssl_policy(self, owner: str, field: str, policy: SslPolicy) -> None: ...
