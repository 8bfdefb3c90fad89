"""What a version keeps of an SSL certificate (issue 12, item 2): the key and chain the PUT
decrypted, never the PFX, so that compiling a version (every worker and the health monitor do)
derives no PFX key. Versions stored before, with the PFX and password, still compile under the
same iteration caps, and the next PUT rewrites them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appgw.certificates import MAX_PFX_ITERATIONS
from appgw.compile import gateway as compile_module
from appgw.compile.gateway import CompileError, compile_gateway
from appgw.compile.snapshot import Snapshot
from appgw.store.sql import GatewayVersion
from helpers import (
    Api,
    Pfx,
    child,
    commit_as_stored_before,
    gateway_id,
    gateway_url,
    make_pfx,
    skeleton,
)
from pfx_forge import Forged, b64

G = gateway_id()
# CPU seconds (other test processes inflate wall time): this small gateway compiles in ms.
FAST = 0.5


def current(api: Api) -> GatewayVersion:
    version = api.store.current(G.casefold())
    assert version is not None
    return version


def compiled(api: Api, version: GatewayVersion) -> tuple[Callable[[], Snapshot], dict[str, Any]]:
    """compile_gateway of a stored version, as a worker runs it, with nothing remembered from
    the API's own dry run."""
    secrets = api.store.secrets(version)
    compile_module._listener_contexts.clear()

    def run() -> Snapshot:
        return compile_gateway(version.document, secrets, gateway_id=version.resource_id)

    return run, secrets


def test_a_put_keeps_the_decrypted_key_and_chain_and_compile_decrypts_nothing(
    api: Api, ca: trustme.CA, root_cer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = make_pfx(ca, "www.contoso.com", rounds=MAX_PFX_ITERATIONS)
    assert api.client.put(gateway_url(), json=skeleton(slow, root_cer)).status_code == 201
    run, secrets = compiled(api, current(api))

    entry = secrets["sslCertificates"]["appgwsslcert"]
    assert set(entry) == {"name", "privateKey", "certificateChain", "pfxSize"}
    stored_key = serialization.load_pem_private_key(entry["privateKey"].encode(), None)
    assert (
        stored_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        == slow.key_der
    )
    assert x509.load_pem_x509_certificates(entry["certificateChain"].encode())[0] == slow.leaf
    assert entry["pfxSize"] == len(base64.b64decode(slow.b64))
    text = json.dumps(secrets)
    assert slow.password not in text and slow.b64[40:120] not in text

    monkeypatch.setattr(
        "appgw.certificates.pkcs12.load_key_and_certificates",
        lambda *_: pytest.fail("compile decrypted a PFX"),
    )
    started = time.process_time()
    snapshot = run()
    elapsed = time.process_time() - started

    (endpoint,) = snapshot.endpoints.values()
    assert endpoint.https and endpoint.certificates is not None
    assert elapsed < FAST, f"{elapsed:.2f} s"


def test_a_version_stored_with_its_pfx_still_compiles_and_the_next_put_rewrites_it(
    api: Api, pfx: Pfx, root_cer: str
) -> None:
    first = api.client.put(gateway_url(), json=skeleton(pfx, root_cer)).json()
    commit_as_stored_before(api.store, pfx.b64, pfx.password)
    run, _ = compiled(api, current(api))

    (endpoint,) = run().endpoints.values()
    assert endpoint.certificates is not None

    # Azure's tools PUT back what GET shows: the certificate without data keeps what is stored.
    again = api.client.put(gateway_url(), json=api.client.get(gateway_url()).json())
    assert again.status_code == 200, again.text
    entry = api.store.secrets(current(api))["sslCertificates"]["appgwsslcert"]
    assert "pfx" not in entry and "password" not in entry
    assert entry["pfxSize"] == len(base64.b64decode(pfx.b64))
    assert (
        child(again.json(), "sslCertificates")["properties"]["publicCertData"]
        == child(first, "sslCertificates")["properties"]["publicCertData"]
    )


def test_a_hostile_pfx_stored_before_stalls_no_compile_and_the_next_put_refuses_it(
    api: Api, pfx: Pfx, root_cer: str
) -> None:
    """A store written before the caps may hold a PFX asking for 20 million iterations: ~3 s
    of every worker's time, with the GIL held, on each compile."""
    assert api.client.put(gateway_url(), json=skeleton(pfx, root_cer)).status_code == 201
    hostile = Forged.of(base64.b64decode(pfx.b64), pfx.password).set_key_iterations(20_000_000)
    commit_as_stored_before(api.store, b64(hostile.der()), pfx.password)
    run, _ = compiled(api, current(api))

    started = time.process_time()
    with pytest.raises(CompileError) as caught:
        run()
    elapsed = time.process_time() - started

    assert [d.code for d in caught.value.diagnostics] == ["IterationCountTooHigh"]
    assert "20,000,000" in caught.value.diagnostics[0].message
    assert elapsed < FAST, f"{elapsed:.2f} s"

    started = time.process_time()
    refused = api.client.put(gateway_url(), json=api.client.get(gateway_url()).json())
    elapsed = time.process_time() - started
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "ApplicationGatewaySslCertificateIterationCountTooHigh"
    assert f"'{G}/sslCertificates/appgwSslCert'" in error["message"]
    assert elapsed < 2 * FAST, f"{elapsed:.2f} s"
