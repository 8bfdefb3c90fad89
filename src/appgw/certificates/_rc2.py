"""RC2-CBC decryption (RFC 2268) with any effective key size.

Legacy PFX files (`openssl pkcs12 -legacy`, older Windows, macOS and Java) encrypt their
certificates with 40-bit RC2, which `cryptography` does not offer (its RC2 takes 128-bit keys
only). appgw decrypts those contents itself, before OpenSSL does, to see the key derivations
hidden inside them; the data is a few kilobytes, so pure Python is fast enough.
"""

from __future__ import annotations

BLOCK_SIZE = 8

# RFC 2268 section 2: the permutation PITABLE, "based on the digits of pi".
_PITABLE = bytes.fromhex(
    "d978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2"
    "179a59f587b34f1361456d8d09817d32bd8f40eb86b77b0bf09521225c6b4e82"
    "54d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626"
    "6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed7"
    "08e8eade8052eef784aa72ac354d6a2a961ad2715a1549744b9fd05e0418a4ec"
    "c2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731"
    "2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a9"
    "0d38341bab33ffb0bb480c5fb9b1cd2ec5f3db47e5a59c770aa62068fe7fc1ad"
)
_ROTATIONS = (1, 2, 3, 5)
_MASK = 0xFFFF


def expand_key(key: bytes, effective_bits: int) -> tuple[int, ...]:
    """The 64 16-bit subkeys K[0..63] for a 1..128-byte key (RFC 2268 section 2)."""
    if not 1 <= len(key) <= 128 or not 1 <= effective_bits <= 1024:
        raise ValueError("RC2 takes a 1 to 128 byte key and 1 to 1024 effective bits")
    expanded = bytearray(128)
    expanded[: len(key)] = key
    for i in range(len(key), 128):
        expanded[i] = _PITABLE[(expanded[i - 1] + expanded[i - len(key)]) & 0xFF]
    effective_bytes = (effective_bits + 7) // 8
    mask = 0xFF >> (8 * effective_bytes - effective_bits)
    expanded[128 - effective_bytes] = _PITABLE[expanded[128 - effective_bytes] & mask]
    for i in range(127 - effective_bytes, -1, -1):
        expanded[i] = _PITABLE[expanded[i + 1] ^ expanded[i + effective_bytes]]
    return tuple(expanded[2 * i] | expanded[2 * i + 1] << 8 for i in range(64))


def _decrypt_block(subkeys: tuple[int, ...], block: bytes) -> bytes:
    r = [block[2 * i] | block[2 * i + 1] << 8 for i in range(4)]
    j = 63
    # Encryption is 5 mixing rounds, a mashing round, 6 mixing, a mashing, 5 mixing: undone
    # here in reverse order.
    for rounds, mash in ((5, True), (6, True), (5, False)):
        for _ in range(rounds):
            for i in (3, 2, 1, 0):
                word = r[i]
                word = ((word >> _ROTATIONS[i]) | (word << (16 - _ROTATIONS[i]))) & _MASK
                word -= subkeys[j] + (r[i - 1] & r[i - 2]) + (~r[i - 1] & r[i - 3])
                r[i] = word & _MASK
                j -= 1
        if mash:
            for i in (3, 2, 1, 0):
                r[i] = (r[i] - subkeys[r[i - 1] & 63]) & _MASK
    return b"".join(word.to_bytes(2, "little") for word in r)


def decrypt_cbc(key: bytes, effective_bits: int, iv: bytes, data: bytes) -> bytes:
    """Decrypt whole blocks in CBC mode; the padding is the caller's to check."""
    if len(iv) != BLOCK_SIZE or len(data) % BLOCK_SIZE:
        raise ValueError("RC2-CBC works on whole 8-byte blocks")
    subkeys = expand_key(key, effective_bits)
    plain = bytearray()
    previous = iv
    for offset in range(0, len(data), BLOCK_SIZE):
        block = data[offset : offset + BLOCK_SIZE]
        decrypted = _decrypt_block(subkeys, block)
        plain += bytes(a ^ b for a, b in zip(decrypted, previous, strict=True))
        previous = block
    return bytes(plain)
