"""Request bodies as JSON: what Python's parser would take but a gateway document never holds is
refused here, with a message that says what, before anything else reads the value.

Python's json module raises RecursionError on deep nesting and ValueError on integers past its
digit limit, accepts NaN and Infinity, turns 1e999 into inf and "\\ud800" into a lone surrogate
(which no UTF-8 answer or database can hold): each would fail later, as a server error.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

# The deepest gateway document nests about 10 levels (a path rule's pool reference); 64 leaves
# room for any ARM body and stays far below Python's recursion limit of 1000.
MAX_DEPTH = 64
# An int64 has 19 digits and a double 17 significant ones plus an exponent: 40 characters hold
# every number Azure takes, and stay far below Python's 4300-digit limit for integers.
MAX_NUMBER_CHARS = 40
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJson(ValueError):
    """The body is not JSON a gateway document could be; the text says why."""


def parse_json_body(raw: bytes) -> object:
    if not raw.strip():
        raise InvalidJson("The request content is empty.")
    # The fast path (an 8 MB gateway: 0.09 s instead of 0.26 s). orjson refuses all that the
    # standard library's path below refuses except depth (its limit is 1024) and numbers: it
    # reads an integer past 64 bits, and a number of any length, as a float. So a body it
    # refuses, or one with a float (gateway documents have none), takes that path, whose
    # error says what is wrong as it always has.
    try:
        fast = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        if _depth_checked_without_floats(fast):
            return fast
    try:
        # Strict UTF-8 (RFC 8259): json.loads would let UTF-8-encoded surrogates through.
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidJson(
            f"The request content is not valid JSON: it is not UTF-8 ({error.reason} at byte "
            f"{error.start})."
        ) from None
    try:
        value = json.loads(
            text,
            parse_int=_integer,
            parse_float=_float,
            parse_constant=_constant,
        )
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as error:
        raise InvalidJson(f"The request content is not valid JSON: {error}") from None
    _check_values(value)
    return value


def _integer(text: str) -> int:
    _check_length(text)
    return int(text)


def _float(text: str) -> float:
    _check_length(text)
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJson(f"The request content holds the number {text}, which is out of range.")
    return value


def _constant(name: str) -> object:
    raise InvalidJson(f"The request content holds {name}, which is not a JSON number.")


def _check_length(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise InvalidJson(
            f"The request content holds a number of {len(text)} digits; numbers have at most "
            f"{MAX_NUMBER_CHARS}."
        )


def _check_values(value: object) -> None:
    """Nesting depth and strings, without recursion (the value may be deep)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise _too_deep()
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                if isinstance(key, str):
                    _check_string(key)
                stack.append((child, depth + 1))
        elif isinstance(node, str):
            _check_string(node)


def _depth_checked_without_floats(value: object) -> bool:
    """Refuse a value nested too deep; False when it holds a float (orjson's reading of a
    number may differ from Python's). Strings need no look: orjson refuses unpaired
    surrogates."""
    if type(value) is float:
        return False
    if type(value) not in (dict, list):
        return True
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        for child in node.values() if type(node) is dict else node:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is float:
                return False
    return True


def _check_string(text: str) -> None:
    found = _SURROGATE.search(text)
    if found is not None:
        raise InvalidJson(
            f"The request content holds a string with an unpaired surrogate "
            f"({ascii(found[0])[1:-1]}), which is not Unicode text."
        )


def _too_deep() -> InvalidJson:
    return InvalidJson(
        f"The request content is nested more than {MAX_DEPTH} levels deep; a gateway document "
        "nests about 10."
    )
