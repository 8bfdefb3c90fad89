"""Is a client certificate revoked? The decisions of `verifyClientRevocation: OCSP`.

Azure checks the client's leaf certificate with OCSP, at the responder its Authority
Information Access names. appgw does that, and for a certificate that names no OCSP responder
but a CRL distribution point (an http:// URL), checks that CRL instead, so a CA without an
OCSP service can still revoke. Answers are signed by the certificate's issuer (or, for OCSP,
by a responder certificate the issuer made for OCSP signing); anything unsigned, stale or
about another certificate is no answer. Pure: the fetching is dataplane/revocation.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

# How long an answer is believed without a nextUpdate, and at most with one: a revocation is
# noticed within an hour, as with nginx's ssl_ocsp_cache default of an hour.
MAX_CACHE_SECONDS = 3600
# An answer whose thisUpdate is in the future by more than this is refused (clock skew).
CLOCK_SKEW = timedelta(minutes=5)

GOOD = "good"
REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class RevocationQuery:
    """What to ask, and of whom: one of ocsp_url / crl_url."""

    leaf: x509.Certificate
    issuer: x509.Certificate
    ocsp_url: str | None
    crl_url: str | None


@dataclass(frozen=True, slots=True)
class RevocationAnswer:
    status: str  # GOOD, REVOKED, or why no answer counts ("unknown", "no responder", ...)
    valid_until: datetime  # believed until then

    @property
    def good(self) -> bool:
        return self.status == GOOD


def query_for(chain: list[x509.Certificate], trusted: list[x509.Certificate]) -> RevocationQuery:
    """The leaf's issuer (from what the client sent or the uploaded CAs) and where to ask.
    Raises ValueError when the issuer is not there (the chain check would have said so)."""
    leaf = chain[0]
    issuer = next(
        (cert for cert in [*chain[1:], *trusted] if _issued(leaf, cert)),
        None,
    )
    if issuer is None:
        raise ValueError("the issuer of the client certificate is unknown")
    return RevocationQuery(leaf, issuer, _ocsp_url(leaf), _crl_url(leaf))


def ocsp_request(query: RevocationQuery) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(query.leaf, query.issuer, hashes.SHA1())
    return builder.build().public_bytes(Encoding.DER)


def judge_ocsp(query: RevocationQuery, der: bytes, now: datetime) -> RevocationAnswer:
    """The responder's answer about the leaf, or why it does not count."""
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        return _no_answer("the OCSP answer is not DER", now)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return _no_answer(f"the OCSP responder said {response.response_status.name}", now)
    if response.serial_number != query.leaf.serial_number:
        return _no_answer("the OCSP answer is about another certificate", now)
    signer = _ocsp_signer(response, query.issuer)
    if signer is None:
        return _no_answer("the OCSP answer is not signed by the issuer or its responder", now)
    this_update = response.this_update_utc
    next_update = response.next_update_utc
    if this_update > now + CLOCK_SKEW or (next_update is not None and next_update < now):
        return _no_answer("the OCSP answer is out of date", now)
    until = _until(now, next_update)
    if response.certificate_status == ocsp.OCSPCertStatus.GOOD:
        return RevocationAnswer(GOOD, until)
    if response.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        return RevocationAnswer(REVOKED, until)
    return _no_answer("the OCSP responder does not know the certificate", now)


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    """Raises ValueError."""
    if data.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def crl_valid_until(data: bytes, now: datetime) -> datetime:
    """How long a fetched CRL is kept: its nextUpdate, an hour at most (now: not at all)."""
    try:
        return _until(now, _load_crl(data).next_update_utc)
    except ValueError:
        return now


def judge_crl(query: RevocationQuery, der: bytes, now: datetime) -> RevocationAnswer:
    try:
        crl = _load_crl(der)
    except ValueError:
        return _no_answer("the CRL is neither DER nor PEM", now)
    if crl.issuer != query.issuer.subject or not crl.is_signature_valid(
        query.issuer.public_key()  # type: ignore[arg-type]
    ):
        return _no_answer("the CRL is not signed by the certificate's issuer", now)
    next_update = crl.next_update_utc
    if next_update is not None and next_update < now:
        return _no_answer("the CRL is out of date", now)
    until = _until(now, next_update)
    if crl.get_revoked_certificate_by_serial_number(query.leaf.serial_number) is not None:
        return RevocationAnswer(REVOKED, until)
    return RevocationAnswer(GOOD, until)


def no_source(now: datetime) -> RevocationAnswer:
    return _no_answer("the certificate names no OCSP responder nor CRL (http://)", now)


def failed(reason: str, now: datetime) -> RevocationAnswer:
    """A fetch that failed: believed for a short while, so a dead responder is not asked per
    connection, and a recovered one is asked again soon."""
    return _no_answer(reason, now)


# An answer that does not count is remembered this long (not MAX_CACHE_SECONDS): a responder
# that failed is asked again soon, but not by every new connection.
NO_ANSWER_SECONDS = 30


def _no_answer(reason: str, now: datetime) -> RevocationAnswer:
    return RevocationAnswer(reason, now + timedelta(seconds=NO_ANSWER_SECONDS))


def _until(now: datetime, next_update: datetime | None) -> datetime:
    longest = now + timedelta(seconds=MAX_CACHE_SECONDS)
    return min(next_update, longest) if next_update is not None else longest


def _ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate | None:
    """The certificate whose key signed the answer: the issuer, or a responder certificate
    the issuer issued with the OCSP-signing purpose (RFC 6960 §4.2.2.2)."""
    candidates = [issuer] + [
        cert for cert in response.certificates if _issued(cert, issuer) and _ocsp_signing(cert)
    ]
    for candidate in candidates:
        if _signed_by(
            candidate,
            response.signature,
            response.tbs_response_bytes,
            response.signature_hash_algorithm,
        ):
            return candidate
    return None


def _signed_by(
    signer: x509.Certificate,
    signature: bytes,
    data: bytes,
    algorithm: hashes.HashAlgorithm | None,
) -> bool:
    key = signer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True


def _ocsp_signing(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in usage


def _ocsp_url(cert: x509.Certificate) -> str | None:
    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for description in access:
        location = description.access_location
        if (
            description.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(location, x509.UniformResourceIdentifier)
            and location.value.lower().startswith("http://")
        ):
            return location.value
    return None


def _crl_url(cert: x509.Certificate) -> str | None:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return None
    for point in points:
        for name in point.full_name or []:
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(
                "http://"
            ):
                return name.value
    return None


def utc_now() -> datetime:
    return datetime.now(UTC)
