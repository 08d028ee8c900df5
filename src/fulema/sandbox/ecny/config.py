"""What the e-CNY operating institution (the sandbox) knows: its own SM2 key, and what the
merchant registered at onboarding (merchant id, receiving wallet, SM2 public key, the SM4 data
key it issued). The composition root (`fulema.sandboxes`) fills it in from our settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EcnySandboxConfig:
    merchant_id: str
    merchant_wallet_id: str  # the merchant's receiving (对公) wallet, checked in `payee`
    merchant_public_key: str  # 128 hex (x||y): verifies the merchant's requests
    institution_private_key: str  # 64 hex: signs answers and callbacks
    data_key: bytes  # 16 bytes, the SM4 data key issued to this merchant
    data_key_id: str = "K1"
    field_cipher: str = "SM4_GCM"  # or SM4_CBC: how the institution seals payer data
    public_url: str = ""  # where the sandbox is reachable: code_url links point here
