"""What the Alipay sandbox knows: the one app registered with it and its own signing key.

The sandbox's own configuration, not our adapter's settings: Alipay knows an app by its
app_id, the merchant (seller) behind it by its PID, and the app's public key (应用公钥) the
developer uploaded; it signs answers and notifications with its own private key, whose public
half the developer downloads as "支付宝公钥". The composition root (`fulema.sandboxes`) fills
this in from our settings, as a bank fills in Alipay's open platform forms.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class AlipaySandboxConfig:
    public_url: str  # where payers and bill links reach the sandbox
    app_id: str
    seller_id: str  # the merchant's PID (2088...)
    app_public_key: rsa.RSAPublicKey  # verifies the app's request signatures
    platform_key: rsa.RSAPrivateKey  # signs answers and notifications ("Alipay's" key)
