"""The request-body reader's fast path (orjson) reads every body as its standard-library path
does, or leaves it to that path: same values, same refusals."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from appgw import json_text
from appgw.model import json_body
from appgw.model.json_body import InvalidJson, parse_json_body

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


def standard_path(raw: bytes) -> object:
    """The reader with its fast path switched off."""
    loads = json_body.orjson.loads

    def refuse(_raw: bytes) -> object:
        raise json_body.orjson.JSONDecodeError("off", "", 0)

    json_body.orjson.loads = refuse  # type: ignore[assignment]
    try:
        return parse_json_body(raw)
    finally:
        json_body.orjson.loads = loads


def outcome(read: object, raw: bytes) -> tuple[str, object]:
    try:
        return "value", read(raw)  # type: ignore[operator]
    except InvalidJson as error:
        return "refused", str(error)


@settings(max_examples=300, deadline=None)
@given(value=values)
def test_the_fast_path_reads_what_the_standard_path_reads(value: object) -> None:
    raw = json.dumps(value).encode()
    fast, slow = outcome(parse_json_body, raw), outcome(standard_path, raw)
    assert fast == slow
    if fast[0] == "value":
        # An int stays an int (orjson alone turns one past 64 bits into a float).
        assert json.dumps(fast[1]) == json.dumps(slow[1])


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 123456789012345678901234567890}',
        b"[18446744073709551616]",
        b"[1." + b"0" * 50 + b"1]",
        b'{"location": "\\ud800"}',
        b"[1e999]",
        b"[NaN]",
        b"[" * 65 + b"]" * 65,
        b"[" * 2000 + b"]" * 2000,
        b"\xef\xbb\xbf{}",
        b'{"a": 1, "a": 2}',
    ],
    ids=[
        "30-digit-int",
        "past-uint64",
        "52-digit-float",
        "lone-surrogate",
        "overflowing-float",
        "nan",
        "depth-65",
        "depth-2000",
        "bom",
        "duplicate-key",
    ],
)
def test_edge_bodies_get_the_standard_paths_answer(raw: bytes) -> None:
    fast, slow = outcome(parse_json_body, raw), outcome(standard_path, raw)
    assert fast == slow
    if fast[0] == "value":
        assert json.dumps(fast[1]) == json.dumps(slow[1])


def test_json_text_writes_what_the_standard_library_writes() -> None:
    value = {"b": [1, 2.5, None, True], "a": {"é": "ü\u2028", "n": 10**25}}
    assert (
        json_text.dumps(value, sort_keys=True)
        == json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
    )
    # An integer orjson refuses (past 64 bits) is written by the standard library instead.
    assert json.loads(json_text.dumps(value)) == value
