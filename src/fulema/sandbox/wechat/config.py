"""What the WeChat Pay sandbox knows: the one merchant registered with it and its own keys.

The sandbox's own configuration, not our adapter's settings: WeChat knows a merchant by its
mchid, the appid bound to it, the public half of the merchant's API key (under the
certificate serial the merchant registered), the APIv3 key (callbacks, certificates) and the
API v2 key; it signs with its platform private key, which the merchant knows either as the
"微信支付公钥" (by its id, PUB_KEY_ID_...) or through a downloadable platform certificate.
The composition root (`fulema.sandboxes`) fills this in from our settings, the way a bank
fills in the merchant platform's forms.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

PlatformIdentity = Literal["public_key", "certificate"]


@dataclass(frozen=True)
class WechatSandboxConfig:
    public_url: str  # where payers and bill links reach the sandbox (h5_url, download_url)
    mchid: str
    appid: str
    apiv3_key: bytes  # 32 bytes
    merchant_public_key: rsa.RSAPublicKey  # verifies the merchant's request signatures
    merchant_serial_no: str  # the merchant API certificate serial the requests must name
    platform_key: rsa.RSAPrivateKey  # signs answers and callbacks
    platform_public_key_id: str  # PUB_KEY_ID_...: Wechatpay-Serial in public-key mode
    v2_api_key: str  # API v2 (XML) key, 32 characters
    oauth_app_secret: str  # the Official Account's AppSecret (网页授权 access_token)
    # How the merchant knows the platform key: "public_key" (微信支付公钥, every merchant
    # since 2024) or "certificate" (平台证书 from /v3/certificates; Wechatpay-Serial is then
    # the certificate's serial number). /v3/certificates answers in both modes.
    identity: PlatformIdentity = "public_key"
    certificate_valid: timedelta = field(default=timedelta(days=5 * 365))


def platform_certificate(key: rsa.RSAPrivateKey, now: datetime,
                         valid: timedelta) -> x509.Certificate:
    """A platform certificate for the sandbox's key, self-issued as "Tenpay.com" does for
    WeChat; the serial is derived from the key so it is stable across restarts."""
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    serial = int.from_bytes(hashlib.sha256(der).digest()[:19], "big") | 1
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenpay.com"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA (sandbox)")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + valid)
            .sign(key, hashes.SHA256()))


def certificate_serial(cert: x509.Certificate) -> str:
    """Upper-case hex without leading zeros, as WeChat writes serial_no."""
    return f"{cert.serial_number:X}"
