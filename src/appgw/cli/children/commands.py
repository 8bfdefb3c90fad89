"""create / update / delete / list / show (add / remove where az says so) for every child
group, made from one table per group.

A group lists its flags once (`Flag`); the same list gives the typer options of create and
update, and most flags also say where their value goes in the child's JSON (`key`, and `link`
for names that become ids), so a group only writes code for what is special about it (`apply`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

import typer

from appgw.cli.children.edit import (
    NOUNS,
    Edit,
    edit_gateway,
    existing_member,
    find_member,
    read_gateway,
)
from appgw.cli.client import Api, emit, fail
from appgw.cli.options import (
    AzCommand,
    NoWait,
    Output,
    Query,
    ResourceGroup,
    Server,
    Subscription,
    unsupported_option,
)
from appgw.model.enums import AzureEnum


class Switch(AzureEnum):
    """az's three-state booleans take a value: `--enable-probe true`."""

    TRUE = "true"
    FALSE = "false"


@dataclass(frozen=True)
class Flag:
    """One option of create/update.

    kind: str, int, Path, bool (a plain on-flag), list (of str; repeat the flag or separate
    values by spaces/commas), or dict (KEY=VALUE words, az's `--request-headers A=1 B=`; a
    word is never split, as a value may hold spaces and commas). choices: the Azure enum a
    str or each list item must be one of, in any letter case (Switch: az's true/false values).
    key: the JSON property it sets ("match.body" reaches into an object); None when `apply`
    handles it. link: the collection whose child names the value holds (they become ids).
    """

    decls: tuple[str, ...]
    help: str
    kind: Any = str
    key: str | None = None
    link: str | None = None
    required: bool = False  # on create
    default: Any = None  # what create uses when the flag is left out
    update: bool = True  # also offered by update
    choices: type[Enum] | None = None
    refused: str | None = None  # an az flag appgw does not support: why, shown when given

    @property
    def name(self) -> str:
        return self.decls[0].lstrip("-").replace("-", "_")

    @property
    def long(self) -> str:
        return self.decls[0]


@dataclass
class Change:
    """What `apply` gets: the document, the child's properties, the flags given (with create's
    defaults filled in), and whether the child is new."""

    edit: Edit
    properties: dict[str, Any]
    values: dict[str, Any]
    creating: bool
    flags: dict[str, Flag]
    parent: dict[str, Any] | None = None

    def given(self, name: str) -> bool:
        return name in self.values

    def ref(self, name: str, collection: str) -> dict[str, str]:
        return self.edit.ref(collection, self.values[name], self.flags[name].long)

    def link_or_only(self, key: str, name: str, collection: str) -> None:
        """On create, a reference left out names the only child of its kind."""
        if self.creating and key not in self.properties:
            self.properties[key] = self.edit.only_ref(collection, self.flags[name].long)


@dataclass(frozen=True)
class Group:
    path: str  # the command group after `appgw`, as az names it ("url-path-map rule")
    collection: str
    flags: tuple[Flag, ...]
    example: str  # create's flags in the help example
    update_example: str
    example_name: str
    apply: Callable[[Change], None] | None = None
    # Work on the flags' values before the GET (reading and checking files, a prompt), so
    # that bad input fails before any request and a prompt does not hold the read open.
    prepare: Callable[[dict[str, Any]], None] | None = None
    parent: Parent | None = None
    # The flag that names a child, and (`key`) the field it names: default -n/--name, "name".
    # A rewrite condition has no name; az identifies it by its --variable.
    identity: Flag | None = None
    # ARM sub-resources keep their fields in `properties`; rewrite rules and their conditions
    # are plain objects.
    envelope: bool = True
    # az's verbs that make and drop a child: most groups create/delete, the newer client-cert
    # and ssl-profile add/remove.
    verbs: tuple[str, str] = ("create", "delete")

    @property
    def noun(self) -> str:
        return NOUNS[self.collection]

    @property
    def key(self) -> Flag:
        if self.identity is not None:
            return self.identity
        return Flag(("--name", "-n"), f"Name of the {self.noun}.", key="name")

    @property
    def key_field(self) -> str:
        assert self.key.key is not None
        return self.key.key

    def parents(self) -> list[Parent]:
        """The chain of parents, outermost first."""
        if self.parent is None:
            return []
        return [*self.parent.group.parents(), self.parent]

    def fields(self, child: dict[str, Any]) -> dict[str, Any]:
        """Where a child of this group keeps its fields."""
        if not self.envelope:
            return child
        properties: dict[str, Any] = child.setdefault("properties", {})
        return properties


@dataclass(frozen=True)
class Parent:
    """The child a group's children live in: path rules in a URL path map, rewrite rules in a
    rewrite rule set, conditions in a rewrite rule (itself in a set)."""

    flag: Flag
    group: Group


# --- flag values ------------------------------------------------------------------------------

_LIST_SEPARATORS = re.compile(r"[\s,]+")
_LISTED_CHOICES = 8  # more (cipher suites) would drown the help; list-options shows them


def _value(flag: Flag, raw: Any) -> Any:
    if flag.kind is dict:
        return _pairs(flag, raw)
    if flag.kind is list:
        items = [item for value in raw for item in _LIST_SEPARATORS.split(value) if item]
        return [_choice(flag, item) for item in items] if flag.choices else items
    if flag.choices is Switch:
        return _choice(flag, raw) == Switch.TRUE
    return _choice(flag, raw) if flag.choices else raw


def _pairs(flag: Flag, words: list[str]) -> dict[str, str]:
    """KEY=VALUE words in order; an empty word (`--request-headers ""`) gives none."""
    pairs: dict[str, str] = {}
    seen: set[str] = set()
    for word in words:
        if not word:
            continue
        key, equals, value = word.partition("=")
        if not equals or not key:
            fail(f"{flag.long} {word!r}: give KEY=VALUE (the VALUE may be empty: KEY=)", 2)
        # Header names are compared without regard to case: a second one would be ambiguous.
        if key.casefold() in seen:
            fail(f"{flag.long}: {key!r} is given twice; give each KEY once", 2)
        seen.add(key.casefold())
        pairs[key] = value
    return pairs


def _choice(flag: Flag, item: str) -> str:
    """Azure's spelling of an enum value given in any letter case."""
    assert flag.choices is not None
    try:
        return str(flag.choices(item).value)
    except ValueError:
        known = ", ".join(str(member.value) for member in flag.choices)
        fail(f"{flag.long}: {item!r} is not one of: {known}", 2)


def given_values(
    flags: Sequence[Flag], arguments: dict[str, Any], *, creating: bool
) -> dict[str, Any]:
    """The flags given on the command line (typer's None / False: left out), converted; on
    create, defaults for those left out."""
    values: dict[str, Any] = {}
    for flag in flags:
        raw = arguments.get(flag.name)
        if raw is None or raw is False:
            if creating and flag.default is not None:
                values[flag.name] = _value(flag, flag.default)
            continue
        values[flag.name] = _value(flag, raw)
    return values


def set_field(properties: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` ("match.body" reaches into an object, made if missing); None removes it."""
    *path, last = key.split(".")
    for part in path:
        nested = properties.get(part)
        if not isinstance(nested, dict):  # absent, or null as the API may return it
            nested = properties[part] = {}
        properties = nested
    if value is None:
        properties.pop(last, None)
    else:
        properties[last] = value


def _apply_flags(change: Change) -> None:
    """Every flag with a `key`: its value, or for a `link` the ids of the names it gives
    (an empty value removes a single reference)."""
    for flag in change.flags.values():
        if flag.key is None or flag.name not in change.values:
            continue
        value = change.values[flag.name]
        if flag.link is not None:
            if isinstance(value, list):
                value = [change.edit.ref(flag.link, name, flag.long) for name in value]
            else:
                value = change.edit.ref(flag.link, value, flag.long) if value else None
        set_field(change.properties, flag.key, value)


# --- typer signatures -------------------------------------------------------------------------


def option(flag: Flag, *, creating: bool) -> inspect.Parameter:
    if flag.refused is not None:
        refusal = unsupported_option(*flag.decls, reason=flag.refused)
        return keyword(flag.name, Annotated[str | None, refusal], None)
    kind = list[str] if flag.kind in (list, dict) else str if flag.choices else flag.kind
    help_text = flag.help
    if creating and flag.default is not None:
        shown = flag.default.value if isinstance(flag.default, Enum) else flag.default
        help_text += f" Default: {shown}."
    if flag.kind is list:
        help_text += " Repeat the flag, or separate values by spaces or commas."
    if flag.kind is dict:
        help_text += " Separate several by spaces; quote one that holds spaces."
    if flag.link is not None:
        help_text += f" Give names of {NOUNS[flag.link]} children."
    if flag.choices is not None and len(flag.choices) <= _LISTED_CHOICES:
        help_text += " One of: " + ", ".join(str(member.value) for member in flag.choices) + "."
    info = typer.Option(*flag.decls, help=help_text, show_default=False)
    if creating and flag.required:
        return keyword(flag.name, Annotated[kind, info])
    if flag.kind is bool:
        return keyword(flag.name, Annotated[bool, info], False)
    return keyword(flag.name, Annotated[kind | None, info], None)


def keyword(
    name: str, annotation: Any, default: Any = inspect.Parameter.empty
) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


GatewayName = Annotated[str, typer.Option("--gateway-name", help="Application gateway name.")]


def target(group: Group | None = None, *, keyed: bool = True) -> list[inspect.Parameter]:
    """-g and --gateway-name; the flags of the group's parents; the flag that names the child
    (-n) when `keyed`."""
    params = [keyword("resource_group", ResourceGroup), keyword("gateway_name", GatewayName)]
    if group is None:
        return params
    params += [option(parent.flag, creating=True) for parent in group.parents()]
    if keyed:
        key = group.key
        params.append(keyword(key.name, Annotated[str, typer.Option(*key.decls, help=key.help)]))
    return params


def waiting() -> list[inspect.Parameter]:
    """--no-wait, for the commands that write."""
    return [keyword("no_wait", NoWait, False)]


def connection(*, prints: bool) -> list[inspect.Parameter]:
    """--subscription and --server; -o and --query for commands that print."""
    params = [keyword("subscription", Subscription, None), keyword("server", Server, None)]
    if prints:
        params += [keyword("output", Output, "json"), keyword("query", Query, None)]
    return params


def command(
    params: Sequence[inspect.Parameter], run: Callable[[dict[str, Any]], None], doc: str
) -> Callable[..., None]:
    """A typer command whose options are `params`; `run` gets their values as a dict."""

    def invoke(**arguments: Any) -> None:
        run(arguments)

    invoke.__signature__ = inspect.Signature(list(params))  # type: ignore[attr-defined]
    invoke.__doc__ = doc
    return invoke


def add_command(
    app: typer.Typer,
    verb: str,
    params: Sequence[inspect.Parameter],
    run: Callable[[dict[str, Any]], None],
    doc: str,
) -> None:
    app.command(verb, cls=AzCommand)(command(params, run, doc))


def connect(arguments: dict[str, Any]) -> Api:
    return Api.connect(arguments["server"], arguments["subscription"])


def edit(arguments: dict[str, Any], change: Callable[[Edit], None]) -> dict[str, Any]:
    """edit_gateway for the gateway the command's -g and --gateway-name name."""
    api = connect(arguments)
    return edit_gateway(
        api,
        arguments["resource_group"],
        arguments["gateway_name"],
        change,
        no_wait=arguments["no_wait"],
    )


def read(arguments: dict[str, Any]) -> dict[str, Any]:
    api = connect(arguments)
    return read_gateway(api, arguments["resource_group"], arguments["gateway_name"])


# --- the verbs --------------------------------------------------------------------------------


@dataclass
class Owner:
    """What holds a group's collection: the gateway, or a child (`child`) of the parent group."""

    fields: dict[str, Any]
    where: str  # for messages: "the gateway", "URL path map 'map1'"
    child: dict[str, Any] | None = None

    def members(self, collection: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.fields.get(collection) or []  # absent or null
        return found


def _owner(group: Group, view: dict[str, Any], arguments: dict[str, Any]) -> Owner:
    """The owner of the group's collection, found through the parents' flags."""
    parent = group.parent
    if parent is None:
        return Owner(view["properties"], "the gateway")
    outer = _owner(parent.group, view, arguments)
    child = _existing(parent.group, outer, arguments[parent.flag.name], parent.flag.long)
    where = f"{parent.group.noun} '{child[parent.group.key_field]}'"
    return Owner(parent.group.fields(child), where, child)


def _existing(group: Group, owner: Owner, value: str, flag: str) -> dict[str, Any]:
    members = owner.members(group.collection)
    return existing_member(
        members, group.key_field, value, flag=flag, noun=group.noun, where=owner.where
    )


def _write(group: Group, arguments: dict[str, Any], *, creating: bool) -> None:
    flags = {flag.name: flag for flag in group.flags if creating or flag.update}
    values = given_values(list(flags.values()), arguments, creating=creating)
    if group.prepare is not None:
        group.prepare(values)
    key = arguments[group.key.name]

    def change(document: Edit) -> None:
        owner = _owner(group, document.view, arguments)
        members = owner.members(group.collection)
        child = find_member(members, group.key_field, key)
        if creating and child is not None:
            fail(
                f"{group.noun} '{child[group.key_field]}' already exists; change it with "
                f"'appgw {group.path} update'"
            )
        if child is None:
            if not creating:
                _existing(group, owner, key, group.key.long)
            child = {group.key_field: key, **({"properties": {}} if group.envelope else {})}
            owner.fields[group.collection] = [*members, child]
        step = Change(document, group.fields(child), values, creating, flags, owner.child)
        _apply_flags(step)
        if group.apply is not None:
            group.apply(step)

    stored = edit(arguments, change)
    if arguments["no_wait"]:
        return  # az prints nothing then
    members = _owner(group, stored, arguments).members(group.collection)
    emit(find_member(members, group.key_field, key), arguments["output"], arguments["query"])


def _delete(group: Group, arguments: dict[str, Any]) -> None:
    def change(document: Edit) -> None:
        owner = _owner(group, document.view, arguments)
        child = _existing(group, owner, arguments[group.key.name], group.key.long)
        kept = [member for member in owner.members(group.collection) if member is not child]
        owner.fields[group.collection] = kept

    edit(arguments, change)


def _show(group: Group, arguments: dict[str, Any]) -> None:
    owner = _owner(group, read(arguments), arguments)
    child = _existing(group, owner, arguments[group.key.name], group.key.long)
    emit(child, arguments["output"], arguments["query"])


def _list(group: Group, arguments: dict[str, Any]) -> None:
    owner = _owner(group, read(arguments), arguments)
    emit(owner.members(group.collection), arguments["output"], arguments["query"])


# --- registration -----------------------------------------------------------------------------


def group_app(group: Group, help_text: str) -> typer.Typer:
    """The group's typer app with create (or add), update, delete (or remove), list and show."""
    app = typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)
    base = f"appgw {group.path}"
    where = "-g rg1 --gateway-name appgw1"
    for parent in group.parents():
        where += f" {parent.flag.long} {parent.group.example_name}"
    make, drop = group.verbs
    key = group.key
    short = min(key.decls, key=len)
    named = f"{where} {short} {group.example_name}"
    which = f"{short} {key.name.upper()}"
    of = f"the {group.parent.group.noun}" if group.parent is not None else "the gateway"

    def flags(creating: bool) -> list[inspect.Parameter]:
        return [option(f, creating=creating) for f in group.flags if creating or f.update]

    verbs: list[tuple[str, list[inspect.Parameter], Callable[[dict[str, Any]], None], str]] = [
        (
            make,
            [*target(group), *flags(True), *waiting(), *connection(prints=True)],
            lambda arguments: _write(group, arguments, creating=True),
            f"{make.capitalize()} the {group.noun} {which}; prints it.\n\n"
            f"Example: {base} {make} {named} {group.example}".rstrip(),
        ),
        (
            "update",
            [*target(group), *flags(False), *waiting(), *connection(prints=True)],
            lambda arguments: _write(group, arguments, creating=False),
            f"Change the {group.noun} {which}: only what the flags give; prints it.\n\n"
            f"Example: {base} update {named} {group.update_example}".rstrip(),
        ),
        (
            drop,
            [*target(group), *waiting(), *connection(prints=False)],
            lambda arguments: _delete(group, arguments),
            f"{drop.capitalize()} the {group.noun} {which}.\n\nExample: {base} {drop} {named}",
        ),
        (
            "list",
            [*target(group, keyed=False), *connection(prints=True)],
            lambda arguments: _list(group, arguments),
            f"List every {group.noun} of {of}.\n\nExample: {base} list {where} -o table",
        ),
        (
            "show",
            [*target(group), *connection(prints=True)],
            lambda arguments: _show(group, arguments),
            f"Show the {group.noun} {which}.\n\nExample: {base} show {named}",
        ),
    ]
    for verb, params, run, doc in verbs:
        add_command(app, verb, params, run, doc)
    return app
