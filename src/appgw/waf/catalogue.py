"""The managed rule sets on offer, as Azure's applicationGatewayAvailableWafRuleSets lists them:
each rule group with its rules and their descriptions, read from the installed CRS files."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from appgw.model.waf_rule_sets import RULE_SET_VERSIONS
from appgw.waf.engine import CRS_RULES
from appgw.waf.seclang import CRS_FILES, RULE_GROUPS, WafSettings, before_rules

__all__ = ["RULE_SET_VERSIONS", "Rule", "RuleGroup", "rule_groups"]
_ID = re.compile(r"\bid:'?(\d+)")
_MSG = re.compile(r"\bmsg:'((?:[^'\\]|\\.)*)'")
# Azure's descriptions of its own groups (the CRS files' names say what each is about).
_DESCRIPTIONS = {
    "General": "Rules the WAF applies before the OWASP groups (request body parsing).",
    "Known-CVEs": "Azure's rules for known CVEs; the open Core Rule Set has none of them.",
}


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: int
    description: str


@dataclass(frozen=True, slots=True)
class RuleGroup:
    name: str
    description: str
    rules: tuple[Rule, ...]


def rule_groups(rules_dir: Path = CRS_RULES) -> tuple[RuleGroup, ...]:
    """Azure's groups, in its order, with the rules the installed CRS has in each (none when
    the CRS is not installed)."""
    return _rule_groups(str(rules_dir))


@functools.lru_cache(maxsize=4)
def _rule_groups(rules_dir: str) -> tuple[RuleGroup, ...]:
    # Azure's "General" rules are appgw's own directives (seclang.before_rules), not the CRS's.
    found = _described_rules(before_rules(WafSettings(prevention=True, rule_set_version="3.2")))
    for name in CRS_FILES:
        path = Path(rules_dir) / name
        if path.is_file():
            found.update(_described_rules(path.read_text(encoding="utf-8", errors="replace")))
    groups = []
    for group, (first, last) in RULE_GROUPS.items():
        rules = tuple(
            Rule(rule_id, found[rule_id]) for rule_id in sorted(found) if first <= rule_id <= last
        )
        description = _DESCRIPTIONS.get(group) or group.split("-", 2)[-1].replace("-", " ").title()
        groups.append(RuleGroup(group, description, rules))
    return tuple(groups)


def _described_rules(text: str) -> dict[int, str]:
    """Rule id -> msg of every directive with both (flow-control rules have no msg)."""
    rules: dict[int, str] = {}
    for directive in text.replace("\\\n", " ").splitlines():
        if not directive.lstrip().startswith(("SecRule", "SecAction")):
            continue
        rule_id, message = _ID.search(directive), _MSG.search(directive)
        if rule_id and message:
            rules[int(rule_id.group(1))] = message.group(1).replace("\\'", "'")
    return rules
