"""Composition of the channel sandboxes: the one place production code reaches them.

A sandbox is a separate system standing in for a channel (its own implementation of the
vendor's protocol, importing nothing from `fulema.channels`, `fulema.web` or
`fulema.payments`). Only the composition root mounts them, explicitly and only when
`FULEMA_MOUNT_SANDBOX` is on, and each builder below translates our settings into what that
channel would know about us (our merchant id, the keys we registered with it), the way a bank
fills in a channel's merchant platform. The builders that take a channel section are handed
the tree's, so the sandbox knows us as the adapter presents itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount

from fulema.core.config import Settings


def _wechat(settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    from fulema.channels.wechat import config as wx_keys
    from fulema.sandbox.wechat.server import WechatSandboxConfig, build_sandbox

    wx = settings.wechat
    merchant = wx_keys.merchant_private_key(settings, wx).public_key()
    return build_sandbox(WechatSandboxConfig(
        public_url=settings.sandbox_url("wechat"), mchid=wx.mchid, appid=wx.appid,
        apiv3_key=wx.apiv3_key.encode(), merchant_public_key=merchant,
        merchant_serial_no=wx_keys.merchant_serial_no(settings, wx, merchant),
        platform_key=wx_keys.dev_platform_private_key(settings),
        platform_public_key_id=wx.platform_public_key_id,
        v2_api_key=settings.wechat_v2.api_key,
        oauth_app_secret=settings.oauth.wechat_app_secret), http)


def _alipay(settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    from fulema.channels.alipay import protocol as ali_keys
    from fulema.sandbox.alipay.config import AlipaySandboxConfig
    from fulema.sandbox.alipay.server import build_sandbox

    ali = settings.alipay
    return build_sandbox(AlipaySandboxConfig(
        public_url=settings.sandbox_url("alipay"), app_id=ali.app_id, seller_id=ali.seller_id,
        app_public_key=ali_keys.app_private_key(settings, ali).public_key(),
        platform_key=ali_keys.platform_dev_key(settings)), http)


def _unionpay(settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    """UnionPay knows our merId, the public halves of our signing keys with their certIds,
    and the secure key we share; the development UnionPay keys are its own."""
    from fulema.channels.unionpay.adapter import acq_ins_code
    from fulema.channels.unionpay.config import merchant_keys, platform_dev_keys, secure_key
    from fulema.sandbox.unionpay.config import UnionpaySandboxConfig
    from fulema.sandbox.unionpay.server import build_sandbox

    up = settings.unionpay
    merchant, platform = merchant_keys(settings, up), platform_dev_keys(settings)
    derived = {"01": merchant.rsa_cert_id, "02": merchant.sm2_cert_id}
    cert_ids = {m: up.cert_id if up.cert_id and m == up.sign_method else derived[m]
                for m in derived}
    return build_sandbox(UnionpaySandboxConfig(
        mer_id=up.mer_id, platform_rsa=platform.rsa, platform_sm2=platform.sm2,
        merchant_rsa_public=merchant.rsa.public_key(), merchant_sm2_public=merchant.sm2[1],
        merchant_cert_ids=cert_ids, secure_key=secure_key(settings, up),
        acq_ins_code=acq_ins_code(up)), http)


def _ecny(settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    """The institution knows our merchant id, receiving wallet and SM2 public key, and the SM4
    data key it issued us; its own SM2 key is the development institution key."""
    from fulema.channels.ecny.adapter import institution_keys
    from fulema.sandbox.ecny.config import EcnySandboxConfig
    from fulema.sandbox.ecny.server import build_sandbox

    ecny = settings.ecny
    keys = institution_keys(settings, ecny)
    assert keys.platform is not None  # the institution's side always holds its private key
    return build_sandbox(EcnySandboxConfig(
        merchant_id=ecny.merchant_id, merchant_wallet_id=ecny.merchant_wallet_id,
        merchant_public_key=keys.merchant_public,
        institution_private_key=keys.platform.private_key, data_key=keys.data_key,
        data_key_id=ecny.data_key_id, field_cipher=ecny.field_cipher,
        public_url=settings.sandbox_url("ecny")), http)


def _bankpay(settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    """The bank knows the merchant number it issued us and the secret we share."""
    from fulema.sandbox.bankpay.config import BankpaySandboxConfig
    from fulema.sandbox.bankpay.server import build_sandbox

    bank = settings.bankpay
    return build_sandbox(BankpaySandboxConfig(
        merchant_no=bank.merchant_no, secret=bank.secret,
        public_url=settings.sandbox_url("bankpay")), http)


BUILDERS: dict[str, Callable[[Settings, httpx.AsyncClient], FastAPI]] = {
    "wechat": _wechat, "alipay": _alipay, "unionpay": _unionpay, "ecny": _ecny, "bankpay": _bankpay,
}


def sandbox_app(name: str, settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    """One channel's sandbox as its own ASGI app (mounted under /sandbox/<name>, or served at
    its own root by `fulema sandbox <name>`)."""
    return BUILDERS[name](settings, http)


def build_sandboxes(settings: Settings, http: httpx.AsyncClient) -> dict[str, FastAPI]:
    """The enabled channels' sandboxes, by channel name."""
    return {name: sandbox_app(name, settings, http)
            for name in settings.enabled_channels if name in BUILDERS}


def notify_gateway_app(settings: Settings) -> FastAPI:
    """The sandbox SMS and push provider, issued the keys our settings hold (the way a bank
    copies them from the provider's console); it reads the platform's clock, so a test that
    moves time does not see our signatures as stale."""
    from fulema.core.clock import clock
    from fulema.sandbox.notify_gateway import NotifyGateway, build_notify_gateway

    return build_notify_gateway(NotifyGateway(
        sms_key_id=settings.sms_access_key_id, sms_key_secret=settings.sms_access_key_secret,
        push_app_key=settings.push_app_key, push_master_secret=settings.push_master_secret,
        now=clock.timestamp))


def mount_sandboxes(app: FastAPI, settings: Settings, http: httpx.AsyncClient) -> None:
    """The enabled channels' sandboxes, and the app shell that plays the payer's app in a
    browser (sandbox/appshell: only ever mounted here, with the sandboxes)."""
    from fulema.sandbox.appshell.routes import build_app_shell

    for name, sandbox in build_sandboxes(settings, http).items():
        app.mount(f"/sandbox/{name}", sandbox)
    app.mount("/sandbox/notify", notify_gateway_app(settings))
    app.mount("/sandbox/app", build_app_shell())


def standalone_app(name: str, settings: Settings) -> Starlette:
    """One sandbox as its own server (`fulema sandbox <name>`): at the root, where every path
    is exactly the channel's (a client pointed at http://host:port signs /v3/... as WeChat
    sees it), and also under /sandbox/<name>, where the links it hands out (H5 pages, bill
    downloads: `settings.sandbox_url`) lead. It owns the HTTP client its callbacks use."""
    if name not in BUILDERS:
        raise ValueError(f"no sandbox for {name!r}; known: {', '.join(BUILDERS)}")
    http = httpx.AsyncClient()
    sandbox = sandbox_app(name, settings, http)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for task in list(getattr(sandbox.state.sandbox, "tasks", ())):
                task.cancel()
            await http.aclose()

    return Starlette(routes=[Mount(f"/sandbox/{name}", sandbox), Mount("/", sandbox)],
                     lifespan=lifespan)
