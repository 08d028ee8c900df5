"""One settings tree, built once at start-up and passed in; every knob is a FULEMA_* variable.

The root `Settings` holds the platform's own knobs and one section per channel (`wechat`,
`wechat_v2`, `alipay`, `unionpay`, `ecny`, `bankpay`), the cashier's OAuth (`oauth`) and the
circuit breaker (`breaker`), each read from its own FULEMA_<SECTION>_* variables
(`core/channel_settings.py`). Only the entry points build it (`fulema.app.app_from_environment`,
the CLI, the benchmark); everything else is handed the tree, so nothing reads the environment
at call time and a test builds the tree it needs instead of patching the environment.

Outside development `check_production()` sees the whole tree and refuses to start with a
published development secret, a mounted sandbox, the demo seed, or a channel key the server
would have to generate for itself; the message names every variable to set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fulema.core.channel_settings import (
    PUBLISHED,
    AlipaySection,
    BankpaySection,
    BreakerSection,
    ConfigurationError,
    EcnySection,
    OAuthSection,
    Section,
    UnionpaySection,
    WechatSection,
    WechatV2Section,
    published_values,
)

DEV_PLACEHOLDER = "dev-only-change-me"

# Scanning app -> User-Agent markers. Kept in config so a bank can add its own app's marker
# (FULEMA_UA_MARKERS='{"bankpay": ["ZJGRCB"], ...}') without a code change.
DEFAULT_UA_MARKERS: dict[str, list[str]] = {
    "wechat": ["MicroMessenger"],
    "alipay": ["AlipayClient"],
    "unionpay": ["UnionPay/", "CloudPay"],
    "ecny": ["DCEP", "eCNY"],
    "bankpay": ["FulemaBank", "RCBank"],
}

# Payer-presented code -> channel, as (prefixes, lengths). The facts are documented in
# docs/channels/README.md with their sources; a bank extends them through FULEMA_PAYER_CODE_RULES.
DEFAULT_PAYER_CODE_RULES: dict[str, dict[str, list[int] | list[str]]] = {
    "wechat": {"prefixes": ["10", "11", "12", "13", "14", "15"], "lengths": [18]},
    "alipay": {"prefixes": ["25", "26", "27", "28", "29", "30"], "lengths": list(range(16, 25))},
    "unionpay": {"prefixes": ["62"], "lengths": [19]},
    "ecny": {"prefixes": ["01"], "lengths": [19]},
    "bankpay": {"prefixes": ["88"], "lengths": [18]},
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FULEMA_", env_file=".env", extra="ignore")

    environment: str = "development"
    database_url: str = "sqlite+aiosqlite:///./fulema.db"
    data_dir: Path = Path(".fulema")
    public_base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000

    operator_token: str = DEV_PLACEHOLDER
    # HMAC key for what the cashier passes through the payer's browser (OAuth state, payer
    # tokens: web/oauth.py). Merchant notifications are signed with the app's own secret.
    platform_secret: str = DEV_PLACEHOLDER

    max_body_bytes: int = 64 * 1024
    signature_tolerance_seconds: int = 300
    order_expire_seconds: int = 15 * 60
    max_order_fen: int = 5_000_000  # 50,000.00 yuan per order unless the bank raises it
    userpaying_poll_seconds: float = 5.0
    userpaying_max_seconds: float = 30.0
    channel_timeout_seconds: float = 10.0

    run_background: bool = True  # scheduler + outbox dispatcher in process (embedded default)
    seed_demo: bool = True
    mount_sandbox: bool = True

    enabled_channels: list[str] = Field(
        default_factory=lambda: ["wechat", "alipay", "unionpay", "ecny", "bankpay"])

    ua_markers: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_UA_MARKERS))
    payer_code_rules: dict[str, dict[str, list[int] | list[str]]] = Field(
        default_factory=lambda: dict(DEFAULT_PAYER_CODE_RULES)
    )

    # Domain events (core/events): how long the hot outbox keeps events that every consumer
    # has passed before the archive takes them; how often a dispatcher looks for new events
    # when no wake-up reached it (other processes on MySQL-protocol databases).
    events_retention_days: int = Field(default=90, ge=1)
    events_poll_seconds: float = Field(default=0.5, gt=0)
    # Publish every event to NATS JetStream for the bank's other systems (off when empty).
    events_nats_url: str = ""
    events_nats_stream: str = "FULEMA-EVENTS"
    events_nats_subject_prefix: str = "fulema.events"
    events_nats_start: Literal["BEGINNING", "NOW"] = "NOW"

    # Cloud speakers (messaging/, docs/messaging.md): the MQTT broker the platform publishes
    # to (empty: the embedded log feed), the topic prefix, the secret each speaker's signing
    # key and broker password derive from, and the resend and catch-up bounds.
    speaker_mqtt_url: str = ""
    speaker_topic_prefix: str = Field(default="fulema", pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
    speaker_secret: str = DEV_PLACEHOLDER
    speaker_ack_timeout_seconds: float = Field(default=3.0, gt=0)
    speaker_catchup_seconds: int = Field(default=600, ge=1)
    speaker_catchup_max: int = Field(default=20, ge=1)
    # Bill payment (billing/, docs/billing.md): how long a failing write-off is retried, and
    # how often, before the payment is refunded.
    billing_writeoff_deadline_seconds: int = Field(default=1800, ge=1)
    billing_writeoff_retry_seconds: float = Field(default=30.0, gt=0)

    notify_schedule_seconds: list[int] = Field(
        default_factory=lambda: [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600,
                                 10800, 10800, 10800, 21600, 21600]
    )

    # The sections, each read from its own FULEMA_<SECTION>_* variables when the tree is built.
    wechat: WechatSection = Field(default_factory=WechatSection)
    wechat_v2: WechatV2Section = Field(default_factory=WechatV2Section)
    alipay: AlipaySection = Field(default_factory=AlipaySection)
    unionpay: UnionpaySection = Field(default_factory=UnionpaySection)
    ecny: EcnySection = Field(default_factory=EcnySection)
    bankpay: BankpaySection = Field(default_factory=BankpaySection)
    oauth: OAuthSection = Field(default_factory=OAuthSection)
    breaker: BreakerSection = Field(default_factory=BreakerSection)

    @property
    def is_development(self) -> bool:
        return self.environment in {"development", "test"}

    def sandbox_url(self, channel: str) -> str:
        """Where a channel's sandbox listens when its base URL is not configured."""
        return f"{self.public_base_url}/sandbox/{channel}"

    def callback_url(self, channel: str) -> str:
        """Where channels send their notifications to us."""
        return f"{self.public_base_url}/callbacks/{channel}"

    def sections_in_use(self) -> list[Section]:
        """The sections a running server reads: the enabled channels', WeChat's v2 API when it
        is switched on, and the OAuth apps' when WeChat is enabled (its app secret)."""
        used: list[Section] = []
        for name in self.enabled_channels:
            section = getattr(self, name, None)
            if isinstance(section, Section):
                used.append(section)
        if "wechat" in self.enabled_channels:
            used.append(self.oauth)
            if self.wechat_v2.enabled:
                used.append(self.wechat_v2)
        return used

    def production_problems(self) -> list[str]:
        """Everything that stops this tree from running outside development, by variable."""
        if self.is_development:
            return []
        problems = published_values(self, PUBLISHED)
        if self.mount_sandbox:
            problems.append("FULEMA_MOUNT_SANDBOX must be false (a sandbox signs as its channel "
                            "does, with keys this server holds)")
        if self.seed_demo:
            problems.append("FULEMA_SEED_DEMO must be false (the demo merchant's secret is "
                            "published)")
        for section in self.sections_in_use():
            problems += published_values(section, PUBLISHED)
            problems += section.problems()
        return problems

    def check_production(self) -> None:
        """Refuse to start outside development while anything in the tree is not the bank's own:
        one message naming every variable to set, so one restart fixes them all."""
        problems = self.production_problems()
        if problems:
            raise ConfigurationError(
                f"refusing to start with FULEMA_ENVIRONMENT={self.environment}: "
                + "; ".join(problems))


def get_settings() -> Settings:
    """The tree from the environment. Entry points only (the app factory, the CLI, the
    benchmark): everything else is handed the tree they built."""
    return Settings()
