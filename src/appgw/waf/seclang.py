"""Azure's WAF settings as SecLanguage: what ModSecurity is told before and after the OWASP
Core Rule Set (CRS) is loaded. Pure: no engine, no files; engine.py loads the result.

Azure runs the CRS in anomaly-scoring mode at paranoia level 1: each matching rule adds to the
request's score, and rule 949110 blocks once the inbound score reaches 5 (one critical match).
Detection mode runs every rule and blocks nothing (`SecRuleEngine DetectionOnly`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appgw.model.waf_rule_sets import RULE_GROUPS as AZURE_RULE_GROUPS, group_of_rule

# Azure's rule groups (as disabledRuleGroups names them) -> the CRS rule ids they hold: the
# group's number thousands (942 -> 942000-942999). "General" is Azure's own group of
# CRS-independent rules (200xxx: body parsing); "Known-CVEs" holds Azure's 800xxx rules, which
# the open CRS does not have.
_GROUP_NUMBERS = {"General": 200, "Known-CVEs": 800}
RULE_GROUPS: dict[str, tuple[int, int]] = {
    group: (number * 1000, number * 1000 + 999)
    for group in AZURE_RULE_GROUPS
    for number in (_GROUP_NUMBERS.get(group) or int(group.split("-")[1]),)
}
# The CRS files Azure's managed rule set is made of (its 3.x groups, plus the CRS's own
# initialization and scoring files). Left out: IP reputation (910) needs GeoIP, which Azure
# configures apart (geo-match custom rules); DoS protection (912) and Node.js (934, new in CRS
# 3.3) are no groups of Azure's 3.x rule sets; the response rules (95x) are not part of WAF_v2.
CRS_FILES = (
    "REQUEST-901-INITIALIZATION.conf",
    "REQUEST-905-COMMON-EXCEPTIONS.conf",
    "REQUEST-911-METHOD-ENFORCEMENT.conf",
    "REQUEST-913-SCANNER-DETECTION.conf",
    "REQUEST-920-PROTOCOL-ENFORCEMENT.conf",
    "REQUEST-921-PROTOCOL-ATTACK.conf",
    "REQUEST-930-APPLICATION-ATTACK-LFI.conf",
    "REQUEST-931-APPLICATION-ATTACK-RFI.conf",
    "REQUEST-932-APPLICATION-ATTACK-RCE.conf",
    "REQUEST-933-APPLICATION-ATTACK-PHP.conf",
    "REQUEST-941-APPLICATION-ATTACK-XSS.conf",
    "REQUEST-942-APPLICATION-ATTACK-SQLI.conf",
    "REQUEST-943-APPLICATION-ATTACK-SESSION-FIXATION.conf",
    "REQUEST-944-APPLICATION-ATTACK-JAVA.conf",
    "REQUEST-949-BLOCKING-EVALUATION.conf",
)
# Azure: a request is blocked once its inbound anomaly score reaches 5 (one critical match).
INBOUND_ANOMALY_THRESHOLD = 5
PARANOIA_LEVEL = 1  # Azure's managed CRS runs at paranoia level 1
# ModSecurity ids of custom rules: the n-th (in priority order) is CUSTOM_RULE_IDS + n, in the
# range ModSecurity leaves to local rules (1-99,999), clear of the CRS's 9xxxxx.
CUSTOM_RULE_IDS = 10_000
# Azure's custom-rule match variables -> ModSecurity variables ("{}" takes the selector).
CUSTOM_VARIABLES = {
    "RemoteAddr": "REMOTE_ADDR",
    "RequestMethod": "REQUEST_METHOD",
    "QueryString": "QUERY_STRING",
    "PostArgs": "ARGS_POST",
    "RequestUri": "REQUEST_URI",
    "RequestHeaders": "REQUEST_HEADERS",
    "RequestBody": "REQUEST_BODY",
    "RequestCookies": "REQUEST_COOKIES",
}
# Variables only the body phase knows: a rule using one runs in phase 2.
BODY_VARIABLES = frozenset({"PostArgs", "RequestBody"})
# Azure's transforms -> ModSecurity's.
CUSTOM_TRANSFORMS = {
    "Lowercase": "lowercase",
    "Uppercase": "upperCase",
    "Trim": "trim",
    "UrlDecode": "urlDecodeUni",
    "UrlEncode": "urlEncode",
    "RemoveNulls": "removeNulls",
    "HtmlEntityDecode": "htmlEntityDecode",
}
# Azure's numeric operators -> ModSecurity's, and how several values combine: "less than any
# of them" is "less than the largest".
NUMERIC_OPERATORS = {
    "LessThan": ("lt", max),
    "LessThanOrEqual": ("le", max),
    "GreaterThan": ("gt", min),
    "GreaterThanOrEqual": ("ge", min),
}
# Azure's string operators as anchored alternatives of literal values.
_STRING_PATTERNS = {
    "Equal": "^(?:{})$",
    "Contains": "(?:{})",
    "BeginsWith": "^(?:{})",
    "EndsWith": "(?:{})$",
}
# Azure's matchVariable -> the ModSecurity collection an exclusion removes a key from.
_EXCLUDED_COLLECTIONS = {
    "RequestHeaderNames": ("REQUEST_HEADERS",),
    "RequestHeaderKeys": ("REQUEST_HEADERS",),
    "RequestHeaderValues": ("REQUEST_HEADERS",),
    "RequestCookieNames": ("REQUEST_COOKIES",),
    "RequestCookieKeys": ("REQUEST_COOKIES",),
    "RequestCookieValues": ("REQUEST_COOKIES",),
    "RequestArgNames": ("ARGS", "ARGS_NAMES"),
    "RequestArgKeys": ("ARGS_NAMES",),
    "RequestArgValues": ("ARGS",),
}


@dataclass(frozen=True, slots=True)
class Exclusion:
    match_variable: str  # Azure's matchVariable, e.g. RequestArgNames
    operator: str  # Equals, StartsWith, EndsWith, Contains, EqualsAny
    selector: str
    # A WAF policy's exclusion may name the rules it applies to (exclusionManagedRuleSets,
    # groups already expanded to their rules); none: every managed rule.
    rule_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Condition:
    """One of a custom rule's matchConditions: any of `variables` meets any of `values`."""

    variables: tuple[tuple[str, str | None], ...]  # (variableName, selector)
    operator: str  # Azure's: IPMatch, Equal, Contains, BeginsWith, EndsWith, Regex, Any, ...
    negate: bool
    values: tuple[str, ...]
    transforms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomRule:
    """A WAF policy's custom rule (a MatchRule): all conditions met -> the action."""

    name: str
    action: str  # Allow, Block, Log
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class WafSettings:
    """What the gateway's webApplicationFirewallConfiguration says, validated."""

    prevention: bool  # firewallMode Prevention (else Detection)
    rule_set_version: str  # "3.0", "3.1", "3.2": what the logs name
    disabled_groups: tuple[str, ...] = ()
    disabled_rules: tuple[int, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    request_body_check: bool = True
    max_request_body_bytes: int = 128 * 1024  # Azure's default maxRequestBodySizeInKb, 128
    # Prevention refuses a body over the limit (413); a policy's requestBodyEnforcement false
    # inspects the limit's worth and forwards the rest.
    enforce_body_limit: bool = True
    file_upload_limit_bytes: int = 100 * 1024 * 1024  # Azure's default, 100 MB
    # A WAF policy's custom rules, in priority order: they run before the managed rules.
    custom_rules: tuple[CustomRule, ...] = ()

    def custom_rule(self, rule_id: int) -> CustomRule | None:
        """The custom rule a ModSecurity rule id stands for (see custom_rules_seclang)."""
        index = rule_id - CUSTOM_RULE_IDS
        return self.custom_rules[index] if 0 <= index < len(self.custom_rules) else None


def before_rules(settings: WafSettings) -> str:
    """The engine's settings and the CRS setup (crs-setup.conf's variables), first."""
    lines = [
        f"SecRuleEngine {'On' if settings.prevention else 'DetectionOnly'}",
        f"SecRequestBodyAccess {'On' if settings.request_body_check else 'Off'}",
        # The gateway buffers and bounds the body itself (exchange.py); ModSecurity may see
        # all of it, up to the file upload limit for multipart bodies.
        f"SecRequestBodyLimit {max(settings.file_upload_limit_bytes, 1)}",
        f"SecRequestBodyNoFilesLimit {max(settings.max_request_body_bytes, 1)}",
        "SecRequestBodyLimitAction ProcessPartial",
        "SecResponseBodyAccess Off",
        "SecAuditEngine Off",
        "SecArgumentSeparator &",
        "SecCookieFormat 0",
        'SecDefaultAction "phase:1,log,auditlog,pass"',
        'SecDefaultAction "phase:2,log,auditlog,pass"',
        # crs-setup.conf: paranoia level, anomaly thresholds, the version marker rule 901001
        # checks for.
        'SecAction "id:900000,phase:1,nolog,pass,t:none,'
        f'setvar:tx.paranoia_level={PARANOIA_LEVEL}"',
        'SecAction "id:900110,phase:1,nolog,pass,t:none,'
        f"setvar:tx.inbound_anomaly_score_threshold={INBOUND_ANOMALY_THRESHOLD},"
        'setvar:tx.outbound_anomaly_score_threshold=4"',
        'SecAction "id:900990,phase:1,nolog,pass,t:none,setvar:tx.crs_setup_version=334"',
        # ModSecurity's recommended body processors: JSON and XML bodies are parsed into ARGS
        # (XML) so that the CRS inspects their values, as Azure's WAF does. Their ids are local
        # ones outside Azure's "General" group, so that turning the group off keeps the parsing.
        'SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\\+|/)|text/)xml" '
        '"id:9000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"',
        'SecRule REQUEST_HEADERS:Content-Type "^application/json" '
        '"id:9001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"',
        # Azure's "General" group: a body that does not parse, or a multipart body that is not
        # strictly valid, is refused (in Prevention) rather than let through uninspected.
        'SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:403,'
        "msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2\"",
        'SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:403,'
        "msg:'Multipart request body failed strict validation',severity:2\"",
        'SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "id:200004,phase:2,t:none,log,deny,'
        "status:403,msg:'Multipart parser detected a possible unmatched boundary.',severity:2\"",
    ]
    return "\n".join(lines) + "\n"


def custom_rules_seclang(settings: WafSettings) -> str:
    """The custom rules, loaded before the CRS so that they run first (Azure: custom rules
    before managed ones): each is a chain of one SecRule per condition. Block denies (in
    Prevention; Detection only logs it), Allow skips every later rule, Log just logs."""
    lines: list[str] = []
    for index, rule in enumerate(settings.custom_rules):
        phase = (
            2
            if any(name in BODY_VARIABLES for c in rule.conditions for name, _ in c.variables)
            else 1
        )
        action = {"Block": "deny", "Allow": "allow", "Log": "pass"}[rule.action]
        for number, condition in enumerate(rule.conditions):
            variables = "|".join(
                CUSTOM_VARIABLES[name] + (f":{_selector(selector)}" if selector else "")
                for name, selector in condition.variables
            )
            transforms = "".join(f",t:{CUSTOM_TRANSFORMS[t]}" for t in condition.transforms)
            if number == 0:
                actions = (
                    f"id:{CUSTOM_RULE_IDS + index},phase:{phase},{action},log,"
                    f"msg:'Custom rule {rule.name}',tag:'custom-rule',t:none{transforms}"
                )
            else:
                actions = f"t:none{transforms}"
            if number < len(rule.conditions) - 1:
                actions += ",chain"
            lines.append(f'SecRule {variables} "{_operator(condition)}" "{actions}"')
    return "\n".join(lines) + ("\n" if lines else "")


def _selector(selector: str) -> str:
    """A selector as a ModSecurity key: literal when plain, else an exact, case-insensitive
    regex (header and cookie names are matched without regard to case)."""
    if re.fullmatch(r"[A-Za-z0-9_.\-]+", selector):
        return selector
    return f"/^{_literal(selector)}$/"


def _operator(condition: Condition) -> str:
    negate = "!" if condition.negate else ""
    operator, values = condition.operator, condition.values
    if operator == "Any":
        return f"{negate}@unconditionalMatch"
    if operator == "IPMatch":
        return f"{negate}@ipMatch {','.join(values)}"
    if operator in NUMERIC_OPERATORS:
        name, pick = NUMERIC_OPERATORS[operator]
        return f"{negate}@{name} {pick(int(value) for value in values)}"
    if operator == "Regex":
        pattern = "|".join(f"(?:{value})" for value in values).replace('"', "\\x22")
    else:
        pattern = _STRING_PATTERNS[operator].format("|".join(_literal(v) for v in values))
    return f"{negate}@rx {pattern}"


def _literal(text: str) -> str:
    """`text` as a PCRE pattern matching it literally: every byte but letters and digits as
    \\xHH, so no quote, space or backslash can end or change the directive."""
    return "".join(
        chr(byte) if chr(byte).isalnum() and byte < 128 else f"\\x{byte:02x}"
        for byte in text.encode("utf-8")
    )


def after_rules(settings: WafSettings) -> str:
    """Disabled groups and rules, and exclusions: they edit rules already loaded."""
    lines: list[str] = []
    for group in settings.disabled_groups:
        first, last = RULE_GROUPS[group]
        lines.append(f"SecRuleRemoveById {first}-{last}")
    lines += (f"SecRuleRemoveById {rule}" for rule in settings.disabled_rules)
    for exclusion in settings.exclusions:
        for target in exclusion_targets(exclusion):
            if exclusion.rule_ids:
                lines += (
                    f'SecRuleUpdateTargetById {rule} "!{target}"' for rule in exclusion.rule_ids
                )
            else:
                # Azure's exclusions apply to every managed rule; all CRS rules carry this tag.
                lines.append(f'SecRuleUpdateTargetByTag "OWASP_CRS" "!{target}"')
    return "\n".join(lines) + ("\n" if lines else "")


def exclusion_targets(exclusion: Exclusion) -> list[str]:
    """`!COLLECTION:key` targets for ModSecurity: a literal key for Equals, a regex key
    (ModSecurity's /.../ form) for the other operators; EqualsAny is the whole collection."""
    collections = _EXCLUDED_COLLECTIONS.get(exclusion.match_variable, ())
    selector = exclusion.selector
    if exclusion.operator == "EqualsAny":
        return list(collections)
    if exclusion.operator == "Equals" and re.fullmatch(r"[A-Za-z0-9_.\-]+", selector):
        key = selector
    else:
        escaped = re.escape(selector)
        pattern = {
            "Equals": f"^{escaped}$",
            "StartsWith": f"^{escaped}",
            "EndsWith": f"{escaped}$",
            "Contains": escaped,
        }.get(exclusion.operator, f"^{escaped}$")
        key = f"/{pattern}/"
    return [f"{collection}:{key}" for collection in collections]


def group_of(rule_id: int) -> str:
    """Azure's rule group name of a CRS rule id (what the firewall log and metrics name); the
    CRS's own initialization and scoring rules are named for their files."""
    if CUSTOM_RULE_IDS <= rule_id < CUSTOM_RULE_IDS + 1000:
        return "Custom"
    group = group_of_rule(rule_id)
    if group is not None:
        return group
    if 949000 <= rule_id <= 949999:
        return "BLOCKING-EVALUATION"
    return "INITIALIZATION" if 901000 <= rule_id <= 905999 else "General"
