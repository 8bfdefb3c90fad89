"""Rewrite rule sets compiled for the data plane: patterns compiled once per version, value
templates parsed, rules sorted by `ruleSequence` and split by when they act (request or
response), so a request pays only for the rules that can apply to it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from appgw.model.rewrite import (
    Reference,
    Template,
    compile_pattern,
    parse_template,
    parse_variable,
)

if TYPE_CHECKING:  # the data plane imports this module, and never pydantic
    from appgw.model.resource import HeaderConfiguration, RewriteRule, RewriteRuleSet


@dataclass(frozen=True, slots=True)
class RewriteCondition:
    variable: Reference
    pattern: Any  # an RE2 pattern (google-re2 has no types)
    negate: bool


@dataclass(frozen=True, slots=True)
class HeaderAction:
    name: bytes  # as configured: the header goes out under this spelling
    lowered: bytes
    value: tuple[bytes | Reference, ...] | None  # None: delete the header


@dataclass(frozen=True, slots=True)
class UrlAction:
    path: tuple[bytes | Reference, ...] | None  # None: the path stays
    query: tuple[bytes | Reference, ...] | None  # None: the query stays; empty: removed
    reroute: bool  # re-evaluate the URL path map with the rewritten path


@dataclass(frozen=True, slots=True)
class CompiledRewriteRule:
    name: str
    conditions: tuple[RewriteCondition, ...]
    request_headers: tuple[HeaderAction, ...]
    response_headers: tuple[HeaderAction, ...]
    url: UrlAction | None
    # A rule without conditions whose response values are plain text (security headers, a
    # banner removed: the common case) has its edits made here, once, not per response.
    static_response_edits: dict[bytes, tuple[bytes, bytes | None]] | None = None


@dataclass(frozen=True, slots=True)
class RewriteSet:
    name: str
    request_rules: tuple[CompiledRewriteRule, ...]  # with request header or URL actions
    response_rules: tuple[CompiledRewriteRule, ...]  # with response header actions


def compile_rewrite_set(rule_set: RewriteRuleSet) -> RewriteSet:
    """`rule_set` passed model/validate_rewrite.py's checks."""
    rules = sorted(
        rule_set.properties.rewrite_rules,
        key=lambda rule: rule.rule_sequence or 0,  # sorted() is stable: ties keep list order
    )
    compiled = [_rule(rule) for rule in rules]
    return RewriteSet(
        rule_set.name,
        tuple(r for r in compiled if r.request_headers or r.url is not None),
        tuple(r for r in compiled if r.response_headers),
    )


def _rule(rule: RewriteRule) -> CompiledRewriteRule:
    compiled = _dynamic_rule(rule)
    if compiled.conditions or not all(
        action.value is None or all(isinstance(part, bytes) for part in action.value)
        for action in compiled.response_headers
    ):
        return compiled
    static = {
        action.lowered: (
            action.name,
            b"".join(part for part in action.value if isinstance(part, bytes))
            if action.value is not None
            else None,
        )
        for action in compiled.response_headers
    }
    return replace(compiled, static_response_edits=static)


def _dynamic_rule(rule: RewriteRule) -> CompiledRewriteRule:
    actions = rule.action_set
    url = actions.url_configuration if actions is not None else None
    return CompiledRewriteRule(
        rule.name,
        tuple(
            RewriteCondition(
                parse_variable(condition.variable),
                compile_pattern(condition.pattern, ignore_case=bool(condition.ignore_case)),
                bool(condition.negate),
            )
            for condition in rule.conditions or []
        ),
        _headers(actions.request_header_configurations if actions else None),
        _headers(actions.response_header_configurations if actions else None),
        UrlAction(
            _template(url.modified_path),
            _template(url.modified_query_string),
            bool(url.reroute),
        )
        if url is not None
        else None,
    )


def _headers(configurations: list[HeaderConfiguration] | None) -> tuple[HeaderAction, ...]:
    return tuple(
        HeaderAction(
            header.header_name.encode("ascii"),
            header.header_name.lower().encode("ascii"),
            # Azure: an empty value deletes the header.
            _template(header.header_value) if header.header_value else None,
        )
        for header in configurations or []
    )


def _template(text: str | None) -> tuple[bytes | Reference, ...] | None:
    if text is None:
        return None
    template: Template = parse_template(text)
    # Text goes out as UTF-8; values taken from the request go out as the bytes they came as.
    return tuple(part.encode() if isinstance(part, str) else part for part in template)
