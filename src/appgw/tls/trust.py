"""Backend certificate trust for end-to-end TLS (gateway -> backend server): pure judgement.

One code path for live traffic and health probes: the client handshake runs with a context
that verifies nothing (`appgw.tls.client.client_context`), and right after the handshake, before
any request byte is sent, the caller hands the chain the backend presented
(`appgw.tls.client.presented_chain`) to `verify_presented_chain`. The verdict says whether the
backend is trusted and, if not, which check failed, in words an operator can act on, together
with what the backend presented.

Trust models (spec §2.4, §2.5):

* v1 (`Standard`, `WAF`): allow-listing. The backend's own leaf certificate must be byte for
  byte one of the setting's authentication certificates; no chain validation. The name check,
  when asked for, compares the leaf's SAN (CN without SAN) with the pool member's FQDN.
* v2 (`Standard_v2`, `WAF_v2`): the chain must verify, with OpenSSL semantics and expiry, up
  to one of the setting's trusted root certificates, or to a well-known CA (the certifi
  bundle) when none is uploaded; then the leaf must match the expected name (the SNI).
  `validateCertChainAndExpiry=false` skips the chain and expiry checks (order, missing
  certificates, roots, validity dates); `validateSNI=false` skips the name check.

Decisions beyond what Azure documents:

* Order: the leaf must come first. A chain that starts with a CA certificate while a leaf
  follows is rejected ("LeafNotFirst") even where OpenSSL alone would accept it, because
  Azure rejects it. Intermediates out of order after a leaf-first start, and extra unrelated
  certificates, are tolerated when the chain otherwise verifies (OpenSSL, browsers and nginx
  accept them); the "Ok" message then carries a note naming the problem.
* A self-signed certificate that is not a CA is a leaf whose issuer is missing
  ("IntermediateMissing"), even when that very certificate is uploaded as a trusted root
  (Azure's documented behaviour). A first certificate that is a CA, with no leaf after it, is
  "LeafMissing".
* An uploaded trusted root must be a root: no partial chains (an uploaded intermediate does
  not anchor anything). OpenSSL's default verify flags are used otherwise (no X509_STRICT,
  no purpose/EKU check).
* The "expired" check of v1 (the allow-listed leaf is outside its validity window) also
  follows `validate_chain_and_expiry`; Azure v1 has no such knob, so the compiler passes True.
* A certificate uploaded in the wrong role is named as such, under Azure's check code: on v1 a
  CA certificate of the backend's chain (sent or not) uploaded as the authentication
  certificate, where v1 needs the backend's own certificate; on v2 the backend's own
  certificate uploaded as a trusted root. Only an allow-listed leaf sent after another
  certificate is called a misordered chain.
* `verify_name=None` means "no name to check" (e.g. v1 IP member); an empty string is a name
  and matches nothing.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final, NamedTuple

import certifi
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import crypto

from appgw.certificates import (
    CertificateInfo,
    chain_order_problems,
    inspect_certificate,
    issued_by,
    name_matches_certificate,
)

__all__ = [
    "CHECKS",
    "CHECK_EXPIRED",
    "CHECK_INTERMEDIATE_MISSING",
    "CHECK_INTERMEDIATE_NOT_SIGNED_BY_WELL_KNOWN_CA",
    "CHECK_LEAF_MISSING",
    "CHECK_LEAF_NOT_ALLOW_LISTED",
    "CHECK_LEAF_NOT_FIRST",
    "CHECK_NAME_MISMATCH",
    "CHECK_NOT_ISSUED_BY_WELL_KNOWN_CA",
    "CHECK_NOT_YET_VALID",
    "CHECK_NO_CERTIFICATE",
    "CHECK_OK",
    "CHECK_TRUSTED_ROOT_MISMATCH",
    "CHECK_TRUSTED_ROOT_MISMATCH_ROOT_SENT",
    "CHECK_VERIFICATION_FAILED",
    "MAX_PRESENTED_CERTIFICATES",
    "BackendCertificateVerdict",
    "BackendTrust",
    "CheckDescription",
    "verify_presented_chain",
]

CHECK_OK: Final = "Ok"
CHECK_NO_CERTIFICATE: Final = "NoCertificate"
CHECK_LEAF_NOT_ALLOW_LISTED: Final = "LeafNotAllowListed"
CHECK_NAME_MISMATCH: Final = "NameMismatch"
CHECK_EXPIRED: Final = "Expired"
CHECK_NOT_YET_VALID: Final = "NotYetValid"
CHECK_INTERMEDIATE_MISSING: Final = "IntermediateMissing"
CHECK_LEAF_MISSING: Final = "LeafMissing"
CHECK_LEAF_NOT_FIRST: Final = "LeafNotFirst"
CHECK_NOT_ISSUED_BY_WELL_KNOWN_CA: Final = "NotIssuedByWellKnownCA"
CHECK_INTERMEDIATE_NOT_SIGNED_BY_WELL_KNOWN_CA: Final = "IntermediateNotSignedByWellKnownCA"
CHECK_TRUSTED_ROOT_MISMATCH: Final = "TrustedRootMismatch"
CHECK_TRUSTED_ROOT_MISMATCH_ROOT_SENT: Final = "TrustedRootMismatchRootSent"
CHECK_VERIFICATION_FAILED: Final = "VerificationFailed"


class CheckDescription(NamedTuple):
    sku: str  # "v1", "v2" or "both"
    azure: str  # the row of Azure's backend-health error catalogue (spec §3.3)
    condition: str  # when this module reports it


# The catalogue: every `check` code a verdict can carry. Stable; the health API, access log
# and metrics key on these codes. Checks run in this order; the first failure is reported.
CHECKS: Final[Mapping[str, CheckDescription]] = MappingProxyType(
    {
        CHECK_OK: CheckDescription("both", "Healthy", "every enabled check passed"),
        CHECK_NO_CERTIFICATE: CheckDescription(
            "both", "-", "the backend presented no certificate at all (empty chain)"
        ),
        CHECK_LEAF_NOT_ALLOW_LISTED: CheckDescription(
            "v1",
            "#16 not allow-listed (reason codes 10, 13)",
            "the first presented certificate is not byte-identical to any authentication "
            "certificate of the setting (a different certificate with the same CN fails too)",
        ),
        CHECK_LEAF_NOT_FIRST: CheckDescription(
            "v2",
            "#14 leaf must be topmost",
            "the first presented certificate is a CA certificate and a non-CA (leaf) "
            "certificate follows later (chain_order_problems 'LeafNotFirst'); reported even "
            "when OpenSSL would accept the chain",
        ),
        CHECK_LEAF_MISSING: CheckDescription(
            "v2",
            "#9 leaf certificate not found",
            "every presented certificate is a CA certificate: the server sent no leaf",
        ),
        CHECK_INTERMEDIATE_MISSING: CheckDescription(
            "v2",
            "#8 intermediate certificate not found",
            "the leaf is self-signed but not a CA (even if uploaded as a trusted root); or "
            "OpenSSL cannot find the leaf's issuer among the certificates sent and the "
            "trusted roots (typically: only the leaf was sent)",
        ),
        CHECK_NOT_ISSUED_BY_WELL_KNOWN_CA: CheckDescription(
            "v2",
            "#10 not issued by a publicly known CA (reason code 11)",
            "well-known mode (no trusted root uploaded): the chain ends in a root the server "
            "sent that is not in the well-known bundle (OpenSSL error 19)",
        ),
        CHECK_INTERMEDIATE_NOT_SIGNED_BY_WELL_KNOWN_CA: CheckDescription(
            "v2",
            "#11 intermediate not signed by a publicly known CA",
            "well-known mode: the top presented intermediate's issuer is neither sent nor in "
            "the well-known bundle (OpenSSL error 20 above the leaf)",
        ),
        CHECK_TRUSTED_ROOT_MISMATCH: CheckDescription(
            "v2",
            "#12 trusted root mismatch, no root on server",
            "custom roots: no uploaded root signed the top presented certificate (OpenSSL "
            "error 20 above the leaf; or 2 when an uploaded 'root' is not self-signed; or the "
            "leaf's issuer has the name of an uploaded root but another key)",
        ),
        CHECK_TRUSTED_ROOT_MISMATCH_ROOT_SENT: CheckDescription(
            "v2",
            "#13 trusted root mismatch, root on server (reason code 18)",
            "custom roots: the chain ends in a root the server sent that is not one of the "
            "uploaded roots (OpenSSL error 19)",
        ),
        CHECK_EXPIRED: CheckDescription(
            "both",
            "#7 backend certificate expired (reason code 20)",
            "v2: OpenSSL error 10 for the leaf, an intermediate or the root (the message "
            "says which); v1: the allow-listed leaf is past notAfter",
        ),
        CHECK_NOT_YET_VALID: CheckDescription(
            "both",
            "#7 backend certificate expired (outside its validity window)",
            "v2: OpenSSL error 9 for any certificate of the chain; v1: the allow-listed leaf "
            "is before notBefore",
        ),
        CHECK_NAME_MISMATCH: CheckDescription(
            "both",
            "#6 (v2) / #6b (v1, reason code 12) CN doesn't match",
            "name check enabled and verify_name given, and the leaf's SAN (its CN when it "
            "has no SAN) does not cover verify_name (RFC 6125)",
        ),
        CHECK_VERIFICATION_FAILED: CheckDescription(
            "v2",
            "#15 certificate verification failed (reason code 17)",
            "any other OpenSSL verify error (invalid CA, bad signature, path length, ...): "
            "the message carries the OpenSSL code and its text; also an unparsable "
            "presented certificate",
        ),
    }
)

# OpenSSL X509_V_ERR_* codes this module classifies (openssl/x509_vfy.h).
_ERR_UNABLE_TO_GET_ISSUER_CERT = 2
_ERR_CERT_NOT_YET_VALID = 9
_ERR_CERT_HAS_EXPIRED = 10
_ERR_DEPTH_ZERO_SELF_SIGNED_CERT = 18
_ERR_SELF_SIGNED_CERT_IN_CHAIN = 19
_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
_ISSUER_NOT_FOUND = frozenset(
    {
        _ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
        _ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
        _ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
    }
)

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)
# What cryptography raises for certificate bytes it cannot make sense of.
_MALFORMED = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)
# More than any real chain (leaf + a few intermediates + root); bounds the quadratic order
# analysis of what a backend sends.
MAX_PRESENTED_CERTIFICATES: Final = 20
# How many uploaded certificates a message lists by name before "and N more".
_MAX_LISTED = 5
# Distinct trusts a worker sees is bounded by the configuration; this only caps churn.
_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class BackendTrust:
    """How one backend HTTP setting judges backend certificates. Hashable: part of the
    upstream pool key.

    Certificates may be given as DER or PEM; they are stored as DER, deduplicated and sorted,
    so equal sets compare (and hash) equal whatever their upload order. Data that is not a
    certificate is kept as is and can never match or anchor anything. The set the SKU does
    not use (trusted roots on v1, authentication certificates on v2) is ignored.
    """

    sku_v1: bool
    # v1 authenticationCertificates: the backend's exact leaf must be one of these
    allowed_leaves_der: tuple[bytes, ...] = ()
    # v2 trustedRootCertificates; empty on v2 = well-known CAs (certifi bundle)
    trusted_roots_der: tuple[bytes, ...] = ()
    # v2 knob validateCertChainAndExpiry (false: skip chain AND expiry checks)
    validate_chain_and_expiry: bool = True
    # v2 knob validateSNI; on v1 the name check is against the pool member FQDN
    validate_name: bool = True
    _trust_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        leaves = _canonical_der(self.allowed_leaves_der, first_only=True)
        roots = _canonical_der(self.trusted_roots_der, first_only=False)
        object.__setattr__(self, "allowed_leaves_der", leaves)
        object.__setattr__(self, "trusted_roots_der", roots)
        digest = hashlib.sha256(b"appgw-backend-trust-1\0")
        digest.update(bytes([self.sku_v1, self.validate_chain_and_expiry, self.validate_name]))
        for group in (leaves, roots):
            digest.update(len(group).to_bytes(4, "big"))
            for der in group:
                digest.update(hashlib.sha256(der).digest())
        object.__setattr__(self, "_trust_id", digest.hexdigest()[:16])

    @property
    def trust_id(self) -> str:
        """Short stable hex id of everything above, for logs and pool keys."""
        return self._trust_id


def _canonical_der(items: Sequence[bytes], *, first_only: bool) -> tuple[bytes, ...]:
    result: set[bytes] = set()
    for item in items:
        raw = bytes(item)
        blocks = _PEM_CERTIFICATE.findall(raw)
        if not blocks:
            result.add(raw)
            continue
        for block in blocks[:1] if first_only else blocks:
            try:
                result.add(
                    crypto.dump_certificate(
                        crypto.FILETYPE_ASN1, crypto.load_certificate(crypto.FILETYPE_PEM, block)
                    )
                )
            except crypto.Error:
                result.add(block)
    return tuple(sorted(result))


@dataclass(frozen=True, slots=True)
class BackendCertificateVerdict:
    ok: bool
    check: str  # a key of CHECKS
    message: str  # one sentence an operator can act on
    openssl_error: int | None  # OpenSSL X509_V_ERR code when chain validation failed
    presented: tuple[CertificateInfo, ...]  # what the backend sent, in order
    verify_name: str | None  # the name that was checked (None: no name check ran)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "check": self.check,
            "message": self.message,
            "opensslError": self.openssl_error,
            "verifyName": self.verify_name,
            "presentedChain": [info.to_json() for info in self.presented],
        }


def verify_presented_chain(
    trust: BackendTrust,
    chain_der: Sequence[bytes],
    *,
    verify_name: str | None,
    now: datetime | None = None,
) -> BackendCertificateVerdict:
    """Judge the chain a backend presented (leaf first, as sent) under `trust`.

    `verify_name` is the name the leaf must match when the name check is enabled (v2: the
    SNI sent; v1: the pool member FQDN); None: no name to check. `now` (default: the current
    time; naive = UTC) is the moment of the expiry checks. Pure apart from the default clock;
    never raises for anything a backend can send.
    """
    moment = _utc(now)
    if len(chain_der) > MAX_PRESENTED_CERTIFICATES:
        return BackendCertificateVerdict(
            ok=False,
            check=CHECK_VERIFICATION_FAILED,
            message=f"The backend sent {len(chain_der)} certificates, more than the "
            f"{MAX_PRESENTED_CERTIFICATES} accepted; configure it to send only its leaf and "
            "intermediates.",
            openssl_error=None,
            presented=(),
            verify_name=None,
        )
    certificates: list[x509.Certificate] = []
    presented: list[CertificateInfo] = []
    for index, der in enumerate(chain_der):
        try:
            certificate = x509.load_der_x509_certificate(bytes(der))
            # Extensions are parsed lazily: a malformed one surfaces here.
            presented.append(inspect_certificate(certificate))
        except _MALFORMED:
            return BackendCertificateVerdict(
                ok=False,
                check=CHECK_VERIFICATION_FAILED,
                message=f"Certificate {index + 1} that the backend sent is not a valid X.509 "
                "certificate; fix the certificate chain configured on the backend server.",
                openssl_error=None,
                presented=tuple(presented),
                verify_name=None,
            )
        certificates.append(certificate)
    verdicts = _Verdicts(
        trust=trust,
        certs=tuple(certificates),
        ders=tuple(bytes(der) for der in chain_der),
        presented=tuple(presented),
        moment=moment,
    )
    if not certificates:
        return verdicts.fail(
            CHECK_NO_CERTIFICATE,
            "The backend server presented no certificate; it must present its server "
            "certificate (and intermediates) in the TLS handshake.",
        )
    if trust.sku_v1:
        return verdicts.v1(verify_name)
    return verdicts.v2(verify_name)


@dataclass(frozen=True, slots=True)
class _Verdicts:
    """Builds the verdict for one presented chain."""

    trust: BackendTrust
    certs: tuple[x509.Certificate, ...]
    ders: tuple[bytes, ...]
    presented: tuple[CertificateInfo, ...]
    moment: datetime

    def fail(
        self, check: str, message: str, *, openssl_error: int | None = None
    ) -> BackendCertificateVerdict:
        return BackendCertificateVerdict(
            ok=False,
            check=check,
            message=message,
            openssl_error=openssl_error,
            presented=self.presented,
            verify_name=None,
        )

    @property
    def leaf(self) -> CertificateInfo:
        return self.presented[0]

    # -- v1: allow-listing -------------------------------------------------------------

    def v1(self, verify_name: str | None) -> BackendCertificateVerdict:
        allowed = _allowed_leaves(self.trust)
        if self.ders[0] not in self.trust.allowed_leaves_der:
            return self.fail(CHECK_LEAF_NOT_ALLOW_LISTED, self._not_allow_listed(allowed))
        if self.trust.validate_chain_and_expiry:
            if self.moment > self.leaf.not_after:
                return self.fail(
                    CHECK_EXPIRED,
                    f"The backend certificate '{self.leaf.subject}' expired on "
                    f"{_iso(self.leaf.not_after)}; renew it on the backend server and upload "
                    "the new certificate (.cer) as an authentication certificate of these "
                    "backend settings.",
                )
            if self.moment < self.leaf.not_before:
                return self.fail(
                    CHECK_NOT_YET_VALID,
                    f"The backend certificate '{self.leaf.subject}' is not valid before "
                    f"{_iso(self.leaf.not_before)}; check the clock or install a certificate "
                    "that is already valid.",
                )
        return self._check_name(verify_name, "is allow-listed")

    def _not_allow_listed(self, allowed: tuple[x509.Certificate, ...]) -> str:
        leaf = self.leaf
        head = (
            f"The backend server certificate '{leaf.subject}' (SHA-256 "
            f"{leaf.sha256_fingerprint}) is not allow-listed with the gateway"
        )
        if not self.trust.allowed_leaves_der:
            return (
                f"{head}: these backend settings have no authentication certificates; upload "
                "the backend server's certificate (.cer) as one."
            )
        same_subject = any(cert.subject.rfc4514_string() == leaf.subject for cert in allowed)
        note = (
            "an uploaded certificate has the same subject but is a different certificate"
            if same_subject
            else f"uploaded: {_list_subjects(allowed)}"
        )
        issuer = self._uploaded_issuer(allowed)
        if issuer is not None:
            uploaded, issued = issuer
            what = (
                "that issued the backend's certificate"
                if issued == leaf
                else f"from the backend's chain (it issued the intermediate '{issued.subject}')"
            )
            return (
                f"{head}: you uploaded the CA certificate '{uploaded.subject}' {what}; "
                f"Standard (v1) needs the backend's own certificate '{leaf.subject}' (its .cer) "
                "as the authentication certificate of these backend settings."
            )
        later = next(
            (
                index
                for index, der in enumerate(self.ders[1:], start=2)
                # A CA sent later is no server certificate out of place.
                if der in self.trust.allowed_leaves_der and not self.presented[index - 1].is_ca
            ),
            None,
        )
        if later is not None:
            return (
                f"{head}; an allow-listed certificate was sent at position {later}, but the "
                "server certificate must come first."
            )
        return (
            f"{head} ({note}); upload the certificate the backend actually serves (.cer) as "
            "an authentication certificate of these backend settings."
        )

    def _uploaded_issuer(
        self, allowed: tuple[x509.Certificate, ...]
    ) -> tuple[CertificateInfo, CertificateInfo] | None:
        """(uploaded CA, the presented certificate it issued) when an authentication
        certificate is a CA of the backend's chain, sent by the server or not: the v2 habit of
        uploading the root, which v1 compares with the leaf and never matches. (A leaf that is
        allow-listed but sent later is a misordered chain instead.)"""
        for uploaded in allowed:
            info = inspect_certificate(uploaded)
            if not info.is_ca:
                continue
            der = uploaded.public_bytes(Encoding.DER)
            for cert, presented, sent in zip(self.certs, self.presented, self.ders, strict=True):
                if sent != der and issued_by(cert, uploaded):
                    return info, presented
        return None

    # -- v2: chain to trusted roots ----------------------------------------------------

    def v2(self, verify_name: str | None) -> BackendCertificateVerdict:
        verified_to = "chain and expiry not checked"
        if self.trust.validate_chain_and_expiry:
            problem = self._check_chain()
            if isinstance(problem, BackendCertificateVerdict):
                return problem
            verified_to = problem
        return self._check_name(verify_name, verified_to)

    def _check_chain(self) -> BackendCertificateVerdict | str:
        """A failure verdict, or a description of the verified chain for the Ok message."""
        order = chain_order_problems(self.certs)
        if any(problem.code == CHECK_LEAF_NOT_FIRST for problem in order):
            position, leaf = next(
                (index, info)
                for index, info in enumerate(self.presented, start=1)
                if not info.is_ca
            )
            return self.fail(
                CHECK_LEAF_NOT_FIRST,
                "The backend's certificate chain does not start with its leaf: the first "
                f"certificate '{self.leaf.subject}' is a CA certificate and the leaf "
                f"'{leaf.subject}' comes at position {position}; fix the order on the backend "
                "server (leaf, then intermediates, then root).",
            )
        if self.leaf.is_ca:
            return self.fail(
                CHECK_LEAF_MISSING,
                f"The leaf certificate is missing from the backend's chain: every certificate "
                f"it sent is a CA certificate (first: '{self.leaf.subject}'); the server "
                "must present its own certificate first, followed by its intermediates.",
            )
        if self.leaf.self_signed:
            return self.fail(
                CHECK_INTERMEDIATE_MISSING,
                f"The backend certificate '{self.leaf.subject}' is self-signed but not a CA "
                "certificate, so it is treated as a leaf whose intermediate (issuer) "
                "certificate is missing; issue the server certificate from your own root CA "
                "(CA:TRUE) and upload that root, since a self-signed server certificate does "
                "not work as a trusted root.",
            )
        anchors = _anchors(self.trust)
        store = crypto.X509Store()
        for anchor in anchors.openssl:
            store.add_cert(anchor)
        store.set_time(self.moment)
        context = crypto.X509StoreContext(
            store,
            crypto.X509.from_cryptography(self.certs[0]),
            chain=[crypto.X509.from_cryptography(cert) for cert in self.certs[1:]],
        )
        try:
            verified = context.get_verified_chain()
        except crypto.X509StoreContextError as error:
            code, depth, text = int(error.errors[0]), int(error.errors[1]), str(error.errors[2])
            verdict = self._classify(code, depth, text, error.certificate.to_cryptography())
            if self.ders[0] in self.trust.trusted_roots_der:
                return replace(verdict, message=self._leaf_uploaded_as_root())
            return verdict
        except crypto.Error as error:  # OpenSSL failed outside verification proper
            return self.fail(
                CHECK_VERIFICATION_FAILED,
                f"The backend certificate '{self.leaf.subject}' could not be verified: OpenSSL "
                f"failed ({error}).",
            )
        top = verified[-1].to_cryptography().subject.rfc4514_string()
        notes = "; ".join(
            problem.message.rstrip(".") for problem in order if problem.code != CHECK_LEAF_NOT_FIRST
        )
        return f"chains to the {anchors.kind} '{top}'" + (f" (note: {notes})" if notes else "")

    def _leaf_uploaded_as_root(self) -> str:
        """The reverse of v1's habit: the backend's own certificate uploaded as a trusted
        root. OpenSSL's error (which keeps Azure's category) depends on what else the server
        sent; the cause is the same."""
        leaf = self.leaf
        root = next((info for info in self.presented[1:] if info.is_ca and info.self_signed), None)
        if root is not None:
            which = f"'{root.subject}', the root the backend sends at the top of its chain"
        else:
            # The highest certificate sent names the next one up: the root, or a CA under it.
            top = self.presented[-1] if self.presented[-1].is_ca else leaf
            which = f"'{top.issuer}', which issued '{top.subject}'"
        return (
            "None of the trusted root certificates of these backend settings issued the "
            f"backend's certificate: you uploaded the backend's own certificate "
            f"'{leaf.subject}' as a trusted root; Standard_v2 needs the root CA certificate "
            f"that issued it ({which}) as the trusted root certificate of these backend "
            "settings."
        )

    def _classify(
        self, code: int, depth: int, text: str, failing: x509.Certificate
    ) -> BackendCertificateVerdict:
        anchors = _anchors(self.trust)
        subject = failing.subject.rfc4514_string()
        issuer = failing.issuer.rfc4514_string()
        if code in (_ERR_CERT_HAS_EXPIRED, _ERR_CERT_NOT_YET_VALID):
            role = self._role(failing, depth)
            if code == _ERR_CERT_HAS_EXPIRED:
                when = f"expired on {_iso(failing.not_valid_after_utc)}"
                check = CHECK_EXPIRED
            else:
                when = f"is not valid before {_iso(failing.not_valid_before_utc)}"
                check = CHECK_NOT_YET_VALID
            fix = (
                "upload a current root certificate to these backend settings"
                if role == "trusted root"
                else "renew it on the backend server"
            )
            return self.fail(
                check,
                f"The backend chain's {role} certificate '{subject}' {when} (checked at "
                f"{_iso(self.moment)}); {fix}.",
                openssl_error=code,
            )
        if code == _ERR_SELF_SIGNED_CERT_IN_CHAIN:
            if anchors.well_known:
                return self.fail(
                    CHECK_NOT_ISSUED_BY_WELL_KNOWN_CA,
                    f"The backend certificate '{self.leaf.subject}' is not issued by a "
                    f"well-known CA: its chain ends in the root '{subject}', which the server "
                    "sent and which is not a well-known CA; to use a private CA, upload its "
                    "root certificate as a trusted root certificate of these backend settings.",
                    openssl_error=code,
                )
            return self.fail(
                CHECK_TRUSTED_ROOT_MISMATCH_ROOT_SENT,
                f"The backend certificate's root '{subject}' is not one of the trusted root "
                f"certificates of these backend settings (uploaded: "
                f"{_list_subjects(anchors.roots)}){self._same_name_note(subject)}; upload "
                "that root certificate to allow-list the backend.",
                openssl_error=code,
            )
        if code == _ERR_UNABLE_TO_GET_ISSUER_CERT and not anchors.well_known:
            return self.fail(
                CHECK_TRUSTED_ROOT_MISMATCH,
                f"The chain of the backend certificate '{self.leaf.subject}' reaches the "
                f"uploaded certificate '{subject}', which is not a root: it is issued by "
                f"'{issuer}'; upload the self-signed root certificate at the top of the "
                "chain as a trusted root certificate of these backend settings.",
                openssl_error=code,
            )
        if code in _ISSUER_NOT_FOUND:
            return self._issuer_not_found(code, depth, failing)
        return self.fail(
            CHECK_VERIFICATION_FAILED,
            f"The backend certificate '{self.leaf.subject}' could not be verified: OpenSSL "
            f"verify error {code} ({text}) at certificate '{subject}' (depth {depth}); look "
            "up this OpenSSL verify error code for its cause.",
            openssl_error=code,
        )

    def _issuer_not_found(
        self, code: int, depth: int, failing: x509.Certificate
    ) -> BackendCertificateVerdict:
        anchors = _anchors(self.trust)
        subject = failing.subject.rfc4514_string()
        issuer = failing.issuer.rfc4514_string()
        uploaded = f"(uploaded: {_list_subjects(anchors.roots)})"
        root_named_issuer = not anchors.well_known and any(
            root.subject == failing.issuer for root in anchors.roots
        )
        if root_named_issuer:
            return self.fail(
                CHECK_TRUSTED_ROOT_MISMATCH,
                f"The backend's certificate '{subject}' names '{issuer}' as its issuer, but "
                "the uploaded trusted root certificate with that name did not sign it (a "
                "different key); upload the root certificate that actually issued the "
                "backend's chain.",
                openssl_error=code,
            )
        if depth == 0:
            if anchors.well_known:
                not_trusted = f"'{issuer}' is not a well-known CA"
                private = "; for a private CA, upload its root as a trusted root certificate"
            else:
                not_trusted = f"'{issuer}' is not a trusted root of these backend settings"
                private = f"; or upload the root that issued it {uploaded}"
            sent = (
                "The backend sent only its leaf certificate"
                if len(self.certs) == 1
                else "None of the certificates the backend sent after its leaf issued the leaf"
            )
            return self.fail(
                CHECK_INTERMEDIATE_MISSING,
                f"The intermediate certificate is missing from the backend's chain: {sent} "
                f"'{subject}', issued by '{issuer}', and {not_trusted}; configure the server "
                f"to send its complete chain, leaf first, then its intermediates{private}.",
                openssl_error=code,
            )
        if anchors.well_known:
            return self.fail(
                CHECK_INTERMEDIATE_NOT_SIGNED_BY_WELL_KNOWN_CA,
                f"The backend's intermediate certificate '{subject}' is not signed by a "
                f"well-known CA (its issuer '{issuer}' is not in the well-known CA store); "
                "send the complete chain in order, or for a private CA upload its root "
                "certificate as a trusted root certificate of these backend settings.",
                openssl_error=code,
            )
        return self.fail(
            CHECK_TRUSTED_ROOT_MISMATCH,
            "None of the trusted root certificates of these backend settings "
            f"{uploaded} signed the backend's top certificate '{subject}' (issued by "
            f"'{issuer}'); upload the root certificate that issued it, or, if '{issuer}' is "
            "an intermediate, make the server send it too.",
            openssl_error=code,
        )

    def _role(self, cert: x509.Certificate, depth: int) -> str:
        if depth == 0:
            return "leaf"
        der = cert.public_bytes(Encoding.DER)
        if der in self.ders:
            return "root" if inspect_certificate(cert).self_signed else "intermediate"
        return "well-known root" if _anchors(self.trust).well_known else "trusted root"

    def _same_name_note(self, subject: str) -> str:
        same = any(root.subject.rfc4514_string() == subject for root in _anchors(self.trust).roots)
        return "; an uploaded root has that name but is a different certificate" if same else ""

    # -- both: the name ----------------------------------------------------------------

    def _check_name(self, verify_name: str | None, trusted: str) -> BackendCertificateVerdict:
        leaf = self.leaf
        checked: str | None = None
        if self.trust.validate_name and verify_name is not None:
            if not name_matches_certificate(self.certs[0], verify_name):
                return self.fail(CHECK_NAME_MISMATCH, self._name_mismatch(verify_name))
            checked = verify_name
        name_part = f"matches the name '{checked}'" if checked is not None else "name not checked"
        return BackendCertificateVerdict(
            ok=True,
            check=CHECK_OK,
            message=f"The backend certificate '{leaf.subject}' {trusted}; {name_part}.",
            openssl_error=None,
            presented=self.presented,
            verify_name=checked,
        )

    def _name_mismatch(self, name: str) -> str:
        leaf = self.leaf
        if leaf.subject_alternative_names:
            names = ", ".join(leaf.subject_alternative_names[:_MAX_LISTED])
            extra = len(leaf.subject_alternative_names) - _MAX_LISTED
            covers = f"its subject alternative names are {names}" + (
                f" and {extra} more" if extra > 0 else ""
            )
        elif leaf.common_name is not None:
            covers = f"it has no subject alternative names and its CN is '{leaf.common_name}'"
        else:
            covers = "it carries no name at all"
        if self.trust.sku_v1:
            return (
                f"The CN/SAN of the backend certificate '{leaf.subject}' doesn't match the "
                f"backend pool member FQDN '{name}' ({covers}); use a certificate issued for "
                "that FQDN on the backend, or address the member by a name the certificate "
                "covers."
            )
        return (
            f"The backend certificate '{leaf.subject}' doesn't match the host name '{name}' "
            f"that these backend settings expect and send as SNI ({covers}); use a "
            "certificate for that name on the backend, or set the backend settings' host "
            "name / SNI name to a name the certificate covers."
        )


class _Anchors(NamedTuple):
    well_known: bool
    kind: str  # "trusted root" or "well-known root", for messages
    roots: tuple[x509.Certificate, ...]  # uploaded roots (empty in well-known mode)
    openssl: tuple[crypto.X509, ...]


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _anchors(trust: BackendTrust) -> _Anchors:
    if not trust.trusted_roots_der:
        return _Anchors(True, "well-known root", (), _well_known_roots())
    roots: list[x509.Certificate] = []
    for der in trust.trusted_roots_der:
        try:
            roots.append(x509.load_der_x509_certificate(der))
        except ValueError:
            continue  # corrupt upload: anchors nothing (the API refuses such data)
    return _Anchors(
        False,
        "trusted root",
        tuple(roots),
        tuple(crypto.X509.from_cryptography(root) for root in roots),
    )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _allowed_leaves(trust: BackendTrust) -> tuple[x509.Certificate, ...]:
    leaves: list[x509.Certificate] = []
    for der in trust.allowed_leaves_der:
        try:
            leaves.append(x509.load_der_x509_certificate(der))
        except ValueError:
            continue
    return tuple(leaves)


@functools.lru_cache(maxsize=1)
def _well_known_roots() -> tuple[crypto.X509, ...]:
    """The certifi bundle, parsed by OpenSSL (cryptography warns about some of its roots)."""
    pem = Path(certifi.where()).read_bytes()
    roots: list[crypto.X509] = []
    for block in _PEM_CERTIFICATE.findall(pem):
        try:
            roots.append(crypto.load_certificate(crypto.FILETYPE_PEM, block))
        except crypto.Error:
            continue
    return tuple(roots)


def _list_subjects(certs: Sequence[x509.Certificate]) -> str:
    if not certs:
        return "none"
    listed = [f"'{cert.subject.rfc4514_string()}'" for cert in certs[:_MAX_LISTED]]
    if len(certs) > _MAX_LISTED:
        listed.append(f"and {len(certs) - _MAX_LISTED} more")
    return ", ".join(listed)


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_rejection(verdict: BackendCertificateVerdict, sni: str | None) -> str:
    """One log phrase for a refused backend certificate: the failed check, why, and what the
    backend presented (shared by traffic and health probes, so both read the same)."""
    leaf = verdict.presented[0] if verdict.presented else None
    presented = (
        f"subject '{leaf.subject}', issuer '{leaf.issuer}', notAfter "
        f"{leaf.not_after.isoformat()}, SHA-256 {leaf.sha256_fingerprint}"
        if leaf is not None
        else "no certificate"
    )
    return (
        f"check {verdict.check} failed: {verdict.message}; SNI {sni or '(none)'}; "
        f"presented certificate: {presented}"
    )
