"""The channel sections of the settings tree (`Settings.wechat`, `.alipay`, ... `.breaker`).

Why here, in core: the root `fulema.core.config.Settings` nests them and core imports no
context; each channel package imports its section from here. Each section is still a
`BaseSettings` with its own env prefix, so every documented FULEMA_<CHANNEL>_* variable keeps
its name, and the root builds each one once, at start-up, through a default factory.

Each section also says what it lacks to run outside development (`problems()`): a published
development secret, or a key the server would otherwise generate for itself under
``data_dir/keys``. A key the server made itself is a key it holds, so a callback "signed by the
channel" with it proves nothing; outside development every key comes from the bank.
`Settings.check_production()` asks the sections of the enabled channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from fulema.core.config import Settings

# Published development values: in this repository, so refused outside development.
DEV_APIV3_KEY = "dev-only-apiv3-key-change-me-32b"  # 32 bytes, as the AES-256 APIv3 key must be
DEV_V2_API_KEY = "dev0nly0wechat0v2apikey0changeme"  # 32 characters
DEV_WECHAT_APP_SECRET = "dev0only0wechat0mp0secret0change"  # noqa: S105
BANKPAY_DEV_SECRET = "dev-bankpay-secret-change-me"  # noqa: S105
DEV_ONLY_PREFIX = "dev-only-"


class ConfigurationError(RuntimeError):
    """The settings cannot run here; the message names the FULEMA_* variables to fix."""


def _env(cfg: BaseSettings, field: str) -> str:
    return f"{cfg.model_config.get('env_prefix', '')}{field}".upper()


def _unset(cfg: BaseSettings, *fields: str) -> list[str]:
    return [f"{_env(cfg, f)} is not set" for f in fields if not getattr(cfg, f)]


def _files(cfg: BaseSettings, *fields: str) -> list[str]:
    """Key files must be set and exist: a missing file would otherwise be generated in place."""
    found = []
    for field in fields:
        path: Path | None = getattr(cfg, field)
        if path is None:
            found.append(f"{_env(cfg, field)} is not set")
        elif not path.is_file():
            found.append(f"{_env(cfg, field)} names no file ({path})")
    return found


def published_values(cfg: BaseSettings, published: frozenset[str]) -> list[str]:
    """Every string field still holding a published development value (or any dev-only-*)."""
    found = []
    for field in type(cfg).model_fields:
        value = getattr(cfg, field)
        if isinstance(value, str) and (value in published or value.startswith(DEV_ONLY_PREFIX)):
            found.append(f"{_env(cfg, field)} is a published development value")
    return found


def refuse_outside_development(settings: Settings, problems: list[str]) -> None:
    if problems and not settings.is_development:
        raise ConfigurationError(f"{'; '.join(problems)} (FULEMA_ENVIRONMENT="
                                 f"{settings.environment}: only development may run without)")


class Section(BaseSettings):
    """A section of the tree: its own FULEMA_<SECTION>_* variables."""

    def problems(self) -> list[str]:
        """What this section lacks to run outside development, each naming its variable
        (published development values are found apart, by `published_values`)."""
        return []


class WechatSection(Section):
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

    def problems(self) -> list[str]:
        return [*_unset(self, "merchant_serial_no"),
                *_files(self, "merchant_key_path", "platform_public_key_path")]

    def check(self, settings: Settings) -> None:
        """The APIv3 key's length always; development stand-ins only in development."""
        if len(self.apiv3_key.encode()) != 32:
            raise ConfigurationError("FULEMA_WECHAT_APIV3_KEY must be exactly 32 bytes")
        refuse_outside_development(settings, [
            *published_values(self, PUBLISHED), *self.problems()])


class WechatV2Section(Section):
    """FULEMA_WECHAT_V2_*: the v2 API key and how to sign. appid, mch_id, base_url and the
    timeout are the v3 channel's (FULEMA_WECHAT_*): the same merchant on the same host."""

    model_config = SettingsConfigDict(env_prefix="FULEMA_WECHAT_V2_", env_file=".env",
                                      extra="ignore")

    enabled: bool = False  # WechatChannel sends barcode_pay/query/cancel through v2 when set
    api_key: str = DEV_V2_API_KEY  # 商户平台 -> API安全 -> API密钥 (32 characters)
    sign_type: Literal["MD5", "HMAC-SHA256"] = "MD5"
    cert_path: Path | None = None  # apiclient_cert.pem: /secapi/ (reverse) needs mutual TLS
    cert_key_path: Path | None = None  # apiclient_key.pem
    reverse_attempts: int = 3  # WeChat: call reverse again while it answers recall=Y
    reverse_retry_seconds: float = 1.0

    def problems(self) -> list[str]:
        # reverse (/secapi/) needs the merchant certificate
        return _files(self, "cert_path", "cert_key_path")

    def check(self, settings: Settings) -> None:
        if len(self.api_key) != 32:
            raise ConfigurationError("FULEMA_WECHAT_V2_API_KEY must be 32 characters")
        refuse_outside_development(settings, [
            *published_values(self, PUBLISHED), *self.problems()])


class AlipaySection(Section):
    """FULEMA_ALIPAY_*: where the gateway is and which keys sign for whom.

    Empty `base_url` means the sandbox mounted in this server. In development, key paths left
    empty mean development keys under `<data_dir>/keys/alipay_app.pem` (the app's private key)
    and `alipay_platform.pem` (the sandbox's key, whose public half plays "Alipay's public
    key"); outside development both paths are required. Files may hold PEM or the bare base64
    that Alipay's key tool prints.
    """

    model_config = SettingsConfigDict(env_prefix="FULEMA_ALIPAY_", env_file=".env",
                                      extra="ignore")

    base_url: str = ""  # e.g. https://openapi.alipay.com (the adapter appends /gateway.do)
    # A second entry point (e.g. a second gateway domain or egress proxy); the router fails
    # over to it when the primary's breaker is open. Empty: no backup.
    backup_base_url: str = ""
    app_id: str = "2021000000000001"
    seller_id: str = "2088101122136241"  # the merchant's PID (2088...), seller_id in answers
    private_key_path: Path | None = None  # the app's RSA private key (应用私钥)
    alipay_public_key_path: Path | None = None  # Alipay's public key (支付宝公钥)
    timeout_seconds: float | None = None  # per call; default settings.channel_timeout_seconds

    def problems(self) -> list[str]:
        return _files(self, "private_key_path", "alipay_public_key_path")


class UnionpaySection(Section):
    """FULEMA_UNIONPAY_*: the acquirer's identity and keys. Which keys are required outside
    development follows `sign_method`; the verification keys of the other methods are then
    keys nobody holds (`channels/unionpay/config.py`), never generated files."""

    model_config = SettingsConfigDict(env_prefix="FULEMA_UNIONPAY_", env_file=".env",
                                      extra="ignore")

    base_url: str = ""  # empty -> settings.sandbox_url("unionpay"); real: https://gateway.95516.com
    # A second entry point (UnionPay's other gateway entry point); the router fails over to it
    # when the primary's breaker is open. Empty: no backup.
    backup_base_url: str = ""
    file_url: str = ""  # file transfer (对账文件); empty -> {base_url}/fileTransRequest.do
    mer_id: str = "777290058110048"
    # 收单机构代码: sent with accessType=1 (sub-merchants' payments, their registration); empty
    # -> the sandbox's 48020000, in development only
    acq_ins_code: str = ""
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

    def problems(self) -> list[str]:
        return [*self._key_problems(), *_unset(self, "acq_ins_code")]

    def _key_problems(self) -> list[str]:
        if self.sign_method == "01":
            return _files(self, "merchant_key_path", "unionpay_cert_path")
        if self.sign_method == "02":
            return [*_files(self, "merchant_sm2_key_path"),
                    *_unset(self, "unionpay_sm2_public_key")]
        return _unset(self, "secure_key")


class EcnySection(Section):
    """FULEMA_ECNY_*. Empty keys mean development keys under `{data_dir}/keys/`, in
    development only."""

    model_config = SettingsConfigDict(env_prefix="FULEMA_ECNY_", env_file=".env", extra="ignore")

    base_url: str = ""  # empty -> the sandbox mounted in this server
    # A second entry point (the institution's other data centre); the router fails over to it
    # when the primary's breaker is open. Empty: no backup.
    backup_base_url: str = ""
    merchant_id: str = "EC320500000001"  # merchant number issued by the institution
    merchant_name: str = "Fulema demo store"
    merchant_wallet_id: str = "0099100000000001"  # the merchant's receiving (对公) wallet
    merchant_key_file: Path | None = None  # SM2 private key hex; None -> keys/ecny_merchant.key
    platform_public_key: str = ""  # institution's SM2 public key (128 hex); "" -> dev key
    data_key_hex: str = ""  # SM4 data key issued per merchant (32 hex); "" -> keys/ecny_sm4.key
    data_key_id: str = "K1"  # which data key; envelopes carry it so keys can rotate
    field_cipher: str = "SM4_GCM"  # or SM4_CBC, as the institution specifies
    # the institution's side (sandbox only): its private key and our registered public key
    platform_key_file: Path | None = None  # None -> keys/ecny_platform.key
    merchant_public_key: str = ""  # "" -> derived from the merchant key file
    timeout_seconds: float | None = None  # None -> FULEMA_CHANNEL_TIMEOUT_SECONDS

    def problems(self) -> list[str]:
        return [*_files(self, "merchant_key_file"),
                *_unset(self, "platform_public_key", "data_key_hex")]


class BankpaySection(Section):
    """FULEMA_BANKPAY_*: where the bank's interface is and who we are to it."""

    model_config = SettingsConfigDict(env_prefix="FULEMA_BANKPAY_", env_file=".env",
                                      extra="ignore")

    base_url: str = ""  # empty -> the sandbox mounted in this server
    # A second entry point (the bank's other data centre); the router fails over to it when
    # the primary's breaker is open. Empty: no backup.
    backup_base_url: str = ""
    merchant_no: str = "888000000000001"  # the acquiring merchant number the bank issued
    institution_id: str = "FULEMA"  # the platform's id in the bank's channel registry
    secret: str = BANKPAY_DEV_SECRET
    timeout_seconds: float | None = None  # None -> FULEMA_CHANNEL_TIMEOUT_SECONDS


class OAuthSection(Section):
    """FULEMA_OAUTH_*: where the apps' authorize pages and token endpoints are (the cashier's
    silent payer authorisation, `web/oauth.py`). Empty means the channel's sandbox in this
    server; the app ids are the payment channels' own (a JSAPI openid is only valid under the
    appid that pays with it)."""

    model_config = SettingsConfigDict(env_prefix="FULEMA_OAUTH_", env_file=".env", extra="ignore")

    wechat_authorize_base: str = ""  # real: https://open.weixin.qq.com
    wechat_api_base: str = ""  # real: https://api.weixin.qq.com
    wechat_app_secret: str = DEV_WECHAT_APP_SECRET  # the 公众号's AppSecret
    alipay_authorize_base: str = ""  # real: https://openauth.alipay.com
    state_ttl_seconds: int = 600
    payer_token_ttl_seconds: int = 1800

    def check(self, settings: Settings) -> None:
        refuse_outside_development(settings, published_values(self, PUBLISHED))


class BreakerSection(Section):
    """FULEMA_BREAKER_*: one set of thresholds for every channel endpoint."""

    model_config = SettingsConfigDict(env_prefix="FULEMA_BREAKER_", env_file=".env",
                                      extra="ignore")

    window_size: int = Field(20, ge=1, description="calls remembered (count-based window)")
    minimum_calls: int = Field(10, ge=1, description="calls needed before ratios are judged")
    failure_ratio: float = Field(0.5, gt=0, le=1)
    slow_call_seconds: float = Field(3.0, gt=0, description="a call slower than this is slow")
    slow_call_ratio: float = Field(0.8, gt=0, le=1)
    open_seconds: float = Field(30, gt=0, description="how long OPEN fails fast")
    half_open_probes: int = Field(2, ge=1, description="probe calls that must all succeed")
    call_timeout_seconds: float = Field(10.0, gt=0, description="each call's total time limit")

    @model_validator(mode="after")
    def _minimum_fits_window(self) -> Self:
        # A minimum above the window could never be reached: the breaker would never open.
        if self.minimum_calls > self.window_size:
            raise ValueError("minimum_calls must not exceed window_size")
        return self


class RateLimitSection(Section):
    """FULEMA_RATELIMIT_*: inbound limits (gateway/protection.py, docs/operations.md). Rates are
    requests per second, bursts how many may come at once; the defaults suit one API process
    of the embedded default and are meant to be set per deployment."""

    model_config = SettingsConfigDict(env_prefix="FULEMA_RATELIMIT_", env_file=".env",
                                      extra="ignore")

    enabled: bool = True
    redis_url: str = Field("", description="shared buckets for every API process (empty: in process)")
    redis_prefix: str = Field("fulema:rl:", description="key prefix of the shared buckets")
    soft: float = Field(0.8, gt=0, le=1, description="share of a burst used before degrading")
    global_rate: float = Field(2000, gt=0)
    global_burst: int = Field(4000, ge=1)
    ip_api_rate: float = Field(500, gt=0, description="merchant API per source IP, before auth")
    ip_api_burst: int = Field(1000, ge=1)
    cashier_ip_rate: float = Field(1, gt=0, description="cashier and OAuth pages per payer IP")
    cashier_ip_burst: int = Field(20, ge=1)
    cashier_plate_rate: float = Field(10, gt=0, description="cashier per QR plate")
    cashier_plate_burst: int = Field(60, ge=1)
    cashier_poll_ip_rate: float = Field(
        20, gt=0, description="result pages' status poll per payer IP (one NAT address: many payers)")
    cashier_poll_ip_burst: int = Field(200, ge=1)
    app_create_rate: float = Field(100, gt=0)
    app_create_burst: int = Field(200, ge=1)
    app_query_rate: float = Field(300, gt=0)
    app_query_burst: int = Field(600, ge=1)
    app_refund_rate: float = Field(50, gt=0)
    app_refund_burst: int = Field(100, ge=1)
    app_other_rate: float = Field(50, gt=0)
    app_other_burst: int = Field(100, ge=1)
    app_concurrency: int = Field(64, ge=1, description="requests one app may have in flight")
    adaptive_min_inflight: int = Field(
        64, ge=0, description="in-flight floor below which load is never shed (0: off)")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="peers whose X-Forwarded-For names the client")


PUBLISHED = frozenset({DEV_APIV3_KEY, DEV_V2_API_KEY, DEV_WECHAT_APP_SECRET, BANKPAY_DEV_SECRET})
