"""Signing, verification and the ciphers the channels require.

Thin, typed wrappers over `cryptography`, so every context signs the same way and compares
signatures in constant time. SM2/SM3/SM4 (国密) arrive with the channels that need them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fulema.core.keyfiles import read_or_create


def hmac_sha256_hex(secret: str | bytes, message: str | bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    msg = message.encode() if isinstance(message, str) else message
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def hmac_sha256_verify(secret: str | bytes, message: str | bytes, signature_hex: str) -> bool:
    """Constant-time, over bytes: a signature is untrusted input and may hold any character
    (`compare_digest` on two `str` raises TypeError on a non-ASCII one)."""
    given = signature_hex.lower().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(hmac_sha256_hex(secret, message).encode(), given)


def md5_hex(message: str | bytes) -> str:
    msg = message.encode() if isinstance(message, str) else message
    return hashlib.md5(msg, usedforsecurity=False).hexdigest()


def generate_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_key_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    pub = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def rsa_sha256_sign(key: rsa.RSAPrivateKey, message: str | bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: what WeChat Pay v3, Alipay RSA2 and UnionPay use."""
    msg = message.encode() if isinstance(message, str) else message
    return base64.b64encode(key.sign(msg, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_sha256_verify(key: rsa.RSAPublicKey, message: str | bytes, signature_b64: str) -> bool:
    msg = message.encode() if isinstance(message, str) else message
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), msg, padding.PKCS1v15(),
                   hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def aes_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> str:
    """AEAD_AES_256_GCM as WeChat Pay v3 callbacks use it: base64(ciphertext || tag)."""
    return base64.b64encode(AESGCM(key).encrypt(nonce, plaintext, associated_data)).decode()


def aes_gcm_decrypt(key: bytes, nonce: bytes, ciphertext_b64: str, associated_data: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, base64.b64decode(ciphertext_b64), associated_data)
    except (InvalidTag, ValueError) as exc:
        raise ValueError("AEAD decryption failed") from exc


def load_or_create_rsa_key(path: Path) -> rsa.RSAPrivateKey:
    """Development keys persist in the data dir so every process of one install agrees."""
    return load_private_key(read_or_create(path, lambda: private_key_pem(generate_rsa_key()))
                            .encode())


# National cryptography lives in its own module (core/gm.py: GB/T vectors, the SM2 arithmetic
# and its library split are a subject of their own); it is re-exported here so that callers
# find every signing primitive in one place, as ARCHITECTURE.md lays out.
from fulema.core.gm import (  # noqa: E402
    DEFAULT_USER_ID,
    generate_sm2_keypair,
    sm2_sign,
    sm2_verify,
    sm3_digest,
    sm3_hex,
    sm4_cbc_decrypt,
    sm4_cbc_encrypt,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)

__all__ = [
    "DEFAULT_USER_ID", "generate_sm2_keypair", "sm2_sign", "sm2_verify", "sm3_digest",
    "sm3_hex", "sm4_cbc_decrypt", "sm4_cbc_encrypt", "sm4_gcm_decrypt", "sm4_gcm_encrypt",
]
