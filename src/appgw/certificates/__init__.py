"""Certificate parsing and inspection: the one place that reads uploaded PFX and .cer data.

Used by API validation, the portal, the CLI and the health checker. Everything here is pure:
no I/O, and the only clock read is the default of `load_pfx(now=...)`.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from appgw.certificates import _pkcs12
from appgw.certificates._der import DerError, is_pkcs12_pfx, subject_public_key_info
from appgw.memo import BoundedMemo

__all__ = [
    "CODE_EXPIRED",
    "CODE_INVALID_DATA",
    "CODE_INVALID_PASSWORD",
    "CODE_ITERATION_COUNT_TOO_HIGH",
    "CODE_KEY_MISMATCH",
    "CODE_MISSING_CERTIFICATE",
    "CODE_MISSING_PRIVATE_KEY",
    "CODE_NOT_YET_VALID",
    "CODE_UNSUPPORTED_KEY",
    "CODE_UNSUPPORTED_PROTECTION",
    "MAX_PFX_ITERATIONS",
    "MAX_PFX_TOTAL_ITERATIONS",
    "MAX_TRUSTED_CLIENT_CHAIN_BYTES",
    "CertificateError",
    "CertificateInfo",
    "ChainProblem",
    "ListenerCertificate",
    "ListenerPrivateKey",
    "bundle_leaf",
    "chain_order_problems",
    "decode_certificate_blob",
    "inspect_certificate",
    "issued_by",
    "load_listener_certificate",
    "load_pfx",
    "load_public_certificate",
    "name_matches_certificate",
    "public_cert_data_for_pfx",
    "public_cert_data_leaf",
    "public_certificate_data",
]

CODE_INVALID_DATA = "InvalidCertificateData"
CODE_INVALID_PASSWORD = "InvalidPassword"
CODE_MISSING_PRIVATE_KEY = "MissingPrivateKey"
CODE_MISSING_CERTIFICATE = "MissingCertificate"
CODE_KEY_MISMATCH = "KeyCertificateMismatch"
CODE_EXPIRED = "CertificateExpired"
CODE_NOT_YET_VALID = "CertificateNotYetValid"
CODE_UNSUPPORTED_KEY = "UnsupportedKey"
CODE_ITERATION_COUNT_TOO_HIGH = "IterationCountTooHigh"
CODE_UNSUPPORTED_PROTECTION = "UnsupportedProtection"

# Azure: a trusted client CA certificate file (root and intermediates together) is at most
# 25 KB. Here for the API, which refuses a larger chain, and the CLI, which refuses the file.
MAX_TRUSTED_CLIENT_CHAIN_BYTES = 25 * 1024

ListenerPrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# Below 2048 bits RSA is within reach of attackers; browsers and Azure refuse it.
_MIN_RSA_KEY_BITS = 2048
# Key-derivation iterations one part of a PFX (its MAC, an encrypted content, a shrouded key) may
# ask for. OpenSSL runs them holding the GIL (200 million froze the API for 16 s); Windows,
# Azure and OpenSSL 3 export with 2,000 to 10,000, and 100,000 still costs only ~30 ms.
MAX_PFX_ITERATIONS = 100_000
# ... and all of them together: the MAC, the certificates and the key each at that limit, so
# repeating bags cannot multiply the work.
MAX_PFX_TOTAL_ITERATIONS = 3 * MAX_PFX_ITERATIONS
# The curves TLS clients offer (and Azure accepts) for listener certificates.
_NIST_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

_PEM_MARKER = b"-----BEGIN "
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_WHITESPACE = re.compile(rb"\s+")

# Signature checks fail with any of these: wrong key, wrong key type, unknown algorithm.
_VERIFY_ERRORS = (InvalidSignature, TypeError, ValueError, UnsupportedAlgorithm)


class CertificateError(ValueError):
    """A certificate upload that cannot be used. `code` is a stable machine-readable reason."""

    code: str
    message: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode_certificate_blob(data: str | bytes) -> bytes:
    """Turn an uploaded field into bytes.

    Accepts base64 text (whitespace allowed anywhere, padding optional), raw DER bytes, or PEM
    text/bytes (returned unchanged, still PEM). Raises CertificateError(CODE_INVALID_DATA).
    """
    # UTF-8, not ASCII: PEM files may carry non-ASCII "Bag Attributes" before the blocks.
    raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else data
    if not raw.strip():
        raise CertificateError(CODE_INVALID_DATA, "The certificate data is empty.")
    if _PEM_MARKER in raw:
        return raw
    compact = _WHITESPACE.sub(b"", raw)
    if _BASE64_TEXT.fullmatch(compact):
        return _decode_base64(compact)
    if isinstance(data, str):
        raise CertificateError(
            CODE_INVALID_DATA, "The certificate data is neither base64 text nor PEM."
        )
    # Binary input: DER (every DER certificate or PFX has bytes outside the base64 alphabet).
    # The parser that knows which structure to expect judges it.
    return raw


def _decode_base64(text: bytes) -> bytes:
    body = text.rstrip(b"=")
    if len(body) % 4 == 1:  # no encoding produces this length: the text was cut short
        raise CertificateError(CODE_INVALID_DATA, "The base64 certificate data is truncated.")
    decoded = base64.b64decode(body + b"=" * (-len(body) % 4), validate=True)
    if not decoded:
        raise CertificateError(CODE_INVALID_DATA, "The certificate data is empty.")
    return decoded


@dataclass(frozen=True, slots=True)
class ListenerCertificate:
    """A usable listener certificate: its private key, the leaf and the chain above it."""

    private_key: ListenerPrivateKey
    leaf: x509.Certificate
    # The leaf's issuer first, then upward; certificates unrelated to the leaf come last.
    chain: tuple[x509.Certificate, ...]

    def full_chain(self) -> tuple[x509.Certificate, ...]:
        return (self.leaf, *self.chain)

    def private_key_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: callers keep it in memory only."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def chain_pem(self) -> bytes:
        """The leaf, then the chain, as concatenated PEM."""
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in self.full_chain())


_DecryptedPfx: TypeAlias = tuple[
    PrivateKeyTypes | None, x509.Certificate | None, list[x509.Certificate]
]
# Decrypting a PFX costs ~5 ms (its key derivation); a PUT checks every certificate of the
# gateway, though most PUTs keep them (Azure's limit: 100 per gateway). Remembered by a digest of
# the PFX and its password, for two gateways at that limit; failures are not remembered.
_decrypted_pfx: BoundedMemo[bytes, _DecryptedPfx] = BoundedMemo(200)

_NOT_A_PFX = (
    "The certificate data is not a PFX (PKCS#12) file; it is corrupt, truncated or in another "
    "format."
)


def _decrypt_pfx(raw: bytes, password: str | None) -> _DecryptedPfx:
    digest = hashlib.sha256(raw + b"\0" + (password or "").encode()).digest()

    def decrypt() -> _DecryptedPfx:
        _check_key_derivations(raw, password)
        # OpenSSL tries both "no password" and the empty password when given None.
        return pkcs12.load_key_and_certificates(raw, password.encode("utf-8") if password else None)

    return _decrypted_pfx.get(digest, decrypt)


def _check_key_derivations(raw: bytes, password: str | None) -> None:
    """Refuse, before OpenSSL derives anything, a PFX that asks for too many iterations."""
    try:
        _pkcs12.check_key_derivations(
            raw, password, limit=MAX_PFX_ITERATIONS, total_limit=MAX_PFX_TOTAL_ITERATIONS
        )
    except DerError:
        raise CertificateError(CODE_INVALID_DATA, _NOT_A_PFX) from None
    except _pkcs12.TooManyIterations as error:
        raise CertificateError(
            CODE_ITERATION_COUNT_TOO_HIGH,
            f"The PFX asks for {error.iterations:,} key-derivation iterations {error.where}; "
            f"appgw accepts at most {error.limit:,}, so that no PFX can stall it while being "
            "decrypted (Windows, Azure and OpenSSL export with 2,000 to 10,000). Export the "
            "PFX again with fewer iterations.",
        ) from None
    except _pkcs12.UnsupportedProtection as error:
        raise CertificateError(
            CODE_UNSUPPORTED_PROTECTION,
            f"The PFX is protected with {error.what}, which appgw does not accept; export it "
            "again with AES-256 (PBES2 with PBKDF2) or TripleDES-SHA1.",
        ) from None


def load_pfx(
    data: str | bytes,
    password: str | None,
    *,
    now: datetime | None = None,
    check_validity: bool = True,
) -> ListenerCertificate:
    """Parse an uploaded PKCS#12 PFX (base64 text as Azure sends it, or raw bytes).

    The leaf is the certificate whose public key matches the private key; the others are
    ordered by issuer linkage above it. The leaf must be valid at `now` (default: current UTC
    time; `check_validity=False` skips that, for already accepted certificates) and carry an
    RSA >= 2048 or EC P-256/P-384/P-521 key. Raises CertificateError.
    """
    raw = decode_certificate_blob(data)
    if _PEM_MARKER in raw:
        raise CertificateError(
            CODE_INVALID_DATA,
            "The certificate data is PEM text; an SSL certificate must be uploaded as a PFX "
            "(PKCS#12) file that includes the private key.",
        )
    if not is_pkcs12_pfx(raw):
        if _is_der_certificate(raw):
            message = (
                "The certificate data is a single certificate (.cer) without its private key; "
                "an SSL certificate must be uploaded as a PFX (PKCS#12) file."
            )
        else:
            message = _NOT_A_PFX
        raise CertificateError(CODE_INVALID_DATA, message)
    try:
        key, certificate, additional = _decrypt_pfx(raw, password)
    except CertificateError:
        raise
    except ValueError:
        # The outer structure is a PFX, so decryption or the integrity check failed.
        if password:
            message = "The password given for the PFX certificate is incorrect."
        else:
            message = "The PFX certificate is password-protected, but no password was given."
        raise CertificateError(CODE_INVALID_PASSWORD, message) from None

    if key is None:
        raise CertificateError(
            CODE_MISSING_PRIVATE_KEY,
            "The PFX file contains no private key; a listener certificate needs the private key.",
        )
    certificates: list[x509.Certificate] = []
    for cert in [*([certificate] if certificate is not None else []), *additional]:
        if cert not in certificates:
            certificates.append(cert)
    if not certificates:
        raise CertificateError(
            CODE_MISSING_CERTIFICATE, "The PFX file contains a private key but no certificate."
        )
    leaf_index = next(
        (i for i, cert in enumerate(certificates) if _has_public_key(cert, key.public_key())),
        None,
    )
    if leaf_index is None:
        subjects = "; ".join(cert.subject.rfc4514_string() for cert in certificates)
        raise CertificateError(
            CODE_KEY_MISMATCH,
            f"The private key in the PFX file belongs to none of its certificates ({subjects}).",
        )
    listener_key = _listener_key(key)
    leaf = certificates[leaf_index]
    if check_validity:
        _check_validity(leaf, now)
    path, unrelated = _issuer_path(certificates, leaf_index)
    return ListenerCertificate(
        private_key=listener_key,
        leaf=leaf,
        chain=tuple(certificates[i] for i in (*path, *unrelated)),
    )


def load_listener_certificate(
    private_key_pem: str,
    chain_pem: str,
    *,
    now: datetime | None = None,
    check_validity: bool = True,
) -> ListenerCertificate:
    """A listener certificate from what `ListenerCertificate.private_key_pem()` and
    `chain_pem()` wrote: an unencrypted key, so nothing is derived. Checks as load_pfx does
    (key type, key matching the leaf, validity unless `check_validity=False`)."""
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
        certificates = x509.load_pem_x509_certificates(chain_pem.encode("ascii"))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CertificateError(
            CODE_INVALID_DATA, "The stored private key or certificate chain is unreadable."
        ) from None
    leaf = certificates[0]
    if not _has_public_key(leaf, key.public_key()):
        raise CertificateError(
            CODE_KEY_MISMATCH, "The stored private key does not belong to the stored certificate."
        )
    listener_key = _listener_key(key)
    if check_validity:
        _check_validity(leaf, now)
    return ListenerCertificate(private_key=listener_key, leaf=leaf, chain=tuple(certificates[1:]))


def _is_der_certificate(data: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return False
    return True


def _has_public_key(cert: x509.Certificate, public_key: PublicKeyTypes) -> bool:
    try:
        cert_key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return False
    return _spki_der(cert_key) == _spki_der(public_key)


def _spki_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _listener_key(key: PrivateKeyTypes) -> ListenerPrivateKey:
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= _MIN_RSA_KEY_BITS:
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _NIST_CURVE_NAMES:
        return key
    raise CertificateError(
        CODE_UNSUPPORTED_KEY,
        f"The certificate key is {_describe_public_key(key.public_key())}; a listener "
        f"certificate needs an RSA key of at least {_MIN_RSA_KEY_BITS} bits or an EC key on "
        "P-256, P-384 or P-521.",
    )


def _check_validity(leaf: x509.Certificate, now: datetime | None) -> None:
    moment = _utc_moment(now)
    subject = leaf.subject.rfc4514_string()
    if leaf.not_valid_after_utc < moment:
        raise CertificateError(
            CODE_EXPIRED,
            f"The certificate expired on {_iso(leaf.not_valid_after_utc)} (subject {subject}).",
        )
    if leaf.not_valid_before_utc > moment:
        raise CertificateError(
            CODE_NOT_YET_VALID,
            f"The certificate is not valid before {_iso(leaf.not_valid_before_utc)} "
            f"(subject {subject}).",
        )


def _utc_moment(now: datetime | None) -> datetime:
    """`now` in UTC, defaulting to the current time; naive values are taken as UTC, the only
    zone certificates use."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` signed `child` (names and signature)."""
    # The cheap name comparison first: this runs for every pair of certificates.
    if child.issuer != issuer.subject:
        return False
    try:
        child.verify_directly_issued_by(issuer)
    except _VERIFY_ERRORS:
        return False
    return True


def _issuer_path(certs: Sequence[x509.Certificate], leaf_index: int) -> tuple[list[int], list[int]]:
    """Indices of the issuers above certs[leaf_index], nearest first, and of all the others."""
    remaining = [i for i in range(len(certs)) if i != leaf_index]
    path: list[int] = []
    current = leaf_index
    while (
        issuer := next((i for i in remaining if issued_by(certs[current], certs[i])), None)
    ) is not None:
        path.append(issuer)
        remaining.remove(issuer)
        current = issuer
    return path, remaining


PFX_NOT_CER = "this is a PFX (PKCS#12); upload the certificate only (.cer)"


def load_public_certificate(data: str | bytes) -> x509.Certificate:
    """Parse .cer data (authentication / trusted root certificates): base64 DER, raw DER or
    PEM (the first certificate when the PEM holds several)."""
    raw = decode_certificate_blob(data)
    try:
        if _PEM_MARKER in raw:
            return x509.load_pem_x509_certificates(raw)[0]
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        # The usual slip: the listener's .pfx chosen where the backend's .cer goes.
        if _PEM_MARKER not in raw and is_pkcs12_pfx(raw):
            raise CertificateError(CODE_INVALID_DATA, PFX_NOT_CER) from None
        raise CertificateError(
            CODE_INVALID_DATA,
            "The data is not a certificate in DER, base64 DER or PEM form (a .cer file).",
        ) from None


def load_certificate_chain(data: str | bytes) -> list[x509.Certificate]:
    """Parse a .cer/.pem upload that may hold several certificates (trusted client CA
    chains): PEM with one or more blocks, base64 of such a PEM file, base64 DER or raw DER
    (one certificate)."""
    raw = decode_certificate_blob(data)  # base64 of a PEM file comes back as the PEM text
    try:
        if _PEM_MARKER in raw:
            return x509.load_pem_x509_certificates(raw)
        return [x509.load_der_x509_certificate(raw)]
    except ValueError:
        raise CertificateError(
            CODE_INVALID_DATA,
            "The data is not certificates in PEM, base64 or DER form (a .cer or .pem file).",
        ) from None


def public_certificate_data(cert: x509.Certificate) -> str:
    """Base64 (standard alphabet, no newlines) of the DER encoding: Azure's `data` for .cer."""
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")


def public_cert_data_for_pfx(cert: ListenerCertificate) -> str:
    """Azure's read-only `publicCertData` of an sslCertificates entry: base64 of a DER PKCS#7
    certs-only bundle of the full chain.

    DER sorts a SET OF by encoding, so the bundle does not keep the leaf-first order; readers
    must pick the leaf by linkage, not by position.
    """
    bundle = pkcs7.serialize_certificates(list(cert.full_chain()), serialization.Encoding.DER)
    return base64.b64encode(bundle).decode("ascii")


def bundle_leaf(certs: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The leaf of certificates in no particular order: the one that issued none of the
    others (a non-CA one among several such). By linkage, not by the CA flag alone: `openssl
    req -x509`, as Microsoft's tutorials make a listener certificate, marks its self-signed
    certificate CA:TRUE, and that certificate is the leaf."""
    ends = [
        cert
        for cert in certs
        if not any(other != cert and issued_by(other, cert) for other in certs)
    ]
    return next((cert for cert in ends if not _is_ca(cert)), ends[0] if ends else None)


def public_cert_data_leaf(data: str) -> CertificateInfo | None:
    """The leaf of an sslCertificates entry's `publicCertData` (a PKCS#7 bundle whose DER
    order is not the chain's), for display; None when the data holds no certificate."""
    try:
        certs = pkcs7.load_der_pkcs7_certificates(base64.b64decode(data, validate=True))
    except ValueError:  # binascii.Error is one
        return None
    leaf = bundle_leaf(certs)
    return inspect_certificate(leaf) if leaf is not None else None


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What operators want to see about a certificate, in display-ready form."""

    subject: str  # RFC 4514, most specific attribute first: "CN=www.contoso.com,O=Contoso"
    issuer: str
    common_name: str | None
    subject_alternative_names: tuple[str, ...]  # DNS names and IP addresses, in extension order
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    serial_number: str  # upper-case hex
    not_before: datetime  # aware, UTC
    not_after: datetime  # aware, UTC
    sha256_fingerprint: str  # upper-case hex, no separators
    sha1_thumbprint: str  # upper-case hex: what Azure and Windows call the thumbprint
    spki_sha256: str  # base64 SHA-256 of the DER SubjectPublicKeyInfo (HPKP / Envoy pin)
    is_ca: bool
    self_signed: bool
    key_description: str  # "RSA 2048", "EC P-256 (secp256r1)"
    signature_hash: str | None  # "sha256"; None for Ed25519/Ed448 or unknown algorithms

    def to_json(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "commonName": self.common_name,
            "subjectAlternativeNames": list(self.subject_alternative_names),
            "serialNumber": self.serial_number,
            "notBefore": _iso(self.not_before),
            "notAfter": _iso(self.not_after),
            "sha256Fingerprint": self.sha256_fingerprint,
            "sha1Thumbprint": self.sha1_thumbprint,
            "spkiSha256": self.spki_sha256,
            "isCa": self.is_ca,
            "selfSigned": self.self_signed,
            "keyDescription": self.key_description,
            "signatureHash": self.signature_hash,
        }

    def days_until_expiry(self, now: datetime | None = None) -> int:
        """Whole days left, rounded down; negative once expired."""
        return (self.not_after - _utc_moment(now)).days

    @property
    def names(self) -> tuple[str, ...]:
        """The names it is for: its SANs, or its CN when it has none (RFC 6125)."""
        if self.subject_alternative_names:
            return self.subject_alternative_names
        return (self.common_name,) if self.common_name else ()

    def covers(self, host: str) -> bool:
        """`name_matches_certificate` for a certificate known by its names only."""
        addresses = {_ip_address(address) for address in self.ip_addresses}
        return _names_cover(
            host, self.dns_names, addresses, self.common_name, bool(self.subject_alternative_names)
        )


def inspect_certificate(cert: x509.Certificate) -> CertificateInfo:
    names: list[str] = []
    dns_names: list[str] = []
    ip_addresses: list[str] = []
    for general_name in _subject_alternative_names(cert) or ():
        if isinstance(general_name, x509.DNSName):
            dns_names.append(general_name.value)
            names.append(general_name.value)
        elif isinstance(general_name, x509.IPAddress):
            ip_addresses.append(str(general_name.value))
            names.append(str(general_name.value))
    spki = subject_public_key_info(cert.tbs_certificate_bytes)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=_common_name(cert),
        subject_alternative_names=tuple(names),
        dns_names=tuple(dns_names),
        ip_addresses=tuple(ip_addresses),
        serial_number=f"{cert.serial_number:X}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256_fingerprint=cert.fingerprint(hashes.SHA256()).hex().upper(),
        sha1_thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),
        spki_sha256=base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii"),
        is_ca=_is_ca(cert),
        self_signed=issued_by(cert, cert),
        key_description=_describe_certificate_key(cert),
        signature_hash=_signature_hash_name(cert),
    )


def _subject_alternative_names(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _common_name(cert: x509.Certificate) -> str | None:
    # The last CN is the most specific one, as OpenSSL and Go read it.
    values = [
        attribute.value
        for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if isinstance(attribute.value, str)
    ]
    return values[-1] if values else None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _describe_certificate_key(cert: x509.Certificate) -> str:
    try:
        public_key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return f"unsupported ({cert.public_key_algorithm_oid.dotted_string})"
    return _describe_public_key(public_key)


def _describe_public_key(public_key: PublicKeyTypes) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        nist_name = _NIST_CURVE_NAMES.get(curve)
        return f"EC {nist_name} ({curve})" if nist_name else f"EC {curve}"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"DSA {public_key.key_size}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(public_key).__name__


def _signature_hash_name(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return algorithm.name if algorithm is not None else None


@dataclass(frozen=True, slots=True)
class ChainProblem:
    code: str  # "LeafNotFirst", "ChainOutOfOrder" or "UnrelatedCertificate"
    message: str


def chain_order_problems(certs: Sequence[x509.Certificate]) -> tuple[ChainProblem, ...]:
    """Problems with certificates in the order presented (leaf, then each one's issuer).

    The leaf is taken to be the first non-CA certificate. Empty tuple when the order is right.
    """
    if len(certs) < 2:
        return ()
    problems: list[ChainProblem] = []
    leaf_index = next((i for i, cert in enumerate(certs) if not _is_ca(cert)), 0)
    if leaf_index != 0:
        problems.append(
            ChainProblem(
                "LeafNotFirst",
                f"{_describe_position(certs, 0)} is a CA certificate but the leaf "
                f"{_describe_position(certs, leaf_index)} comes later; the leaf must be first.",
            )
        )
    path, unrelated = _issuer_path(certs, leaf_index)
    for child, parent in pairwise(sorted([leaf_index, *path])):
        if not issued_by(certs[child], certs[parent]):
            problems.append(
                ChainProblem(
                    "ChainOutOfOrder",
                    f"{_describe_position(certs, child)} is followed by "
                    f"{_describe_position(certs, parent)}, which did not issue it; each "
                    "certificate must be followed by its issuer.",
                )
            )
    problems.extend(
        ChainProblem(
            "UnrelatedCertificate",
            f"{_describe_position(certs, i)} is not part of the chain of the leaf "
            f"{_describe_position(certs, leaf_index)}.",
        )
        for i in unrelated
    )
    return tuple(problems)


def _describe_position(certs: Sequence[x509.Certificate], index: int) -> str:
    return f"certificate {index + 1} ({certs[index].subject.rfc4514_string()})"


def name_matches_certificate(cert: x509.Certificate, host: str) -> bool:
    """RFC 6125 host name check against the SAN (dNSName, or iPAddress for IP literals), or
    the CN when the certificate has no SAN extension. A wildcard counts only as the whole
    left-most label. Case-insensitive; a trailing dot is ignored."""
    san = _subject_alternative_names(cert)
    if san is None:
        return _names_cover(host, (), set(), _common_name(cert), has_san=False)
    return _names_cover(
        host,
        san.get_values_for_type(x509.DNSName),
        set(san.get_values_for_type(x509.IPAddress)),
        None,
        has_san=True,
    )


def _names_cover(
    host: str,
    dns_names: Sequence[str],
    addresses: Set[object],
    common_name: str | None,
    has_san: bool,
) -> bool:
    name = host.strip().rstrip(".").lower()
    if not name or "*" in name:
        return False
    address = _ip_address(name)
    if not has_san:
        # The CN is a legacy place for DNS names only; IP literals must be in the SAN.
        return address is None and common_name is not None and _dns_name_matches(common_name, name)
    if address is not None:
        return address in addresses
    return any(_dns_name_matches(pattern, name) for pattern in dns_names)


def _ip_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _dns_name_matches(pattern: str, name: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    if not pattern.startswith("*."):
        return pattern == name
    suffix = pattern[2:]
    # A wildcard directly under a top-level domain would cover unrelated organisations.
    if "." not in suffix or "*" in suffix:
        return False
    first_label, _, rest = name.partition(".")
    return bool(first_label) and rest == suffix
