"""Pure model code: ids, Azure's host-name and path grammars, error locations, encryption."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from appgw.model.diagnostics import ValidationFailed
from appgw.model.ids import GatewayId, parse_child_ref
from appgw.model.validate import path_pattern_problem, wildcard_host_problem
from appgw.model.wire import parse_gateway
from appgw.store.secrets import MasterKey, SecretsError

GID = GatewayId("sub", "rg", "gw")


def test_child_references_parse_and_fold_case() -> None:
    ref = parse_child_ref(GID.child("frontendPorts", "p1").upper())
    assert ref is not None
    assert ref.gateway_key == GID.key and ref.collection == "FRONTENDPORTS" and ref.name == "P1"
    rule = parse_child_ref(GID.path_rule("map", "images"))
    assert rule is not None and rule.collection == "urlPathMaps/map/pathRules"
    assert parse_child_ref("/subscriptions/s/resourceGroups/r/providers/X.Y/z/n/c/d") is None
    assert parse_child_ref(str(GID)) is None
    assert parse_child_ref("frontendPorts/p1") is None


@pytest.mark.parametrize(
    "name",
    [
        "contoso.com",
        "*.contoso.com",
        "*.contoso.*",
        "w??.contoso*.edu.*",
        "????.contoso.com",
        "a-b.c",
    ],
)
def test_azure_accepts_these_host_names(name: str) -> None:
    assert wildcard_host_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("*.contoso.*.*.com", "two '*'"),
        ("????.contoso.*", "four wildcard"),
        ("a**.com", "one '*' per label"),
        ("*?.com", "'*?'"),
        ("?*.com", "'?*'"),
        ("a_b.com", "only letters"),
        ("a..com", "empty labels"),
        ("", "1-253"),
    ],
)
def test_azure_refuses_these_host_names(name: str, problem: str) -> None:
    found = wildcard_host_problem(name)
    assert found is not None and problem in found


@given(st.from_regex(r"\A[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){1,3}\Z"))
def test_plain_dns_names_are_always_valid_host_names(name: str) -> None:
    assert wildcard_host_problem(name) is None


@pytest.mark.parametrize(
    ("path", "v1", "ok"),
    [
        ("/images/*", True, True),
        ("/images*", False, True),
        ("/images*", True, False),
        ("/*", True, True),
        ("/a/*/b", False, False),
        ("images", False, False),
        ("/a?b", False, False),
        ("/a#b", False, False),
    ],
)
def test_path_patterns(path: str, v1: bool, ok: bool) -> None:
    assert (path_pattern_problem(path, v1=v1) is None) is ok


def test_shape_errors_name_the_child_and_field() -> None:
    body = {
        "location": "x",
        "properties": {
            "urlPathMaps": [
                {
                    "name": "map1",
                    "properties": {"pathRules": [{"name": "r1", "properties": {"pathz": []}}]},
                }
            ]
        },
    }
    with pytest.raises(ValidationFailed) as raised:
        parse_gateway(body, GID)
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.code == "UnknownProperty"
    assert diagnostic.resource_id == GID.path_rule("map1", "r1")
    assert diagnostic.field == "properties.pathz"


def test_enum_values_match_without_regard_to_case() -> None:
    gateway = parse_gateway({"properties": {"sku": {"name": "standard_V2"}}}, GID)
    assert gateway.properties.sku is not None
    assert (
        gateway.properties.sku.name is not None
        and gateway.properties.sku.name.value == "Standard_v2"
    )


def test_secrets_are_bound_to_their_row(tmp_path: Path) -> None:
    key = MasterKey.load_or_create(tmp_path)
    blob = key.encrypt(b"secret", b"gateway#1")
    assert key.decrypt(blob, b"gateway#1") == b"secret"
    with pytest.raises(SecretsError):
        key.decrypt(blob, b"gateway#2")
    with pytest.raises(SecretsError):
        MasterKey(os.urandom(32)).decrypt(blob, b"gateway#1")
    assert "secret" not in repr(key)


def test_master_key_from_environment_is_checked(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match="not base64"):
        MasterKey.load_or_create(tmp_path, {"APPGW_MASTER_KEY": "!!!"})
    with pytest.raises(SecretsError, match="32 bytes"):
        MasterKey.load_or_create(tmp_path, {"APPGW_MASTER_KEY": "AAAA"})
    assert not (tmp_path / "master.key").exists()
