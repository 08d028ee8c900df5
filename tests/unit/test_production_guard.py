"""The production guard sees the whole settings tree: outside development a server refuses to
start with a mounted sandbox, the demo seed, a published development secret, or a channel key
it would have to generate for itself; the message names the variable to set. A complete
production tree (the bank's keys, here written to tmp files) starts and generates nothing."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fulema.app import create_app
from fulema.channels.unionpay.config import adapter_keys
from fulema.cli import app as cli
from fulema.core import crypto, gm
from fulema.core.channel_settings import (
    DEV_APIV3_KEY,
    DEV_V2_API_KEY,
    DEV_WECHAT_APP_SECRET,
    AlipaySection,
    BankpaySection,
    ConfigurationError,
    EcnySection,
    OAuthSection,
    UnionpaySection,
    WechatSection,
    WechatV2Section,
)
from fulema.core.config import DEV_PLACEHOLDER, Settings
from fulema.core.db import Database
from fulema.core.vault import DEV_MASTER_KEY


def _rsa_pair(keys: Path, name: str) -> tuple[Path, Path]:
    key = crypto.generate_rsa_key()
    private, public = keys / f"{name}.pem", keys / f"{name}_pub.pem"
    private.write_text(crypto.private_key_pem(key))
    public.write_text(crypto.public_key_pem(key))
    return private, public


@pytest.fixture(scope="module")
def bank_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What a bank hands over: our private keys, the channels' public keys, shared secrets
    (made once per module: RSA generation is slow on this machine)."""
    keys = tmp_path_factory.mktemp("bank_keys")
    wx_key, _ = _rsa_pair(keys, "wechat_merchant")
    _, wx_platform = _rsa_pair(keys, "wechat_platform")
    ali_key, _ = _rsa_pair(keys, "alipay_app")
    _, ali_public = _rsa_pair(keys, "alipay_public")
    up_key, _ = _rsa_pair(keys, "unionpay_merchant")
    _, up_cert = _rsa_pair(keys, "unionpay_verify")
    up_sm2 = keys / "unionpay_sm2.key"
    up_sm2.write_text(gm.generate_sm2_keypair()[0])
    ecny_key = keys / "ecny_merchant.key"
    ecny_key.write_text(gm.generate_sm2_keypair()[0])
    cert, cert_key = keys / "apiclient_cert.pem", keys / "apiclient_key.pem"
    cert.write_text("certificate")
    cert_key.write_text("key")
    return {"wx_key": wx_key, "wx_platform": wx_platform, "ali_key": ali_key,
            "ali_public": ali_public, "up_key": up_key, "up_cert": up_cert, "up_sm2": up_sm2,
            "up_sm2_public": gm.generate_sm2_keypair()[1], "ecny_key": ecny_key,
            "ecny_platform": gm.generate_sm2_keypair()[1], "v2_cert": cert, "v2_key": cert_key}


@pytest.fixture
def production(tmp_path: Path, bank_keys: dict[str, Any]) -> Settings:
    """A complete production tree: every enabled channel's keys are the bank's."""
    k = bank_keys
    return Settings(
        environment="production", data_dir=tmp_path / "data", public_base_url="https://pay.bank",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}",
        operator_token=secrets.token_hex(16), platform_secret=secrets.token_hex(16),
        metrics_token=secrets.token_hex(16), mount_sandbox=False, seed_demo=False, run_background=False,
        crypto_master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        speaker_secret=secrets.token_hex(16),
        wechat=WechatSection(apiv3_key=secrets.token_hex(16), merchant_serial_no="5157F09EFDC0",
                             merchant_key_path=k["wx_key"],
                             platform_public_key_path=k["wx_platform"]),
        alipay=AlipaySection(private_key_path=k["ali_key"], alipay_public_key_path=k["ali_public"]),
        unionpay=UnionpaySection(merchant_key_path=k["up_key"], unionpay_cert_path=k["up_cert"],
                                 acq_ins_code="48021234"),
        ecny=EcnySection(merchant_key_file=k["ecny_key"], platform_public_key=k["ecny_platform"],
                         data_key_hex=secrets.token_hex(16)),
        bankpay=BankpaySection(secret=secrets.token_hex(16)),
        oauth=OAuthSection(wechat_app_secret=secrets.token_hex(16)))


def _section(tree: Settings, name: str, **update: Any) -> Settings:
    return tree.model_copy(update={name: getattr(tree, name).model_copy(update=update)})


def _refuses(tree: Settings, variable: str) -> str:
    with pytest.raises(ConfigurationError) as refused:
        create_app(tree)
    message = str(refused.value)
    assert variable in message
    assert "FULEMA_ENVIRONMENT=production" in message
    return message


async def test_a_complete_production_tree_starts_and_generates_no_key(
        production: Settings) -> None:
    db = Database(production.database_url)
    await db.create_all()
    app = create_app(production, db=db)
    assert sorted(app.state.channels.enabled()) == sorted(production.enabled_channels)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        assert (await http.get("/healthz")).json()["status"] == "ok"
        # no sandbox: nobody here can make a payer, or sign as a channel
        made = await http.post("/sandbox/bankpay/wallet/payers", json={"balance_fen": 100})
        assert made.status_code == 404
    # every key came from the bank: the server made none of its own
    assert not (production.data_dir / "keys").exists()
    await db.dispose()


Change = Callable[[Settings], Settings]
CASES: list[tuple[str, Change]] = [
    ("FULEMA_MOUNT_SANDBOX", lambda t: t.model_copy(update={"mount_sandbox": True})),
    ("FULEMA_SEED_DEMO", lambda t: t.model_copy(update={"seed_demo": True})),
    ("FULEMA_CRYPTO_MASTER_KEY", lambda t: t.model_copy(update={"crypto_master_key": ""})),
    ("FULEMA_CRYPTO_MASTER_KEY",
     lambda t: t.model_copy(update={"crypto_master_key": base64.b64encode(DEV_MASTER_KEY).decode()})),
    ("FULEMA_OPERATOR_TOKEN", lambda t: t.model_copy(update={"operator_token": DEV_PLACEHOLDER})),
    ("FULEMA_PLATFORM_SECRET",
     lambda t: t.model_copy(update={"platform_secret": DEV_PLACEHOLDER})),
    # short secrets (issue 8, production posture): guessable is as bad as published
    ("FULEMA_OPERATOR_TOKEN", lambda t: t.model_copy(update={"operator_token": "s3cr3t-but-short"})),
    ("FULEMA_PLATFORM_SECRET", lambda t: t.model_copy(update={"platform_secret": "x" * 31})),
    ("FULEMA_METRICS_TOKEN", lambda t: t.model_copy(update={"metrics_token": ""})),
    ("FULEMA_METRICS_TOKEN", lambda t: t.model_copy(update={"metrics_token": "short"})),
    ("FULEMA_OUTBOUND_ALLOW_LOOPBACK",
     lambda t: t.model_copy(update={"outbound_allow_loopback": True})),
    ("FULEMA_WECHAT_APIV3_KEY", lambda t: _section(t, "wechat", apiv3_key=DEV_APIV3_KEY)),
    ("FULEMA_WECHAT_MERCHANT_KEY_PATH", lambda t: _section(t, "wechat", merchant_key_path=None)),
    ("FULEMA_WECHAT_MERCHANT_SERIAL_NO", lambda t: _section(t, "wechat", merchant_serial_no="")),
    ("FULEMA_WECHAT_PLATFORM_PUBLIC_KEY_PATH",
     lambda t: _section(t, "wechat", platform_public_key_path=None)),
    ("FULEMA_OAUTH_WECHAT_APP_SECRET",
     lambda t: _section(t, "oauth", wechat_app_secret=DEV_WECHAT_APP_SECRET)),
    ("FULEMA_WECHAT_V2_API_KEY",
     lambda t: t.model_copy(update={"wechat_v2": WechatV2Section(enabled=True)})),
    ("FULEMA_ALIPAY_PRIVATE_KEY_PATH", lambda t: _section(t, "alipay", private_key_path=None)),
    ("FULEMA_ALIPAY_ALIPAY_PUBLIC_KEY_PATH",
     lambda t: _section(t, "alipay", alipay_public_key_path=None)),
    ("FULEMA_UNIONPAY_MERCHANT_KEY_PATH",
     lambda t: _section(t, "unionpay", merchant_key_path=None)),
    ("FULEMA_UNIONPAY_UNIONPAY_CERT_PATH",
     lambda t: _section(t, "unionpay", unionpay_cert_path=None)),
    ("FULEMA_UNIONPAY_MERCHANT_SM2_KEY_PATH", lambda t: _section(t, "unionpay", sign_method="02")),
    ("FULEMA_UNIONPAY_UNIONPAY_SM2_PUBLIC_KEY",
     lambda t: _section(t, "unionpay", sign_method="02")),
    ("FULEMA_UNIONPAY_SECURE_KEY", lambda t: _section(t, "unionpay", sign_method="11")),
    ("FULEMA_UNIONPAY_ACQ_INS_CODE", lambda t: _section(t, "unionpay", acq_ins_code="")),
    ("FULEMA_ECNY_MERCHANT_KEY_FILE", lambda t: _section(t, "ecny", merchant_key_file=None)),
    ("FULEMA_ECNY_PLATFORM_PUBLIC_KEY", lambda t: _section(t, "ecny", platform_public_key="")),
    ("FULEMA_ECNY_DATA_KEY_HEX", lambda t: _section(t, "ecny", data_key_hex="")),
    ("FULEMA_BANKPAY_SECRET", lambda t: t.model_copy(update={"bankpay": BankpaySection()})),
    # any dev-only-* placeholder, wherever it is in the tree
    ("FULEMA_ECNY_MERCHANT_NAME", lambda t: _section(t, "ecny", merchant_name="dev-only-shop")),
]


@pytest.mark.parametrize(("variable", "change"), CASES, ids=[c[0] for c in CASES])
def test_a_production_tree_missing_something_refuses_to_start_naming_it(
        production: Settings, variable: str, change: Change) -> None:
    _refuses(change(production), variable)
    assert not (production.data_dir / "keys").exists()


def test_a_key_path_naming_no_file_is_refused_not_generated(production: Settings,
                                                              tmp_path: Path) -> None:
    gone = tmp_path / "nowhere" / "apiclient_key.pem"
    message = _refuses(_section(production, "wechat", merchant_key_path=gone),
                       "FULEMA_WECHAT_MERCHANT_KEY_PATH")
    assert "names no file" in message
    assert not gone.exists()


def test_the_message_names_every_missing_variable_at_once(production: Settings) -> None:
    tree = _section(production.model_copy(update={"mount_sandbox": True}), "alipay",
                    private_key_path=None, alipay_public_key_path=None)
    message = _refuses(tree, "FULEMA_MOUNT_SANDBOX")
    assert "FULEMA_ALIPAY_PRIVATE_KEY_PATH" in message
    assert "FULEMA_ALIPAY_ALIPAY_PUBLIC_KEY_PATH" in message


def test_only_enabled_channels_need_their_keys(production: Settings) -> None:
    tree = production.model_copy(update={
        "alipay": AlipaySection(), "wechat": WechatSection(), "oauth": OAuthSection(),
        "enabled_channels": ["unionpay", "ecny", "bankpay"]})
    assert tree.production_problems() == []
    create_app(tree)
    # ...but WeChat's v2 API, switched on, is checked with WeChat
    v2 = production.model_copy(update={"wechat_v2": WechatV2Section(
        enabled=True, api_key=DEV_V2_API_KEY)})
    _refuses(v2, "FULEMA_WECHAT_V2_CERT_PATH")


def test_wechat_v2_with_the_banks_key_and_certificate_starts(production: Settings,
                                                             bank_keys: dict[str, Any]) -> None:
    tree = production.model_copy(update={"wechat_v2": WechatV2Section(
        enabled=True, api_key=secrets.token_hex(16), cert_path=bank_keys["v2_cert"],
        cert_key_path=bank_keys["v2_key"])})
    assert tree.production_problems() == []


def test_development_and_test_trees_may_run_on_stand_ins(tmp_path: Path) -> None:
    for environment in ("development", "test"):
        tree = Settings(environment=environment, data_dir=tmp_path)
        assert tree.production_problems() == []
        tree.check_production()
    assert Settings(environment="staging", data_dir=tmp_path).production_problems()


def test_unionpay_verify_keys_of_other_methods_are_held_by_nobody(production: Settings) -> None:
    """Configured for signMethod 01, the SM2 verify key is one made in memory and dropped: a
    message signed with 02 cannot verify, and no key file appears."""
    keys = adapter_keys(production, production.unionpay)
    other = adapter_keys(production, production.unionpay)
    assert keys.unionpay_sm2_public != other.unionpay_sm2_public  # fresh each time: no one's
    assert keys.secure_key == ""
    assert not (production.data_dir / "keys").exists()


def test_fulema_serve_refuses_a_production_environment_naming_the_variables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(a))
    result = CliRunner().invoke(cli, ["serve", "--no-auto-migrate"], env={
        "FULEMA_ENVIRONMENT": "production", "FULEMA_DATA_DIR": str(tmp_path),
        "FULEMA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"})
    assert result.exit_code == 2
    assert "FULEMA_MOUNT_SANDBOX must be false" in result.output
    assert "FULEMA_OPERATOR_TOKEN" in result.output
    assert started == []
