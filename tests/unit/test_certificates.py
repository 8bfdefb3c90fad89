"""Tests for appgw.certificates. Every certificate is generated here; none is checked in."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import random
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID
from hypothesis import given, settings, strategies as st

from appgw.certificates import (
    CODE_EXPIRED,
    CODE_INVALID_DATA,
    CODE_INVALID_PASSWORD,
    CODE_KEY_MISMATCH,
    CODE_MISSING_CERTIFICATE,
    CODE_MISSING_PRIVATE_KEY,
    CODE_NOT_YET_VALID,
    CODE_UNSUPPORTED_KEY,
    CertificateError,
    bundle_leaf,
    chain_order_problems,
    decode_certificate_blob,
    inspect_certificate,
    load_pfx,
    load_public_certificate,
    name_matches_certificate,
    public_cert_data_for_pfx,
    public_cert_data_leaf,
    public_certificate_data,
)

NOW = datetime(2026, 1, 31, tzinfo=UTC)
# A sentinel: no error message or traceback may ever contain it.
PASSWORD = "S3ntinel-Pa55word!"
LEAF_NAME = "www.contoso.com"


class Issued(NamedTuple):
    cert: x509.Certificate
    key: pkcs12.PKCS12PrivateKeyTypes


class Chain(NamedTuple):
    root: Issued
    intermediate: Issued
    leaf: Issued


def issue(
    common_name: str | None,
    *,
    key: pkcs12.PKCS12PrivateKeyTypes | None = None,
    issuer: Issued | None = None,
    ca: bool = False,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
    serial_number: int = 0x1234ABCD,
) -> Issued:
    """A certificate signed by `issuer`, or self-signed; EC P-256 unless a key is given."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Contoso")]
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    subject = x509.Name(attributes)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(serial_number)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    general_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    general_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if general_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=False)
    signing_key = issuer.key if issuer else key
    algorithm = None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(builder.sign(signing_key, algorithm), key)


def make_pfx(
    key: pkcs12.PKCS12PrivateKeyTypes | None,
    cert: x509.Certificate | None,
    extra: Sequence[x509.Certificate] = (),
    password: str | None = PASSWORD,
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(
        b"listener",
        key,
        cert,
        list(extra) or None,
        encryption,
    )


def legacy_encryption(password: str) -> serialization.KeySerializationEncryption:
    """3DES + SHA-1 MAC, what Windows and `openssl pkcs12 -export -legacy` write."""
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password.encode())
    )


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def raise_certificate_error(action: Callable[[], object]) -> CertificateError:
    with pytest.raises(CertificateError) as caught:
        action()
    return caught.value


@pytest.fixture(scope="module")
def rsa_2048_key() -> rsa.RSAPrivateKey:
    # RSA generation is slow: once per module.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def chain() -> Chain:
    root = issue("Contoso Root CA", ca=True, not_after=NOW + timedelta(days=3650))
    intermediate = issue("Contoso Issuing CA", issuer=root, ca=True)
    leaf = issue(LEAF_NAME, issuer=intermediate, dns_names=[LEAF_NAME, "contoso.com"])
    return Chain(root, intermediate, leaf)


# --- load_pfx: success ------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_pfx_leaf_is_chosen_by_key_and_chain_is_ordered_from_the_leaf_up(
    key_type: str, chain: Chain, rsa_2048_key: rsa.RSAPrivateKey
) -> None:
    leaf_key = rsa_2048_key if key_type == "rsa" else ec.generate_private_key(ec.SECP384R1())
    leaf = issue(LEAF_NAME, key=leaf_key, issuer=chain.intermediate, dns_names=[LEAF_NAME])
    # No designated certificate, and the bag order is root, leaf, intermediate.
    data = make_pfx(leaf_key, None, [chain.root.cert, leaf.cert, chain.intermediate.cert])

    listener = load_pfx(base64.b64encode(data).decode(), PASSWORD, now=NOW)

    assert listener.leaf == leaf.cert
    assert listener.chain == (chain.intermediate.cert, chain.root.cert)
    assert listener.full_chain() == (leaf.cert, chain.intermediate.cert, chain.root.cert)
    assert listener.private_key.public_key() == leaf_key.public_key()
    reloaded = serialization.load_pem_private_key(listener.private_key_pem(), password=None)
    assert reloaded.public_key() == leaf_key.public_key()
    assert x509.load_pem_x509_certificates(listener.chain_pem()) == list(listener.full_chain())


def test_pfx_with_trustme_chain_loads_at_the_current_time() -> None:
    authority = trustme.CA()
    server = authority.create_child_ca().issue_cert(LEAF_NAME)
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # trustme's default key type
    certs = [x509.load_pem_x509_certificate(blob.bytes()) for blob in server.cert_chain_pems]
    root = x509.load_pem_x509_certificate(authority.cert_pem.bytes())
    data = make_pfx(key, certs[0], [root, *certs[1:]])

    listener = load_pfx(data, PASSWORD)

    assert listener.full_chain() == (*certs, root)


@pytest.mark.parametrize(
    "encryption",
    [
        pytest.param(lambda: serialization.BestAvailableEncryption(PASSWORD.encode()), id="aes"),
        pytest.param(lambda: legacy_encryption(PASSWORD), id="legacy-3des"),
    ],
)
def test_aes_and_legacy_encrypted_pfx_load(
    encryption: Callable[[], serialization.KeySerializationEncryption], chain: Chain
) -> None:
    data = pkcs12.serialize_key_and_certificates(
        b"listener", chain.leaf.key, chain.leaf.cert, [chain.intermediate.cert], encryption()
    )
    # Azure clients send base64 with line breaks.
    text = base64.encodebytes(data).decode()

    listener = load_pfx(text, PASSWORD, now=NOW)

    assert listener.leaf == chain.leaf.cert
    assert listener.chain == (chain.intermediate.cert,)


@pytest.mark.parametrize("password", [None, ""])
def test_unencrypted_pfx_loads_without_a_password(password: str | None, chain: Chain) -> None:
    data = make_pfx(chain.leaf.key, chain.leaf.cert, password=None)

    assert load_pfx(data, password, now=NOW).leaf == chain.leaf.cert


def test_ber_pfx_with_indefinite_outer_length_loads(chain: Chain) -> None:
    # Java keytool and some other exporters write BER rather than DER.
    data = make_pfx(chain.leaf.key, chain.leaf.cert)
    assert data[:2] == b"\x30\x82"  # SEQUENCE with two length octets
    ber = b"\x30\x80" + data[4:] + b"\x00\x00"

    with pytest.warns(UserWarning, match="BER"):  # cryptography announces its BER fallback
        listener = load_pfx(ber, PASSWORD, now=NOW)
    truncated = raise_certificate_error(lambda: load_pfx(ber[:-50], PASSWORD, now=NOW))

    assert listener.leaf == chain.leaf.cert
    assert truncated.code == CODE_INVALID_DATA


def test_unrelated_extra_certificates_are_kept_after_the_chain(chain: Chain) -> None:
    stranger = issue("Fabrikam Root CA", ca=True)
    data = make_pfx(
        chain.leaf.key, chain.leaf.cert, [stranger.cert, chain.root.cert, chain.intermediate.cert]
    )

    listener = load_pfx(data, PASSWORD, now=NOW)

    assert listener.chain == (chain.intermediate.cert, chain.root.cert, stranger.cert)


# --- load_pfx: errors -------------------------------------------------------------------------


def _garbage(chain: Chain) -> tuple[bytes | str, str | None]:
    return random.Random(7).randbytes(600), PASSWORD


def _empty_bytes(chain: Chain) -> tuple[bytes | str, str | None]:
    return b"", PASSWORD


def _blank_text(chain: Chain) -> tuple[bytes | str, str | None]:
    return " \n", PASSWORD


def _truncated(chain: Chain) -> tuple[bytes | str, str | None]:
    data = make_pfx(chain.leaf.key, chain.leaf.cert)
    return data[: len(data) // 2], PASSWORD


def _truncated_base64(chain: Chain) -> tuple[bytes | str, str | None]:
    data = make_pfx(chain.leaf.key, chain.leaf.cert)
    return base64.b64encode(data[:-40]).decode(), PASSWORD


def _pem_certificate(chain: Chain) -> tuple[bytes | str, str | None]:
    return pem(chain.leaf.cert).decode(), PASSWORD


def _der_certificate(chain: Chain) -> tuple[bytes | str, str | None]:
    return der(chain.leaf.cert), PASSWORD


def _wrong_password(chain: Chain) -> tuple[bytes | str, str | None]:
    return make_pfx(chain.leaf.key, chain.leaf.cert, password="another one"), PASSWORD


def _wrong_password_legacy(chain: Chain) -> tuple[bytes | str, str | None]:
    data = pkcs12.serialize_key_and_certificates(
        None, chain.leaf.key, chain.leaf.cert, None, legacy_encryption("another one")
    )
    return data, PASSWORD


def _no_key(chain: Chain) -> tuple[bytes | str, str | None]:
    return make_pfx(None, chain.leaf.cert, [chain.intermediate.cert]), PASSWORD


def _no_certificate(chain: Chain) -> tuple[bytes | str, str | None]:
    return make_pfx(chain.leaf.key, None), PASSWORD


def _key_of_another_certificate(chain: Chain) -> tuple[bytes | str, str | None]:
    return make_pfx(ec.generate_private_key(ec.SECP256R1()), None, [chain.leaf.cert]), PASSWORD


def _expired(chain: Chain) -> tuple[bytes | str, str | None]:
    leaf = issue(
        LEAF_NAME,
        not_before=datetime(2023, 1, 31, tzinfo=UTC),
        not_after=datetime(2024, 1, 31, tzinfo=UTC),
    )
    return make_pfx(leaf.key, leaf.cert), PASSWORD


def _not_yet_valid(chain: Chain) -> tuple[bytes | str, str | None]:
    leaf = issue(LEAF_NAME, not_before=NOW + timedelta(days=1))
    return make_pfx(leaf.key, leaf.cert), PASSWORD


def _rsa_1024(chain: Chain) -> tuple[bytes | str, str | None]:
    leaf = issue(LEAF_NAME, key=rsa.generate_private_key(public_exponent=65537, key_size=1024))
    return make_pfx(leaf.key, leaf.cert), PASSWORD


def _secp256k1(chain: Chain) -> tuple[bytes | str, str | None]:
    leaf = issue(LEAF_NAME, key=ec.generate_private_key(ec.SECP256K1()))
    return make_pfx(leaf.key, leaf.cert), PASSWORD


def _ed25519(chain: Chain) -> tuple[bytes | str, str | None]:
    leaf = issue(LEAF_NAME, key=ed25519.Ed25519PrivateKey.generate())
    return make_pfx(leaf.key, leaf.cert), PASSWORD


BAD_PFX_CASES = [
    pytest.param(_garbage, CODE_INVALID_DATA, "not a PFX (PKCS#12) file", id="garbage"),
    pytest.param(_empty_bytes, CODE_INVALID_DATA, "empty", id="empty"),
    pytest.param(_blank_text, CODE_INVALID_DATA, "empty", id="blank-text"),
    pytest.param(_truncated, CODE_INVALID_DATA, "truncated", id="truncated"),
    pytest.param(_truncated_base64, CODE_INVALID_DATA, "truncated", id="truncated-base64"),
    pytest.param(_pem_certificate, CODE_INVALID_DATA, "PEM", id="pem-certificate"),
    pytest.param(_der_certificate, CODE_INVALID_DATA, ".cer", id="der-certificate"),
    pytest.param(_wrong_password, CODE_INVALID_PASSWORD, "incorrect", id="wrong-password"),
    pytest.param(
        _wrong_password_legacy, CODE_INVALID_PASSWORD, "incorrect", id="wrong-password-legacy"
    ),
    pytest.param(_no_key, CODE_MISSING_PRIVATE_KEY, "no private key", id="no-key"),
    pytest.param(_no_certificate, CODE_MISSING_CERTIFICATE, "no certificate", id="no-cert"),
    pytest.param(
        _key_of_another_certificate, CODE_KEY_MISMATCH, "none of its certificates", id="mismatch"
    ),
    pytest.param(_expired, CODE_EXPIRED, "expired", id="expired"),
    pytest.param(_not_yet_valid, CODE_NOT_YET_VALID, "not valid before", id="not-yet-valid"),
    pytest.param(_rsa_1024, CODE_UNSUPPORTED_KEY, "RSA 1024", id="rsa-1024"),
    pytest.param(_secp256k1, CODE_UNSUPPORTED_KEY, "EC secp256k1", id="secp256k1"),
    pytest.param(_ed25519, CODE_UNSUPPORTED_KEY, "Ed25519", id="ed25519"),
]


@pytest.mark.parametrize(("make_case", "code", "phrase"), BAD_PFX_CASES)
def test_unusable_pfx_is_rejected_with_a_stable_code_and_no_secrets(
    make_case: Callable[[Chain], tuple[bytes | str, str | None]],
    code: str,
    phrase: str,
    chain: Chain,
) -> None:
    data, password = make_case(chain)

    error = raise_certificate_error(lambda: load_pfx(data, password, now=NOW))

    assert error.code == code
    assert phrase in error.message
    assert str(error) == error.message
    assert PASSWORD not in "".join(traceback.format_exception(error))


@pytest.mark.parametrize("password", [None, ""])
def test_missing_password_for_an_encrypted_pfx_is_an_invalid_password(
    password: str | None, chain: Chain
) -> None:
    data = make_pfx(chain.leaf.key, chain.leaf.cert)

    error = raise_certificate_error(lambda: load_pfx(data, password, now=NOW))

    assert error.code == CODE_INVALID_PASSWORD
    assert error.message == (
        "The PFX certificate is password-protected, but no password was given."
    )


def test_messages_are_the_documented_operator_texts(chain: Chain) -> None:
    wrong = raise_certificate_error(lambda: load_pfx(*_wrong_password(chain), now=NOW))
    no_key = raise_certificate_error(lambda: load_pfx(*_no_key(chain), now=NOW))
    expired = raise_certificate_error(lambda: load_pfx(*_expired(chain), now=NOW))

    assert wrong.message == "The password given for the PFX certificate is incorrect."
    assert no_key.message == (
        "The PFX file contains no private key; a listener certificate needs the private key."
    )
    assert expired.message == (
        "The certificate expired on 2024-01-31T00:00:00Z (subject CN=www.contoso.com,O=Contoso)."
    )


# --- decode_certificate_blob ------------------------------------------------------------------


@settings(database=None, deadline=None)
@given(
    insertions=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from([" ", "\n", "\r\n", "\t", "  "])),
        max_size=30,
    ),
    drop_padding=st.booleans(),
)
def test_base64_with_any_whitespace_and_without_padding_decodes(
    insertions: list[tuple[int, str]], drop_padding: bool
) -> None:
    blob = bytes(range(256)) * 2 + b"tail"  # a length whose base64 form has padding
    text = base64.b64encode(blob).decode()
    if drop_padding:
        text = text.rstrip("=")
    for position, whitespace in insertions:
        at = position % (len(text) + 1)
        text = text[:at] + whitespace + text[at:]

    assert decode_certificate_blob(text) == blob
    assert decode_certificate_blob(text.encode()) == blob


def test_der_and_pem_pass_through_unchanged(chain: Chain) -> None:
    assert decode_certificate_blob(der(chain.leaf.cert)) == der(chain.leaf.cert)
    assert decode_certificate_blob(pem(chain.leaf.cert)) == pem(chain.leaf.cert)
    assert decode_certificate_blob(pem(chain.leaf.cert).decode()) == pem(chain.leaf.cert)


@pytest.mark.parametrize(
    "text", ["", "  \n", "not base64!", "QUJD\u00e9", "QUJD\ud800", "QUJDR", "=="]
)
def test_text_that_is_not_base64_or_pem_is_invalid_data(text: str) -> None:
    assert raise_certificate_error(lambda: decode_certificate_blob(text)).code == CODE_INVALID_DATA


# --- .cer certificates ------------------------------------------------------------------------


def test_load_public_certificate_accepts_every_cer_form(chain: Chain) -> None:
    cert = chain.leaf.cert
    bundle = b"Bag Attributes\n    friendlyName: leaf\n" + pem(cert) + pem(chain.root.cert)
    forms: list[str | bytes] = [
        base64.b64encode(der(cert)).decode(),
        base64.encodebytes(der(cert)),
        der(cert),
        pem(cert).decode(),
        bundle,  # first certificate wins
        base64.b64encode(pem(cert)).decode(),  # a PEM .cer file, base64-encoded by the client
    ]

    for form in forms:
        assert load_public_certificate(form) == cert


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(random.Random(3).randbytes(300), id="garbage"),
        pytest.param(base64.b64encode(b"hello world, not a certificate").decode(), id="base64"),
        pytest.param(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", id="key"),
        pytest.param("", id="empty"),
    ],
)
def test_load_public_certificate_rejects_non_certificates(data: str | bytes) -> None:
    error = raise_certificate_error(lambda: load_public_certificate(data))

    assert error.code == CODE_INVALID_DATA


def test_load_public_certificate_names_the_accepted_forms() -> None:
    error = raise_certificate_error(lambda: load_public_certificate(b"\x30\x03\x02\x01\x01"))

    assert "is not a certificate in DER, base64 DER or PEM form" in error.message


def test_public_certificate_data_is_single_line_base64_der(chain: Chain) -> None:
    data = public_certificate_data(chain.leaf.cert)

    assert "\n" not in data
    assert base64.b64decode(data, validate=True) == der(chain.leaf.cert)
    assert load_public_certificate(data) == chain.leaf.cert


def test_public_cert_data_for_pfx_is_a_pkcs7_bundle_of_the_full_chain(chain: Chain) -> None:
    data = make_pfx(chain.leaf.key, chain.leaf.cert, [chain.root.cert, chain.intermediate.cert])
    listener = load_pfx(data, PASSWORD, now=NOW)

    bundle = pkcs7.load_der_pkcs7_certificates(base64.b64decode(public_cert_data_for_pfx(listener)))

    # DER sorts the SET OF certificates, so compare without order.
    assert sorted(map(der, bundle)) == sorted(map(der, listener.full_chain()))


def test_the_leaf_of_public_cert_data_is_found_by_linkage(chain: Chain) -> None:
    full = load_pfx(
        make_pfx(chain.leaf.key, chain.leaf.cert, [chain.root.cert, chain.intermediate.cert]),
        PASSWORD,
        now=NOW,
    )
    shown = public_cert_data_leaf(public_cert_data_for_pfx(full))
    assert shown is not None and shown.subject == "CN=www.contoso.com,O=Contoso"
    # `openssl req -x509` (Microsoft's CLI tutorial): a self-signed leaf marked CA:TRUE.
    tutorial = issue(LEAF_NAME, ca=True)
    alone = load_pfx(make_pfx(tutorial.key, tutorial.cert), PASSWORD, now=NOW)
    shown = public_cert_data_leaf(public_cert_data_for_pfx(alone))
    assert (
        shown is not None
        and shown.sha256_fingerprint == inspect_certificate(tutorial.cert).sha256_fingerprint
    )
    assert shown.not_after == NOW + timedelta(days=365)
    # Any order; an unrelated CA beside a chain does not hide the leaf.
    for order in ([chain.root, chain.leaf, chain.intermediate], [tutorial, chain.leaf]):
        assert bundle_leaf([issued.cert for issued in order]) == chain.leaf.cert
    assert bundle_leaf([]) is None
    assert public_cert_data_leaf("not base64!") is None
    assert public_cert_data_leaf(base64.b64encode(b"not a bundle").decode()) is None


# --- inspect_certificate ----------------------------------------------------------------------


def test_inspect_leaf_certificate(chain: Chain) -> None:
    leaf = issue(
        LEAF_NAME,
        issuer=chain.intermediate,
        dns_names=[LEAF_NAME, "*.contoso.com"],
        ip_addresses=["10.0.0.1", "2001:db8::1"],
        serial_number=0x0ABC123,
    ).cert

    info = inspect_certificate(leaf)

    assert info.subject == "CN=www.contoso.com,O=Contoso"
    assert info.issuer == "CN=Contoso Issuing CA,O=Contoso"
    assert info.common_name == LEAF_NAME
    assert info.subject_alternative_names == (LEAF_NAME, "*.contoso.com", "10.0.0.1", "2001:db8::1")
    assert info.dns_names == (LEAF_NAME, "*.contoso.com")
    assert info.ip_addresses == ("10.0.0.1", "2001:db8::1")
    assert info.serial_number == "ABC123"
    assert info.not_before == NOW - timedelta(days=30)
    assert info.not_after == NOW + timedelta(days=365)
    assert info.sha256_fingerprint == hashlib.sha256(der(leaf)).hexdigest().upper()
    assert info.sha1_thumbprint == hashlib.sha1(der(leaf)).hexdigest().upper()
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert info.spki_sha256 == base64.b64encode(hashlib.sha256(spki).digest()).decode()
    assert not info.is_ca
    assert not info.self_signed
    assert info.key_description == "EC P-256 (secp256r1)"
    assert info.signature_hash == "sha256"


def test_inspect_ca_certificates(chain: Chain, rsa_2048_key: rsa.RSAPrivateKey) -> None:
    root = inspect_certificate(chain.root.cert)
    rsa_root = inspect_certificate(issue("RSA Root", key=rsa_2048_key, ca=True).cert)

    assert root.is_ca
    assert root.self_signed
    assert root.subject_alternative_names == ()
    assert inspect_certificate(chain.intermediate.cert).is_ca
    assert not inspect_certificate(chain.intermediate.cert).self_signed
    assert rsa_root.key_description == "RSA 2048"
    assert rsa_root.self_signed


def test_self_signed_needs_a_valid_own_signature(chain: Chain) -> None:
    # Subject equals issuer, but the signature is by another key than the certificate's own.
    impostor = (
        x509.CertificateBuilder()
        .subject_name(chain.root.cert.subject)
        .issuer_name(chain.root.cert.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(chain.intermediate.key, hashes.SHA256())
    )

    assert not inspect_certificate(impostor).self_signed


def test_certificate_info_json_and_days_until_expiry(chain: Chain) -> None:
    info = inspect_certificate(chain.leaf.cert)

    document = info.to_json()

    assert set(document) == {
        "subject",
        "issuer",
        "commonName",
        "subjectAlternativeNames",
        "serialNumber",
        "notBefore",
        "notAfter",
        "sha256Fingerprint",
        "sha1Thumbprint",
        "spkiSha256",
        "isCa",
        "selfSigned",
        "keyDescription",
        "signatureHash",
    }
    assert document["notAfter"] == "2027-01-31T00:00:00Z"
    assert document["subjectAlternativeNames"] == [LEAF_NAME, "contoso.com"]
    assert json.loads(json.dumps(document)) == document
    assert info.days_until_expiry(NOW) == 365
    assert info.days_until_expiry(NOW.replace(tzinfo=None)) == 365
    assert info.days_until_expiry(info.not_after - timedelta(hours=1)) == 0
    assert info.days_until_expiry(info.not_after + timedelta(seconds=1)) == -1


# --- chain_order_problems ---------------------------------------------------------------------


def test_chain_in_order_has_no_problems(chain: Chain) -> None:
    assert chain_order_problems([chain.leaf.cert, chain.intermediate.cert, chain.root.cert]) == ()
    assert chain_order_problems([chain.leaf.cert, chain.intermediate.cert]) == ()
    assert chain_order_problems([chain.leaf.cert]) == ()
    assert chain_order_problems([]) == ()


def test_reversed_chain_reports_leaf_not_first_and_each_wrong_link(chain: Chain) -> None:
    problems = chain_order_problems([chain.root.cert, chain.intermediate.cert, chain.leaf.cert])

    assert [problem.code for problem in problems] == [
        "LeafNotFirst",
        "ChainOutOfOrder",
        "ChainOutOfOrder",
    ]
    assert "certificate 1 (CN=Contoso Root CA,O=Contoso)" in problems[0].message
    assert "certificate 3 (CN=www.contoso.com,O=Contoso)" in problems[0].message


def test_swapped_issuers_are_out_of_order(chain: Chain) -> None:
    problems = chain_order_problems([chain.leaf.cert, chain.root.cert, chain.intermediate.cert])

    assert [problem.code for problem in problems] == ["ChainOutOfOrder", "ChainOutOfOrder"]


def test_unrelated_certificate_is_reported(chain: Chain) -> None:
    stranger = issue("Fabrikam Root CA", ca=True).cert

    problems = chain_order_problems(
        [chain.leaf.cert, stranger, chain.intermediate.cert, chain.root.cert]
    )

    assert [problem.code for problem in problems] == ["UnrelatedCertificate"]
    assert "certificate 2 (CN=Fabrikam Root CA,O=Contoso)" in problems[0].message


# --- name_matches_certificate -----------------------------------------------------------------


@pytest.fixture(scope="module")
def san_certificate() -> x509.Certificate:
    return issue(
        "cn-only.contoso.com",
        dns_names=["www.contoso.com", "*.api.contoso.com", "*.com", "Mixed.Contoso.com."],
        ip_addresses=["10.0.0.1", "::1"],
    ).cert


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.contoso.com", True),
        ("WWW.Contoso.COM", True),
        ("www.contoso.com.", True),
        ("mixed.contoso.com", True),
        ("contoso.com", False),
        ("a.api.contoso.com", True),
        ("api.contoso.com", False),
        ("a.b.api.contoso.com", False),
        ("*.api.contoso.com", False),
        ("cn-only.contoso.com", False),  # the CN is ignored when a SAN exists
        ("fabrikam.com", False),  # "*.com" must not cover a whole top-level domain
        ("10.0.0.1", True),
        ("10.0.0.2", False),
        ("::1", True),
        ("[::1]", True),
        ("0:0:0:0:0:0:0:1", True),
        ("", False),
        (".", False),
    ],
)
def test_name_matches_san(san_certificate: x509.Certificate, host: str, expected: bool) -> None:
    assert name_matches_certificate(san_certificate, host) is expected


@pytest.mark.parametrize(
    ("common_name", "host", "expected"),
    [
        ("legacy.contoso.com", "legacy.contoso.com", True),
        ("legacy.contoso.com", "LEGACY.contoso.com.", True),
        ("legacy.contoso.com", "other.contoso.com", False),
        ("*.contoso.com", "shop.contoso.com", True),
        ("*.contoso.com", "contoso.com", False),
        ("10.0.0.9", "10.0.0.9", False),  # IP literals are matched only against iPAddress SANs
        (None, "legacy.contoso.com", False),
    ],
)
def test_name_falls_back_to_common_name_without_san(
    common_name: str | None, host: str, expected: bool
) -> None:
    cert = issue(common_name).cert

    assert name_matches_certificate(cert, host) is expected
