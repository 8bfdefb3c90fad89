"""A PFX names its own key-derivation iteration counts; load_pfx refuses one that asks for too
many before anything is derived (issue 12, item 2). Every PFX is made here: hostile counts are
written into real files without running them (tests/pfx_forge.py)."""

from __future__ import annotations

import contextlib
import random
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from hypothesis import given, settings, strategies as st

from appgw.certificates import (
    CODE_INVALID_DATA,
    CODE_INVALID_PASSWORD,
    CODE_ITERATION_COUNT_TOO_HIGH,
    CODE_UNSUPPORTED_PROTECTION,
    MAX_PFX_ITERATIONS,
    MAX_PFX_TOTAL_ITERATIONS,
    CertificateError,
    _rc2,
    load_pfx,
)
from pfx_forge import (
    OID_SAFE_CONTENTS_BAG,
    OID_SCRYPT,
    Forged,
    encode,
    encrypted_content,
    explicit,
    hidden_key_pfx,
    made_pfx,
    octets,
    oid,
    openssl_pfx,
    seq,
    shrouded_key_bag,
)

PASSWORD = "S3ntinel-Pfx-Iterations"
# OpenSSL would spend seconds on this count (PBKDF2-SHA256: ~3 s, the MAC's PKCS#12 derivation:
# ~1 s); a refusal must take none of it.
HOSTILE = 20_000_000
# CPU seconds of this process (not wall time, which other test processes inflate): a refusal
# reads a few kilobytes and derives nothing hostile; the whole allowed budget of
# MAX_PFX_TOTAL_ITERATIONS costs ~0.25 s here. Twice that flaked with both cores busy (CPU
# time inflates under contention); a derivation left unbounded costs many seconds.
FAST = 1.0


class Leaf(NamedTuple):
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def self_signed(host: str) -> Leaf:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Leaf(key, cert)


@pytest.fixture(scope="module")
def leaf() -> Leaf:
    return self_signed("www.contoso.com")


def refused(data: bytes, password: str | None = PASSWORD) -> tuple[CertificateError, float]:
    started = time.process_time()
    with pytest.raises(CertificateError) as caught:
        load_pfx(data, password, check_validity=False)
    return caught.value, time.process_time() - started


def _forged(leaf: Leaf, *, legacy: bool = False) -> Forged:
    return Forged.of(made_pfx(leaf.key, leaf.cert, PASSWORD, legacy=legacy), PASSWORD)


def _many_contents_at_the_limit(leaf: Leaf) -> bytes:
    """Three more encrypted contents, each within the limit: OpenSSL decrypts every one, so
    together they ask more than the total allows (16 KB hold over a hundred of them)."""
    forged = _forged(leaf)
    forged.contents.extend(encrypted_content(PASSWORD, MAX_PFX_ITERATIONS) for _ in range(3))
    return forged.der()


def _deeply_nested(leaf: Leaf) -> bytes:
    """A key bag wrapped in 40 safeContents bags (OpenSSL recurses into each)."""
    forged = _forged(leaf)
    bags = forged.plain_bags[next(iter(forged.plain_bags))]
    nested = bags[0]
    for _ in range(40):
        nested = seq(oid(OID_SAFE_CONTENTS_BAG), explicit(seq(nested)))
    bags[0] = nested
    return forged.der()


def _scrypt_key(leaf: Leaf) -> bytes:
    """PBES2 with scrypt: its cost is its memory and CPU parameters, not an iteration count."""
    forged = _forged(leaf)
    bags = forged.plain_bags[next(iter(forged.plain_bags))]
    bags[0] = shrouded_key_bag(leaf.key, PASSWORD, 2048, kdf=OID_SCRYPT)
    return forged.der()


def _truncated_inside(leaf: Leaf) -> bytes:
    """The outer structure intact, the key's safe contents cut short inside their OCTET STRING."""
    forged = _forged(leaf)
    index, bags = forged.plain_bags.popitem()
    forged.contents[index].children[1].children[0] = octets(encode(seq(*bags))[:-40])
    return forged.der()


def _no_ciphertext(leaf: Leaf) -> bytes:
    """The certificates' encrypted contents without their ciphertext."""
    forged = _forged(leaf)
    content_info = forged.encrypted_contents()[0].children[1].children[0].children[1]
    content_info.children = content_info.children[:2]
    return forged.der()


class Case(NamedTuple):
    make: Callable[[Leaf], bytes]
    code: str
    phrases: tuple[str, ...]


CASES = {
    "mac": Case(
        lambda leaf: _forged(leaf).set_mac_iterations(HOSTILE).der(),
        CODE_ITERATION_COUNT_TOO_HIGH,
        ("20,000,000", "for its MAC", "at most 100,000"),
    ),
    "certificate contents": Case(
        lambda leaf: _forged(leaf).set_certificate_iterations(HOSTILE).der(),
        CODE_ITERATION_COUNT_TOO_HIGH,
        ("20,000,000", "encrypted contents #1", "at most 100,000"),
    ),
    "key bag": Case(
        lambda leaf: _forged(leaf).set_key_iterations(HOSTILE).der(),
        CODE_ITERATION_COUNT_TOO_HIGH,
        ("20,000,000", "shrouded private key #1", "at most 100,000"),
    ),
    "legacy 3DES key bag": Case(
        lambda leaf: _forged(leaf, legacy=True).set_key_iterations(HOSTILE).der(),
        CODE_ITERATION_COUNT_TOO_HIGH,
        ("20,000,000", "shrouded private key #1"),
    ),
    "key bag hidden in the encrypted contents": Case(
        lambda leaf: hidden_key_pfx(leaf.key, leaf.cert, PASSWORD, HOSTILE),
        CODE_ITERATION_COUNT_TOO_HIGH,
        ("20,000,000", "shrouded private key #1 (inside encrypted contents #1)"),
    ),
    "one over the limit": Case(
        lambda leaf: made_pfx(leaf.key, leaf.cert, PASSWORD, rounds=MAX_PFX_ITERATIONS + 1),
        CODE_ITERATION_COUNT_TOO_HIGH,
        ("100,001", "encrypted contents #1"),
    ),
    "the largest 64-bit count": Case(
        lambda leaf: _forged(leaf).set_mac_iterations(b"\x7f" + b"\xff" * 7).der(),
        CODE_ITERATION_COUNT_TOO_HIGH,
        ("9,223,372,036,854,775,807",),
    ),
    "each within the limit, too many in all": Case(
        _many_contents_at_the_limit,
        CODE_ITERATION_COUNT_TOO_HIGH,
        ("in all, over its", f"at most {MAX_PFX_TOTAL_ITERATIONS:,}"),
    ),
    "zero count": Case(
        lambda leaf: _forged(leaf).set_key_iterations(b"\x00").der(),
        CODE_INVALID_DATA,
        ("not a PFX",),
    ),
    "negative count": Case(
        lambda leaf: _forged(leaf).set_certificate_iterations(b"\xff\x00").der(),
        CODE_INVALID_DATA,
        ("not a PFX",),
    ),
    "empty INTEGER": Case(
        lambda leaf: _forged(leaf).set_mac_iterations(b"").der(),
        CODE_INVALID_DATA,
        ("not a PFX",),
    ),
    "absurdly long INTEGER": Case(
        lambda leaf: _forged(leaf).set_mac_iterations(b"\x01" + b"\x00" * 300).der(),
        CODE_INVALID_DATA,
        ("not a PFX",),
    ),
    "deep nesting": Case(_deeply_nested, CODE_INVALID_DATA, ("not a PFX",)),
    "truncated inside": Case(_truncated_inside, CODE_INVALID_DATA, ("not a PFX",)),
    "no ciphertext": Case(_no_ciphertext, CODE_INVALID_DATA, ("not a PFX",)),
    "scrypt": Case(_scrypt_key, CODE_UNSUPPORTED_PROTECTION, ("PBES2 with key derivation",)),
}


@pytest.mark.parametrize("name", CASES)
def test_a_pfx_asking_too_much_is_refused_before_any_derivation(name: str, leaf: Leaf) -> None:
    case = CASES[name]
    data = case.make(leaf)

    error, elapsed = refused(data)

    assert error.code == case.code, error.message
    for phrase in case.phrases:
        assert phrase in error.message
    assert elapsed < FAST, f"{elapsed:.2f} s"
    assert PASSWORD not in "".join(traceback.format_exception(error))


def test_the_limit_itself_and_a_hidden_key_with_a_usual_count_are_accepted(leaf: Leaf) -> None:
    at_limit = made_pfx(leaf.key, leaf.cert, PASSWORD, rounds=MAX_PFX_ITERATIONS)
    hidden = hidden_key_pfx(leaf.key, leaf.cert, PASSWORD, 2048)

    started = time.process_time()
    loaded = load_pfx(at_limit, PASSWORD, check_validity=False)
    elapsed = time.process_time() - started

    assert loaded.leaf == leaf.cert
    assert elapsed < 1.0, f"{elapsed:.2f} s for a PFX at the limit"
    assert load_pfx(hidden, PASSWORD, check_validity=False).leaf == leaf.cert


def test_a_wrong_password_for_a_hidden_key_is_a_wrong_password(leaf: Leaf) -> None:
    hidden = hidden_key_pfx(leaf.key, leaf.cert, PASSWORD, 2048)

    error, _ = refused(hidden, "not-the-password")

    assert error.code == CODE_INVALID_PASSWORD


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(("-legacy",), id="openssl-legacy-rc2-40-and-3des"),
        pytest.param(("-legacy", "-certpbe", "PBE-SHA1-RC2-128"), id="rc2-128"),
        pytest.param(("-legacy", "-certpbe", "PBE-SHA1-RC4-40"), id="rc4-40"),
        pytest.param(("-legacy", "-certpbe", "PBE-SHA1-RC4-128"), id="rc4-128"),
        pytest.param(("-legacy", "-certpbe", "PBE-SHA1-2DES"), id="two-key-3des"),
        pytest.param(("-certpbe", "AES-128-CBC", "-iter", "10000"), id="pbes2-aes-128"),
        pytest.param(("-certpbe", "DES-EDE3-CBC", "-macalg", "sha512"), id="pbes2-3des"),
        pytest.param(("-certpbe", "AES-256-CBC", "-iter", "100000"), id="openssl-at-the-limit"),
    ],
)
def test_exports_with_usual_counts_load(
    options: tuple[str, ...], leaf: Leaf, tmp_path: Path
) -> None:
    """Encrypted contents are decrypted here before OpenSSL does (a key may hide in them): every
    scheme OpenSSL writes must decrypt, the legacy ones included."""
    data = openssl_pfx(tmp_path, leaf.key_pem(), leaf.cert_pem(), PASSWORD, *options)

    assert load_pfx(data, PASSWORD, check_validity=False).leaf == leaf.cert
    assert refused(data, "wrong")[0].code == CODE_INVALID_PASSWORD


@pytest.mark.parametrize("options", [("-legacy",), ()], ids=["legacy", "aes"])
@pytest.mark.parametrize("password", [None, ""])
def test_an_export_without_a_password_loads_with_none_or_empty(
    options: tuple[str, ...], password: str | None, leaf: Leaf, tmp_path: Path
) -> None:
    # PKCS#12 PBE tells "no password" and "the empty password" apart; OpenSSL tries both.
    data = openssl_pfx(tmp_path, leaf.key_pem(), leaf.cert_pem(), "", *options)

    assert load_pfx(data, password, check_validity=False).leaf == leaf.cert


def test_cryptography_legacy_3des_loads(leaf: Leaf) -> None:
    data = made_pfx(leaf.key, leaf.cert, PASSWORD, rounds=50_000, legacy=True)

    assert load_pfx(data, PASSWORD, check_validity=False).leaf == leaf.cert


def test_ber_everywhere_loads(leaf: Leaf) -> None:
    """Indefinite lengths at every level and the ciphertext in segments, as Java writes."""
    data = _forged(leaf).der(ber=True)

    with pytest.warns(UserWarning, match="BER"):  # cryptography announces its BER fallback
        loaded = load_pfx(data, PASSWORD, check_validity=False)

    assert loaded.leaf == leaf.cert


def test_a_pfx_without_encrypted_parts_loads(leaf: Leaf) -> None:
    data = pkcs12.serialize_key_and_certificates(
        b"x", leaf.key, leaf.cert, None, serialization.NoEncryption()
    )

    assert load_pfx(data, None, check_validity=False).leaf == leaf.cert


@settings(database=None, deadline=None, max_examples=150)
@given(seed=st.integers(min_value=0, max_value=2**32), flips=st.integers(min_value=1, max_value=6))
def test_corrupted_pfx_never_crashes_or_stalls(seed: int, flips: int) -> None:
    base = _FUZZ_BASE[seed % len(_FUZZ_BASE)]
    rng = random.Random(seed)
    data = bytearray(base)
    for _ in range(flips):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.3:
        data = data[: rng.randrange(1, len(data))]

    started = time.process_time()
    with contextlib.suppress(CertificateError):  # any refusal is fine; others are bugs
        load_pfx(bytes(data), PASSWORD, check_validity=False)
    assert time.process_time() - started < FAST


def _fuzz_bases() -> list[bytes]:
    leaf = self_signed("fuzz.contoso.com")
    return [
        made_pfx(leaf.key, leaf.cert, PASSWORD),
        made_pfx(leaf.key, leaf.cert, PASSWORD, legacy=True),
        hidden_key_pfx(leaf.key, leaf.cert, PASSWORD, 2048),
    ]


# Made once: hypothesis calls the test many times.
_FUZZ_BASE = _fuzz_bases()


@pytest.mark.parametrize(
    ("key", "effective_bits", "plaintext", "ciphertext"),
    [
        ("0000000000000000", 63, "0000000000000000", "ebb773f993278eff"),
        ("ffffffffffffffff", 64, "ffffffffffffffff", "278b27e42e2f0d49"),
        ("88", 64, "0000000000000000", "61a8a244adacccf0"),
        ("88bca90e90875a7f0f79c384627bafb2", 128, "0000000000000000", "2269552ab0f85ca6"),
    ],
)
def test_rc2_decrypts_the_rfc_2268_test_vectors(
    key: str, effective_bits: int, plaintext: str, ciphertext: str
) -> None:
    # Legacy PFX files encrypt their certificates with 40-bit RC2, which cryptography lacks.
    decrypted = _rc2.decrypt_cbc(
        bytes.fromhex(key), effective_bits, bytes(8), bytes.fromhex(ciphertext)
    )

    assert decrypted.hex() == plaintext
