"""A merchant that registered an RSA public key signs with its private key (RSA-SHA256)."""

from __future__ import annotations

import orjson

from fulema.core import crypto
from fulema.core.clock import clock
from fulema.gateway.signing import sign_request
from tests.payments.conftest import Platform


async def test_rsa_signed_order_is_accepted_and_a_forgery_refused(platform: Platform) -> None:
    key = crypto.generate_rsa_key()
    app = await platform.http.post(
        f"/ops/v1/merchants/{platform.merchant_id}/apps",
        json={"name": "pos-rsa", "rsa_public_key_pem": crypto.public_key_pem(key)},
        headers={"Authorization": "Bearer test-operator"})
    assert app.status_code == 201, app.text
    app_id = app.json()["app_id"]
    body = orjson.dumps({"out_trade_no": "RSA0000001", "amount": 100, "subject": "x",
                         "way_code": "QR_DYNAMIC", "channel": "bankpay"})
    headers = sign_request(app_id=app_id, secret=None, method="POST", path="/api/v1/orders",
                           body=body, timestamp=clock.timestamp(),
                           rsa_private_key_pem=crypto.private_key_pem(key))
    ok = await platform.http.post("/api/v1/orders", content=body, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["amount"] == 100

    other = crypto.generate_rsa_key()
    forged = sign_request(app_id=app_id, secret=None, method="POST", path="/api/v1/orders",
                          body=body.replace(b"RSA0000001", b"RSA0000002"),
                          timestamp=clock.timestamp(),
                          rsa_private_key_pem=crypto.private_key_pem(other))
    bad = await platform.http.post("/api/v1/orders", headers=forged,
                                   content=body.replace(b"RSA0000001", b"RSA0000002"))
    assert bad.status_code == 401
    assert bad.json()["code"] == "SIGNATURE_INVALID"
