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

from datetime import time
from pathlib import Path
from typing import Any, Literal

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
    RateLimitSection,
    Section,
    UnionpaySection,
    WechatSection,
    WechatV2Section,
    published_values,
)
from fulema.core.outbound import OutboundPolicy
from fulema.core.vault import (
    DEV_MASTER_KEY,
    DEV_MASTER_KID,
    Keyring,
    MasterKeys,
    parse_master_key,
)

DEV_PLACEHOLDER = "dev-only-change-me"
MIN_SECRET_LENGTH = 32  # outside development: operator token, platform secret, metrics token

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

    def __init__(self, **values: Any) -> None:
        """Refuse keyword names that are no setting.

        `extra="ignore"` is for the environment and `.env`, which also hold other programs'
        variables; a misspelt keyword in code, though, would silently be the default (a benchmark
        once ran with rate limits on because it passed `ratelimit_enabled=False`).
        """
        fields = type(self).model_fields
        unknown = sorted(k for k in values if not k.startswith("_") and k not in fields)
        if unknown:
            raise TypeError(f"Settings has no setting named {', '.join(unknown)}")
        super().__init__(**values)

    environment: str = "development"
    database_url: str = "sqlite+aiosqlite:///./fulema.db"
    # Connections per process (PostgreSQL and MySQL-protocol databases): `db_pool_size` kept
    # open, up to `db_max_overflow` more opened when all are busy and closed when returned
    # while the pool is full. Each overflow connection costs a new server session (on
    # PostgreSQL a backend process) and statements prepared again: size the pool to the
    # requests a process has in flight and budget processes x (size + overflow) against the
    # database's connection limit (docs/scaling.md, "Connections").
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    data_dir: Path = Path(".fulema")
    public_base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000

    operator_token: str = DEV_PLACEHOLDER
    # The shared operator token above is the bootstrap identity: a break-glass admin with every
    # role, recorded under this name. Production creates named operators (`fulema operator
    # create`) and turns it off (docs/security.md).
    operator_bootstrap_enabled: bool = True
    # The audit trail's chain hash (core/audit.py): SM3 (国密) or SHA-256.
    audit_hash_algorithm: Literal["sm3", "sha256"] = "sm3"
    operator_bootstrap_name: str = Field(default="bootstrap-admin",
                                         pattern=r"^[a-z][a-z0-9._-]{1,39}$")
    # HMAC key for what the cashier passes through the payer's browser (OAuth state, payer
    # tokens: web/oauth.py). Merchant notifications are signed with the app's own secret.
    platform_secret: str = DEV_PLACEHOLDER

    # Encryption at rest (core/vault.py; docs/security.md). The master key wraps the data keys
    # kept in the keyring file; empty in development means the published development key,
    # which production refuses. Previous master keys (id -> key) are accepted for unwrapping
    # while `fulema keys rewrap` moves the keyring onto the new one.
    crypto_master_key: str = ""
    crypto_master_key_path: Path | None = None
    crypto_master_key_id: str = Field(default="m1", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    crypto_previous_master_keys: dict[str, str] = Field(default_factory=dict)
    crypto_cipher: Literal["SM4-GCM", "AES-256-GCM"] = "SM4-GCM"
    crypto_keyring_path: Path | None = None  # default: <data_dir>/keyring.json
    crypto_activation_delay_seconds: int = Field(default=60, ge=0)

    # Logging (core/logging.py): "json" (one JSON object a line) or "console"; empty means
    # json outside development, console in development. Tracebacks never carry local values.
    log_format: Literal["", "json", "console"] = ""
    log_level: str = "INFO"
    # Outbound requests a merchant asked for (notify_url; core/outbound.py): hosts reached as
    # named without the address checks (the bank's own test receivers), and whether loopback
    # is allowed (unset: only in development, for the demo; refused outside development).
    outbound_allow_hosts: list[str] = Field(default_factory=list)
    outbound_allow_loopback: bool | None = None
    # GET /metrics answers only `Authorization: Bearer <token>` when set (required outside
    # development unless metrics_public is true, for a scraper on a closed network segment).
    metrics_token: str = ""
    metrics_public: bool = False
    # Page logins' password hashes (core/passwords.py): argon2id passes and memory. A change
    # applies to new passwords and to each stored one at its owner's next login.
    password_hash_time_cost: int = Field(default=3, ge=1, le=20)
    password_hash_memory_kib: int = Field(default=65536, ge=8192, le=1_048_576)

    max_body_bytes: int = 64 * 1024
    signature_tolerance_seconds: int = 300
    order_expire_seconds: int = 15 * 60
    max_order_fen: int = 5_000_000  # 50,000.00 yuan per order unless the bank raises it
    userpaying_poll_seconds: float = 5.0
    userpaying_max_seconds: float = 30.0
    channel_timeout_seconds: float = 10.0

    run_background: bool = True  # scheduler + outbox dispatcher in process (embedded default)
    # after startup, move what the process built (app, compiled statements, keys) out of the
    # cyclic collector's sight, so a full collection scans only what requests make (app.py)
    gc_freeze: bool = True
    # the event consumers this process's dispatcher serves (fnmatch patterns of their names;
    # empty: all): a worker of the message center's own keeps the speakers off the CPU the
    # ledger, points and risk rounds take (docs/messaging.md, Latency)
    worker_consumers: list[str] = Field(default_factory=list)
    seed_demo: bool = True
    mount_sandbox: bool = True

    enabled_channels: list[str] = Field(
        default_factory=lambda: ["wechat", "alipay", "unionpay", "ecny", "bankpay"])

    ua_markers: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_UA_MARKERS))
    payer_code_rules: dict[str, dict[str, list[int] | list[str]]] = Field(
        default_factory=lambda: dict(DEFAULT_PAYER_CODE_RULES)
    )

    # Risk (risk/): decisions on every order and refund; counters in this process unless a
    # Redis URL is given (then shared by every API process, keys under the prefix); how often a
    # process checks whether the rules changed.
    risk_enabled: bool = True
    risk_redis_url: str = ""
    risk_redis_prefix: str = "fulema:risk:"
    risk_ruleset_ttl_seconds: float = Field(default=1.0, ge=0)

    # Domain events (core/events): how long the hot outbox keeps events that every consumer
    # has passed before the archive takes them; how often a dispatcher looks for new events
    # when no wake-up reached it (other processes on MySQL-protocol databases).
    events_retention_days: int = Field(default=90, ge=1)
    events_poll_seconds: float = Field(default=0.5, gt=0)
    # How long a consumer that is not urgent (the ledger, points, risk monitoring, metrics, ...)
    # lets events gather after a wake, so one round carries several; speakers, webhooks and
    # notices are served at once. 0 serves every consumer at once.
    events_linger_seconds: float = Field(default=0.5, ge=0, le=10)
    # Publish every event to NATS JetStream for the bank's other systems (off when empty).
    events_nats_url: str = ""
    events_nats_stream: str = "FULEMA-EVENTS"
    events_nats_subject_prefix: str = "fulema.events"
    events_nats_start: Literal["BEGINNING", "NOW"] = "NOW"

    # /readyz answers 503 once a committed event has waited this long for the dispatcher.
    ready_max_outbox_wait_seconds: float = Field(default=60.0, gt=0)

    # Base backups and the WAL archive (`fulema dr backup / restore / prune`); payment records
    # are kept five years, hence the retention.
    backup_dir: Path = Path("/var/lib/fulema/backups")
    backup_archive_dir: Path = Path("/var/lib/fulema/wal-archive")
    backup_retention_days: int = Field(default=1830, ge=1)

    # Disaster recovery (`fulema dr`): the libpq URLs of the PostgreSQL primary and its
    # streaming standby. The platform's own URL lists both hosts with
    # target_session_attrs=read-write, so it follows a switchover by itself.
    dr_nodes: list[str] = Field(default_factory=list)

    # Settlement (docs/settlement.md): when a trade (business) day ends in Asia/Shanghai
    # ("00:00" = the natural day; "22:00" books 22:00-24:00 on the next day), the cycle of a
    # merchant with none of its own, and how often a failed payout is tried again.
    settlement_cutoff: time = time(0)
    settlement_default_cycle: Literal["T+0", "T+1", "D+0", "D+1"] = "T+1"
    payout_max_attempts: int = Field(default=3, ge=1, le=10)
    payout_retry_seconds: int = Field(default=600, ge=1)

    # Marketing and points (docs/marketing.md, docs/points.md): how long a quote may be
    # turned into an order; points earned per yuan paid in cash; how many points make 1 fen
    # of discount; the share of an order points may pay (basis points); how long points live.
    marketing_quote_seconds: int = Field(default=600, ge=30)
    points_earn_per_yuan: int = Field(default=1, ge=0)
    points_per_fen: int = Field(default=1, ge=1)
    points_max_deduction_bps: int = Field(default=5000, ge=0, le=10000)
    points_validity_days: int = Field(default=365, ge=1)

    # Cloud speakers (messaging/, docs/messaging.md): the MQTT broker the platform publishes
    # to (empty: the embedded log feed), the topic prefix, the secret each speaker's signing
    # key and broker password derive from, and the resend and catch-up bounds.
    speaker_mqtt_url: str = ""
    speaker_topic_prefix: str = Field(default="fulema", pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
    speaker_secret: str = DEV_PLACEHOLDER
    speaker_ack_timeout_seconds: float = Field(default=3.0, gt=0)
    speaker_catchup_seconds: int = Field(default=600, ge=1)
    speaker_catchup_max: int = Field(default=20, ge=1)
    # SMS and app push (messaging/delivery.py, docs/messaging.md): each provider's base URL
    # (empty: the sandbox gateway mounted at <public_base_url>/sandbox/notify in development;
    # outside it, no provider: such messages are DEAD at once) and the keys it issued us; SMS
    # requests are HMAC-SHA256 signed with the access key secret, push requests carry HTTP
    # Basic app_key:master_secret. A failed message is retried after each of
    # `message_retry_seconds` in turn, then marked DEAD.
    sms_provider_url: str = ""
    sms_access_key_id: str = "fulema-dev-sms"
    sms_access_key_secret: str = ""
    sms_sign_name: str = "付了码"
    push_provider_url: str = ""
    push_app_key: str = "fulema-dev-push"
    push_master_secret: str = ""
    message_retry_seconds: list[int] = Field(default_factory=lambda: [10, 30, 120, 600, 1800])
    # Bill payment (billing/, docs/billing.md): how long a failing write-off is retried, and
    # how often, before the payment is refunded.
    billing_writeoff_deadline_seconds: int = Field(default=1800, ge=1)
    billing_writeoff_retry_seconds: float = Field(default=30.0, gt=0)
    # Sub-merchant onboarding (onboarding/, docs/onboarding.md). Off: the single-merchant mode,
    # every merchant pays under the platform's own channel merchant ids. On: a merchant takes
    # payments on a channel only while its registration there is ACTIVE (CHANNEL_NOT_REGISTERED).
    onboarding_required: bool = False
    # How long after a submission or a review answer the channel is asked again.
    onboarding_poll_seconds: float = Field(default=30.0, gt=0)

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
    ratelimit: RateLimitSection = Field(default_factory=RateLimitSection)

    @property
    def is_development(self) -> bool:
        return self.environment in {"development", "test"}

    def master_keys(self) -> MasterKeys:
        """The configured master key (and previous ones), or the development key when none is
        configured (refused outside development by `production_problems`)."""
        text = self.crypto_master_key
        if not text and self.crypto_master_key_path is not None:
            text = self.crypto_master_key_path.read_text()
        previous = tuple((kid, parse_master_key(key))
                         for kid, key in self.crypto_previous_master_keys.items())
        if not text:
            return MasterKeys(DEV_MASTER_KID, DEV_MASTER_KEY, previous)
        return MasterKeys(self.crypto_master_key_id, parse_master_key(text), previous)

    def keyring(self) -> Keyring:
        """The deployment's keyring (created with fresh data keys on first use)."""
        return Keyring(self.master_keys(), cipher=self.crypto_cipher,
                       path=self.crypto_keyring_path or self.data_dir / "keyring.json",
                       activation_delay_seconds=self.crypto_activation_delay_seconds)

    @property
    def allows_loopback(self) -> bool:
        """Outbound requests to loopback: explicit, and never outside development."""
        if self.outbound_allow_loopback is None:
            return self.is_development
        return self.outbound_allow_loopback and self.is_development

    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy(allow_hosts=frozenset(h.lower().rstrip(".")
                                                    for h in self.outbound_allow_hosts),
                              allow_loopback=self.allows_loopback)

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
        if not self.crypto_master_key and self.crypto_master_key_path is None:
            problems.append("FULEMA_CRYPTO_MASTER_KEY or FULEMA_CRYPTO_MASTER_KEY_PATH must be set "
                            "(the development master key is published)")
        elif self.master_keys().key == DEV_MASTER_KEY:
            problems.append("FULEMA_CRYPTO_MASTER_KEY is the published development key")
        if self.seed_demo:
            problems.append("FULEMA_SEED_DEMO must be false (the demo merchant's secret is "
                            "published)")
        for name in ("operator_token", "platform_secret"):
            if len(getattr(self, name)) < MIN_SECRET_LENGTH:
                problems.append(f"FULEMA_{name.upper()} must be at least {MIN_SECRET_LENGTH} "
                                "characters (e.g. `python -c 'import secrets; "
                                "print(secrets.token_urlsafe(32))'`)")
        for url, name in ((self.sms_provider_url, "sms_access_key_secret"),
                          (self.push_provider_url, "push_master_secret")):
            if url and len(getattr(self, name)) < 16:
                problems.append(f"FULEMA_{name.upper()} must be the key the provider issued "
                                "(at least 16 characters) when its provider URL is set")
        if self.outbound_allow_loopback:
            problems.append("FULEMA_OUTBOUND_ALLOW_LOOPBACK must not be true (loopback "
                            "notify URLs are for the development demo only)")
        if not self.metrics_token and not self.metrics_public:
            problems.append("FULEMA_METRICS_TOKEN is not set (or set FULEMA_METRICS_PUBLIC=true "
                            "where only the monitoring network reaches this server)")
        elif self.metrics_token and len(self.metrics_token) < MIN_SECRET_LENGTH:
            problems.append(f"FULEMA_METRICS_TOKEN must be at least {MIN_SECRET_LENGTH} "
                            "characters")
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
