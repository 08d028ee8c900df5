"""国密 helpers against the published standard vectors, and their refusals of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulema.core import gm

# GB/T 32918.5-2017 (GM/T 0003.5-2012) Annex A: signature example on the recommended curve.
GBT_PRIV = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
GBT_PUB = ("09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
           "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13")
GBT_MSG = b"message digest"
GBT_Z = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
GBT_E = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
GBT_K = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21"
GBT_SIG = ("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
           "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA")

# RFC 8998 Appendix A.1: SM4-GCM.
RFC_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
RFC_IV = bytes.fromhex("00001234567800000000ABCD")
RFC_AAD = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
RFC_PT = bytes.fromhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
                       "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA")
RFC_CT = bytes.fromhex("17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
                       "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D")
RFC_TAG = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")

SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


@pytest.fixture(scope="module")
def keypair() -> tuple[str, str]:
    return gm.generate_sm2_keypair()


# --- SM3 (GB/T 32905 Appendix A) -------------------------------------------------------------

def test_sm3_abc() -> None:
    assert gm.sm3_hex(b"abc") == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")


def test_sm3_64_byte_example() -> None:
    assert gm.sm3_hex(b"abcd" * 16) == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")


def test_sm3_empty_and_digest_agree() -> None:
    assert gm.sm3_digest(b"").hex() == gm.sm3_hex(b"")
    assert len(gm.sm3_hex(b"")) == 64


# --- SM4 (GB/T 32907 Appendix A, RFC 8998) ---------------------------------------------------

def test_sm4_block_example_through_cbc_with_zero_iv() -> None:
    # One block under a zero IV is plain SM4; the second block is the PKCS#7 padding block.
    out = gm.sm4_cbc_encrypt(SM4_KEY, bytes(16), SM4_KEY)
    assert out[:16].hex() == "681edf34d206965e86b3e94f536e4246"
    assert len(out) == 32
    assert gm.sm4_cbc_decrypt(SM4_KEY, bytes(16), out) == SM4_KEY


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 100])
def test_sm4_cbc_round_trip_pads_every_length(size: int) -> None:
    iv = bytes(range(16))
    data = bytes(range(size % 256)) * (size // 256 + 1)
    data = data[:size]
    ct = gm.sm4_cbc_encrypt(SM4_KEY, iv, data)
    assert len(ct) == (size // 16 + 1) * 16
    assert gm.sm4_cbc_decrypt(SM4_KEY, iv, ct) == data


def test_sm4_cbc_rejects_bad_sizes_and_padding() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        gm.sm4_cbc_encrypt(b"short", bytes(16), b"x")
    with pytest.raises(ValueError, match="IV"):
        gm.sm4_cbc_encrypt(SM4_KEY, bytes(8), b"x")
    with pytest.raises(ValueError, match="multiple of 16"):
        gm.sm4_cbc_decrypt(SM4_KEY, bytes(16), b"\x00" * 15)
    with pytest.raises(ValueError, match="multiple of 16"):
        gm.sm4_cbc_decrypt(SM4_KEY, bytes(16), b"")
    ct = gm.sm4_cbc_encrypt(SM4_KEY, bytes(16), b"hello")
    with pytest.raises(ValueError, match="padding"):
        gm.sm4_cbc_decrypt(bytes(16), bytes(16), ct)  # wrong key -> garbage padding


def test_sm4_gcm_rfc8998_vector() -> None:
    out = gm.sm4_gcm_encrypt(RFC_KEY, RFC_IV, RFC_PT, RFC_AAD)
    assert out == RFC_CT + RFC_TAG
    assert gm.sm4_gcm_decrypt(RFC_KEY, RFC_IV, RFC_CT + RFC_TAG, RFC_AAD) == RFC_PT


def test_sm4_gcm_rejects_tampering() -> None:
    good = RFC_CT + RFC_TAG
    flipped = bytes([good[0] ^ 1]) + good[1:]
    with pytest.raises(ValueError, match="authentication"):
        gm.sm4_gcm_decrypt(RFC_KEY, RFC_IV, flipped, RFC_AAD)
    with pytest.raises(ValueError, match="authentication"):
        gm.sm4_gcm_decrypt(RFC_KEY, RFC_IV, good[:-1] + bytes([good[-1] ^ 1]), RFC_AAD)
    with pytest.raises(ValueError, match="authentication"):
        gm.sm4_gcm_decrypt(RFC_KEY, RFC_IV, good, RFC_AAD + b"x")
    with pytest.raises(ValueError, match="authentication"):
        gm.sm4_gcm_decrypt(bytes(16), RFC_IV, good, RFC_AAD)
    with pytest.raises(ValueError, match="tag"):
        gm.sm4_gcm_decrypt(RFC_KEY, RFC_IV, b"short", RFC_AAD)
    with pytest.raises(ValueError, match="nonce"):
        gm.sm4_gcm_encrypt(RFC_KEY, bytes(8), b"x", b"")


def test_sm4_gcm_empty_plaintext_is_just_a_tag() -> None:
    out = gm.sm4_gcm_encrypt(RFC_KEY, RFC_IV, b"", b"aad")
    assert len(out) == 16
    assert gm.sm4_gcm_decrypt(RFC_KEY, RFC_IV, out, b"aad") == b""


# --- SM2 (GB/T 32918.2 / .5) -----------------------------------------------------------------

def test_sm2_published_key_pair_matches() -> None:
    assert gm.sm2_public_key_from_private(GBT_PRIV) == GBT_PUB.lower()


def test_sm2_published_z_and_digest() -> None:
    z = gm.sm2_z(GBT_PUB)
    assert z.hex() == GBT_Z.lower()
    assert gm.sm3_hex(z + GBT_MSG) == GBT_E.lower()


def test_sm2_published_signature_verifies() -> None:
    assert gm.sm2_verify(GBT_PUB, GBT_MSG, GBT_SIG) is True
    assert gm.sm2_verify(GBT_PUB, GBT_MSG, GBT_SIG.lower()) is True
    assert gm.sm2_verify("04" + GBT_PUB, GBT_MSG, GBT_SIG) is True


def test_sm2_published_signature_is_reproduced_with_the_published_k() -> None:
    # The public API draws k from the CSPRNG; the private step lets us pin the standard's k.
    e = bytes.fromhex(GBT_E)
    assert gm._sign_digest(GBT_PRIV.lower(), GBT_PUB.lower(), e, int(GBT_K, 16)) == (
        GBT_SIG.lower())


def test_sm2_published_signature_fails_other_message_or_user_id() -> None:
    assert gm.sm2_verify(GBT_PUB, b"message digesT", GBT_SIG) is False
    assert gm.sm2_verify(GBT_PUB, GBT_MSG, GBT_SIG, user_id=b"ALICE123@YAHOO.COM") is False


def test_sm2_keypair_format(keypair: tuple[str, str]) -> None:
    priv, pub = keypair
    assert len(priv) == 64
    assert len(pub) == 128
    assert int(priv, 16) > 0
    assert gm.sm2_public_key_from_private(priv) == pub
    assert gm.generate_sm2_keypair()[0] != priv


def test_sm2_sign_verify_round_trip(keypair: tuple[str, str]) -> None:
    priv, pub = keypair
    sig = gm.sm2_sign(priv, pub, b"txnAmt=100&merId=777290058110048")
    assert len(sig) == 128
    assert sig == sig.lower()
    assert gm.sm2_verify(pub, b"txnAmt=100&merId=777290058110048", sig)
    # randomised: two signatures differ, both verify
    sig2 = gm.sm2_sign(priv, pub, b"txnAmt=100&merId=777290058110048")
    assert sig2 != sig
    assert gm.sm2_verify(pub, b"txnAmt=100&merId=777290058110048", sig2)


def test_sm2_tampered_message_signature_or_key_fails(keypair: tuple[str, str]) -> None:
    priv, pub = keypair
    sig = gm.sm2_sign(priv, pub, b"amount=100")
    assert not gm.sm2_verify(pub, b"amount=101", sig)
    bad = f"{(int(sig[64:], 16) + 1):064x}"
    assert not gm.sm2_verify(pub, b"amount=100", sig[:64] + bad)
    assert not gm.sm2_verify(GBT_PUB, b"amount=100", sig)


def test_sm2_custom_user_id(keypair: tuple[str, str]) -> None:
    priv, pub = keypair
    sig = gm.sm2_sign(priv, pub, b"m", user_id=b"merchant-42")
    assert gm.sm2_verify(pub, b"m", sig, user_id=b"merchant-42")
    assert not gm.sm2_verify(pub, b"m", sig)


@pytest.mark.parametrize("signature", [
    "",
    "zz" * 64,
    "00" * 64,                                  # r = s = 0
    "0" * 64 + "1".rjust(64, "0"),              # r = 0
    gm._int_hex(gm._N) + "1".rjust(64, "0"),    # r = n, out of range
    GBT_SIG[:-2],                               # too short
    GBT_SIG + "00",                             # too long
])
def test_sm2_verify_refuses_malformed_signatures(signature: str) -> None:
    assert gm.sm2_verify(GBT_PUB, GBT_MSG, signature) is False


def test_sm2_verify_refuses_bad_public_keys() -> None:
    off_curve = GBT_PUB[:-1] + ("4" if GBT_PUB[-1] != "4" else "5")
    assert gm.sm2_verify(off_curve, GBT_MSG, GBT_SIG) is False
    assert gm.sm2_verify("abc", GBT_MSG, GBT_SIG) is False
    with pytest.raises(ValueError, match="curve"):
        gm.sm2_z(off_curve)


def test_sm2_sign_refuses_bad_keys(keypair: tuple[str, str]) -> None:
    priv, pub = keypair
    with pytest.raises(ValueError, match="does not belong"):
        gm.sm2_sign(priv, GBT_PUB, b"m")
    with pytest.raises(ValueError, match="range"):
        gm.sm2_sign("0" * 64, pub, b"m")
    with pytest.raises(ValueError, match="range"):
        gm.sm2_sign(gm._int_hex(gm._N - 1), pub, b"m")
    with pytest.raises(ValueError, match="64 hex"):
        gm.sm2_sign(priv[:-1], pub, b"m")


def test_sm2_public_key_with_leading_04_digits_is_not_mangled() -> None:
    # gmssl's lstrip("04") would eat these digits; find a key whose x starts with 0/4 digits.
    for _ in range(200):
        priv, pub = gm.generate_sm2_keypair()
        if pub[0] in "04":
            sig = gm.sm2_sign(priv, pub, b"m")
            assert gm.sm2_verify(pub, b"m", sig)
            return
    pytest.fail("no key with a leading 0/4 digit in 200 draws")


def test_load_or_create_sm2_key_persists(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "x_sm2.key"
    first = gm.load_or_create_sm2_key(path)
    assert gm.load_or_create_sm2_key(path) == first
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert gm.sm2_verify(first[1], b"m", gm.sm2_sign(first[0], first[1], b"m"))


# --- the C backend (gmssl-pyx) against the pure-Python one -----------------------------------

needs_c = pytest.mark.skipif(gm.C_BACKEND is None,
                             reason="gmssl-pyx has no wheel for this platform: Python fallback")


@needs_c
def test_c_backend_is_the_one_that_signs() -> None:
    assert gm.active_backend().startswith("c ")


@needs_c
def test_published_signature_verifies_on_both_backends() -> None:
    assert gm.C_BACKEND is not None
    pub = GBT_PUB.lower()
    for backend in (gm.C_BACKEND, gm.PYTHON_BACKEND):
        assert backend.verify(pub, GBT_MSG, GBT_SIG.lower(), gm.DEFAULT_USER_ID) is True
        assert backend.verify(pub, b"other", GBT_SIG.lower(), gm.DEFAULT_USER_ID) is False


@needs_c
@pytest.mark.parametrize("user_id", [gm.DEFAULT_USER_ID, b"ALICE123@YAHOO.COM", b"x" * 2000])
def test_each_backend_verifies_what_the_other_signed(keypair: tuple[str, str],
                                                     user_id: bytes) -> None:
    assert gm.C_BACKEND is not None
    priv, pub = keypair
    message = b"txnAmt=100&merId=777290058110048"
    by_c = gm.C_BACKEND.sign(priv, pub, message, user_id)
    by_python = gm.PYTHON_BACKEND.sign(priv, pub, message, user_id)
    assert gm.PYTHON_BACKEND.verify(pub, message, by_c, user_id)
    assert gm.C_BACKEND.verify(pub, message, by_python, user_id)
    assert not gm.C_BACKEND.verify(pub, message + b"!", by_python, user_id)


@needs_c
def test_c_generated_keys_match_the_python_derivation() -> None:
    assert gm.C_BACKEND is not None
    priv, pub = gm.C_BACKEND.generate()
    assert gm.sm2_public_key_from_private(priv) == pub
