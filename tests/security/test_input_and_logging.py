"""Finding 1: bytes a client chose (a non-ASCII signature, bearer token or timestamp) get a
documented 4xx, never a 500; and no error path puts a secret in the log: tracebacks carry no
local variables, values under sensitive key names are redacted, the settings' secrets are
scrubbed from every line (core/logs.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog

from fulema.cli import app as cli
from fulema.core import crypto
from fulema.core.clock import clock
from fulema.core.logs import REDACTED, configure_logging
from fulema.core.text import ascii_int, is_ascii_digits
from fulema.gateway.signing import sign_request
from tests.payments.conftest import APP_ID, SECRET, Platform

OPERATOR_TOKEN = "op-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
PLATFORM_SECRET = "platform-secret-0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def signed(method: str, path: str, body: bytes = b"", **override: bytes) -> dict[bytes, bytes]:
    headers = {k.lower().encode(): v.encode() for k, v in sign_request(
        app_id=APP_ID, secret=SECRET, method=method, path=path, body=body,
        timestamp=clock.timestamp()).items()}
    headers.update({k.encode(): v for k, v in override.items()})
    return headers


# ------------------------------------------------------------------ documented 4xx, no 500

@pytest.mark.parametrize("signature", [b"\xe9", b"caf\xe9" * 16, b"\xff\xfe", "é".encode()])
async def test_a_non_ascii_signature_is_signature_invalid(platform: Platform,
                                                          signature: bytes) -> None:
    resp = await platform.http.get("/api/v1/orders/ord_x", headers=signed(
        "GET", "/api/v1/orders/ord_x", **{"x-fulema-signature": signature}))
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "SIGNATURE_INVALID"


@pytest.mark.parametrize("timestamp", [b"\xb2", b"\xb2\xb3\xb9", b"1\xb2", b"\xbd"])
async def test_a_timestamp_of_digits_int_cannot_read_is_timestamp_expired(
        platform: Platform, timestamp: bytes) -> None:
    # b"\xb2" is '²' to the server (headers are latin-1): isdigit() is true, int() fails
    resp = await platform.http.get("/api/v1/orders/ord_x", headers=signed(
        "GET", "/api/v1/orders/ord_x", **{"x-fulema-timestamp": timestamp}))
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "TIMESTAMP_EXPIRED"


@pytest.mark.parametrize("token", [b"Bearer \xe9", b"Bearer test-operator\xe9", b"bearer \xff",
                                   b"Bearer " + "é".encode()])
async def test_a_non_ascii_operator_token_is_unauthorized(platform: Platform,
                                                          token: bytes) -> None:
    for path in ("/ops/v1/merchants", "/ops/v1/merchants/m_x/apps"):
        method = "GET" if path.endswith("merchants") else "POST"
        resp = await platform.http.request(method, path, headers={b"authorization": token},
                                           content=b"{}")
        assert resp.status_code == 401, (path, resp.text)
        assert resp.json()["code"] == "UNAUTHORIZED"


async def test_a_channel_callback_with_such_a_timestamp_is_refused_not_crashed(
        platform: Platform) -> None:
    for channel, header in (("wechat", b"wechatpay-timestamp"),
                            ("bankpay", b"x-bank-timestamp")):
        resp = await platform.http.post(f"/callbacks/{channel}", content=b"{}", headers={
            header: b"\xb2", b"wechatpay-nonce": b"n", b"wechatpay-signature": b"s",
            b"wechatpay-serial": b"x", b"x-bank-nonce": b"n", b"x-bank-signature": b"s"})
        assert resp.status_code < 500, (channel, resp.text)


def test_numbers_are_ascii_digits_only() -> None:
    for text in ("²", "１２", "٣", "1²", "", " 1", "-1", "1e3"):
        assert not is_ascii_digits(text)
        assert ascii_int(text) is None
    assert ascii_int("0123") == 123


def test_hmac_verification_takes_any_characters() -> None:
    good = crypto.hmac_sha256_hex("k", "m")
    assert crypto.hmac_sha256_verify("k", "m", good.upper())
    for bad in ("é", "\udcff", good[:-1] + "é", ""):
        assert crypto.hmac_sha256_verify("k", "m", bad) is False


# ------------------------------------------------------------------ no secret in the log

@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The log as a server writes it, into a buffer; logging restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    yield stream
    root.handlers, _ = saved[0], root.setLevel(saved[1])
    structlog.reset_defaults()


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_no_error_path_puts_a_secret_in_the_log(
        platform: Platform, captured: io.StringIO, capfd: pytest.CaptureFixture[str],
        log_format: str) -> None:
    p = platform
    p.settings.operator_token = OPERATOR_TOKEN
    p.settings.platform_secret = PLATFORM_SECRET
    p.settings.log_format = log_format  # type: ignore[assignment]
    configure_logging(p.settings, stream=captured)

    async def explode() -> None:
        # what a careless handler holds when it fails: every secret in a local variable
        merchant_secret, operator_token, platform_secret = (SECRET, OPERATOR_TOKEN,
                                                             PLATFORM_SECRET)
        raise RuntimeError(f"boom near {len(merchant_secret + operator_token + platform_secret)}")

    p.app.add_api_route("/boom", explode, methods=["GET"])
    crashing = httpx.AsyncClient(transport=httpx.ASGITransport(app=p.app,
                                                               raise_app_exceptions=False),
                                 base_url="http://testserver")
    # every error path we can reach, with the real app id (whose secret the old traceback
    # printed), the real operator token's neighbours, and bytes nobody expects
    path = "/api/v1/orders/ord_x"
    for override in ({"x-fulema-signature": b"\xe9"}, {"x-fulema-signature": b"00" * 32},
                     {"x-fulema-timestamp": b"\xb2"}, {"x-fulema-timestamp": b"1"},
                     {"x-fulema-nonce": b"short"}, {"x-fulema-app-id": b"app_\xe9"}):
        resp = await p.http.get(path, headers=signed("GET", path, **override))
        assert 400 <= resp.status_code < 500, resp.text
    for token in (b"Bearer \xe9", b"Bearer " + OPERATOR_TOKEN[:-1].encode() + b"\xe9",
                  b"Bearer wrong"):
        resp = await p.http.get("/ops/v1/merchants", headers={b"authorization": token})
        assert resp.status_code == 401
    resp = await p.http.post("/callbacks/wechat", content=b"{}",
                             headers={b"wechatpay-timestamp": b"\xb2"})
    assert resp.status_code < 500
    boom = await crashing.get("/boom")
    assert boom.status_code == 500
    assert boom.json()["code"] == "INTERNAL_ERROR"
    await crashing.aclose()
    # a careless log line: values under sensitive names are redacted whatever they hold
    structlog.get_logger("test").warning("careless", secret=SECRET, authorization="Bearer x1",
                                         nested={"app_secret": SECRET, "phone": "13800138000"},
                                         card_no="6222020200112233445", note=OPERATOR_TOKEN)
    logging.getLogger("uvicorn.error").error("uvicorn says %s", PLATFORM_SECRET)

    out, err = capfd.readouterr()
    log = captured.getvalue()
    assert "RuntimeError" in log
    assert "boom near" in log
    assert "explode" in log
    assert "careless" in log
    assert REDACTED in log
    for text in (log, out, err):
        for secret in (SECRET, OPERATOR_TOKEN, PLATFORM_SECRET, "13800138000",
                       "6222020200112233445"):
            assert secret not in text, f"{secret!r} leaked"
    if log_format == "json":
        lines = [json.loads(line) for line in log.splitlines() if line.strip()]
        assert any("exception" in line for line in lines)


def test_the_cli_prints_no_locals_when_a_command_crashes() -> None:
    assert cli.pretty_exceptions_show_locals is False


async def test_the_signature_covers_the_path_as_sent(platform: Platform) -> None:
    """Found by the schemathesis run: the server signed the path it had decoded, so a client
    that sends `|` percent-encoded (as HTTP clients do) was refused. The path is signed as sent."""
    p = platform
    made = await p.order(out_trade_no="PIPE|0001")
    assert made.status_code == 200, made.text
    path = "/api/v1/orders/by-out-trade-no/PIPE%7C0001"
    resp = await p.http.get(path, headers=signed("GET", path))
    assert resp.status_code == 200, resp.text
    assert resp.json()["out_trade_no"] == "PIPE|0001"
    # the decoded spelling is another request line: its signature does not cover this one
    forged = await p.http.get(path, headers=signed("GET", "/api/v1/orders/by-out-trade-no/PIPE|0001"))
    assert forged.status_code == 401


async def test_only_a_plain_request_id_is_echoed(platform: Platform) -> None:
    plain = await platform.http.get("/ping", headers={"X-Request-Id": "lb-7f3a.42:x"})
    assert plain.headers["x-request-id"] == "lb-7f3a.42:x"
    for given in (b"caf\xe9", b"a" * 65, b"<script>", b"id with blanks"):
        resp = await platform.http.get("/healthz", headers={b"x-request-id": given})
        assert resp.headers["x-request-id"].startswith("req_"), given
