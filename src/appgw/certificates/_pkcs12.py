"""The key derivations a PKCS#12 PFX asks for, found before anything is decrypted.

A PFX names its own iteration counts: the MAC's, each encrypted content's and each shrouded
key's. OpenSSL runs them all while holding the GIL, however large (200 million froze appgw's
API for 16 s), so `check_key_derivations` reads every count first and refuses a PFX that asks
for too much. A shrouded key can hide inside an encrypted content, where its count cannot be
read without the password: those contents are decrypted here (their own counts already
checked), and the keys in them are counted too.

Only protections whose cost is their iteration count are accepted: PBES2 with PBKDF2 and the
PKCS#12 PBE schemes. Anything else (scrypt, PBMAC1, PKCS#5 v1 schemes) is refused rather than
handed to OpenSSL with an unknown cost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4, TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from appgw.certificates import _rc2
from appgw.certificates._der import (
    CONSTRUCTED,
    EXPLICIT_TAG_0,
    IMPLICIT_TAG_0,
    OBJECT_IDENTIFIER,
    OCTET_STRING,
    SEQUENCE,
    DerError,
    Node,
    parse,
)

__all__ = [
    "TooManyIterations",
    "UnsupportedProtection",
    "WrongPassword",
    "check_key_derivations",
]


def _oid(dotted: str) -> bytes:
    """The DER contents of an OBJECT IDENTIFIER."""
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    encoded = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        while arc := arc >> 7:
            chunk.append(0x80 | arc & 0x7F)
        encoded += bytes(reversed(chunk))
    return bytes(encoded)


_DATA = _oid("1.2.840.113549.1.7.1")
_ENCRYPTED_DATA = _oid("1.2.840.113549.1.7.6")
_SHROUDED_KEY_BAG = _oid("1.2.840.113549.1.12.10.1.2")
_SAFE_CONTENTS_BAG = _oid("1.2.840.113549.1.12.10.1.6")
_PBES2 = _oid("1.2.840.113549.1.5.13")
_PBKDF2 = _oid("1.2.840.113549.1.5.12")
_PBKDF2_DEFAULT_PRF = "sha1"

# Digests of a MAC (SHA-1, SHA-224, -256, -384, -512, -512/224, -512/256): whatever the digest,
# its key derivation costs its iteration count. PBMAC1 is not among them.
_MAC_DIGESTS = frozenset(
    _oid(dotted)
    for dotted in (
        "1.3.14.3.2.26",
        "2.16.840.1.101.3.4.2.4",
        "2.16.840.1.101.3.4.2.1",
        "2.16.840.1.101.3.4.2.2",
        "2.16.840.1.101.3.4.2.3",
        "2.16.840.1.101.3.4.2.5",
        "2.16.840.1.101.3.4.2.6",
    )
)
_PBKDF2_PRFS = {
    _oid("1.2.840.113549.2.7"): "sha1",
    _oid("1.2.840.113549.2.8"): "sha224",
    _oid("1.2.840.113549.2.9"): "sha256",
    _oid("1.2.840.113549.2.10"): "sha384",
    _oid("1.2.840.113549.2.11"): "sha512",
}

_Decrypt = Callable[[bytes, bytes, bytes], bytes]  # key, IV, ciphertext -> padded plaintext
_TWO_KEY_TRIPLE_DES = 16  # bytes of key


def _aes_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _triple_des_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    if len(key) == _TWO_KEY_TRIPLE_DES:
        key += key[:8]  # K1 K2 K1: what two-key 3DES means, in the form cryptography keeps
    decryptor = Cipher(TripleDES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _rc4(key: bytes, _iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(ARC4(key), None).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _rc2_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    # The PKCS#12 RC2 schemes use as many effective bits as the key has.
    return _rc2.decrypt_cbc(key, 8 * len(key), iv, data)


@dataclass(frozen=True, slots=True)
class _Cipher:
    key_size: int
    iv_size: int  # 0: a stream cipher, no IV and no padding
    decrypt: _Decrypt


_AES_BLOCK = 16
_DES_BLOCK = 8
_PBES2_CIPHERS = {
    _oid("2.16.840.1.101.3.4.1.2"): _Cipher(16, _AES_BLOCK, _aes_cbc),  # AES-128-CBC
    _oid("2.16.840.1.101.3.4.1.22"): _Cipher(24, _AES_BLOCK, _aes_cbc),  # AES-192-CBC
    _oid("2.16.840.1.101.3.4.1.42"): _Cipher(32, _AES_BLOCK, _aes_cbc),  # AES-256-CBC
    _oid("1.2.840.113549.3.7"): _Cipher(24, _DES_BLOCK, _triple_des_cbc),  # DES-EDE3-CBC
}
# RFC 7292 appendix C (pbeWithSHAAnd...); all derive their key and IV with SHA-1.
_PKCS12_PBE = {
    _oid("1.2.840.113549.1.12.1.1"): _Cipher(16, 0, _rc4),  # ...128BitRC4
    _oid("1.2.840.113549.1.12.1.2"): _Cipher(5, 0, _rc4),  # ...40BitRC4
    _oid("1.2.840.113549.1.12.1.3"): _Cipher(24, _DES_BLOCK, _triple_des_cbc),  # ...3-KeyTripleDES
    _oid("1.2.840.113549.1.12.1.4"): _Cipher(16, _DES_BLOCK, _triple_des_cbc),  # ...2-KeyTripleDES
    _oid("1.2.840.113549.1.12.1.5"): _Cipher(16, _rc2.BLOCK_SIZE, _rc2_cbc),  # ...128BitRC2-CBC
    _oid("1.2.840.113549.1.12.1.6"): _Cipher(5, _rc2.BLOCK_SIZE, _rc2_cbc),  # ...40BitRC2-CBC
}
# RFC 7292 appendix B.3: what a PKCS#12 key derivation is for.
_PURPOSE_KEY, _PURPOSE_IV = 1, 2
_SHA1_BLOCK = 64  # bytes: SHA-1's block, the derivation's "v"


class TooManyIterations(Exception):
    """A key derivation, or all of them together, would take too long."""

    def __init__(self, iterations: int, limit: int, where: str) -> None:
        super().__init__(f"{iterations} iterations ({where}); at most {limit}")
        self.iterations = iterations
        self.limit = limit
        self.where = where


class UnsupportedProtection(Exception):
    """The PFX is protected with a scheme whose cost appgw cannot bound."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class WrongPassword(ValueError):
    """An encrypted content did not decrypt with the password, as OpenSSL would find too."""


@dataclass(frozen=True, slots=True)
class _Protection:
    """How one part of the PFX is encrypted: enough to count its cost and to decrypt it."""

    iterations: int
    salt: bytes
    cipher: _Cipher
    prf: str | None  # PBES2's PBKDF2 hash; None for the PKCS#12 PBE schemes
    iv: bytes  # PBES2's; the PKCS#12 schemes derive theirs

    def secrets(self, password: str | None) -> list[bytes]:
        """The password as the scheme feeds it to its key derivation. Without a password,
        OpenSSL tries both no password and the empty one, which differ only for PKCS#12 PBE
        (no bytes, or an empty BMPString's terminator)."""
        if self.prf is not None:
            return [(password or "").encode("utf-8")]
        if password:
            return [password.encode("utf-16-be") + b"\0\0"]
        return [b"", b"\0\0"]

    def decrypt(self, secret: bytes, ciphertext: bytes) -> bytes | None:
        """The plaintext, or None when the padding shows a wrong password."""
        size, block = self.cipher.key_size, self.cipher.iv_size
        if block and (not ciphertext or len(ciphertext) % block):
            return None
        # hashlib's PBKDF2 lets other threads run while it derives.
        if self.prf is not None:
            key = hashlib.pbkdf2_hmac(self.prf, secret, self.salt, self.iterations, size)
            iv = self.iv
        else:
            key = _pkcs12_kdf(secret, self.salt, _PURPOSE_KEY, self.iterations, size)
            iv = _pkcs12_kdf(secret, self.salt, _PURPOSE_IV, self.iterations, block)
        padded = self.cipher.decrypt(key, iv, ciphertext)
        if not block:
            return padded
        pad = padded[-1]
        if not 1 <= pad <= block or padded[-pad:] != bytes([pad]) * pad:
            return None
        return padded[:-pad]


def _pkcs12_kdf(secret: bytes, salt: bytes, purpose: int, iterations: int, size: int) -> bytes:
    """RFC 7292 appendix B.2 with SHA-1. A Python loop: slower than OpenSSL's, but it lets other
    threads run between hashes, and the iterations are already bounded."""
    if not size:
        return b""

    def stretched(value: bytes) -> bytes:
        length = -(-len(value) // _SHA1_BLOCK) * _SHA1_BLOCK
        return (value * (length // len(value) + 1))[:length] if value else b""

    diversifier = bytes([purpose]) * _SHA1_BLOCK
    inputs = bytearray(stretched(salt) + stretched(secret))
    output = b""
    while len(output) < size:
        block = hashlib.sha1(diversifier + inputs).digest()
        for _ in range(iterations - 1):
            block = hashlib.sha1(block).digest()
        output += block
        addend = int.from_bytes((block * (_SHA1_BLOCK // len(block) + 1))[:_SHA1_BLOCK], "big") + 1
        for start in range(0, len(inputs), _SHA1_BLOCK):
            total = int.from_bytes(inputs[start : start + _SHA1_BLOCK], "big") + addend
            inputs[start : start + _SHA1_BLOCK] = (total % (1 << 8 * _SHA1_BLOCK)).to_bytes(
                _SHA1_BLOCK, "big"
            )
    return output[:size]


class _Budget:
    """Counts the iterations OpenSSL will run and refuses past either limit."""

    def __init__(self, limit: int, total_limit: int) -> None:
        self.limit = limit
        self.total_limit = total_limit
        self.total = 0
        self.derivations = 0
        self.keys = 0

    def charge(self, iterations: int, where: str) -> None:
        if iterations > self.limit:
            raise TooManyIterations(iterations, self.limit, where)
        self.total += iterations
        self.derivations += 1
        if self.total > self.total_limit:
            raise TooManyIterations(
                self.total, self.total_limit, f"in all, over its {self.derivations} key derivations"
            )


def check_key_derivations(
    data: bytes, password: str | None, *, limit: int, total_limit: int
) -> None:
    """Refuse a PFX whose key derivations exceed `limit` iterations each or `total_limit` in
    all. Raises TooManyIterations, UnsupportedProtection, WrongPassword (an encrypted content
    does not decrypt), or DerError (not a PFX); returns when OpenSSL may decrypt it.

    The counts readable without the password are all checked before anything is derived.
    """
    pfx = parse(data)
    if pfx.tag != SEQUENCE or len(pfx.children) not in (2, 3):
        raise DerError("not a PFX")
    budget = _Budget(limit, total_limit)
    if len(pfx.children) == 3:
        _charge_mac(pfx.child(2, SEQUENCE), budget)
    auth_safe = pfx.child(1, SEQUENCE)
    if _object_id(auth_safe.child(0)) != _DATA:
        return  # public-key integrity: OpenSSL refuses it before deriving anything
    encrypted: list[tuple[str, _Protection, bytes]] = []
    authenticated_safe = _content_of(auth_safe)
    if authenticated_safe.tag != SEQUENCE:
        raise DerError("the PFX's contents are not a SEQUENCE")
    for number, info in enumerate(authenticated_safe.children, 1):
        if info.tag != SEQUENCE:
            raise DerError("a content of the PFX is not a ContentInfo")
        kind = _object_id(info.child(0))
        if kind == _DATA:
            _charge_bags(_content_of(info), budget, "")
        elif kind == _ENCRYPTED_DATA:
            # EncryptedData: version, EncryptedContentInfo (type, algorithm, [0] content).
            content_info = _explicit(info).child(1, SEQUENCE)
            protection = _protection(content_info.child(1, SEQUENCE))
            where = f"encrypted contents #{number}"
            budget.charge(protection.iterations, f"for its {where}")
            content = content_info.child(2)
            if content.tag & ~CONSTRUCTED != IMPLICIT_TAG_0:
                raise DerError("encrypted contents without their ciphertext")
            encrypted.append((where, protection, content.octets()))
        # Other content types (public-key privacy) OpenSSL skips, deriving nothing.
    for where, protection, ciphertext in encrypted:
        for safe_contents in _decrypted(protection, ciphertext, password):
            _charge_bags(safe_contents, budget, f" (inside {where})")


def _charge_mac(mac_data: Node, budget: _Budget) -> None:
    # MacData: DigestInfo (algorithm, digest), salt, iterations DEFAULT 1.
    algorithm = _object_id(mac_data.child(0, SEQUENCE).child(0, SEQUENCE).child(0))
    if algorithm not in _MAC_DIGESTS:
        raise UnsupportedProtection(f"a MAC with algorithm {_dotted(algorithm)}")
    mac_data.child(1, OCTET_STRING)
    iterations = mac_data.child(2).positive_integer() if len(mac_data.children) > 2 else 1
    budget.charge(iterations, "for its MAC")


def _charge_bags(safe_contents: Node, budget: _Budget, where: str) -> None:
    if safe_contents.tag != SEQUENCE:
        raise DerError("safe contents are not a SEQUENCE")
    for bag in safe_contents.children:
        if bag.tag != SEQUENCE:
            raise DerError("a bag is not a SEQUENCE")
        kind = _object_id(bag.child(0))
        if kind == _SHROUDED_KEY_BAG:
            # EncryptedPrivateKeyInfo: algorithm, encrypted key.
            protection = _protection(_explicit(bag).child(0, SEQUENCE))
            budget.keys += 1
            budget.charge(
                protection.iterations, f"for its shrouded private key #{budget.keys}{where}"
            )
        elif kind == _SAFE_CONTENTS_BAG:
            _charge_bags(_explicit(bag), budget, where)
        # Key, certificate, CRL and secret bags are not encrypted on their own.


def _decrypted(protection: _Protection, ciphertext: bytes, password: str | None) -> list[Node]:
    """The safe contents an encrypted content holds, under each password OpenSSL may use."""
    found: list[Node] = []
    for secret in protection.secrets(password):
        plaintext = protection.decrypt(secret, ciphertext)
        if plaintext is None:
            continue
        try:
            contents = parse(plaintext)
        except DerError:
            continue  # a wrong key that happened to leave valid padding
        if contents.tag == SEQUENCE:
            found.append(contents)
    if not found:
        raise WrongPassword("an encrypted content does not decrypt with the password")
    return found


def _protection(algorithm: Node) -> _Protection:
    """An AlgorithmIdentifier of PBES2 or a PKCS#12 PBE scheme."""
    scheme = _object_id(algorithm.child(0))
    if scheme in _PKCS12_PBE:
        cipher = _PKCS12_PBE[scheme]
        parameters = algorithm.child(1, SEQUENCE)  # salt, iterations
        return _Protection(
            parameters.child(1).positive_integer(),
            parameters.child(0, OCTET_STRING).value,
            cipher,
            None,
            b"",
        )
    if scheme != _PBES2:
        raise UnsupportedProtection(f"encryption scheme {_dotted(scheme)}")
    parameters = algorithm.child(1, SEQUENCE)  # keyDerivationFunc, encryptionScheme
    kdf, encryption = parameters.child(0, SEQUENCE), parameters.child(1, SEQUENCE)
    if _object_id(kdf.child(0)) != _PBKDF2:
        raise UnsupportedProtection(
            f"PBES2 with key derivation {_dotted(_object_id(kdf.child(0)))}"
        )
    cipher_id = _object_id(encryption.child(0))
    if cipher_id not in _PBES2_CIPHERS:
        raise UnsupportedProtection(f"PBES2 with cipher {_dotted(cipher_id)}")
    cipher = _PBES2_CIPHERS[cipher_id]
    # PBKDF2-params: salt, iterationCount, keyLength OPTIONAL, prf DEFAULT hmacWithSHA1.
    kdf_parameters = kdf.child(1, SEQUENCE)
    salt = kdf_parameters.child(0)
    if salt.tag != OCTET_STRING:
        raise UnsupportedProtection("PBKDF2 with a salt from another source")
    prf = _PBKDF2_DEFAULT_PRF
    for optional in kdf_parameters.children[2:]:
        if optional.tag == SEQUENCE:
            prf_id = _object_id(optional.child(0))
            if prf_id not in _PBKDF2_PRFS:
                raise UnsupportedProtection(f"PBKDF2 with pseudo-random function {_dotted(prf_id)}")
            prf = _PBKDF2_PRFS[prf_id]
        elif optional.positive_integer() != cipher.key_size:
            # OpenSSL refuses another key length too, before deriving.
            raise DerError("a PBKDF2 key length that does not fit the cipher")
    iv = encryption.child(1, OCTET_STRING).value
    if len(iv) != cipher.iv_size:
        raise DerError("an IV of the wrong size")
    return _Protection(
        kdf_parameters.child(1).positive_integer(),
        salt.value,
        cipher,
        prf,
        iv,
    )


def _explicit(node: Node) -> Node:
    """The value inside a structure's [0] EXPLICIT field (ContentInfo's content, a bag's)."""
    return node.child(1, EXPLICIT_TAG_0).child(0)


def _content_of(info: Node) -> Node:
    """The structure inside a pkcs7-data ContentInfo's OCTET STRING."""
    octets = _explicit(info)
    if octets.tag & ~CONSTRUCTED != OCTET_STRING:
        raise DerError("data content is not an OCTET STRING")
    return parse(octets.octets())


def _object_id(node: Node) -> bytes:
    if node.tag != OBJECT_IDENTIFIER or not node.value:
        raise DerError("expected an OBJECT IDENTIFIER")
    return node.value


def _dotted(encoded: bytes) -> str:
    """An OBJECT IDENTIFIER's contents as dotted text, for messages."""
    arcs: list[int] = []
    value = 0
    for octet in encoded:
        value = value << 7 | octet & 0x7F
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        return "(empty)"
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))
