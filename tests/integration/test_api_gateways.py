"""The ARM-shaped REST API over real sockets: verbs, status codes, headers, bodies."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import trustme

from appgw.certificates import MAX_PFX_ITERATIONS
from backends import free_port
from helpers import (
    API_VERSION,
    RG,
    SUB,
    TOKEN,
    Api,
    Pfx,
    assert_round_trip,
    child,
    clone,
    gateway_id,
    gateway_url,
    make_pfx,
    skeleton,
    start_serve,
)


def put(api: Api, body: Any, name: str = "appgw", **headers: str) -> httpx.Response:
    return api.client.put(gateway_url(name), json=body, headers=headers)


def test_full_skeleton_round_trips(api: Api, pfx: Pfx, root_cer: str) -> None:
    sent = skeleton(pfx, root_cer)
    created = put(api, sent)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert body["properties"]["operationalState"] == "Running"
    assert body["properties"]["defaultPredefinedSslPolicy"] == "AppGwSslPolicy20220101"

    operation_url = created.headers["Azure-AsyncOperation"]
    assert f"api-version={API_VERSION}" in operation_url
    status = api.client.get(operation_url)
    assert status.status_code == 200 and status.json()["status"] == "Succeeded"

    got = api.client.get(gateway_url()).json()
    assert_round_trip(sent, got)
    assert got["id"] == gateway_id()
    assert got["type"] == "Microsoft.Network/applicationGateways"
    listener = child(got, "httpListeners")
    assert listener["id"] == f"{gateway_id()}/httpListeners/appGatewayHttpListener"
    assert listener["type"] == "Microsoft.Network/applicationGateways/httpListeners"
    assert listener["etag"] == got["etag"]
    cert = child(got, "sslCertificates")["properties"]
    assert "data" not in cert and "password" not in cert
    assert cert["publicCertData"].startswith("MII")
    # ARM's back-references: who uses this pool, port and certificate.
    pool = child(got, "backendAddressPools")["properties"]
    assert pool["requestRoutingRules"] == [{"id": f"{gateway_id()}/requestRoutingRules/rule1"}]
    assert child(got, "frontendPorts")["properties"]["httpListeners"] == [{"id": listener["id"]}]


def test_get_modify_put_keeps_stored_certificate_and_changes_etag(
    api: Api, pfx: Pfx, root_cer: str
) -> None:
    first = put(api, skeleton(pfx, root_cer)).json()
    # Azure's tools send a GET result back with the write-only fields empty.
    document = api.client.get(gateway_url()).json()
    document["tags"]["owner"] = "ops"
    again = put(api, document)
    assert again.status_code == 200, again.text
    second = again.json()
    assert second["etag"] != first["etag"]
    assert second["tags"] == {"env": "test", "owner": "ops"}
    assert (
        child(second, "sslCertificates")["properties"]["publicCertData"]
        == child(first, "sslCertificates")["properties"]["publicCertData"]
    )


def test_if_match_and_if_none_match(api: Api, pfx: Pfx, root_cer: str) -> None:
    body = skeleton(pfx, root_cer)
    assert put(api, body, **{"If-Match": "*"}).status_code == 412  # nothing to match yet
    etag = put(api, body).json()["etag"]
    assert put(api, body, **{"If-None-Match": "*"}).status_code == 412
    stale = put(api, body, **{"If-Match": 'W/"00000000-0000-0000-0000-000000000000"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "PreconditionFailed"
    fresh = put(api, body, **{"If-Match": etag})
    assert fresh.status_code == 200
    # The etag used a moment ago is now stale: the second writer loses, loudly.
    assert put(api, body, **{"If-Match": etag}).status_code == 412
    patched = api.client.patch(gateway_url(), json={"tags": {}}, headers={"If-Match": etag})
    assert patched.status_code == 412


def test_patch_tags_delete_and_not_found(api: Api, pfx: Pfx, root_cer: str) -> None:
    put(api, skeleton(pfx, root_cer))
    patched = api.client.patch(gateway_url(), json={"tags": {"a": "b"}})
    assert patched.status_code == 200 and patched.json()["tags"] == {"a": "b"}
    bad_patch = api.client.patch(gateway_url(), json={"tags": {"a": "b"}, "sku": {}})
    assert bad_patch.json()["error"]["code"] == "UnknownProperty"
    # ARM's tag rules, on PATCH and PUT alike; nothing is stored.
    for tags, code in (
        ({"a/b": "x"}, "InvalidTagNameCharacters"),
        ({"k" * 513: "x"}, "InvalidTagNameLength"),
        ({"k": "v" * 257}, "InvalidTagValueLength"),
        ({f"t{i}": "" for i in range(51)}, "InvalidTagsCount"),
    ):
        refused = api.client.patch(gateway_url(), json={"tags": tags})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == code, tags
        body = {**skeleton(pfx, root_cer), "tags": tags}
        assert put(api, body).json()["error"]["code"] == code
    assert api.client.get(gateway_url()).json()["tags"] == {"a": "b"}

    deleted = api.client.delete(gateway_url())
    assert deleted.status_code == 202
    assert f"api-version={API_VERSION}" in deleted.headers["Location"]
    assert api.client.get(deleted.headers["Location"]).status_code == 204
    missing = api.client.get(gateway_url())
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
    assert api.client.delete(gateway_url()).status_code == 204
    # History survives deletion; a new gateway under the name continues the versions.
    assert put(api, skeleton(pfx, root_cer)).status_code == 201
    revisions = api.client.get(f"{gateway_id()}/revisions?api-version={API_VERSION}").json()
    assert [r["version"] for r in revisions["value"]] == [1, 2, 3, 4]
    assert [r["deleted"] for r in revisions["value"]] == [False, False, True, False]


def test_start_and_stop(api: Api, pfx: Pfx, root_cer: str) -> None:
    put(api, skeleton(pfx, root_cer))
    stop = api.client.post(f"{gateway_id()}/stop?api-version={API_VERSION}")
    assert stop.status_code == 202
    assert api.client.get(stop.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"
    assert api.client.get(gateway_url()).json()["properties"]["operationalState"] == "Stopped"
    start = api.client.post(f"{gateway_id()}/start?api-version={API_VERSION}")
    assert start.status_code == 202
    assert api.client.get(gateway_url()).json()["properties"]["operationalState"] == "Running"
    api.client.post(f"{gateway_id()}/stop?api-version={API_VERSION}")
    # Azure: any PUT on a stopped gateway starts it.
    document = api.client.get(gateway_url()).json()
    assert put(api, document).json()["properties"]["operationalState"] == "Running"


def test_list_by_group_and_subscription_with_paging(api: Api, pfx: Pfx, root_cer: str) -> None:
    for port, name in enumerate(("gw-a", "gw-b", "gw-c"), start=8443):
        assert put(api, skeleton(pfx, root_cer, name, port), name).status_code == 201
    base = (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/applicationGateways"
    )
    names: list[str] = []
    url: str | None = f"{base}?api-version={API_VERSION}&$top=2"
    while url:
        page = api.client.get(url).json()
        names += [gateway["name"] for gateway in page["value"]]
        url = page.get("nextLink")
        if url:
            assert f"api-version={API_VERSION}" in url
    assert names == ["gw-a", "gw-b", "gw-c"]
    everywhere = api.client.get(
        f"/subscriptions/{SUB}/providers/Microsoft.Network/applicationGateways?api-version={API_VERSION}"
    ).json()
    assert {g["name"] for g in everywhere["value"]} == {"gw-a", "gw-b", "gw-c"}
    other = api.client.get(
        f"/subscriptions/other/providers/Microsoft.Network/applicationGateways?api-version={API_VERSION}"
    ).json()
    assert other == {"value": []}


def test_two_gateways_cannot_listen_on_one_port(api: Api, pfx: Pfx, root_cer: str) -> None:
    assert put(api, skeleton(pfx, root_cer, "first", 8443), "first").status_code == 201
    clash = put(api, skeleton(pfx, root_cer, "second", 8443), "second")
    assert clash.status_code == 400
    error = clash.json()["error"]
    assert error["code"] == "ApplicationGatewayFrontendPortInUse"
    # Named as the operator knows them, on the listener whose port to change.
    assert error["message"].startswith(
        "port 8443 on 0.0.0.0 (all addresses) is already used by listener 'appGatewayHttpListener' "
        "of gateway 'rg1/first'"
    ), error["message"]
    assert [d["target"] for d in error["details"]] == [
        f"{gateway_id('second')}/httpListeners/appGatewayHttpListener#properties.frontendPort"
    ]
    assert put(api, skeleton(pfx, root_cer, "second", 8444), "second").status_code == 201


def test_authentication_is_required(api: Api) -> None:
    anonymous = httpx.get(f"{api.base_url}{gateway_url()}")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "AuthenticationFailed"
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    wrong = httpx.get(f"{api.base_url}{gateway_url()}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "InvalidAuthenticationToken"
    basic = httpx.put(f"{api.base_url}{gateway_url()}", json={}, auth=("admin", "x"))
    assert basic.status_code == 401


def test_api_version_is_required_and_checked(api: Api) -> None:
    missing = api.client.get(gateway_id())
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    for bad in ("2026-13-01", "latest", "2099-01-01"):
        response = api.client.get(f"{gateway_id()}?api-version={bad}")
        assert response.json()["error"]["code"] == "InvalidApiVersionParameter", bad
    for good in ("2024-05-01", "2025-07-01", "2026-03-01", "2023-09-01-preview"):
        assert api.client.get(f"{gateway_id()}?api-version={good}").status_code == 404


def test_malformed_bodies_get_clear_errors(api: Api) -> None:
    not_json = api.client.put(
        gateway_url(), content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == "InvalidRequestContent"
    empty = api.client.put(gateway_url(), content=b"")
    assert empty.json()["error"]["code"] == "InvalidRequestContent"
    not_object = api.client.put(gateway_url(), json=[1, 2])
    assert not_object.status_code == 400
    huge = api.client.put(gateway_url(), content=b"x" * (9 * 1024 * 1024))
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "RequestEntityTooLarge"
    # None of this stored anything.
    assert api.client.get(gateway_url()).status_code == 404


def test_ssl_options_catalogue(api: Api) -> None:
    base = (
        f"/subscriptions/{SUB}/providers/Microsoft.Network/"
        "applicationGatewayAvailableSslOptions/default"
    )
    options = api.client.get(f"{base}?api-version={API_VERSION}").json()
    assert options["properties"]["defaultPolicy"] == "AppGwSslPolicy20220101"
    assert len(options["properties"]["availableCipherSuites"]) == 28
    assert len(options["properties"]["predefinedPolicies"]) == 5
    policies = api.client.get(f"{base}/predefinedPolicies?api-version={API_VERSION}").json()
    assert {p["name"] for p in policies["value"]} >= {"AppGwSslPolicy20220101S"}
    one = api.client.get(
        f"{base}/predefinedPolicies/AppGwSslPolicy20170401S?api-version={API_VERSION}"
    )
    assert one.json()["properties"]["minProtocolVersion"] == "TLSv1_2"
    assert len(one.json()["properties"]["cipherSuites"]) == 16
    missing = api.client.get(f"{base}/predefinedPolicies/Nope?api-version={API_VERSION}")
    assert missing.status_code == 404


def test_activity_log_records_who_what_when_and_version(api: Api, pfx: Pfx, root_cer: str) -> None:
    put(api, skeleton(pfx, root_cer))
    bad = clone(skeleton(pfx, root_cer))
    bad["properties"]["bogus"] = 1
    put(api, bad)
    api.client.post(f"{gateway_id()}/stop?api-version={API_VERSION}")
    url = (
        f"/subscriptions/{SUB}/providers/Microsoft.Insights/eventtypes/management/values"
        f"?api-version=2015-04-01&$filter=resourceUri eq '{gateway_id()}'"
    )
    events = api.client.get(url).json()["value"]
    summary = [
        (e["operationName"]["value"], e["status"]["value"], e["properties"]["version"])
        for e in events
    ]
    assert summary == [
        ("Microsoft.Network/applicationGateways/stop/action", "Succeeded", 2),
        ("Microsoft.Network/applicationGateways/write", "Failed", None),
        ("Microsoft.Network/applicationGateways/write", "Succeeded", 1),
    ]
    assert all(e["caller"] == "admin" and e["eventTimestamp"].endswith("Z") for e in events)
    assert all(e["resourceGroupName"] == RG and e["subscriptionId"] == SUB for e in events)
    assert PFX_not_in(json.dumps(events), pfx)


def PFX_not_in(text: str, pfx: Pfx) -> bool:
    return pfx.password not in text and pfx.b64[:64] not in text


def test_openapi_describes_the_gateway_with_write_only_secrets(api: Api) -> None:
    schema = httpx.get(f"{api.base_url}/openapi.json").json()
    assert gateway_id("{name}", "{resource_group}", "{subscription_id}") in schema["paths"]
    cert = schema["components"]["schemas"]["SslCertificateProperties"]["properties"]
    assert cert["password"]["writeOnly"] is True and cert["data"]["writeOnly"] is True


def test_the_api_answers_while_allowed_but_slow_pfx_files_are_decrypted(
    tmp_path: Path, ca: trustme.CA, root_cer: str
) -> None:
    """A PUT decrypts its PFX in a worker thread: with the most iterations allowed, /healthz
    (and every other request) keeps answering meanwhile."""
    # Distinct files: a PFX decrypted once is remembered.
    slow = [make_pfx(ca, "www.contoso.com", rounds=MAX_PFX_ITERATIONS) for _ in range(3)]
    server = start_serve(tmp_path / "data", {"APPGW_ADMIN_TOKEN": TOKEN})
    answers: list[tuple[float, float, int]] = []  # /healthz: sent, answered, status
    puts: list[tuple[float, float]] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            while not done.is_set():
                sent = time.perf_counter()
                status = client.get("/healthz").status_code
                answers.append((sent, time.perf_counter(), status))
                time.sleep(0.002)

    poller = threading.Thread(target=poll)
    try:
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client:
            poller.start()
            for number, pfx in enumerate(slow):
                name = f"slow{number}"
                document = skeleton(pfx, root_cer, name, port=free_port())
                started = time.perf_counter()
                response = client.put(gateway_url(name), json=document)
                puts.append((started, time.perf_counter()))
                assert response.status_code == 201, response.text
    finally:
        done.set()
        if poller.is_alive():
            poller.join(30)
        server.stop()
    assert {status for _, _, status in answers} == {200}
    during = [(s, e) for s, e, _ in answers if any(a <= s and e <= b for a, b in puts)]
    assert during, "no /healthz request was answered while a PUT was being processed"
    slowest = max(e - s for s, e, _ in answers)
    assert slowest < 0.5, f"/healthz took up to {slowest:.2f} s"
