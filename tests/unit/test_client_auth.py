"""Client certificate verdicts (tls/client_auth.py), in-process: the e2e tests in
tests/e2e/test_mutual_tls.py send the same cases through real handshakes."""

from __future__ import annotations

import datetime as dt

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appgw.tls.client_auth import (
    NONE,
    SUCCESS,
    ClientAuth,
    issuer_dn_of_upload,
    judge_chain,
)
from appgw.tls.server import policy_allows, policy_from_model


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def chain_of(leaf: trustme.LeafCert) -> tuple[bytes, ...]:
    return tuple(der(blob.bytes()) for blob in leaf.cert_chain_pems)


def test_verdicts() -> None:
    root = trustme.CA()
    issuer = root.create_child_ca()
    auth = ClientAuth((der(root.cert_pem.bytes()), der(issuer.cert_pem.bytes())))
    good = judge_chain(chain_of(issuer.issue_cert("a@x.test")), auth)
    assert good.verification == SUCCESS and good.ok
    assert good.variables["client_certificate_verification"] == SUCCESS
    pem = good.variables["client_certificate"]  # one line: it goes into headers
    assert pem.startswith("-----BEGIN CERTIFICATE----- ") and "\n" not in pem
    assert judge_chain((), auth).verification == NONE
    stranger = judge_chain(chain_of(trustme.CA().issue_cert("b@x.test")), auth)
    assert stranger.verification.startswith("FAILED:") and not stranger.ok
    now = dt.datetime.now(dt.UTC)
    expired = issuer.issue_cert(
        "c@x.test", not_before=now - dt.timedelta(days=9), not_after=now - dt.timedelta(days=1)
    )
    assert "expired" in judge_chain(chain_of(expired), auth).verification
    garbage = judge_chain((b"not a certificate",), auth)
    assert garbage.verification.startswith("FAILED:")


def test_a_verdict_is_remembered_per_chain_and_profile() -> None:
    root = trustme.CA()
    chain = chain_of(root.issue_cert("a@x.test"))
    trusting = ClientAuth((der(root.cert_pem.bytes()),))
    first = judge_chain(chain, trusting)
    assert judge_chain(chain, trusting) is first  # no second verification
    other = ClientAuth((der(trustme.CA().cert_pem.bytes()),))
    assert not judge_chain(chain, other).ok  # another profile is judged on its own


def test_the_issuer_dn_of_an_upload_is_its_deepest_certificate() -> None:
    root = trustme.CA()
    middle = root.create_child_ca()
    deepest = middle.create_child_ca()
    upload = [x509.load_pem_x509_certificate(ca.cert_pem.bytes()) for ca in (root, deepest, middle)]
    assert issuer_dn_of_upload(upload) == upload[1].subject.rfc4514_string()
    assert issuer_dn_of_upload(upload[:1]) == upload[0].subject.rfc4514_string()


def test_policy_ranges() -> None:
    from appgw.model.resource import SslPolicy

    tls13 = policy_from_model(
        SslPolicy.model_validate(
            {"policyType": "CustomV2", "minProtocolVersion": "TLSv1_3", "cipherSuites": []}
        )
    )
    assert policy_allows(tls13, "TLSv1.3") and not policy_allows(tls13, "TLSv1.2")
    assert not policy_allows(tls13, "garbage")
