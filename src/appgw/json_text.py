"""Gateway documents to JSON text, fast: a document at Azure's limits is 8 MB (14 MB as the
API shows it), and the standard library's encoder took ~0.1 s for each of the store's copy and
the API's answer of one PUT. orjson does it in a tenth of that.

The text is the standard library's with `separators=(",", ":")` and `ensure_ascii=False`:
compact, UTF-8. A value orjson refuses (an integer past 64 bits, a key that is not a string)
is encoded by the standard library instead, so nothing that encoded before fails now.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except orjson.JSONEncodeError:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=sort_keys
        ).encode()


def dumps_text(value: Any, *, sort_keys: bool = False) -> str:
    return dumps(value, sort_keys=sort_keys).decode()


def copied(document: Any) -> Any:
    """A deep copy of a JSON document: a JSON round trip, ~10x faster than copy.deepcopy."""
    try:
        return orjson.loads(orjson.dumps(document))
    except orjson.JSONEncodeError:  # as dumps: an integer past 64 bits
        return json.loads(json.dumps(document))
