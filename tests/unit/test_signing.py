from __future__ import annotations

from fulema.core import crypto
from fulema.gateway.signing import (
    canonical_string,
    notification_signature,
    sign_request,
    verify_notification,
)


def test_canonical_string_is_documented_shape() -> None:
    got = canonical_string("post", "/api/v1/orders", "1700000000", "abc12345", b'{"a":1}')
    assert got == b'POST\n/api/v1/orders\n1700000000\nabc12345\n{"a":1}\n'


def test_hmac_known_answer() -> None:
    # RFC 4231 test case 2
    assert crypto.hmac_sha256_hex("Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_hmac_request_signature_verifies_and_tampering_fails() -> None:
    headers = sign_request(app_id="app_x", secret="s3cret", method="POST", path="/api/v1/orders",
                           body=b'{"amount":1}', timestamp=1700000000, nonce="nonce-0001")
    msg = canonical_string("POST", "/api/v1/orders", "1700000000", "nonce-0001", b'{"amount":1}')
    assert crypto.hmac_sha256_verify("s3cret", msg, headers["X-Fulema-Signature"])
    tampered = canonical_string("POST", "/api/v1/orders", "1700000000", "nonce-0001",
                                b'{"amount":2}')
    assert not crypto.hmac_sha256_verify("s3cret", tampered, headers["X-Fulema-Signature"])
    assert not crypto.hmac_sha256_verify("other", msg, headers["X-Fulema-Signature"])


def test_rsa_signature_both_ways() -> None:
    key = crypto.generate_rsa_key()
    pem = crypto.private_key_pem(key)
    headers = sign_request(app_id="app_x", secret=None, method="GET", path="/api/v1/orders/x",
                           body=b"", timestamp=1, nonce="nonce-0002", rsa_private_key_pem=pem)
    assert headers["X-Fulema-Sign-Type"] == "RSA-SHA256"
    pub = crypto.load_public_key(crypto.public_key_pem(key))
    msg = canonical_string("GET", "/api/v1/orders/x", "1", "nonce-0002", b"")
    assert crypto.rsa_sha256_verify(pub, msg, headers["X-Fulema-Signature"])
    assert not crypto.rsa_sha256_verify(pub, msg + b"x", headers["X-Fulema-Signature"])
    assert not crypto.rsa_sha256_verify(pub, msg, "not base64!!")


def test_notification_signature_checked_with_tolerance() -> None:
    body = b'{"type":"payment.succeeded"}'
    sig = notification_signature("sec", 1000, body)
    header = f"t=1000,v1={sig}"
    assert verify_notification("sec", header, body, now=1100)
    assert not verify_notification("sec", header, body, now=1000 + 301)
    assert not verify_notification("sec", header, body + b" ", now=1000)
    assert not verify_notification("wrong", header, body, now=1000)
    assert not verify_notification("sec", "garbage", body, now=1000)


def test_aes_gcm_round_trip_and_tamper() -> None:
    key = b"k" * 32
    ct = crypto.aes_gcm_encrypt(key, b"n" * 12, b"hello", b"transaction")
    assert crypto.aes_gcm_decrypt(key, b"n" * 12, ct, b"transaction") == b"hello"
    import pytest

    with pytest.raises(ValueError, match="AEAD"):
        crypto.aes_gcm_decrypt(key, b"n" * 12, ct, b"other")
