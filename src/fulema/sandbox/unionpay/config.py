"""What the UnionPay sandbox (standing in for UnionPay) knows: its own signing keys, and what
the merchant registered with it (merId, the public halves of the merchant's signing keys and
their certIds, the shared secure key). The composition root (`fulema.sandboxes`) fills it in
from our settings, the way a bank registers a merchant on UnionPay's merchant service portal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class UnionpaySandboxConfig:
    mer_id: str
    platform_rsa: rsa.RSAPrivateKey  # UnionPay's signing key for signMethod 01
    platform_sm2: tuple[str, str]  # UnionPay's SM2 key (private hex, public hex) for 02
    merchant_rsa_public: rsa.RSAPublicKey  # verifies the merchant's 01 requests
    merchant_sm2_public: str  # 128 hex, verifies the merchant's 02 requests
    merchant_cert_ids: Mapping[str, str]  # signMethod (01/02) -> the certId it must carry
    secure_key: str  # 安全密钥 shared with the merchant: signMethods 11/12 both ways
    acq_ins_code: str = "48020000"  # the acquirer allowed to register sub-merchants
