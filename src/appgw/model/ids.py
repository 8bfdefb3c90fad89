"""ARM resource ids of application gateways and their children.

ARM compares ids without regard to case, so every comparison here folds case; the spelling the
client chose for names is kept for display.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import ClassVar, Self

GATEWAY_TYPE = "Microsoft.Network/applicationGateways"
FIREWALL_POLICY_TYPE = "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies"
PATH_RULES = "pathRules"

# Child collections (JSON name) in the order Azure lists them in `properties`.
CHILD_COLLECTIONS: tuple[str, ...] = (
    "gatewayIPConfigurations",
    "authenticationCertificates",
    "trustedRootCertificates",
    "trustedClientCertificates",
    "sslCertificates",
    "frontendIPConfigurations",
    "frontendPorts",
    "probes",
    "backendAddressPools",
    "backendHttpSettingsCollection",
    "httpListeners",
    "sslProfiles",
    "urlPathMaps",
    "requestRoutingRules",
    "rewriteRuleSets",
    "redirectConfigurations",
)

# Azure's naming rule for application gateways and every child resource of one: 1-80
# characters, ASCII alphanumerics, '_', '.', '-'; starts alphanumeric, ends alphanumeric or '_'.
NAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$"
MAX_SHOWN_NAME = 80  # a refused name is echoed in messages up to this many characters


@dataclass(frozen=True, slots=True)
class NameRule:
    """One of ARM's naming rules: what is named, the pattern, and the rule in words."""

    what: str
    pattern: re.Pattern[str]
    words: str

    def problem(self, value: str) -> str | None:
        """None for a name the rule allows; otherwise what is wrong, quoting the name with
        its invisible characters (controls, bidi overrides) spelled out."""
        if self.pattern.fullmatch(value):
            return None
        return f"'{shown_name(value)}' is not a valid {self.what}: {self.words}"


GATEWAY_NAME = NameRule(
    "application gateway name",
    re.compile(NAME_PATTERN.strip("^$")),
    "1-80 characters: letters, digits, '_', '.' and '-'; it starts with a letter or digit and "
    "ends with a letter, digit or '_'",
)
# Azure: WAF policy names are 1-128 characters of the gateway's alphabet.
FIREWALL_POLICY_NAME = NameRule(
    "WAF policy name",
    re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9_])?"),
    "1-128 characters: letters, digits, '_', '.' and '-'; it starts with a letter or digit and "
    "ends with a letter, digit or '_'",
)
# Azure: 1-90 characters, Unicode letters and digits, '_', '(', ')', '-', '.'; not ending in '.'.
RESOURCE_GROUP_NAME = NameRule(
    "resource group name",
    re.compile(r"[-\w.()]{0,89}[-\w()]"),
    "1-90 characters: letters, digits, '_', '(', ')', '-' and '.'; it does not end with '.'",
)
# Azure's are GUIDs; appgw also takes a simple token such as 'sub1' or 'default'.
SUBSCRIPTION_ID = NameRule(
    "subscription id",
    re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?"),
    "1-64 characters: letters, digits, '_', '.' and '-' (a GUID is one); it starts with a "
    "letter or digit and ends with a letter, digit or '_'",
)


def shown_name(value: str) -> str:
    """`value` for a message: characters that do not print are written as escapes, and a
    long name is cut."""
    cut = value[:MAX_SHOWN_NAME]
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in cut)
    return text + ("..." if len(value) > MAX_SHOWN_NAME else "")


_SEGMENT = r"[^/]+"
_GATEWAY_ID = re.compile(
    rf"^/subscriptions/(?P<sub>{_SEGMENT})/resourceGroups/(?P<rg>{_SEGMENT})"
    rf"/providers/Microsoft\.Network/applicationGateways/(?P<name>{_SEGMENT})$",
    re.IGNORECASE,
)
_FIREWALL_POLICY_ID = re.compile(
    rf"^/subscriptions/(?P<sub>{_SEGMENT})/resourceGroups/(?P<rg>{_SEGMENT})"
    rf"/providers/Microsoft\.Network/ApplicationGatewayWebApplicationFirewallPolicies"
    rf"/(?P<name>{_SEGMENT})$",
    re.IGNORECASE,
)
# Any fully qualified ARM id: what Azure calls a "linked property id".
_ARM_ID = re.compile(
    r"^/subscriptions/[^/]+(/resourceGroups/[^/]+)?/providers/[A-Za-z0-9.]+/[^/]+/[^/]+(/[^/]+/[^/]+)*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ResourceId:
    """A top-level resource of one type in a resource group; subclasses say which type."""

    subscription: str
    resource_group: str
    name: str

    TYPE: ClassVar[str] = ""  # the ARM resource type
    _PATTERN: ClassVar[re.Pattern[str]] = _GATEWAY_ID
    _NAME_RULE: ClassVar[NameRule] = GATEWAY_NAME

    def __str__(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{self.TYPE}/{self.name}"
        )

    @property
    def key(self) -> str:
        """The case-folded id under which the store keeps this resource."""
        return str(self).casefold()

    @property
    def is_valid(self) -> bool:
        """Whether the parts make an id ARM accepts: see `problems`."""
        return not self.problems()

    def problems(self) -> list[str]:
        """What ARM's naming rules refuse in the parts (none empty or holding a '/' among
        them), one message each."""
        found = [
            rule.problem(value)
            for rule, value in (
                (SUBSCRIPTION_ID, self.subscription),
                (RESOURCE_GROUP_NAME, self.resource_group),
                (self._NAME_RULE, self.name),
            )
        ]
        return [problem for problem in found if problem is not None]

    @classmethod
    def parse(cls, text: str) -> Self | None:
        match = cls._PATTERN.match(text)
        if match is None:
            return None
        return cls(match["sub"], match["rg"], match["name"])


@dataclass(frozen=True, slots=True)
class GatewayId(ResourceId):
    TYPE: ClassVar[str] = GATEWAY_TYPE

    def child(self, collection: str, name: str) -> str:
        return f"{self}/{collection}/{name}"

    def path_rule(self, path_map: str, rule: str) -> str:
        return f"{self}/urlPathMaps/{path_map}/{PATH_RULES}/{rule}"


@dataclass(frozen=True, slots=True)
class FirewallPolicyId(ResourceId):
    """An ApplicationGatewayWebApplicationFirewallPolicies resource (a WAF policy)."""

    TYPE: ClassVar[str] = FIREWALL_POLICY_TYPE
    _PATTERN: ClassVar[re.Pattern[str]] = _FIREWALL_POLICY_ID
    _NAME_RULE: ClassVar[NameRule] = FIREWALL_POLICY_NAME


def is_arm_id(text: str) -> bool:
    return _ARM_ID.match(text) is not None


def child_type(collection: str) -> str:
    return f"{GATEWAY_TYPE}/{collection}"


@dataclass(frozen=True, slots=True)
class ChildRef:
    """What a `{"id": ...}` reference inside a gateway points at."""

    gateway_key: str
    collection: str  # for path rules: "urlPathMaps/<map>/pathRules"
    name: str


# A gateway at Azure's limits has 21,000 references to only a few hundred children: remembered,
# they are split once (0.2 s of every such PUT). The bound covers every child of two of them.
@functools.lru_cache(maxsize=16384)
def parse_child_ref(ref: str) -> ChildRef | None:
    """Split `{gatewayId}/{collection}/{name}` (or a path rule id); None if it is not one."""
    for prefix_end in _child_boundaries(ref):
        gateway = GatewayId.parse(ref[:prefix_end])
        if gateway is None:
            continue
        rest = ref[prefix_end + 1 :].split("/")
        if len(rest) == 2 and all(rest):
            return ChildRef(gateway.key, rest[0], rest[1])
        if len(rest) == 4 and all(rest) and rest[0].casefold() == "urlpathmaps":
            return ChildRef(gateway.key, f"urlPathMaps/{rest[1]}/{rest[2]}", rest[3])
    return None


def _child_boundaries(ref: str) -> list[int]:
    # The gateway id has 8 segments, so its end is the 9th '/' of the reference. (str.find, not
    # a scan per character: a gateway at Azure's limits has 20,000 references to check.)
    end = -1
    for _ in range(9):
        end = ref.find("/", end + 1)
        if end < 0:
            return []
    return [end]
