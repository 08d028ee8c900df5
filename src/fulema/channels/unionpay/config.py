"""UnionPay settings and keys (re-exported by `fulema.channels.unionpay.adapter`).

Four keys are involved: the acquirer's signing key (RSA for signMethod 01, SM2 for 02) and
UnionPay's verification key for each method; signMethods 11 and 12 use instead one secure key
(安全密钥) that the merchant and UnionPay share (development: ``unionpay_secure.key``).
In development all of them live under ``settings.data_dir / "keys"`` and are made on first
use, so the adapter and the sandbox of one install agree: the adapter signs with
``unionpay_merchant*`` and verifies with the public half of ``unionpay_platform*``; the
sandbox does the opposite. In production the bank points the ``*_path`` / public-key settings
(or ``secure_key``) at its real key material.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic_settings import BaseSettings, SettingsConfigDict

from fulema.channels.unionpay.sign import rsa_cert_id, sm2_cert_id
from fulema.core import crypto, gm
from fulema.core.config import Settings
from fulema.core.keyfiles import read_or_create


class UnionpaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FULEMA_UNIONPAY_", env_file=".env",
                                      extra="ignore")

    base_url: str = ""  # empty -> settings.sandbox_url("unionpay"); real: https://gateway.95516.com
    # A second entry point (UnionPay's other gateway entry point); the router fails over to it when
    # the primary's breaker is open. Empty: no backup.
    backup_base_url: str = ""
    file_url: str = ""  # file transfer (对账文件); empty -> {base_url}/fileTransRequest.do
    mer_id: str = "777290058110048"
    acq_ins_code: str = ""  # only for accessType=1 (收单机构接入); we send accessType=0
    # 01 SHA256withRSA, 02 SM2 (Fulema-defined), 11 SHA-256 + secure key, 12 SM3 + secure key
    sign_method: Literal["01", "02", "11", "12"] = "01"
    cert_id: str = ""  # certId of the signing certificate (01/02); empty -> derived from dev key
    # signMethod 11/12: the secure key (安全密钥) set in UnionPay's merchant service portal;
    # empty -> a development key in {data_dir}/keys/unionpay_secure.key, made on first use
    secure_key: str = ""
    merchant_key_path: Path | None = None  # RSA private key, PKCS#8 PEM (signMethod 01)
    merchant_sm2_key_path: Path | None = None  # SM2 private key, 64 hex chars (signMethod 02)
    unionpay_cert_path: Path | None = None  # UnionPay's RSA verify certificate or public key PEM
    unionpay_sm2_public_key: str = ""  # UnionPay's SM2 verify key, 128 hex (x||y)
    timeout_seconds: float | None = None  # per call; None -> settings.channel_timeout_seconds


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


def merchant_keys(settings: Settings, up: UnionpaySettings) -> SideKeys:
    keys = _keys_dir(settings)
    rsa_key = crypto.load_or_create_rsa_key(up.merchant_key_path
                                            or keys / "unionpay_merchant.pem")
    sm2 = gm.load_or_create_sm2_key(up.merchant_sm2_key_path
                                    or keys / "unionpay_merchant_sm2.key")
    return SideKeys(rsa=rsa_key, sm2=sm2)


def secure_key(settings: Settings, up: UnionpaySettings) -> str:
    """The configured secure key, or the install's development one (made on first use, mode
    0600), which the adapter and the sandbox share like a real merchant and UnionPay do."""
    if up.secure_key:
        return up.secure_key
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


def adapter_keys(settings: Settings, up: UnionpaySettings) -> AdapterKeys:
    merchant = merchant_keys(settings, up)
    dev: SideKeys | None = None
    if up.unionpay_cert_path is not None:
        rsa_public = load_rsa_public(up.unionpay_cert_path)
    else:
        dev = platform_dev_keys(settings)
        rsa_public = dev.rsa.public_key()
    if up.unionpay_sm2_public_key:
        sm2_public_hex = up.unionpay_sm2_public_key.strip().lower()
        if len(sm2_public_hex) == 130:
            sm2_public_hex = sm2_public_hex[2:]  # drop the 04 (uncompressed) prefix
        gm.sm2_z(sm2_public_hex)  # validates: ValueError unless a point on the SM2 curve
    else:
        dev = dev or platform_dev_keys(settings)
        sm2_public_hex = dev.sm2[1]
    # The secure key verifies 11/12 messages only when that is the configured method or a key
    # was configured: an adapter set up for 01/02 never trusts a key it did not agree on.
    uses_key = up.sign_method in ("11", "12") or bool(up.secure_key)
    return AdapterKeys(merchant=merchant, unionpay_rsa_public=rsa_public,
                       unionpay_sm2_public=sm2_public_hex,
                       secure_key=secure_key(settings, up) if uses_key else "")
