"""Production posture on the wire: every page sends a Content-Security-Policy whose nonce its
inline scripts carry, no page may be framed, nothing sniffs or leaks a referrer; a 405 says
which methods are allowed; /metrics can need a token; the cashier refuses what a payer did not
mean as an amount."""

from __future__ import annotations

import re

import pytest

from fulema.web.cashier import AMOUNT_HELP
from tests.payments.conftest import Platform

BANK = "Mozilla/5.0 (Linux; Android 14) FulemaBank/3.1"
PAGES = ["/", "/docs", "/redoc", "/pay/q/DEMO000001"]


def nonce_of(policy: str) -> str:
    found = re.search(r"script-src 'self' 'nonce-([A-Za-z0-9_\-]+)'", policy)
    assert found, policy
    return found.group(1)


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_sends_the_protection_headers(platform: Platform, path: str) -> None:
    page = await platform.http.get(path, headers={"User-Agent": BANK})
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "object-src 'none'" in policy
    assert "unsafe-eval" not in policy
    assert "'unsafe-inline'" not in policy.split("style-src")[0]
    assert "http" not in policy  # nothing from another host
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"
    nonce = nonce_of(policy)
    # every inline script carries this answer's nonce; every other script is our own file
    for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S):
        if "src=" in attrs:
            src = re.search(r'src="([^"]+)"', attrs)
            assert src, attrs
            assert src.group(1).startswith("/"), attrs
        else:
            assert f'nonce="{nonce}"' in attrs, (path, attrs, body[:60])
    assert not re.search(r"\son[a-z]+=", page.text)  # no inline event handlers either


async def test_each_answer_has_its_own_nonce(platform: Platform) -> None:
    one = await platform.http.get("/docs")
    two = await platform.http.get("/docs")
    assert nonce_of(one.headers["content-security-policy"]) != nonce_of(
        two.headers["content-security-policy"])


async def test_api_answers_are_not_sniffed_or_framed(platform: Platform) -> None:
    resp = await platform.http.get("/healthz")
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in resp.headers  # JSON is no page


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/api/v1/orders", {"POST"}), ("PUT", "/healthz", {"GET"}),
    ("GET", "/api/v1/orders/ord_x/refunds", {"POST"}),
])
async def test_a_405_names_the_allowed_methods(platform: Platform, method: str, path: str,
                                               allowed: set[str]) -> None:
    resp = await platform.http.request(method, path)
    assert resp.status_code == 405
    assert resp.json()["code"] == "METHOD_NOT_ALLOWED"
    assert allowed <= {m.strip() for m in resp.headers["allow"].split(",")}


async def test_metrics_can_require_a_token(platform: Platform) -> None:
    p = platform
    assert (await p.http.get("/metrics")).status_code == 200  # development: open by default
    p.settings.metrics_token = "metrics-token-0123456789abcdef0123456789"
    refused = await p.http.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["code"] == "UNAUTHORIZED"
    wrong = await p.http.get("/metrics", headers={b"authorization": b"Bearer \xe9"})
    assert wrong.status_code == 401
    ok = await p.http.get("/metrics", headers={"Authorization": f"Bearer {p.settings.metrics_token}"})
    assert ok.status_code == 200
    assert "python_info" in ok.text


@pytest.mark.parametrize("typed", ["1e3", " 1", "1 ", "1.001", "-1", "+1", "０１", "１２.５０",
                                   "1,000", "NaN", "Infinity", "0x10", "1_000", "", ".5", "12.",
                                   "²", "1.5e1"])
async def test_the_cashier_refuses_what_a_payer_did_not_mean(platform: Platform,
                                                              typed: str) -> None:
    page = await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK},
                                    data={"amount": typed})
    assert page.status_code == 400, (typed, page.text[:200])
    assert "Enter the amount in yuan" in page.text
    assert AMOUNT_HELP.split(" · ")[0] in page.text
    assert "data-order-id" not in page.text


@pytest.mark.parametrize(("typed", "shown"), [("8", "8.00"), ("0.01", "0.01"), ("12.5", "12.50")])
async def test_the_cashier_takes_plain_amounts(platform: Platform, typed: str, shown: str) -> None:
    page = await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK},
                                    data={"amount": typed})
    assert page.status_code == 200, page.text[:300]
    assert f"¥{shown}" in page.text
