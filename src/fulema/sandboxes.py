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

from collections.abc import Callable

import httpx
from fastapi import FastAPI

from fulema.core.config import Settings


def _wechat(settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    from fulema.sandbox.wechat.server import build_sandbox

    return build_sandbox(settings, http, settings.wechat)


def _alipay(settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    from fulema.sandbox.alipay.server import build_sandbox

    return build_sandbox(settings, http)


def _unionpay(settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    from fulema.sandbox.unionpay.server import build_sandbox

    return build_sandbox(settings, http)


def _ecny(settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    from fulema.sandbox.ecny.server import build_sandbox

    return build_sandbox(settings, http, settings.ecny)


def _bankpay(settings: Settings, http: httpx.AsyncClient) -> FastAPI:
    from fulema.sandbox.bankpay.server import build_sandbox

    return build_sandbox(settings, http, settings.bankpay)


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


def mount_sandboxes(app: FastAPI, settings: Settings, http: httpx.AsyncClient) -> None:
    for name, sandbox in build_sandboxes(settings, http).items():
        app.mount(f"/sandbox/{name}", sandbox)
