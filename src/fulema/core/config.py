"""One typed settings class; every knob is a FULEMA_* environment variable.

Secrets have no usable default outside development: `check_production()` refuses to start a
non-development environment that still carries a placeholder.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    # Each channel adapter owns its settings class (FULEMA_<CHANNEL>_*), next to its code.
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
    events_nats_stream: str = "FULEMA_EVENTS"
    events_nats_subject_prefix: str = "fulema.events"
    events_nats_start: Literal["BEGINNING", "NOW"] = "NOW"

    notify_schedule_seconds: list[int] = Field(
        default_factory=lambda: [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600,
                                 10800, 10800, 10800, 21600, 21600]
    )

    @property
    def is_development(self) -> bool:
        return self.environment in {"development", "test"}

    def sandbox_url(self, channel: str) -> str:
        """Where a channel's sandbox listens when its base URL is not configured."""
        return f"{self.public_base_url}/sandbox/{channel}"

    def callback_url(self, channel: str) -> str:
        """Where channels send their notifications to us."""
        return f"{self.public_base_url}/callbacks/{channel}"

    def check_production(self) -> None:
        if self.is_development:
            return
        for name in ("operator_token", "platform_secret"):
            if getattr(self, name) == DEV_PLACEHOLDER:
                raise RuntimeError(f"FULEMA_{name.upper()} must be set outside development")


@lru_cache
def get_settings() -> Settings:
    return Settings()
