"""WeChat Pay keys (re-exported by `fulema.channels.wechat.adapter`); the settings are the
tree's `wechat` section (`fulema.core.channel_settings.WechatSection`).

Two RSA key pairs are involved. The merchant's (商户API私钥) signs our requests; WeChat holds
its public half, registered under `merchant_serial_no`. The platform's (微信支付公钥) signs
WeChat's answers and callbacks; we hold its public key, known by `platform_public_key_id`.
In development both private keys live under ``settings.data_dir / "keys"`` (wechat_merchant.pem,
wechat_platform.pem), made on first use, so the adapter and the sandbox of one install agree:
the adapter signs with the merchant key and verifies with the platform's public half; the
sandbox does the opposite. Outside development the bank sets the paths, the serial and the
key id, or the server does not start (`Settings.check_production`).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.channels.wechat.sign import key_serial
from fulema.core import crypto
from fulema.core.channel_settings import DEV_APIV3_KEY, WechatSection
from fulema.core.config import Settings

__all__ = ["DEV_APIV3_KEY", "dev_platform_private_key", "merchant_private_key",
           "merchant_serial_no", "platform_public_key"]


def _key_dir(settings: Settings) -> Path:
    return settings.data_dir / "keys"


def merchant_private_key(settings: Settings, wx: WechatSection) -> rsa.RSAPrivateKey:
    if wx.merchant_key_path is not None:
        return crypto.load_private_key(wx.merchant_key_path.read_bytes())
    return crypto.load_or_create_rsa_key(_key_dir(settings) / "wechat_merchant.pem")


def merchant_serial_no(settings: Settings, wx: WechatSection,
                       key: rsa.RSAPublicKey | None = None) -> str:
    """The configured serial, or the development key's derived one (both sides derive it).
    Pass the merchant's public key when it is already loaded: loading validates the key."""
    if wx.merchant_serial_no:
        return wx.merchant_serial_no
    return key_serial(key or merchant_private_key(settings, wx).public_key())


def dev_platform_private_key(settings: Settings) -> rsa.RSAPrivateKey:
    """The sandbox's signing key: it plays WeChat Pay in development."""
    return crypto.load_or_create_rsa_key(_key_dir(settings) / "wechat_platform.pem")


def platform_public_key(settings: Settings, wx: WechatSection) -> rsa.RSAPublicKey:
    if wx.platform_public_key_path is not None:
        return crypto.load_public_key(wx.platform_public_key_path.read_bytes())
    return dev_platform_private_key(settings).public_key()
