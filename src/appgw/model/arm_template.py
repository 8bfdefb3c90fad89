"""ARM template expressions: enough of Azure Resource Manager's language to deploy an
application gateway resource from a template, evaluated locally.

A string value `"[...]"` is an expression; `"[[..."` is the literal text `"[..."`. Expressions
are function calls with single-quoted strings (`''` is a quote), integers and nested calls,
followed by `.property` or `[index]`. Pure: no I/O; every error names the JSON path it is at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

RESOURCE_GROUP_TYPE = "Microsoft.Resources/resourceGroups"


class TemplateError(Exception):
    """A template that cannot be evaluated; the message names the JSON path."""


@dataclass(frozen=True)
class Deployment:
    """Where the template is deployed: what resourceGroup(), subscription() and
    resourceId() resolve to. `location` is None when the caller gave none."""

    subscription_id: str
    resource_group: str
    location: str | None = None


# --- literals ---------------------------------------------------------------------------------


def is_expression(text: str) -> bool:
    return text.startswith("[") and text.endswith("]") and not text.startswith("[[")


def escape_literal(text: str) -> str:
    """The template spelling of a plain string that must not be read as an expression."""
    return "[" + text if text.startswith("[") and text.endswith("]") else text


def quote(text: str) -> str:
    """A string literal inside an expression."""
    return "'" + text.replace("'", "''") + "'"


# --- parsing ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[(),.\[\]]))"
)


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Member:
    target: Node
    name: str


@dataclass(frozen=True)
class Index:
    target: Node
    index: Node


Node = Literal | Call | Member | Index


@dataclass
class _Parser:
    text: str
    tokens: list[tuple[str, str]] = field(default_factory=list)
    position: int = 0

    def __post_init__(self) -> None:
        offset = 0
        while self.text[offset:].strip():
            match = _TOKEN.match(self.text, offset)
            if match is None:
                column = len(self.text) - len(self.text[offset:].lstrip()) + 1
                raise TemplateError(
                    f"unexpected character {self.text[column - 1]!r} at column {column}"
                )
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            offset = match.end()

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise TemplateError(
                f"the expression ends early; expected {expected!r}"
                if expected
                else "the expression ends early"
            )
        if expected is not None and token[1] != expected:
            raise TemplateError(f"expected {expected!r}, found {token[1]!r}")
        self.position += 1
        return token

    def expression(self) -> Node:
        node = self.primary()
        while (token := self.peek()) is not None and token[1] in (".", "["):
            self.take()
            if token[1] == ".":
                kind, name = self.take()
                if kind != "name":
                    raise TemplateError(f"expected a property name after '.', found {name!r}")
                node = Member(node, name)
            else:
                node = Index(node, self.expression())
                self.take("]")
        return node

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "string":
            return Literal(text[1:-1].replace("''", "'"))
        if kind == "number":
            return Literal(int(text))
        if kind == "name":
            self.take("(")
            args: list[Node] = []
            if (token := self.peek()) is not None and token[1] == ")":
                self.take()
                return Call(text, ())
            while True:
                args.append(self.expression())
                _, separator = self.take()
                if separator == ")":
                    return Call(text, tuple(args))
                if separator != ",":
                    raise TemplateError(f"expected ',' or ')', found {separator!r}")
        raise TemplateError(f"unexpected {text!r}")


def parse_expression(text: str) -> Node:
    """Parse the inside of `[...]` (without the brackets)."""
    parser = _Parser(text)
    if not parser.tokens:
        raise TemplateError("an empty expression '[]'")
    node = parser.expression()
    if (token := parser.peek()) is not None:
        raise TemplateError(f"unexpected {token[1]!r} after the expression")
    return node


# --- evaluation -------------------------------------------------------------------------------

_PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "securestring": (str,),
    "int": (int,),
    "bool": (bool,),
    "object": (dict,),
    "secureobject": (dict,),
    "array": (list,),
}


def parse_parameters_file(raw: object) -> dict[str, Any]:
    """Values from an ARM parameters file ({"parameters": {"name": {"value": ...}}})."""
    if not isinstance(raw, dict) or not isinstance(raw.get("parameters"), dict):
        raise TemplateError("not an ARM parameters file: expected an object with 'parameters'")
    values: dict[str, Any] = {}
    for name, entry in raw["parameters"].items():
        if isinstance(entry, dict) and "value" in entry:
            values[name] = entry["value"]
        elif isinstance(entry, dict) and "reference" in entry:
            raise TemplateError(
                f"parameters.{name}: a Key Vault reference; appgw does not read Key Vault, "
                "give the value itself"
            )
        else:
            raise TemplateError(f"parameters.{name}: expected an object with 'value'")
    return values


def parse_assignment(text: str) -> tuple[str, str]:
    """`name=value` from the command line; the value is converted to the declared type later."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise TemplateError(f"'{text}': expected NAME=VALUE")
    return name.strip(), value


class Template:
    """One template deployed with given parameter values."""

    def __init__(
        self, template: dict[str, Any], deployment: Deployment, values: dict[str, Any]
    ) -> None:
        self.template = template
        self.deployment = deployment
        declared = template.get("parameters") or {}
        variables = template.get("variables") or {}
        if not isinstance(declared, dict) or not isinstance(variables, dict):
            raise TemplateError("'parameters' and 'variables' must be objects")
        self.declared: dict[str, Any] = {k.casefold(): (k, v) for k, v in declared.items()}
        self.variables: dict[str, Any] = {k.casefold(): (k, v) for k, v in variables.items()}
        for name in values:
            if name.casefold() not in self.declared:
                raise TemplateError(f"parameter '{name}' is given but the template declares none")
        self.given = {k.casefold(): v for k, v in values.items()}
        self.parameter_values: dict[str, Any] = {}
        self.variable_values: dict[str, Any] = {}
        self.evaluating: list[str] = []

    # values ---------------------------------------------------------------------------------

    def evaluate(self, value: Any, path: str) -> Any:
        """Evaluate every expression in a JSON value (keys too)."""
        if isinstance(value, str):
            if value.startswith("[[") and value.endswith("]"):
                return value[1:]
            if is_expression(value):
                try:
                    node = parse_expression(value[1:-1])
                except TemplateError as error:
                    raise TemplateError(f"{path}: {value!r}: {error}") from None
                return self.run(node, path)
            return value
        if isinstance(value, list):
            return [self.evaluate(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {
                self.evaluate(key, path): self.evaluate(item, _join(path, key))
                for key, item in value.items()
            }
        return value

    def parameter(self, name: str, path: str) -> Any:
        folded = name.casefold()
        if folded in self.parameter_values:
            return self.parameter_values[folded]
        if folded not in self.declared:
            raise TemplateError(f"{path}: parameters('{name}'): the template declares no such one")
        spelled, declaration = self.declared[folded]
        declaration = declaration if isinstance(declaration, dict) else {}
        kind = str(declaration.get("type", "string")).casefold()
        if folded in self.given:
            value = _coerce(self.given[folded], kind, spelled)
        elif "defaultValue" in declaration:
            with self._guard(f"parameters('{spelled}')", path):
                value = self.evaluate(
                    declaration["defaultValue"], f"parameters.{spelled}.defaultValue"
                )
        else:
            raise TemplateError(
                f"parameter '{spelled}' has no value: give --parameters {spelled}=..."
            )
        expected = _PARAMETER_TYPES.get(kind)
        if expected is None:
            raise TemplateError(f"parameters.{spelled}.type: unknown type {kind!r}")
        if not isinstance(value, expected) or (kind == "int" and isinstance(value, bool)):
            raise TemplateError(f"parameter '{spelled}': expected {kind}, got {_kind(value)}")
        allowed = declaration.get("allowedValues")
        if isinstance(allowed, list) and value not in allowed:
            shown = _shown(value, kind)
            raise TemplateError(
                f"parameter '{spelled}': {shown} is not one of the allowed values {allowed}"
            )
        self.parameter_values[folded] = value
        return value

    def variable(self, name: str, path: str) -> Any:
        folded = name.casefold()
        if folded in self.variable_values:
            return self.variable_values[folded]
        if folded not in self.variables:
            raise TemplateError(f"{path}: variables('{name}'): the template declares no such one")
        spelled, raw = self.variables[folded]
        if folded == "copy":
            raise TemplateError("variables.copy: variable copy loops are not supported")
        with self._guard(f"variables('{spelled}')", path):
            value = self.evaluate(raw, f"variables.{spelled}")
        self.variable_values[folded] = value
        return value

    @contextmanager
    def _guard(self, key: str, path: str) -> Iterator[None]:
        """Evaluating `key` (a parameter default or a variable) must not need itself."""
        if key in self.evaluating:
            cycle = " -> ".join([*self.evaluating, key])
            raise TemplateError(f"{path}: a cycle: {cycle}")
        self.evaluating.append(key)
        try:
            yield
        finally:
            self.evaluating.pop()

    # expressions ----------------------------------------------------------------------------

    def run(self, node: Node, path: str) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Member):
            target = self.run(node.target, path)
            if not isinstance(target, dict):
                raise TemplateError(f"{path}: '.{node.name}' on {_kind(target)}, not an object")
            for key, value in target.items():
                if key.casefold() == node.name.casefold():
                    return value
            if target.get("type") == RESOURCE_GROUP_TYPE and node.name.casefold() == "location":
                raise TemplateError(f"{path}: resourceGroup().location needs --location")
            raise TemplateError(f"{path}: the object has no property '{node.name}'")
        if isinstance(node, Index):
            target, index = self.run(node.target, path), self.run(node.index, path)
            if isinstance(target, list) and isinstance(index, int) and not isinstance(index, bool):
                if not 0 <= index < len(target):
                    raise TemplateError(f"{path}: index {index} is outside the array")
                return target[index]
            if isinstance(target, dict) and isinstance(index, str):
                return self.run(Member(Literal(target), index), path)
            raise TemplateError(f"{path}: cannot index {_kind(target)} with {_kind(index)}")
        name = node.name.casefold()
        if name == "if":
            if len(node.args) != 3:
                raise TemplateError(f"{path}: if() takes 3 arguments")
            condition = self.run(node.args[0], path)
            if not isinstance(condition, bool):
                raise TemplateError(f"{path}: if() needs a bool condition, got {_kind(condition)}")
            return self.run(node.args[1 if condition else 2], path)
        function = _FUNCTIONS.get(name)
        if function is None:
            raise TemplateError(f"{path}: the function '{node.name}' is not supported by appgw")
        args = [self.run(arg, path) for arg in node.args]
        try:
            return function(self, path, args)
        except TemplateError:
            raise
        except (TypeError, ValueError, IndexError) as error:
            raise TemplateError(f"{path}: {node.name}(): {error}") from None

    def resource_id(self, args: list[Any]) -> str:
        if not all(isinstance(arg, str) for arg in args):
            raise ValueError("arguments must be strings")
        type_at = next((i for i, arg in enumerate(args) if "/" in arg), None)
        if type_at is None or type_at > 2:
            raise ValueError("expected [subscriptionId], [resourceGroupName], type, names...")
        scope = args[:type_at]
        subscription = scope[0] if len(scope) == 2 else self.deployment.subscription_id
        group = scope[-1] if scope else self.deployment.resource_group
        namespace, *types = args[type_at].split("/")
        names = args[type_at + 1 :]
        if len(names) != len(types) or not types:
            raise ValueError(f"type '{args[type_at]}' needs {len(types)} name(s), got {len(names)}")
        segments = "".join(f"/{t}/{n}" for t, n in zip(types, names, strict=True))
        return (
            f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{namespace}{segments}"
        )

    def resources_of_type(self, resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(JSON path, raw resource) of each resource of that type, nested ones included."""
        yield from _resources(self.template.get("resources"), "resources", resource_type)


def _resources(
    value: object, path: str, resource_type: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):  # languageVersion 2.0: symbolic names
        items: list[tuple[str, Any]] = [(_join(path, k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        return
    for item_path, resource in items:
        if not isinstance(resource, dict):
            continue
        if str(resource.get("type", "")).casefold() == resource_type.casefold():
            yield item_path, resource
        yield from _resources(resource.get("resources"), f"{item_path}.resources", resource_type)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int):
        return "an int"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _coerce(value: Any, kind: str, name: str) -> Any:
    """A command-line value (always text) as the declared type; file values pass as they are."""
    if not isinstance(value, str) or kind in ("string", "securestring"):
        return value
    try:
        if kind == "int":
            return int(value)
        if kind == "bool":
            if value.casefold() not in ("true", "false"):
                raise ValueError("expected true or false")
            return value.casefold() == "true"
        return json.loads(value)
    except ValueError as error:
        shown = _shown(value, kind)
        raise TemplateError(
            f"parameter '{name}': {shown} is not a valid {kind} ({error})"
        ) from None


def _shown(value: Any, kind: str) -> str:
    """A parameter value for an error message; secure ones are never shown."""
    return "the secure value" if kind.startswith("secure") else repr(value)


def to_string(value: Any) -> str:
    """ARM's string(): .NET spelling of bools, compact JSON for objects and arrays."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


_FORMAT_ITEM = re.compile(r"\{\{|\}\}|\{(\d+)\}|[{}]")


def dotnet_format(pattern: str, args: list[Any]) -> str:
    """String.Format with `{0}` items and `{{`/`}}` escapes (no alignment or format strings)."""

    def item(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        if match.group(1) is None:
            raise ValueError(
                f"{pattern!r}: a lone {text!r}; write {text * 2!r} for the character, "
                "or '{0}' for an argument"
            )
        index = int(match.group(1))
        if index >= len(args):
            raise ValueError(f"{pattern!r} uses {{{index}}} but only {len(args)} argument(s)")
        return to_string(args[index])

    return _FORMAT_ITEM.sub(item, pattern)


def _arity(args: list[Any], low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= high:
        count = str(low) if low == high else f"{low}-{high}"
        raise ValueError(f"takes {count} argument(s), got {len(args)}")


def _string_arg(args: list[Any], index: int = 0) -> str:
    value = args[index]
    if not isinstance(value, str):
        raise ValueError(f"argument {index + 1} must be a string, got {_kind(value)}")
    return value


def _concat(args: list[Any]) -> Any:
    if args and all(isinstance(arg, list) for arg in args):
        return [item for arg in args for item in arg]
    if any(isinstance(arg, list | dict) for arg in args):
        raise ValueError("arguments must be all arrays or all strings")
    return "".join(to_string(arg) for arg in args)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"cannot convert {_kind(value)} to int")
    try:
        return int(value)
    except ValueError:
        # Python's message would quote the text, which may be a secure parameter.
        raise ValueError("the string is not an integer") from None


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str | list | dict):
        return len(value) == 0
    raise ValueError(f"cannot test {_kind(value)} for emptiness")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.casefold() in ("true", "false"):
        return value.casefold() == "true"
    if isinstance(value, int):
        return value != 0
    raise ValueError(f"cannot convert {_kind(value)} to bool")


Function = Callable[[Template, str, list[Any]], Any]


def _pure(function: Callable[[list[Any]], Any], low: int, high: int | None = None) -> Function:
    def call(_template: Template, _path: str, args: list[Any]) -> Any:
        _arity(args, low, high)
        return function(args)

    return call


def _parameters(template: Template, path: str, args: list[Any]) -> Any:
    _arity(args, 1)
    return template.parameter(_string_arg(args), path)


def _variables(template: Template, path: str, args: list[Any]) -> Any:
    _arity(args, 1)
    return template.variable(_string_arg(args), path)


def _resource_group(template: Template, _path: str, args: list[Any]) -> Any:
    _arity(args, 0)
    deployment = template.deployment
    subscription, group = deployment.subscription_id, deployment.resource_group
    found: dict[str, Any] = {
        "id": f"/subscriptions/{subscription}/resourceGroups/{group}",
        "name": group,
        "type": RESOURCE_GROUP_TYPE,
        "properties": {"provisioningState": "Succeeded"},
    }
    if deployment.location is not None:
        found["location"] = deployment.location
    return found


def _subscription(template: Template, _path: str, args: list[Any]) -> Any:
    _arity(args, 0)
    subscription = template.deployment.subscription_id
    return {
        "id": f"/subscriptions/{subscription}",
        "subscriptionId": subscription,
        "tenantId": "",
        "displayName": subscription,
    }


_FUNCTIONS: dict[str, Function] = {
    "parameters": _parameters,
    "variables": _variables,
    "resourcegroup": _resource_group,
    "subscription": _subscription,
    "resourceid": lambda template, _path, args: template.resource_id(args),
    "concat": _pure(_concat, 0, 1000),
    "format": _pure(lambda a: dotnet_format(_string_arg(a), a[1:]), 1, 1000),
    "tolower": _pure(lambda a: _string_arg(a).lower(), 1),
    "toupper": _pure(lambda a: _string_arg(a).upper(), 1),
    "string": _pure(lambda a: to_string(a[0]), 1),
    "int": _pure(lambda a: _int(a[0]), 1),
    "bool": _pure(lambda a: _bool(a[0]), 1),
    "json": _pure(lambda a: json.loads(_string_arg(a)), 1),
    "equals": _pure(lambda a: a[0] == a[1] and type(a[0]) is type(a[1]), 2),
    "not": _pure(lambda a: not _bool(a[0]), 1),
    "and": _pure(lambda a: all(_bool(x) for x in a), 2, 1000),
    "or": _pure(lambda a: any(_bool(x) for x in a), 2, 1000),
    "true": _pure(lambda _a: True, 0),
    "false": _pure(lambda _a: False, 0),
    "empty": _pure(lambda a: _empty(a[0]), 1),
    "length": _pure(lambda a: len(a[0]), 1),
    "replace": _pure(lambda a: _string_arg(a).replace(_string_arg(a, 1), _string_arg(a, 2)), 3),
    "createarray": _pure(list, 0, 1000),
}
