"""UnionPay keys (re-exported by `fulema.channels.unionpay.adapter`); the settings are the
tree's `unionpay` section (`fulema.core.channel_settings.UnionpaySection`).

Four keys are involved: the acquirer's signing key (RSA for signMethod 01, SM2 for 02) and
UnionPay's verification key for each method; signMethods 11 and 12 use instead one secure key
(安全密钥) that the merchant and UnionPay share (development: ``unionpay_secure.key``).
In development all of them live under ``settings.data_dir / "keys"`` and are made on first
use, so the adapter and the sandbox of one install agree: the adapter signs with
``unionpay_merchant*`` and verifies with the public half of ``unionpay_platform*``; the
sandbox does the opposite. Outside development the bank points the ``*_path`` / public-key
settings (or ``secure_key``) of its `sign_method` at its real key material, or the server does
not start; the keys of the other methods are then keys nobody holds (made in memory, their
private halves dropped), so a message signed with another method never verifies and nothing is
generated on disk.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.channels.unionpay.sign import rsa_cert_id, sm2_cert_id
from fulema.core import crypto, gm
from fulema.core.channel_settings import UnionpaySection, refuse_outside_development
from fulema.core.config import Settings
from fulema.core.keyfiles import read_or_create


@dataclass(frozen=True)
class SideKeys:
    """One side's signing keys (the other side holds their public halves)."""

    rsa: rsa.RSAPrivateKey
    sm2: tuple[str, str]  # (private hex, public hex)

    @property
    def rsa_cert_id(self) -> str:
        return rsa_cert_id(self.rsa.public_key())

    @property
    def sm2_cert_id(self) -> str:
        return sm2_cert_id(self.sm2[1])


@dataclass(frozen=True)
class AdapterKeys:
    merchant: SideKeys
    unionpay_rsa_public: rsa.RSAPublicKey
    unionpay_sm2_public: str
    secure_key: str = ""  # shared with UnionPay: signs and verifies with signMethod 11/12


def _keys_dir(settings: Settings) -> Path:
    return settings.data_dir / "keys"


def merchant_keys(settings: Settings, up: UnionpaySection) -> SideKeys:
    keys = _keys_dir(settings)
    dev = settings.is_development
    rsa_key = (crypto.load_or_create_rsa_key(up.merchant_key_path
                                             or keys / "unionpay_merchant.pem")
               if dev or up.merchant_key_path else crypto.generate_rsa_key())
    sm2 = (gm.load_or_create_sm2_key(up.merchant_sm2_key_path
                                     or keys / "unionpay_merchant_sm2.key")
           if dev or up.merchant_sm2_key_path else gm.generate_sm2_keypair())
    return SideKeys(rsa=rsa_key, sm2=sm2)


def secure_key(settings: Settings, up: UnionpaySection) -> str:
    """The configured secure key, or the install's development one (made on first use, mode
    0600), which the adapter and the sandbox share like a real merchant and UnionPay do."""
    if up.secure_key:
        return up.secure_key
    refuse_outside_development(settings, ["FULEMA_UNIONPAY_SECURE_KEY is not set"])
    return read_or_create(_keys_dir(settings) / "unionpay_secure.key",
                          lambda: secrets.token_hex(16))


def platform_dev_keys(settings: Settings) -> SideKeys:
    """The sandbox's (development UnionPay's) signing keys."""
    keys = _keys_dir(settings)
    return SideKeys(rsa=crypto.load_or_create_rsa_key(keys / "unionpay_platform.pem"),
                    sm2=gm.load_or_create_sm2_key(keys / "unionpay_platform_sm2.key"))


def load_rsa_public(path: Path) -> rsa.RSAPublicKey:
    """UnionPay's verify key from a certificate or a bare public key PEM."""
    data = path.read_bytes()
    key = (x509.load_pem_x509_certificate(data).public_key()
           if b"BEGIN CERTIFICATE" in data else serialization.load_pem_public_key(data))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{path} holds no RSA public key")
    return key


def adapter_keys(settings: Settings, up: UnionpaySection) -> AdapterKeys:
    """Our signing keys and UnionPay's verification keys. A verification key not configured is
    the sandbox's in development and, elsewhere, one nobody holds (start-up has already
    refused a missing key of the configured method)."""
    merchant = merchant_keys(settings, up)
    dev = platform_dev_keys(settings) if settings.is_development and not (
        up.unionpay_cert_path and up.unionpay_sm2_public_key) else None
    if up.unionpay_cert_path is not None:
        rsa_public = load_rsa_public(up.unionpay_cert_path)
    else:
        rsa_public = (dev.rsa if dev else crypto.generate_rsa_key()).public_key()
    if up.unionpay_sm2_public_key:
        sm2_public_hex = up.unionpay_sm2_public_key.strip().lower()
        if len(sm2_public_hex) == 130:
            sm2_public_hex = sm2_public_hex[2:]  # drop the 04 (uncompressed) prefix
        gm.sm2_z(sm2_public_hex)  # validates: ValueError unless a point on the SM2 curve
    else:
        sm2_public_hex = (dev.sm2 if dev else gm.generate_sm2_keypair())[1]
    # The secure key verifies 11/12 messages only when that is the configured method or a key
    # was configured: an adapter set up for 01/02 never trusts a key it did not agree on.
    uses_key = up.sign_method in ("11", "12") or bool(up.secure_key)
    return AdapterKeys(merchant=merchant, unionpay_rsa_public=rsa_public,
                       unionpay_sm2_public=sm2_public_hex,
                       secure_key=secure_key(settings, up) if uses_key else "")
