"""Request bodies that are not the JSON a gateway is made of, on every endpoint that reads
JSON, against a real `appgw serve`: always a 400 with an ARM error that says what is wrong,
never a 5xx."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backends import free_port
from builders import GatewayBuilder
from helpers import TOKEN, ServeProcess, gateway_url, serving

pytestmark = pytest.mark.slow

GATEWAY = gateway_url("bodies")
# Every endpoint that reads a JSON body: PUT and PATCH of a gateway, the on-demand probe.
ENDPOINTS = [
    ("PUT", GATEWAY),
    ("PATCH", GATEWAY),
    ("POST", gateway_url("bodies").replace("?", "/getBackendHealthOnDemand?")),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data_dir = tmp_path_factory.mktemp("bodies") / "data"
    with serving(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}, wait_ready=False) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=60,
    ) as client:
        # PATCH and the on-demand probe read the body of an existing gateway.
        builder = GatewayBuilder("bodies").pool("p", "10.0.0.4").settings("s", 80)
        builder.listener("l", free_port()).rule("r", "l", pool="p", settings="s")
        created = client.put(GATEWAY, json=builder.build())
        assert created.status_code == 201, created.text
        yield client


def deep(depth: int, opening: str = "[", closing: str = "]") -> bytes:
    return (opening * depth + closing * depth).encode()


def deep_objects(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


DIGITS = "7" * 5000
CASES = {
    "arrays-1000-deep": (deep(1000), "nested"),
    "arrays-100000-deep": (deep(100_000), "nested"),
    "objects-1000-deep": (deep_objects(1000), "nested"),
    "arrays-65-deep": (deep(65), "nested"),
    "deep-inside-a-gateway": (
        b'{"location": "x", "tags": {"a": ' + deep(900) + b"}}",
        "nested",
    ),
    "5000-digit-integer": (DIGITS.encode(), "digits"),
    "5000-digit-integer-as-a-port": (
        b'{"location": "x", "properties": {"frontendPorts": [{"name": "p", "properties": '
        b'{"port": ' + DIGITS.encode() + b"}}]}}",
        "digits",
    ),
    "5000-digit-negative": (b"[-" + DIGITS.encode() + b"]", "digits"),
    "5000-digit-float": (b"[1." + DIGITS.encode() + b"]", "digits"),
    "float-overflow": (b'{"location": 1e999}', "number"),
    "nan": (b'{"location": NaN}', "NaN"),
    "infinity": (b'{"tags": {"a": -Infinity}}', "Infinity"),
    "lone-surrogate": (b'{"location": "\\ud800"}', "surrogate"),
    "lone-surrogate-in-a-key": (b'{"\\udfff": 1}', "surrogate"),
    "not-utf8": (b'{"location": "\xff"}', "JSON"),
    "empty": (b"", "empty"),
    "truncated": (b'{"location": ', "JSON"),
    "trailing-garbage": (b"{} {}", "JSON"),
    "utf8-encoded-surrogate": (b'{"location": "\xed\xa0\x80"}', "UTF-8"),
}


@pytest.mark.parametrize(("method", "url"), ENDPOINTS, ids=["put", "patch", "on-demand"])
@pytest.mark.parametrize(("body", "word"), CASES.values(), ids=CASES.keys())
def test_a_body_that_is_not_acceptable_json_is_a_400_naming_why(
    api: httpx.Client, method: str, url: str, body: bytes, word: str
) -> None:
    answer = api.request(method, url, content=body)
    assert answer.status_code == 400, answer.text[:500]
    error = answer.json()["error"]
    assert error["code"] == "InvalidRequestContent", error
    assert word.casefold() in error["message"].casefold(), error["message"]
    assert len(answer.content) < 2000  # the body is not echoed back


def test_the_gateway_is_unchanged_and_the_server_well(
    api: httpx.Client, server: ServeProcess
) -> None:
    before = api.get(GATEWAY).json()["etag"]
    for body, _word in CASES.values():
        api.put(GATEWAY, content=body)
    assert api.get(GATEWAY).json()["etag"] == before
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200


def test_nesting_within_the_limit_is_read(api: httpx.Client) -> None:
    """64 levels are JSON enough: such a body gets the model's own answer, not a parse error."""
    answer = api.patch(GATEWAY, content=b'{"tags": ' + deep(62) + b"}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] != "InvalidRequestContent"


# --- property: JSON-ish bytes never make the server fail ------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["location", "properties", "tags", "name", "id", "sku", "port"])
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
_tokens = st.sampled_from(
    [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u", b"d800", b"NaN", b"Infinity",
     b"-", b"1e999", b"9" * 4400, b"\x00", b"\xff", b"\xc3", b"true", b"null", b" ", b"\n"]
)  # fmt: skip


@st.composite
def jsonish(draw: st.DrawFn) -> bytes:
    """Valid JSON, JSON with bytes cut or spliced in, deep nests, and token soup."""
    kind = draw(st.sampled_from(["valid", "mutated", "nested", "soup"]))
    if kind == "soup":
        return b"".join(draw(st.lists(_tokens | st.binary(max_size=4), max_size=40)))
    if kind == "nested":
        depth = draw(st.integers(1, 3000))
        opening = draw(st.sampled_from(["[", '{"a":', '{"tags":{"t":']))
        return (opening * depth).encode() + draw(_tokens)
    text = json.dumps(draw(_json)).encode()
    if kind == "mutated" and text:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(_tokens | st.text(string.printable, max_size=3).map(str.encode))
        text += text[at + draw(st.integers(0, 3)) :]
    return text


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=jsonish(), endpoint=st.sampled_from(ENDPOINTS))
def test_json_ish_bytes_never_get_a_server_error(
    api: httpx.Client, body: bytes, endpoint: tuple[str, str]
) -> None:
    method, url = endpoint
    answer = api.request(method, url, content=body)
    assert answer.status_code < 500, (body[:300], answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        assert set(answer.json()["error"]) >= {"code", "message"}
