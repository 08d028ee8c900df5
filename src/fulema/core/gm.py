"""National cryptography (国密): SM2 signatures, SM3 hashing, SM4 encryption.

Channels that speak the Chinese commercial-cryptography standards (UnionPay's signMethod=02,
e-CNY) use these functions so every context signs and encrypts the same way.

Formats (all hex is lowercase on output and accepted in either case on input):

* SM2 private key: 64 hex characters, the 32-byte big-endian scalar d, 1 <= d <= n-2.
* SM2 public key: 128 hex characters, x || y (32 bytes each, big-endian), i.e. the
  uncompressed point WITHOUT the leading ``04`` byte. A ``04``-prefixed 130-character value is
  accepted on input for convenience and normalised to the 128-character form.
* SM2 signature: 128 hex characters, r || s (32 bytes each, big-endian); not DER.
* Signing follows GB/T 32918.2 (GM/T 0003.2): e = SM3(Z_A || M) with
  Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A) on the recommended curve
  (GB/T 32918.5); the default user id is the standard ``1234567812345678``.
* SM4 (GB/T 32907): 16-byte keys; CBC with a 16-byte IV and PKCS#7 padding; GCM (RFC 8998)
  returning ciphertext || 16-byte tag.

Library split: SM3 and SM4 come from ``cryptography`` (OpenSSL's implementation). SM2 signs
and verifies on ``gmssl-pyx`` (the GmSSL C library) wherever its wheel installs, because
``cryptography`` has no SM2 curve and pure-Python big-integer arithmetic leaks timing; the
pure-Python ``gmssl`` stays as the fallback for platforms without a wheel (aarch64) and for the
GB/T vector signed with its published k. On that path we compute Z and e ourselves (gmssl
hard-codes the default user id), draw the nonce k from ``secrets`` (gmssl's own ``random_hex``
uses the non-cryptographic ``random`` module); on both we validate keys and signature ranges
before the library sees them.
"""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import sm2 as _gmssl_sm2

from fulema.core.keyfiles import read_or_create

DEFAULT_USER_ID = b"1234567812345678"

# Recommended curve parameters, GB/T 32918.5 (the same table gmssl ships).
_P = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF", 16)
_A = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC", 16)
_B = int("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93", 16)
_N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)
_GX = int("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7", 16)
_GY = int("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0", 16)

_SM4_BLOCK = 16
_GCM_TAG = 16
_GCM_MIN_NONCE = 12


# --- SM3 -------------------------------------------------------------------------------------

def sm3_digest(data: bytes) -> bytes:
    """SM3 (GB/T 32905) digest, 32 bytes."""
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def sm3_hex(data: bytes) -> str:
    """SM3 digest as 64 lowercase hex characters."""
    return sm3_digest(data).hex()


# --- SM2 -------------------------------------------------------------------------------------

def _int_hex(value: int) -> str:
    return f"{value:064x}"


def _parse_hex(value: str, length: int, what: str) -> str:
    text = value.strip().lower()
    if len(text) != length:
        raise ValueError(f"{what} must be {length} hex characters")
    try:
        bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"{what} is not hex") from exc
    return text


def _parse_private_key(private_key_hex: str) -> int:
    d = int(_parse_hex(private_key_hex, 64, "SM2 private key"), 16)
    if not 1 <= d <= _N - 2:
        raise ValueError("SM2 private key out of range [1, n-2]")
    return d


def _parse_public_key(public_key_hex: str) -> str:
    """Normalise to 128 hex chars and check the point lies on the curve (GB/T 32918.1 6.2.1)."""
    text = public_key_hex.strip().lower()
    if len(text) == 130 and text.startswith("04"):
        text = text[2:]
    text = _parse_hex(text, 128, "SM2 public key")
    x, y = int(text[:64], 16), int(text[64:], 16)
    if not (0 <= x < _P and 0 <= y < _P) or (y * y - (x * x * x + _A * x + _B)) % _P != 0:
        raise ValueError("SM2 public key is not a point on the SM2 curve")
    return text


def _engine(private_key_hex: str, public_key_hex: str) -> _gmssl_sm2.CryptSM2:
    engine = _gmssl_sm2.CryptSM2(private_key=private_key_hex, public_key=public_key_hex)
    # gmssl strips a "04" prefix with str.lstrip("04"), which also eats leading '0'/'4' digits
    # of x; we always pass the bare 128-character form and set it directly to be safe.
    engine.public_key = public_key_hex
    return engine


def _multiply_g(k: int) -> str:
    point: str | None = _engine(_int_hex(1), _int_hex(_GX) + _int_hex(_GY))._kg(
        k, _int_hex(_GX) + _int_hex(_GY))
    if point is None:
        raise ValueError("point at infinity")
    return point


@functools.lru_cache(maxsize=64)
def sm2_public_key_from_private(private_key_hex: str) -> str:
    """The public key (128 hex, x||y) belonging to a private key.

    On the pure-Python path (GmSSL exposes no "public key of this scalar"): it runs once per
    key a process loads (hence the cache), never per signature, so the timing of one scalar
    multiplication at start-up is all it shows.
    """
    return _multiply_g(_parse_private_key(private_key_hex))


def generate_sm2_keypair() -> tuple[str, str]:
    """A fresh key pair: (private key 64 hex, public key 128 hex x||y without the 04 prefix)."""
    return _backend().generate()


def sm2_z(public_key_hex: str, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA), GB/T 32918.2 section 5.5."""
    pub = _parse_public_key(public_key_hex)
    bits = len(user_id) * 8
    if bits >= 1 << 16:
        raise ValueError("SM2 user id longer than 8191 bytes")
    data = (bits.to_bytes(2, "big") + user_id
            + bytes.fromhex(_int_hex(_A) + _int_hex(_B) + _int_hex(_GX) + _int_hex(_GY) + pub))
    return sm3_digest(data)


def _message_digest(public_key_hex: str, message: bytes, user_id: bytes) -> bytes:
    return sm3_digest(sm2_z(public_key_hex, user_id) + message)


def _sign_digest(private_key_hex: str, public_key_hex: str, e: bytes, k: int) -> str | None:
    """One pure-Python signing attempt with nonce k; None when k must be redrawn (r=0, r+k=n
    or s=0). Kept for the GB/T vector with its published k, which no C library lets us pin."""
    signature: str | None = _engine(private_key_hex, public_key_hex).sign(e, _int_hex(k))
    return signature


# --- SM2 backends ----------------------------------------------------------------------------
#
# The C backend (gmssl-pyx, a binding of the GmSSL C library: constant-time field arithmetic,
# its own CSPRNG for k) signs and verifies wherever its wheel installs (x86_64 Linux, macOS,
# Windows). The pure-Python backend (`gmssl`, with the fixes above) is the fallback for
# platforms without a wheel, e.g. aarch64 servers; its big-integer arithmetic leaks timing, so a
# deployment should have the wheel (`active_backend()` says which one runs; the docs say how to
# check). Both take keys and signatures already validated by the public functions below and
# speak r||s hex; the C library speaks DER, converted here.


class _PythonSM2:
    name = "python (gmssl)"

    def sign(self, private_hex: str, public_hex: str, message: bytes, user_id: bytes) -> str:
        e = _message_digest(public_hex, message, user_id)
        while True:
            k = 1 + secrets.randbelow(_N - 1)  # uniform in [1, n-1], from the OS CSPRNG
            signature = _sign_digest(private_hex, public_hex, e, k)
            if signature is not None:
                return signature.lower()

    def verify(self, public_hex: str, message: bytes, signature_hex: str,
               user_id: bytes) -> bool:
        e = _message_digest(public_hex, message, user_id)
        try:
            return bool(_engine(_int_hex(1), public_hex).verify(signature_hex, e))
        except (TypeError, ValueError):  # gmssl hits None on a point at infinity
            return False

    def generate(self) -> tuple[str, str]:
        d = 1 + secrets.randbelow(_N - 2)  # uniform in [1, n-2]
        return _int_hex(d), _multiply_g(d)

    def pair_matches(self, private_hex: str, public_hex: str) -> bool:
        return sm2_public_key_from_private(private_hex) == public_hex


class _GmsslPyxSM2:
    name = "c (gmssl-pyx / GmSSL)"

    def __init__(self, lib: Any) -> None:
        self._lib = lib

    # The digest entry points: e = SM3(Z_A || M) is computed here with OpenSSL's SM3 (as on the
    # Python path), which also lets any user id through; the library's message-level sm2_sign
    # was measured ten times slower than its digest-level one.
    def sign(self, private_hex: str, public_hex: str, message: bytes, user_id: bytes) -> str:
        e = _message_digest(public_hex, message, user_id)
        r, s = decode_dss_signature(self._lib.sm2_sign_sm3_digest(bytes.fromhex(private_hex), e))
        return _int_hex(r) + _int_hex(s)

    def verify(self, public_hex: str, message: bytes, signature_hex: str,
               user_id: bytes) -> bool:
        e = _message_digest(public_hex, message, user_id)
        der = encode_dss_signature(int(signature_hex[:64], 16), int(signature_hex[64:], 16))
        try:
            return bool(self._lib.sm2_verify_sm3_digest(bytes.fromhex(public_hex), e, der))
        except self._lib.GmsslInnerError:  # InvalidValueError is a subclass
            return False

    def generate(self) -> tuple[str, str]:
        while True:
            public, private = self._lib.sm2_key_generate()
            if 1 <= int.from_bytes(private, "big") <= _N - 2:  # the range keys are parsed in
                return private.hex(), public.hex()

    def pair_matches(self, private_hex: str, public_hex: str) -> bool:
        # Sign and verify a fixed message in C rather than multiply in Python with the secret.
        probe = b"fulema sm2 key pair check"
        return self.verify(public_hex, probe, self.sign(private_hex, public_hex, probe,
                                                        DEFAULT_USER_ID), DEFAULT_USER_ID)


def _load_c_backend() -> _GmsslPyxSM2 | None:
    try:
        import gmssl_pyx
    except ImportError:  # no wheel for this platform: the pure-Python fallback signs
        return None
    return _GmsslPyxSM2(gmssl_pyx)


PYTHON_BACKEND = _PythonSM2()
C_BACKEND = _load_c_backend()


def _backend() -> _PythonSM2 | _GmsslPyxSM2:
    return C_BACKEND if C_BACKEND is not None else PYTHON_BACKEND


def active_backend() -> str:
    """Which SM2 implementation signs in this process (for operators and the benchmark)."""
    return _backend().name


@functools.lru_cache(maxsize=64)
def _pair_matches(private_hex: str, public_hex: str) -> bool:
    return _backend().pair_matches(private_hex, public_hex)


def sm2_sign(private_key_hex: str, public_key_hex: str, message: bytes,
             user_id: bytes = DEFAULT_USER_ID) -> str:
    """SM2 signature (GB/T 32918.2 with SM3) over message; returns r||s as 128 hex characters.

    The public key is an input because Z_A depends on it; it must belong to the private key
    (checked once per key pair and process).
    """
    d = _parse_private_key(private_key_hex)
    pub = _parse_public_key(public_key_hex)
    if len(user_id) * 8 >= 1 << 16:
        raise ValueError("SM2 user id longer than 8191 bytes")
    if not _pair_matches(_int_hex(d), pub):
        raise ValueError("SM2 public key does not belong to the private key")
    return _backend().sign(_int_hex(d), pub, message, user_id)


def sm2_verify(public_key_hex: str, message: bytes, signature_hex: str,
               user_id: bytes = DEFAULT_USER_ID) -> bool:
    """True only for a valid r||s signature (128 hex) by this public key; never raises."""
    try:
        pub = _parse_public_key(public_key_hex)
        sig = _parse_hex(signature_hex, 128, "SM2 signature")
    except ValueError:
        return False
    r, s = int(sig[:64], 16), int(sig[64:], 16)
    # GB/T 32918.2 7.1 steps B1/B2, checked before either backend sees the signature.
    if not (1 <= r < _N and 1 <= s < _N) or (r + s) % _N == 0 or len(user_id) * 8 >= 1 << 16:
        return False
    return _backend().verify(pub, message, sig, user_id)


def load_or_create_sm2_key(path: Path) -> tuple[str, str]:
    """Development SM2 key pair persisted as the private key hex in `path` (mode 0600).

    Like `crypto.load_or_create_rsa_key`: every process of one install agrees on the key.
    Returns (private hex, public hex).
    """
    private_hex = read_or_create(path, lambda: generate_sm2_keypair()[0]).lower()
    return private_hex, sm2_public_key_from_private(private_hex)


# --- SM4 -------------------------------------------------------------------------------------

def _sm4(key: bytes) -> algorithms.SM4:
    if len(key) != 16:
        raise ValueError("SM4 keys are 16 bytes")
    return algorithms.SM4(key)


def sm4_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """SM4-CBC with PKCS#7 padding (always adds 1..16 bytes)."""
    if len(iv) != _SM4_BLOCK:
        raise ValueError("SM4-CBC IVs are 16 bytes")
    padder = sym_padding.PKCS7(_SM4_BLOCK * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(_sm4(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def sm4_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """Inverse of `sm4_cbc_encrypt`; ValueError on a bad length or bad padding."""
    if len(iv) != _SM4_BLOCK:
        raise ValueError("SM4-CBC IVs are 16 bytes")
    if not ciphertext or len(ciphertext) % _SM4_BLOCK:
        raise ValueError("SM4-CBC ciphertext must be a non-empty multiple of 16 bytes")
    decryptor = Cipher(_sm4(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(_SM4_BLOCK * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise ValueError("SM4-CBC padding is invalid (wrong key or corrupted data)") from exc


def _check_nonce(nonce: bytes) -> None:
    # RFC 8998 fixes 12-byte nonces; longer ones are legal GCM (hashed by GHASH), shorter
    # ones weaken the construction, so they are refused.
    if len(nonce) < _GCM_MIN_NONCE:
        raise ValueError("SM4-GCM nonces are at least 12 bytes (RFC 8998 uses 12)")


def sm4_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """SM4-GCM (RFC 8998): ciphertext || 16-byte tag."""
    _check_nonce(nonce)
    encryptor = Cipher(_sm4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    return ciphertext + encryptor.tag


def sm4_gcm_decrypt(key: bytes, nonce: bytes, ciphertext_and_tag: bytes, aad: bytes) -> bytes:
    """Inverse of `sm4_gcm_encrypt`; ValueError when the tag does not authenticate."""
    _check_nonce(nonce)
    if len(ciphertext_and_tag) < _GCM_TAG:
        raise ValueError("SM4-GCM input shorter than its 16-byte tag")
    body, tag = ciphertext_and_tag[:-_GCM_TAG], ciphertext_and_tag[-_GCM_TAG:]
    decryptor = Cipher(_sm4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    try:
        return decryptor.update(body) + decryptor.finalize()
    except InvalidTag as exc:
        raise ValueError("SM4-GCM authentication failed") from exc
