"""Just enough of an ASN.1 DER/BER reader to recognise a PKCS#12 PFX, to read the key
derivations it asks for, and to cut the raw SubjectPublicKeyInfo out of a certificate;
`cryptography` exposes none of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

SEQUENCE = 0x30
INTEGER = 0x02
OCTET_STRING = 0x04
OBJECT_IDENTIFIER = 0x06
EXPLICIT_TAG_0 = 0xA0  # [0] EXPLICIT, as TBSCertificate's version field is tagged
IMPLICIT_TAG_0 = 0x80  # [0] IMPLICIT of a primitive type
CONSTRUCTED = 0x20  # the identifier bit of an element made of elements

# Four length octets address 4 GiB; anything longer is not a certificate upload.
_MAX_LENGTH_OCTETS = 4
# BER end-of-contents octets that close an indefinite-length element.
_END_OF_CONTENTS = b"\x00\x00"
# A PFX authSafe is pkcs7-data (password integrity) or pkcs7-signedData (public-key integrity).
_PKCS7_DATA = bytes.fromhex("2a864886f70d010701")  # 1.2.840.113549.1.7.1
_PKCS7_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
_PFX_VERSION = b"\x03"
# TBSCertificate fields between the optional version and subjectPublicKeyInfo: serialNumber,
# signature, issuer, validity, subject.
_FIELDS_BEFORE_SPKI = 5
# A PFX nests about 12 elements deep; OpenSSL's own decoder stops at 30. The bound keeps the
# recursive reader below far from Python's recursion limit whatever the input.
_MAX_DEPTH = 32
# Iteration counts and versions fit in 64 bits; a longer INTEGER there is not a real PFX.
_MAX_INTEGER_OCTETS = 8


class DerError(ValueError):
    """The bytes are not the ASN.1 structure being looked for."""


class Element(NamedTuple):
    tag: int
    start: int  # offset of the identifier octet
    content_start: int
    end: int | None  # offset just past the contents; None for BER indefinite length


def read_element(data: bytes, offset: int) -> Element:
    """Read the identifier and length octets of the element at `offset`."""
    if offset + 2 > len(data):
        raise DerError("truncated element header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers do not occur in the structures read here")
    first_length_octet = data[offset + 1]
    content_start = offset + 2
    if first_length_octet == 0x80:
        if not tag & CONSTRUCTED:
            raise DerError("indefinite length on a primitive element")
        return Element(tag, offset, content_start, None)
    if first_length_octet < 0x80:
        length = first_length_octet
    else:
        length_octets = first_length_octet & 0x7F
        if length_octets > _MAX_LENGTH_OCTETS or content_start + length_octets > len(data):
            raise DerError("bad length")
        length = int.from_bytes(data[content_start : content_start + length_octets], "big")
        content_start += length_octets
    end = content_start + length
    if end > len(data):
        raise DerError("element runs past the end of the data")
    return Element(tag, offset, content_start, end)


def read_definite_element(data: bytes, offset: int) -> tuple[Element, int]:
    """Like read_element, but the length must be known; also returns the end offset."""
    element = read_element(data, offset)
    if element.end is None:
        raise DerError("indefinite length where a definite one is needed")
    return element, element.end


def is_pkcs12_pfx(data: bytes) -> bool:
    """Whether `data` is shaped like PFX ::= SEQUENCE { version (3), authSafe ContentInfo, ... }.

    Reads only the outer layers, which are never encrypted, so a wrong password cannot affect
    the answer. BER indefinite lengths are accepted because some exporters (Java) write them.
    """
    try:
        pfx = read_element(data, 0)
        if pfx.tag != SEQUENCE:
            return False
        if pfx.end is None:
            if not data.endswith(_END_OF_CONTENTS):
                return False
        elif pfx.end != len(data):
            return False  # truncated, or trailing bytes
        version, version_end = read_definite_element(data, pfx.content_start)
        if version.tag != INTEGER or data[version.content_start : version_end] != _PFX_VERSION:
            return False
        auth_safe = read_element(data, version_end)
        if auth_safe.tag != SEQUENCE:
            return False
        content_type, content_type_end = read_definite_element(data, auth_safe.content_start)
        return content_type.tag == OBJECT_IDENTIFIER and data[
            content_type.content_start : content_type_end
        ] in (_PKCS7_DATA, _PKCS7_SIGNED_DATA)
    except DerError:
        return False


def subject_public_key_info(tbs_certificate: bytes) -> bytes:
    """The SubjectPublicKeyInfo exactly as encoded in a DER TBSCertificate."""
    tbs, _ = read_definite_element(tbs_certificate, 0)
    offset = tbs.content_start
    first, first_end = read_definite_element(tbs_certificate, offset)
    if first.tag == EXPLICIT_TAG_0:
        offset = first_end
    for _ in range(_FIELDS_BEFORE_SPKI):
        _, offset = read_definite_element(tbs_certificate, offset)
    spki, spki_end = read_definite_element(tbs_certificate, offset)
    if spki.tag != SEQUENCE:
        raise DerError("subjectPublicKeyInfo is not a SEQUENCE")
    return tbs_certificate[spki.start : spki_end]


@dataclass(frozen=True, slots=True)
class Node:
    """A parsed element: the contents of a primitive one, or the children of a constructed one."""

    tag: int
    value: bytes
    children: tuple[Node, ...]

    def octets(self) -> bytes:
        """A string's bytes, joined from its segments when BER sends it constructed."""
        if not self.tag & CONSTRUCTED:
            return self.value
        return b"".join(child.octets() for child in self.children)

    def child(self, index: int, tag: int | None = None) -> Node:
        """The child at `index`, which must exist (and carry `tag` when one is given)."""
        if index >= len(self.children):
            raise DerError("an element has fewer fields than its structure needs")
        found = self.children[index]
        if tag is not None and found.tag != tag:
            raise DerError(f"expected tag {tag:#04x}, found {found.tag:#04x}")
        return found

    def positive_integer(self) -> int:
        """The value of an INTEGER that must be positive and fit in 64 bits."""
        if self.tag != INTEGER or not self.value:
            raise DerError("not an INTEGER")
        if self.value[0] & 0x80:
            raise DerError("a negative INTEGER where a count is needed")
        if len(self.value.lstrip(b"\0")) > _MAX_INTEGER_OCTETS:
            raise DerError("an INTEGER too long to be a count")
        value = int.from_bytes(self.value, "big")
        if value == 0:
            raise DerError("a zero count")
        return value


def parse(data: bytes) -> Node:
    """The element at the start of `data`, as a tree. DER or BER (indefinite lengths,
    constructed strings); bytes after the element are ignored, as OpenSSL's decoder does."""
    node, _ = _parse(data, 0, 0)
    return node


def _parse(data: bytes, offset: int, depth: int) -> tuple[Node, int]:
    if depth > _MAX_DEPTH:
        raise DerError("elements nested too deeply")
    element = read_element(data, offset)
    if not element.tag & CONSTRUCTED:
        assert element.end is not None  # read_element refuses indefinite primitive elements
        return Node(element.tag, data[element.content_start : element.end], ()), element.end
    children: list[Node] = []
    position = element.content_start
    while True:
        if element.end is None:
            if data[position : position + 2] == _END_OF_CONTENTS:
                return Node(element.tag, b"", tuple(children)), position + 2
        elif position == element.end:
            return Node(element.tag, b"", tuple(children)), position
        child, position = _parse(data, position, depth + 1)
        if element.end is not None and position > element.end:
            raise DerError("an element runs past the end of the one containing it")
        children.append(child)
