"""Unit tests for appgw.tls.trust and appgw.tls.client: DER in, verdict out. Every certificate is
generated here with cryptography builders (EC keys, made once per module)."""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appgw.tls import trust as backend_tls
from appgw.tls.client import client_context, presented_chain
from appgw.tls.trust import (
    CHECKS,
    BackendCertificateVerdict,
    BackendTrust,
    verify_presented_chain,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NAME = "backend.test"


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def issue(
    cn: str,
    issuer: Issued | None = None,
    *,
    ca: bool | None = False,
    sans: Sequence[str] | None = (NAME,),
    not_before: datetime = NOW - timedelta(days=10),
    not_after: datetime = NOW + timedelta(days=300),
    key: ec.EllipticCurvePrivateKey | None = None,
    issuer_name: str | None = None,
) -> Issued:
    """A certificate for `cn`, signed by `issuer` (self-signed when None). `ca=None` leaves
    out basicConstraints; `sans=None` leaves out the SAN extension."""
    key = key or _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_key = issuer.key if issuer else key
    issuer_subject = issuer.cert.subject if issuer else subject
    if issuer_name is not None:
        issuer_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), False
        )
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
    if sans is not None:
        names: list[x509.GeneralName] = []
        for san in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    root: Issued
    inter: Issued
    leaf: Issued
    leaf_direct: Issued  # issued by the root itself
    other_root: Issued
    other_inter: Issued
    other_leaf: Issued  # same CN and SAN as `leaf`, other chain, other key
    twin_root: Issued  # same name as `root`, other key
    twin_inter: Issued  # issued by twin_root
    twin_leaf: Issued
    expired_leaf: Issued
    future_leaf: Issued
    expired_inter: Issued
    leaf_of_expired_inter: Issued
    cn_only_leaf: Issued  # no SAN: the CN is the name
    san_other_cn_leaf: Issued  # CN=backend.test but SAN other.test
    ip_leaf: Issued
    self_signed_leaf: Issued  # CA:FALSE
    self_signed_no_bc: Issued  # no basicConstraints
    not_ca_inter: Issued  # CA:FALSE, yet signs a leaf
    leaf_of_not_ca: Issued


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = issue("Backend Root", ca=True, sans=None)
    inter = issue("Backend Intermediate", root, ca=True, sans=None)
    other_root = issue("Other Root", ca=True, sans=None)
    other_inter = issue("Other Intermediate", other_root, ca=True, sans=None)
    twin_root = issue("Backend Root", ca=True, sans=None)
    twin_inter = issue("Twin Intermediate", twin_root, ca=True, sans=None)
    expired_inter = issue(
        "Expired Intermediate", root, ca=True, sans=None, not_after=NOW - timedelta(days=1)
    )
    not_ca_inter = issue("Not A CA", root, ca=False, sans=None)
    return Pki(
        root=root,
        inter=inter,
        leaf=issue(NAME, inter, sans=(NAME, "www.backend.test")),
        leaf_direct=issue(NAME, root),
        other_root=other_root,
        other_inter=other_inter,
        other_leaf=issue(NAME, other_inter),
        twin_root=twin_root,
        twin_inter=twin_inter,
        twin_leaf=issue(NAME, twin_inter),
        expired_leaf=issue(NAME, inter, not_after=NOW - timedelta(days=2)),
        future_leaf=issue(NAME, inter, not_before=NOW + timedelta(days=2)),
        expired_inter=expired_inter,
        leaf_of_expired_inter=issue(NAME, expired_inter),
        cn_only_leaf=issue(NAME, inter, sans=None),
        san_other_cn_leaf=issue(NAME, inter, sans=("other.test",)),
        ip_leaf=issue("ip backend", inter, sans=("127.0.0.1",)),
        self_signed_leaf=issue(NAME, None, ca=False),
        self_signed_no_bc=issue(NAME, None, ca=None),
        not_ca_inter=not_ca_inter,
        leaf_of_not_ca=issue(NAME, not_ca_inter),
    )


def v1(*leaves: Issued, validate_name: bool = True) -> BackendTrust:
    return BackendTrust(
        sku_v1=True,
        allowed_leaves_der=tuple(c.der for c in leaves),
        validate_name=validate_name,
    )


def v2(
    *roots: Issued, validate_chain_and_expiry: bool = True, validate_name: bool = True
) -> BackendTrust:
    return BackendTrust(
        sku_v1=False,
        trusted_roots_der=tuple(c.der for c in roots),
        validate_chain_and_expiry=validate_chain_and_expiry,
        validate_name=validate_name,
    )


def verify(
    trust: BackendTrust, *chain: Issued, name: str | None = NAME, now: datetime = NOW
) -> BackendCertificateVerdict:
    verdict = verify_presented_chain(trust, [c.der for c in chain], verify_name=name, now=now)
    assert verdict.check in CHECKS
    assert verdict.ok is (verdict.check == "Ok")
    assert [info.sha256_fingerprint for info in verdict.presented] == [
        c.cert.fingerprint(hashes.SHA256()).hex().upper() for c in chain
    ]
    assert verdict.message.endswith(".") and "\n" not in verdict.message
    return verdict


# --- v1: allow-listing -------------------------------------------------------------------


def test_v1_exact_leaf_is_trusted_without_any_chain(pki: Pki) -> None:
    verdict = verify(v1(pki.leaf), pki.leaf)
    assert verdict.ok and verdict.verify_name == NAME and verdict.openssl_error is None
    assert "allow-listed" in verdict.message


def test_v1_accepts_an_allow_listed_self_signed_leaf(pki: Pki) -> None:
    assert verify(v1(pki.self_signed_leaf), pki.self_signed_leaf).ok


def test_v1_other_certificate_with_the_same_cn_is_not_allow_listed(pki: Pki) -> None:
    verdict = verify(v1(pki.leaf), pki.other_leaf, pki.other_inter)
    assert verdict.check == "LeafNotAllowListed"
    assert "same subject but is a different certificate" in verdict.message
    assert verdict.presented[0].sha256_fingerprint in verdict.message


def test_v1_not_allow_listed_names_the_uploaded_certificates(pki: Pki) -> None:
    verdict = verify(v1(pki.ip_leaf), pki.leaf)
    assert verdict.check == "LeafNotAllowListed"
    assert "uploaded: 'CN=ip backend'" in verdict.message
    empty = verify(v1(), pki.leaf)
    assert empty.check == "LeafNotAllowListed"
    assert "no authentication certificates" in empty.message


def test_v1_the_allow_listed_certificate_must_come_first(pki: Pki) -> None:
    verdict = verify(v1(pki.leaf), pki.inter, pki.leaf)
    assert verdict.check == "LeafNotAllowListed"
    assert "position 2" in verdict.message


@pytest.mark.parametrize("sent_root", [True, False])
def test_v1_an_uploaded_ca_that_issued_the_leaf_is_named_as_such(pki: Pki, sent_root: bool) -> None:
    # Leaf then root, and the root uploaded (the v2 habit): not a misordered chain.
    chain = (pki.leaf_direct, pki.root) if sent_root else (pki.leaf_direct,)
    verdict = verify(v1(pki.root), *chain)
    assert verdict.check == "LeafNotAllowListed"
    assert "position" not in verdict.message
    assert verdict.message.endswith(
        "is not allow-listed with the gateway: you uploaded the CA certificate "
        "'CN=Backend Root' that issued the backend's certificate; Standard (v1) needs the "
        "backend's own certificate 'CN=backend.test' (its .cer) as the authentication "
        "certificate of these backend settings."
    )


def test_v1_an_uploaded_root_above_an_intermediate_is_named_too(pki: Pki) -> None:
    for chain in ((pki.leaf, pki.inter, pki.root), (pki.leaf, pki.inter)):
        verdict = verify(v1(pki.root), *chain)
        assert verdict.check == "LeafNotAllowListed"
        assert (
            "you uploaded the CA certificate 'CN=Backend Root' from the backend's chain (it "
            "issued the intermediate 'CN=Backend Intermediate'); Standard (v1) needs the "
            "backend's own certificate 'CN=backend.test' (its .cer)"
        ) in verdict.message
    # An unrelated CA is not blamed for it, sent or not, nor called a misplaced leaf.
    for chain in ((pki.leaf, pki.inter), (pki.leaf, pki.inter, pki.other_root)):
        unrelated = verify(v1(pki.other_root), *chain)
        assert "you uploaded" not in unrelated.message and "CN=Other Root" in unrelated.message
        assert "position" not in unrelated.message


def test_v1_expired_allow_listed_leaf(pki: Pki) -> None:
    verdict = verify(v1(pki.expired_leaf), pki.expired_leaf)
    assert verdict.check == "Expired"
    assert "upload the new certificate" in verdict.message
    assert verdict.openssl_error is None


def test_v1_not_yet_valid_allow_listed_leaf(pki: Pki) -> None:
    assert verify(v1(pki.future_leaf), pki.future_leaf).check == "NotYetValid"


def test_v1_name_mismatch_uses_v1_wording(pki: Pki) -> None:
    verdict = verify(v1(pki.leaf), pki.leaf, name="member.other.test")
    assert verdict.check == "NameMismatch"
    assert "CN/SAN" in verdict.message and "pool member FQDN 'member.other.test'" in verdict.message
    assert verdict.verify_name is None


def test_v1_name_not_checked_without_a_name_or_when_disabled(pki: Pki) -> None:
    for verdict in (
        verify(v1(pki.leaf), pki.leaf, name=None),
        verify(v1(pki.leaf, validate_name=False), pki.leaf, name="member.other.test"),
    ):
        assert verdict.ok and verdict.verify_name is None
        assert "name not checked" in verdict.message


def test_v1_ignores_trusted_roots(pki: Pki) -> None:
    trust = BackendTrust(sku_v1=True, trusted_roots_der=(pki.root.der,))
    assert verify(trust, pki.leaf, pki.inter).check == "LeafNotAllowListed"


# --- v2: chain to trusted roots ------------------------------------------------------------


def test_v2_leaf_and_intermediate_to_uploaded_root(pki: Pki) -> None:
    verdict = verify(v2(pki.root), pki.leaf, pki.inter)
    assert verdict.ok and verdict.verify_name == NAME
    assert "'CN=Backend Root'" in verdict.message and "note" not in verdict.message
    assert verify(v2(pki.root), pki.leaf, pki.inter, pki.root).ok
    assert verify(v2(pki.other_root, pki.root), pki.leaf_direct).ok


def test_v2_ignores_authentication_certificates(pki: Pki) -> None:
    trust = BackendTrust(
        sku_v1=False, allowed_leaves_der=(pki.leaf.der,), trusted_roots_der=(pki.other_root.der,)
    )
    assert verify(trust, pki.leaf, pki.inter).check == "TrustedRootMismatch"


@pytest.mark.parametrize("sku_v1", [True, False])
def test_no_certificate(sku_v1: bool) -> None:
    verdict = verify_presented_chain(BackendTrust(sku_v1=sku_v1), [], verify_name=NAME, now=NOW)
    assert verdict.check == "NoCertificate" and not verdict.ok and verdict.presented == ()


def test_unparsable_presented_certificate(pki: Pki) -> None:
    verdict = verify_presented_chain(
        v2(pki.root), [pki.leaf.der, b"\x30\x03junk"], verify_name=NAME, now=NOW
    )
    assert verdict.check == "VerificationFailed" and "Certificate 2" in verdict.message
    assert len(verdict.presented) == 1


def test_v2_name_mismatch_uses_sni_wording(pki: Pki) -> None:
    verdict = verify(v2(pki.root), pki.leaf, pki.inter, name="api.other.test")
    assert verdict.check == "NameMismatch" and verdict.openssl_error is None
    assert "SNI" in verdict.message and "'api.other.test'" in verdict.message
    assert "backend.test, www.backend.test" in verdict.message


def test_v2_wildcard_and_ip_names(pki: Pki) -> None:
    wildcard = issue("wildcard", pki.inter, sans=("*.backend.test",))
    assert verify(v2(pki.root), wildcard, pki.inter, name="api.backend.test").ok
    assert verify(v2(pki.root), wildcard, pki.inter, name="backend.test").check == "NameMismatch"
    assert verify(v2(pki.root), pki.ip_leaf, pki.inter, name="127.0.0.1").ok


def test_cn_only_certificate_falls_back_to_the_cn(pki: Pki) -> None:
    assert verify(v2(pki.root), pki.cn_only_leaf, pki.inter).ok
    assert verify(v1(pki.cn_only_leaf), pki.cn_only_leaf).ok
    verdict = verify(v2(pki.root), pki.cn_only_leaf, pki.inter, name="other.test")
    assert verdict.check == "NameMismatch"
    assert "no subject alternative names and its CN is 'backend.test'" in verdict.message


def test_cn_is_ignored_when_a_san_is_present(pki: Pki) -> None:
    assert verify(v2(pki.root), pki.san_other_cn_leaf, pki.inter).check == "NameMismatch"
    assert verify(v2(pki.root), pki.san_other_cn_leaf, pki.inter, name="other.test").ok


def test_v2_expired_leaf(pki: Pki) -> None:
    verdict = verify(v2(pki.root), pki.expired_leaf, pki.inter)
    assert verdict.check == "Expired" and verdict.openssl_error == 10
    assert "leaf certificate 'CN=backend.test' expired on" in verdict.message


def test_v2_expired_intermediate_says_which(pki: Pki) -> None:
    verdict = verify(v2(pki.root), pki.leaf_of_expired_inter, pki.expired_inter)
    assert verdict.check == "Expired" and verdict.openssl_error == 10
    assert "intermediate certificate 'CN=Expired Intermediate'" in verdict.message


def test_v2_expired_trusted_root(pki: Pki) -> None:
    later = pki.root.cert.not_valid_after_utc + timedelta(days=1)
    verdict = verify(v2(pki.root), pki.leaf, pki.inter, now=later)
    assert verdict.check == "Expired" and "trusted root certificate" in verdict.message


def test_v2_not_yet_valid(pki: Pki) -> None:
    verdict = verify(v2(pki.root), pki.future_leaf, pki.inter)
    assert verdict.check == "NotYetValid" and verdict.openssl_error == 9


def test_chain_is_judged_before_the_name(pki: Pki) -> None:
    assert verify(v2(pki.root), pki.expired_leaf, pki.inter, name="x.test").check == "Expired"


def test_v2_leaf_only_is_intermediate_missing(pki: Pki) -> None:
    verdict = verify(v2(pki.root), pki.leaf)
    assert verdict.check == "IntermediateMissing"
    assert verdict.openssl_error in (20, 21)
    assert "sent only its leaf" in verdict.message
    assert "'CN=Backend Intermediate'" in verdict.message


def test_v2_leaf_with_an_unrelated_certificate_is_intermediate_missing(pki: Pki) -> None:
    verdict = verify(v2(pki.root), pki.leaf, pki.other_inter)
    assert verdict.check == "IntermediateMissing"
    assert "None of the certificates the backend sent after its leaf" in verdict.message


@pytest.mark.parametrize("which", ["self_signed_leaf", "self_signed_no_bc"])
def test_self_signed_non_ca_is_intermediate_missing_even_when_uploaded(
    pki: Pki, which: str
) -> None:
    cert: Issued = getattr(pki, which)
    verdict = verify(v2(cert), cert)
    assert verdict.check == "IntermediateMissing"
    assert "self-signed but not a CA" in verdict.message
    assert verify(v2(), cert).check == "IntermediateMissing"


def test_v2_only_ca_certificates_is_leaf_missing(pki: Pki) -> None:
    assert verify(v2(pki.root), pki.inter).check == "LeafMissing"
    assert verify(v2(pki.root), pki.inter, pki.root).check == "LeafMissing"
    assert verify(v2(pki.root), pki.root).check == "LeafMissing"


def test_v2_intermediate_before_leaf_is_leaf_not_first(pki: Pki) -> None:
    # OpenSSL alone would accept the intermediate as the server certificate.
    verdict = verify(v2(pki.root), pki.inter, pki.leaf)
    assert verdict.check == "LeafNotFirst" and verdict.openssl_error is None
    assert "CN=Backend Intermediate" in verdict.message and "leaf" in verdict.message


def test_v2_intermediates_out_of_order_are_tolerated_with_a_note(pki: Pki) -> None:
    verdict = verify(v2(pki.root), pki.leaf, pki.root, pki.inter)
    assert verdict.ok
    assert (
        "(note: certificate 1 (CN=backend.test) is followed by certificate 2 (CN=Backend Root), "
        "which did not issue it"
    ) in verdict.message


def test_v2_trusted_root_mismatch_without_root_on_server(pki: Pki) -> None:
    verdict = verify(v2(pki.other_root), pki.leaf, pki.inter)
    assert verdict.check == "TrustedRootMismatch" and verdict.openssl_error == 20
    assert "(uploaded: 'CN=Other Root')" in verdict.message
    assert "'CN=Backend Intermediate' (issued by 'CN=Backend Root')" in verdict.message


def test_v2_trusted_root_mismatch_with_root_on_server(pki: Pki) -> None:
    verdict = verify(v2(pki.other_root), pki.leaf, pki.inter, pki.root)
    assert verdict.check == "TrustedRootMismatchRootSent" and verdict.openssl_error == 19
    assert verdict.message.startswith(
        "The backend certificate's root 'CN=Backend Root' is not one of the trusted root "
        "certificates of these backend settings (uploaded: 'CN=Other Root')"
    )


def test_v2_same_name_root_with_another_key(pki: Pki) -> None:
    verdict = verify(v2(pki.root), pki.twin_leaf, pki.twin_inter)
    assert verdict.check == "TrustedRootMismatch"
    assert "did not sign it (a different key)" in verdict.message
    sent = verify(v2(pki.root), pki.twin_leaf, pki.twin_inter, pki.twin_root)
    assert sent.check == "TrustedRootMismatchRootSent"
    assert "an uploaded root has that name but is a different certificate" in sent.message


def test_v2_uploaded_intermediate_is_not_a_root(pki: Pki) -> None:
    verdict = verify(v2(pki.inter), pki.leaf, pki.inter)
    assert verdict.check == "TrustedRootMismatch" and verdict.openssl_error == 2
    assert "which is not a root" in verdict.message


@pytest.mark.parametrize(
    ("sent", "check", "which"),
    [
        ("leaf inter root", "TrustedRootMismatchRootSent",
         "'CN=Backend Root', the root the backend sends at the top of its chain"),
        ("leaf inter", "TrustedRootMismatch",
         "'CN=Backend Root', which issued 'CN=Backend Intermediate'"),
        ("leaf", "IntermediateMissing",
         "'CN=Backend Intermediate', which issued 'CN=backend.test'"),
    ],
)  # fmt: skip
def test_v2_the_backend_leaf_uploaded_as_a_trusted_root_is_named_as_such(
    pki: Pki, sent: str, check: str, which: str
) -> None:
    certs = {"leaf": pki.leaf, "inter": pki.inter, "root": pki.root}
    verdict = verify(v2(pki.leaf), *(certs[name] for name in sent.split()))
    assert verdict.check == check  # Azure's category, as OpenSSL found it
    assert verdict.message == (
        "None of the trusted root certificates of these backend settings issued the backend's "
        "certificate: you uploaded the backend's own certificate 'CN=backend.test' as a "
        f"trusted root; Standard_v2 needs the root CA certificate that issued it ({which}) as "
        "the trusted root certificate of these backend settings."
    )


def test_v2_other_openssl_errors_are_verification_failed(pki: Pki) -> None:
    verdict = verify(v2(pki.root), pki.leaf_of_not_ca, pki.not_ca_inter)
    assert verdict.check == "VerificationFailed"
    # X509_V_ERR_INVALID_CA: 24 up to OpenSSL 3, 79 in OpenSSL 4.
    assert verdict.openssl_error in (24, 79)
    assert f"OpenSSL verify error {verdict.openssl_error} (invalid CA certificate)" in (
        verdict.message
    )


# --- v2 knobs ---------------------------------------------------------------------------------


def test_validate_sni_false_skips_only_the_name(pki: Pki) -> None:
    relaxed = v2(pki.root, validate_name=False)
    verdict = verify(relaxed, pki.leaf, pki.inter, name="api.other.test")
    assert verdict.ok and verdict.verify_name is None
    assert verify(v2(pki.other_root, validate_name=False), pki.leaf, pki.inter).check == (
        "TrustedRootMismatch"
    )
    assert verify(relaxed, pki.expired_leaf, pki.inter).check == "Expired"


def test_validate_chain_false_skips_chain_and_expiry_but_not_the_name(pki: Pki) -> None:
    relaxed = v2(pki.other_root, validate_chain_and_expiry=False)
    for chain in (
        (pki.leaf, pki.inter),
        (pki.expired_leaf, pki.inter),
        (pki.leaf,),
        (pki.self_signed_leaf,),
        (pki.inter, pki.leaf),
    ):
        verdict = verify(relaxed, *chain, name=None if chain[0] is pki.inter else NAME)
        assert verdict.ok, verdict.message
        assert "chain and expiry not checked" in verdict.message
    assert verify(relaxed, pki.leaf, pki.inter, name="api.other.test").check == "NameMismatch"
    assert verify(v2(validate_chain_and_expiry=False), pki.leaf).ok


def test_both_knobs_off_accepts_anything_presented(pki: Pki) -> None:
    trust = v2(validate_chain_and_expiry=False, validate_name=False)
    assert verify(trust, pki.other_leaf, name="whatever.test").ok


# --- v2 well-known mode (certifi) ----------------------------------------------------------


def test_well_known_private_chain_with_root_is_not_issued_by_well_known_ca(pki: Pki) -> None:
    verdict = verify(v2(), pki.leaf, pki.inter, pki.root)
    assert verdict.check == "NotIssuedByWellKnownCA" and verdict.openssl_error == 19
    assert "'CN=Backend Root'" in verdict.message and "trusted root" in verdict.message


def test_well_known_private_intermediate(pki: Pki) -> None:
    verdict = verify(v2(), pki.leaf, pki.inter)
    assert verdict.check == "IntermediateNotSignedByWellKnownCA"
    assert "'CN=Backend Intermediate'" in verdict.message


def test_well_known_leaf_only(pki: Pki) -> None:
    verdict = verify(v2(), pki.leaf_direct)
    assert verdict.check == "IntermediateMissing" and "well-known CA" in verdict.message


@pytest.fixture
def well_known_includes_backend_root(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + pki.root.pem)
    monkeypatch.setattr(certifi, "where", lambda: str(bundle))
    backend_tls._well_known_roots.cache_clear()
    backend_tls._anchors.cache_clear()
    yield
    backend_tls._well_known_roots.cache_clear()
    backend_tls._anchors.cache_clear()


@pytest.mark.usefixtures("well_known_includes_backend_root")
def test_well_known_mode_trusts_bundle_roots(pki: Pki) -> None:
    verdict = verify(v2(), pki.leaf, pki.inter)
    assert verdict.ok and "well-known root 'CN=Backend Root'" in verdict.message
    assert verify(v2(), pki.other_leaf, pki.other_inter).check == (
        "IntermediateNotSignedByWellKnownCA"
    )


# --- the verdict, the trust and the helpers ----------------------------------------------------


def test_verdict_json(pki: Pki) -> None:
    verdict = verify(v2(pki.other_root), pki.leaf, pki.inter, pki.root)
    document = verdict.to_json()
    assert set(document) == {
        "ok",
        "check",
        "message",
        "opensslError",
        "verifyName",
        "presentedChain",
    }
    assert document["opensslError"] == 19 and document["verifyName"] is None
    chain = document["presentedChain"]
    assert isinstance(chain, list) and [item["subject"] for item in chain] == [
        "CN=backend.test",
        "CN=Backend Intermediate",
        "CN=Backend Root",
    ]
    assert verify(v2(pki.root), pki.leaf, pki.inter).to_json()["verifyName"] == NAME


def test_naive_now_is_utc(pki: Pki) -> None:
    expiry = pki.expired_leaf.cert.not_valid_after_utc
    before = (expiry - timedelta(minutes=1)).replace(tzinfo=None)
    assert verify(v1(pki.expired_leaf), pki.expired_leaf, now=before).ok
    after = (expiry + timedelta(minutes=1)).replace(tzinfo=None)
    assert verify(v1(pki.expired_leaf), pki.expired_leaf, now=after).check == "Expired"


def test_trust_is_canonical_hashable_and_has_a_stable_id(pki: Pki) -> None:
    a = BackendTrust(sku_v1=False, trusted_roots_der=(pki.root.der, pki.other_root.der))
    b = BackendTrust(
        sku_v1=False, trusted_roots_der=(pki.other_root.pem, pki.root.der, pki.root.der)
    )
    assert a == b and hash(a) == hash(b) and a.trust_id == b.trust_id
    assert re.fullmatch(r"[0-9a-f]{16}", a.trust_id)
    assert b.trusted_roots_der == tuple(sorted((pki.root.der, pki.other_root.der)))
    variants = {
        a.trust_id,
        BackendTrust(sku_v1=False, trusted_roots_der=(pki.root.der,)).trust_id,
        BackendTrust(
            sku_v1=False, trusted_roots_der=a.trusted_roots_der, validate_name=False
        ).trust_id,
        BackendTrust(
            sku_v1=False, trusted_roots_der=a.trusted_roots_der, validate_chain_and_expiry=False
        ).trust_id,
        BackendTrust(sku_v1=True, trusted_roots_der=a.trusted_roots_der).trust_id,
        BackendTrust(sku_v1=True, allowed_leaves_der=a.trusted_roots_der).trust_id,
    }
    assert len(variants) == 6
    assert "_trust_id" not in repr(a)
    assert {a: 1}[b] == 1


def test_trust_accepts_pem_uploads(pki: Pki) -> None:
    trust = BackendTrust(sku_v1=False, trusted_roots_der=(pki.root.pem + pki.other_root.pem,))
    assert set(trust.trusted_roots_der) == {pki.root.der, pki.other_root.der}
    assert verify(trust, pki.leaf, pki.inter).ok
    leaf_trust = BackendTrust(sku_v1=True, allowed_leaves_der=(pki.leaf.pem + pki.inter.pem,))
    assert leaf_trust.allowed_leaves_der == (pki.leaf.der,)


def test_corrupt_trusted_root_anchors_nothing(pki: Pki) -> None:
    trust = BackendTrust(sku_v1=False, trusted_roots_der=(b"not a certificate", pki.root.der))
    assert verify(trust, pki.leaf, pki.inter).ok
    only_corrupt = BackendTrust(sku_v1=False, trusted_roots_der=(b"not a certificate",))
    verdict = verify(only_corrupt, pki.leaf, pki.inter)
    assert verdict.check == "TrustedRootMismatch" and "(uploaded: none)" in verdict.message


def test_catalogue_covers_every_code() -> None:
    codes = {
        value
        for name, value in vars(backend_tls).items()
        if name.startswith("CHECK_") and isinstance(value, str)
    }
    assert codes == set(CHECKS)
    assert len(codes) == 14


def test_client_context_is_memoized_and_verifies_nothing_itself() -> None:
    trust = BackendTrust(sku_v1=False)
    context = client_context(trust)
    assert client_context(BackendTrust(sku_v1=False)) is context
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    assert context.protocol == ssl.PROTOCOL_TLS_CLIENT
    old = client_context(BackendTrust(sku_v1=True))
    assert old is not context and old.maximum_version == ssl.TLSVersion.TLSv1_2


class _FakeCertificate:
    def __init__(self, der: bytes) -> None:
        self.der = der

    def public_bytes(self, encoding: int) -> bytes:
        assert encoding == 2  # _ssl.ENCODING_DER
        return self.der


class _Inner:
    def __init__(self, chain: list[Any] | None) -> None:
        self.chain = chain

    def get_unverified_chain(self) -> list[Any] | None:
        return self.chain


class _PrivateChain:
    def __init__(self, chain: list[Any] | None, leaf: bytes | None) -> None:
        self._sslobj = _Inner(chain)
        self.leaf = leaf

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        assert binary_form
        return self.leaf


class _PublicChain(_PrivateChain):
    def get_unverified_chain(self) -> list[bytes]:
        return [b"leaf", b"inter"]


class _NoHandshake:
    def getpeercert(self, binary_form: bool = False) -> bytes:
        raise ValueError("handshake not done yet")


def test_presented_chain_sources() -> None:
    def chain(obj: object) -> tuple[bytes, ...]:
        return presented_chain(obj)  # type: ignore[arg-type]

    assert chain(_PublicChain(None, None)) == (b"leaf", b"inter")
    private = _PrivateChain([_FakeCertificate(b"leaf"), _FakeCertificate(b"inter")], b"leaf")
    assert chain(private) == (b"leaf", b"inter")
    assert chain(_PrivateChain(None, b"leaf")) == (b"leaf",)
    assert chain(_PrivateChain([], None)) == ()
    assert chain(_NoHandshake()) == ()


def test_too_many_presented_certificates(pki: Pki) -> None:
    chain = [pki.leaf.der] + [pki.inter.der] * backend_tls.MAX_PRESENTED_CERTIFICATES
    verdict = verify_presented_chain(v2(pki.root), chain, verify_name=NAME, now=NOW)
    assert verdict.check == "VerificationFailed" and "21 certificates" in verdict.message


def test_malformed_extension_is_verification_failed(pki: Pki) -> None:
    # A SAN and an issuer alternative name, then the latter's OID (2.5.29.18) turned into the
    # SAN's (2.5.29.17): the certificate parses, its extensions (a duplicate) do not.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(pki.inter.cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), False)
        .add_extension(x509.IssuerAlternativeName([x509.DNSName(NAME)]), False)
        .sign(pki.inter.key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(b"\x06\x03\x55\x1d\x12") == 1
    der = der.replace(b"\x06\x03\x55\x1d\x12", b"\x06\x03\x55\x1d\x11")
    verdict = verify_presented_chain(v2(pki.root), [der], verify_name=NAME, now=NOW)
    assert verdict.check == "VerificationFailed" and "Certificate 1" in verdict.message
