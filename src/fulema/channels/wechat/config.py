"""WeChat Pay settings and keys (re-exported by `fulema.channels.wechat.adapter`).

Two RSA key pairs are involved. The merchant's (商户API私钥) signs our requests; WeChat holds
its public half, registered under `merchant_serial_no`. The platform's (微信支付公钥) signs
WeChat's answers and callbacks; we hold its public key, known by `platform_public_key_id`.
In development both private keys live under ``settings.data_dir / "keys"`` (wechat_merchant.pem,
wechat_platform.pem), made on first use, so the adapter and the sandbox of one install agree:
the adapter signs with the merchant key and verifies with the platform's public half; the
sandbox does the opposite. In production the bank sets the paths, the serial and the key id.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic_settings import BaseSettings, SettingsConfigDict

from fulema.channels.wechat.sign import key_serial
from fulema.core import crypto
from fulema.core.config import Settings

# 32 bytes, as the AES-256 APIv3 key must be; refused outside development.
DEV_APIV3_KEY = "dev-only-apiv3-key-change-me-32b"


class WechatSettings(BaseSettings):
    """FULEMA_WECHAT_*: where WeChat Pay is and who we are to it (direct-merchant mode)."""

    model_config = SettingsConfigDict(env_prefix="FULEMA_WECHAT_", env_file=".env",
                                      extra="ignore")

    base_url: str = ""  # empty -> settings.sandbox_url("wechat"); real: https://api.mch.weixin.qq.com
    # WeChat Pay's documented backup domain (https://api2.mch.weixin.qq.com); the router fails
    # over to it when the primary's breaker is open. Empty: no backup.
    backup_base_url: str = ""
    mchid: str = "1900000001"
    appid: str = "wxd678efh567hg6787"
    apiv3_key: str = DEV_APIV3_KEY
    merchant_serial_no: str = ""  # empty -> derived from the development merchant key
    merchant_key_path: Path | None = None  # apiclient_key.pem (PKCS#8 RSA private key)
    platform_public_key_path: Path | None = None  # pub_key.pem from the merchant platform
    platform_public_key_id: str = "PUB_KEY_ID_0119000000012025010100000000000001"
    store_out_id: str = "FULEMA"  # scene_info.store_info.out_id sent with payer-code payments
    timeout_seconds: float | None = None  # per call; None -> settings.channel_timeout_seconds

    def check(self, settings: Settings) -> None:
        """Refuse development placeholders outside development; check the APIv3 key length."""
        if len(self.apiv3_key.encode()) != 32:
            raise RuntimeError("FULEMA_WECHAT_APIV3_KEY must be exactly 32 bytes")
        if settings.is_development:
            return
        missing = [name for name, bad in (
            ("FULEMA_WECHAT_APIV3_KEY", self.apiv3_key == DEV_APIV3_KEY),
            ("FULEMA_WECHAT_MERCHANT_KEY_PATH", self.merchant_key_path is None),
            ("FULEMA_WECHAT_MERCHANT_SERIAL_NO", not self.merchant_serial_no),
            ("FULEMA_WECHAT_PLATFORM_PUBLIC_KEY_PATH", self.platform_public_key_path is None),
        ) if bad]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} must be set outside development")


def _key_dir(settings: Settings) -> Path:
    return settings.data_dir / "keys"


def merchant_private_key(settings: Settings, wx: WechatSettings) -> rsa.RSAPrivateKey:
    if wx.merchant_key_path is not None:
        return crypto.load_private_key(wx.merchant_key_path.read_bytes())
    return crypto.load_or_create_rsa_key(_key_dir(settings) / "wechat_merchant.pem")


def merchant_serial_no(settings: Settings, wx: WechatSettings,
                       key: rsa.RSAPublicKey | None = None) -> str:
    """The configured serial, or the development key's derived one (both sides derive it).
    Pass the merchant's public key when it is already loaded: loading validates the key."""
    if wx.merchant_serial_no:
        return wx.merchant_serial_no
    return key_serial(key or merchant_private_key(settings, wx).public_key())


def dev_platform_private_key(settings: Settings) -> rsa.RSAPrivateKey:
    """The sandbox's signing key: it plays WeChat Pay in development."""
    return crypto.load_or_create_rsa_key(_key_dir(settings) / "wechat_platform.pem")


def platform_public_key(settings: Settings, wx: WechatSettings) -> rsa.RSAPublicKey:
    if wx.platform_public_key_path is not None:
        return crypto.load_public_key(wx.platform_public_key_path.read_bytes())
    return dev_platform_private_key(settings).public_key()
