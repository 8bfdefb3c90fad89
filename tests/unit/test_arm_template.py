"""ARM template expressions: parsing, the functions appgw evaluates, and errors naming the path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, strategies as st

from appgw.model.arm_template import (
    Deployment,
    Template,
    TemplateError,
    dotnet_format,
    escape_literal,
    parse_assignment,
    parse_expression,
    parse_parameters_file,
    quote,
)

DEPLOYMENT = Deployment("sub1", "rg1", "westeurope")


def template(
    parameters: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    deployment: Deployment = DEPLOYMENT,
) -> Template:
    body = {"parameters": parameters or {}, "variables": variables or {}, "resources": []}
    return Template(body, deployment, values or {})


def run(expression: str, **kwargs: Any) -> Any:
    return template(**kwargs).evaluate(expression, "x")


def test_literals_and_escapes() -> None:
    assert run("plain") == "plain"
    assert run("[[not an expression]") == "[not an expression]"
    assert run("[[only at the start") == "[[only at the start"  # not bracketed: plain text
    assert run("['it''s']") == "it's"
    assert run("[concat('a', 'b', 'c')]") == "abc"
    assert run("[concat(createArray(1, 2), createArray(3))]") == [1, 2, 3]
    assert run("[concat('port', 80)]") == "port80"
    assert run("[ toLower( 'ABC' ) ]") == "abc"


@given(st.text())
@example("[[a")
@example("[a]")
@example("[[a]")
def test_string_literals_round_trip(text: str) -> None:
    assert run(f"[{quote(text)}]") == text
    assert run(escape_literal(text)) == text


def test_format_like_dotnet() -> None:
    assert run("[format('{0}-{1}-{0}', 'a', 2)]") == "a-2-a"
    assert run("[format('{{literal}} {0}', true())]") == "{literal} True"
    assert dotnet_format("{0}", ["x"]) == "x"
    with pytest.raises(ValueError, match="only 1 argument"):
        dotnet_format("{0}{1}", ["x"])
    with pytest.raises(TemplateError, match=r"lone '\{'"):
        run("[format('{', 'x')]")


def test_resource_id_resolves_to_the_deployment_scope() -> None:
    gateway = "Microsoft.Network/applicationGateways"
    assert run(f"[resourceId('{gateway}', 'gw')]") == (
        "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/applicationGateways/gw"
    )
    assert run(f"[resourceId('{gateway}/frontendPorts', 'gw', 'port_80')]").endswith(
        "/rg1/providers/Microsoft.Network/applicationGateways/gw/frontendPorts/port_80"
    )
    assert run(f"[resourceId('other', '{gateway}', 'gw')]").startswith(
        "/subscriptions/sub1/resourceGroups/other/"
    )
    assert run(f"[resourceId('s2', 'other', '{gateway}', 'gw')]").startswith(
        "/subscriptions/s2/resourceGroups/other/"
    )
    with pytest.raises(TemplateError, match="needs 2 name"):
        run(f"[resourceId('{gateway}/frontendPorts', 'gw')]")


def test_parameters_defaults_given_values_and_types() -> None:
    parameters = {
        "name": {"type": "string", "defaultValue": "[concat('gw-', parameters('env'))]"},
        "env": {"type": "string", "allowedValues": ["dev", "prod"]},
        "capacity": {"type": "int", "defaultValue": 2},
        "http2": {"type": "bool", "defaultValue": False},
        "zones": {"type": "array", "defaultValue": []},
    }
    t = template(parameters, values={"env": "prod", "capacity": "3", "http2": "true"})
    assert t.evaluate("[parameters('name')]", "x") == "gw-prod"
    assert t.evaluate("[parameters('CAPACITY')]", "x") == 3
    assert t.evaluate("[parameters('http2')]", "x") is True
    with pytest.raises(TemplateError, match="parameter 'env' has no value"):
        template(parameters).evaluate("[parameters('name')]", "x")
    with pytest.raises(TemplateError, match="not one of the allowed values"):
        template(parameters, values={"env": "test"}).evaluate("[parameters('env')]", "x")
    with pytest.raises(TemplateError, match="'capacity': 'many' is not a valid int"):
        template(parameters, values={"capacity": "many"}).evaluate("[parameters('capacity')]", "x")
    with pytest.raises(TemplateError, match="expected int, got an array"):
        template(parameters, values={"capacity": ["x"]}).parameter("capacity", "x")
    secure = {"secret": {"type": "secureObject", "allowedValues": [{"a": 1}]}}
    with pytest.raises(TemplateError) as raised:
        template(secure, values={"secret": '{"a": "Sentinel"}'}).parameter("secret", "x")
    assert "the secure value" in str(raised.value) and "Sentinel" not in str(raised.value)
    with pytest.raises(TemplateError) as raised:
        template(secure, values={"secret": "{Sentinel"}).parameter("secret", "x")
    assert "not a valid secureobject" in str(raised.value)
    assert "Sentinel" not in str(raised.value)
    with pytest.raises(TemplateError, match="not an integer") as raised:
        run("[int('Sentinel')]")
    assert "Sentinel" not in str(raised.value)
    with pytest.raises(TemplateError, match="'nope' is given but the template declares none"):
        template(parameters, values={"nope": "1"})


def test_variables_are_lazy_and_cycles_are_named() -> None:
    variables = {
        "gatewayId": "[resourceId('Microsoft.Network/applicationGateways', variables('name'))]",
        "name": "[toUpper(parameters('p'))]",
        "unused": "[undefinedFunction()]",
        "a": "[variables('b')]",
        "b": "[variables('a')]",
        "object": {"list": ["[variables('name')]", 7]},
    }
    t = template({"p": {"type": "string", "defaultValue": "gw"}}, variables)
    assert t.evaluate("[concat(variables('gatewayId'), '/frontendPorts/p')]", "x").endswith(
        "/applicationGateways/GW/frontendPorts/p"
    )
    assert t.evaluate("[variables('object').list[0]]", "x") == "GW"
    assert t.evaluate("[variables('object')['list'][1]]", "x") == 7
    with pytest.raises(TemplateError, match=r"a cycle: variables\('a'\) -> variables\('b'\)"):
        t.evaluate("[variables('a')]", "x")


def test_unknown_function_names_function_and_path() -> None:
    t = template()
    with pytest.raises(TemplateError) as raised:
        t.evaluate({"properties": {"ports": [{"name": "[uniqueString('x')]"}]}}, "resources[0]")
    message = str(raised.value)
    assert "resources[0].properties.ports[0].name" in message and "'uniqueString'" in message


def test_syntax_errors() -> None:
    for bad, expected in [
        ("[concat('a']", "ends early"),
        ("[concat('a' 'b')]", "expected ',' or '\\)'"),
        ("[concat('a')) ]", "unexpected '\\)'"),
        ("[ ]", "empty expression"),
        ("[concat(#)]", "unexpected character '#'"),
        ("['unterminated]", "unexpected character"),
    ]:
        with pytest.raises(TemplateError, match=expected):
            run(bad)
    assert run("[concat('a'") == "[concat('a'"  # no closing bracket: a plain string


def test_other_functions() -> None:
    assert run("[if(equals(parameters('p'), 'x'), 'yes', undefined())]", parameters={
        "p": {"type": "string", "defaultValue": "x"}
    }) == "yes"  # fmt: skip
    assert run("[resourceGroup().name]") == "rg1"
    assert run("[resourceGroup().location]") == "westeurope"
    assert run("[subscription().subscriptionId]") == "sub1"
    assert run("[string(json('{\"a\": [1, true]}'))]") == '{"a":[1,true]}'
    assert run("[int('42')]") == 42
    assert run("[and(true(), not(false()), or(false(), bool('true')))]") is True
    assert run("[empty('')]") is True and run("[length(createArray(1, 2))]") == 2
    assert run("[replace('a-b', '-', '_')]") == "a_b"
    with pytest.raises(TemplateError, match="needs --location"):
        run("[resourceGroup().location]", deployment=Deployment("s", "g"))
    with pytest.raises(TemplateError, match="no property 'nope'"):
        run("[subscription().nope]")
    with pytest.raises(TemplateError, match="index 3 is outside"):
        run("[createArray(1)[3]]")
    assert parse_expression("a(b().c[0])") is not None


def test_parameters_file_and_assignments() -> None:
    assert parse_parameters_file({"parameters": {"a": {"value": 1}}}) == {"a": 1}
    with pytest.raises(TemplateError, match="Key Vault"):
        parse_parameters_file({"parameters": {"a": {"reference": {}}}})
    with pytest.raises(TemplateError, match="expected an object with 'value'"):
        parse_parameters_file({"parameters": {"a": 1}})
    with pytest.raises(TemplateError, match="not an ARM parameters file"):
        parse_parameters_file([])
    assert parse_assignment("name=a=b") == ("name", "a=b")
    with pytest.raises(TemplateError, match="NAME=VALUE"):
        parse_assignment("novalue")
