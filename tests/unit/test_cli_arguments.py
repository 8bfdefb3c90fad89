"""az's list arguments (`--servers a b`) rewritten to click's repeated flags."""

from __future__ import annotations

from appgw.cli.client import GROUP_SEPARATOR, az_style_arguments


def test_space_separated_values_become_repeated_flags() -> None:
    argv = ["create", "--servers", "10.0.0.4", "app.contoso.com", "-n", "gw", "--servers", "x"]
    assert az_style_arguments(argv) == [
        "create", "--servers", "10.0.0.4", "--servers", "app.contoso.com", "-n", "gw",
        "--servers", "x",
    ]  # fmt: skip


def test_grouped_flags_travel_as_one_argument() -> None:
    argv = ["update", "--add", "pools[0].addresses", "fqdn=a", "port=1", "--remove", "tags"]
    assert az_style_arguments(argv) == [
        "update", "--add", GROUP_SEPARATOR.join(["pools[0].addresses", "fqdn=a", "port=1"]),
        "--remove", "tags",
    ]  # fmt: skip


def test_negative_numbers_are_values_and_missing_values_are_left_to_click() -> None:
    assert az_style_arguments(["--set", "a=-1", "-5"]) == ["--set", "a=-1", "--set", "-5"]
    assert az_style_arguments(["--servers", "--name", "x"]) == ["--servers", "--name", "x"]
    assert az_style_arguments(["--servers=a", "b"]) == ["--servers=a", "b"]
