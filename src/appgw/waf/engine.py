"""ModSecurity v3 with the OWASP Core Rule Set: one rule set per WAF configuration, loaded when
a gateway version is compiled and shared by every request of it; one inspection per request.

The rules come from Debian's `modsecurity-crs` (the CRS 3.3 that ModSecurity's own packagers
ship); the engine is libmodsecurity through its Python binding. Inspection runs in the worker's
event loop, as ModSecurity runs inside nginx's: a request is inspected whole (head, then the
body the exchange buffered), and nothing of it goes to a backend before the verdict.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appgw.memo import BoundedMemo
from appgw.waf.seclang import (
    CRS_FILES,
    WafSettings,
    after_rules,
    before_rules,
    custom_rules_seclang,
)

if TYPE_CHECKING:
    # Loaded on first use (~35 ms): processes that serve no WAF gateway never pay for it.
    from libmodsecurity import RuleMessage, RulesSet

# Debian's modsecurity-crs puts the rules here (the Makefile installs it).
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
# Rule sets kept loaded: one per distinct configuration served (a few per process); each is
# ~10 MB of compiled rules, so old ones go.
_RULE_SETS_KEPT = 16


class RuleSetUnavailable(Exception):
    """The CRS is not installed, or ModSecurity refused the directives: the message says
    which and how to fix it."""


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule_id: int
    message: str
    data: str  # the rule's logdata: what matched, in context
    file: str
    line: int
    severity: int
    disruptive: bool


@dataclass(frozen=True, slots=True)
class WafVerdict:
    matches: tuple[RuleMatch, ...]
    blocked: bool  # the engine intervened (Prevention): answer `status`, forward nothing
    status: int
    seconds: float  # time spent in the engine (the access log's WAFEvaluationTime)


@dataclass(frozen=True, slots=True)
class Inspected:
    """What of a request the engine sees."""

    client_ip: str
    client_port: int
    server_port: int
    method: str
    uri: str  # the request target as received
    http_version: str  # "1.1", "2.0"
    headers: Sequence[tuple[bytes, bytes]]
    body: bytes  # what was buffered (up to the configured limit); b"" for none


class _Engine:
    """The process's ModSecurity instance. Its rule-message callback is process-wide, so the
    matches of the inspection under way are collected here (one inspection at a time: the
    worker is one thread, and the lock keeps it so for any other caller)."""

    def __init__(self) -> None:
        from libmodsecurity import ModSecurity, Transaction

        self.transaction = Transaction
        self.modsecurity = ModSecurity()
        self.modsecurity.set_connector_information("appgw (ModSecurity v3 connector)")
        self.collecting: list[RuleMatch] = []
        self.lock = threading.Lock()
        self.modsecurity.set_rule_message_callback(self._message)

    def _message(self, message: RuleMessage) -> None:
        file = _text(lambda: message.file)
        self.collecting.append(
            RuleMatch(
                rule_id=message.rule_id,
                message=_text(lambda: message.message),
                data=_text(lambda: message.data),
                file=Path(file).name if file else "",
                line=message.line,
                severity=message.severity,
                disruptive=message.disruptive,
            )
        )


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def _the_engine() -> _Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine


class Firewall:
    """One WAF configuration's loaded rules."""

    def __init__(self, settings: WafSettings, rules: RulesSet) -> None:
        self.settings = settings
        self._rules = rules

    def inspect(self, request: Inspected) -> WafVerdict:
        """Run phases 1 (headers) and 2 (body) on `request`."""
        started = time.perf_counter()
        engine = _the_engine()
        with engine.lock:
            engine.collecting = []
            transaction = engine.transaction(engine.modsecurity, self._rules)
            transaction.process_connection(
                request.client_ip, request.client_port, "127.0.0.1", request.server_port
            )
            transaction.process_uri(request.uri, request.method, request.http_version)
            for name, value in request.headers:
                transaction.add_request_header(name.decode("latin-1"), value.decode("latin-1"))
            transaction.process_request_headers()
            intervention = transaction.intervention()
            if intervention is None or not intervention.disruptive:
                if request.body:
                    transaction.append_request_body(request.body)
                transaction.process_request_body()
                intervention = transaction.intervention()
            transaction.process_logging()
            matches = tuple(engine.collecting)
            engine.collecting = []
        blocked = intervention is not None and intervention.disruptive
        if blocked and intervention is not None:
            # The blocking rule (949110) reaches the connector only in the intervention.
            log = _text(lambda: intervention.log)
            if log:
                matches += (_blocking_match(log),)
        return WafVerdict(
            matches=matches,
            blocked=blocked,
            status=intervention.status if blocked and intervention is not None else 200,
            seconds=time.perf_counter() - started,
        )


def _text(read: Callable[[], str | None]) -> str:
    """A string the engine hands over: what matched can hold any bytes of the request (a
    URL-decoded %bc), which the binding's strict UTF-8 refuses; those bytes are shown with
    replacement characters instead of losing the match (or the request)."""
    try:
        return read() or ""
    except UnicodeDecodeError as error:
        raw = error.object if isinstance(error.object, bytes) else bytes(error.object)
        return raw.decode("utf-8", "replace")


_LOG_FIELD = re.compile(r'\[(file|line|id|msg|data|severity) "([^"]*)"\]')


def _blocking_match(text: str) -> RuleMatch:
    """The rule an intervention names, from its log line's [id "..."] [msg "..."] fields."""
    fields = dict(_LOG_FIELD.findall(text))
    return RuleMatch(
        rule_id=int(fields.get("id") or 0),
        message=fields.get("msg", ""),
        data=fields.get("data", ""),
        file=Path(fields.get("file", "")).name,
        line=int(fields.get("line") or 0),
        severity=int(fields.get("severity") or 0),
        disruptive=True,
    )


_firewalls: BoundedMemo[WafSettings, Firewall] = BoundedMemo(_RULE_SETS_KEPT)


def firewall_for(settings: WafSettings) -> Firewall:
    """The loaded rules of `settings` (memoized: a configuration is loaded once per process).
    Raises RuleSetUnavailable."""
    return _firewalls.get(settings, lambda: Firewall(settings, _load(settings)))


def _load(settings: WafSettings) -> RulesSet:
    if not (CRS_RULES / CRS_FILES[0]).is_file():
        raise RuleSetUnavailable(
            f"the OWASP Core Rule Set is not installed in {CRS_RULES} "
            "(Debian package modsecurity-crs; `make run` and `make test` install it)"
        )
    from libmodsecurity import RulesSet

    rules = RulesSet()
    _loaded(rules, rules.load(before_rules(settings)), "the WAF settings")
    custom = custom_rules_seclang(settings)
    if custom:
        _loaded(rules, rules.load(custom), "the custom rules")
    for name in CRS_FILES:
        _loaded(rules, rules.load_from_uri(str(CRS_RULES / name)), name)
    edits = after_rules(settings)
    if edits:
        _loaded(rules, rules.load(edits), "disabled rules and exclusions")
    return rules


def _loaded(rules: RulesSet, count: int, what: str) -> None:
    if count < 0:
        raise RuleSetUnavailable(f"ModSecurity refused {what}: {rules.get_parser_error()}")
