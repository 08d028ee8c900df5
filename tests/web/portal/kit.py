"""The merchant portal over ASGI: the real platform (tests/payments/conftest.py), the demo
merchant as merchant A with an owner, a cashier and an accountant, and merchant B with an owner
and its own app, plate and paid order (for the "A never sees B" tests)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from fulema.core import passwords
from fulema.merchants import service as merchants
from fulema.merchants import users
from tests.merchants.factories import OPERATOR, active_with_store
from tests.payments.conftest import Platform

PASSWORD = "portal-pass-2026"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')


def csrf(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@dataclass
class Kit:
    p: Platform
    merchant_a: str
    merchant_b: str
    b_app_id: str
    b_secret: str
    b_plate: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.p.app),
                                 base_url="http://testserver")

    async def try_login(self, http: httpx.AsyncClient, name: str,
                        password: str = PASSWORD) -> httpx.Response:
        form = await http.get("/portal/login")
        token = _LOGIN_TOKEN.search(form.text)
        assert token
        return await http.post("/portal/login", data={"login_name": name, "password": password,
                                                      "login_token": token.group(1)})

    async def login(self, name: str) -> httpx.AsyncClient:
        http = self.client()
        answer = await self.try_login(http, name)
        assert answer.status_code == 303, answer.text
        return http

    async def post(self, http: httpx.AsyncClient, path: str, data: dict[str, Any],
                   *, page: str | None = None) -> httpx.Response:
        """POST a form with the CSRF token read from `page` (or from the path's own page)."""
        html = (await http.get(page or "/portal/")).text
        return await http.post(path, data={**data, "csrf_token": csrf(html)})

    async def paid_order(self, no: str, amount: int, *, b: bool = False) -> dict[str, Any]:
        extra = {"app_id": self.b_app_id, "secret": self.b_secret} if b else {}
        order = (await self.p.call("POST", "/api/v1/orders",
                                   {"out_trade_no": no, "amount": amount, "subject": "Noodles",
                                    "way_code": "QR_DYNAMIC", "channel": "bankpay"},
                                   **extra)).json()
        paid = await self.p.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                                        "payer_id": "payer_rich"})
        assert paid.status_code == 200, paid.text
        for _ in range(40):
            view = (await self.p.call("GET", f"/api/v1/orders/{order['order_id']}",
                                      **extra)).json()
            if view["status"] == "SUCCESS":
                return view
        raise AssertionError(f"order {no} never paid: {view}")


@pytest.fixture
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its lowest cost: the tests are about the portal, not the hash's cost (the
    real cost is tested in tests/web/test_sessions.py), and a shared CI machine pays seconds
    per default-cost hash."""
    monkeypatch.setattr(passwords, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
async def kit(platform: Platform, cheap_hashes: None) -> AsyncIterator[Kit]:
    db = platform.db
    a = platform.merchant_id
    for name, role in (("a-owner", "owner"), ("a-cashier", "cashier"),
                       ("a-accountant", "accountant")):
        await users.create_user(db, merchant_id=a, login_name=name, display_name=name,
                                role=role, password=PASSWORD, actor=OPERATOR)
    b, b_store = await active_with_store(db)
    await users.create_user(db, merchant_id=b, login_name="b-owner", display_name="B",
                            role="owner", password=PASSWORD, actor=OPERATOR)
    issued = await merchants.create_app_credential(db, merchant_id=b, operator=OPERATOR)
    plate = await merchants.create_plate(db, merchant_id=b, store_id=b_store, operator=OPERATOR)
    return Kit(p=platform, merchant_a=a, merchant_b=b, b_app_id=issued.app.app_id,
              b_secret=issued.secret, b_plate=plate.code)
