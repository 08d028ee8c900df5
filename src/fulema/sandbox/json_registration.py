"""Merchant registration as the e-CNY institution and the bank's own channel answer it in the
sandbox (nothing imported from our adapters): our documented assumption (docs/onboarding.md).

Served through each sandbox's own signed API (`sb.api`, its signature and merchant checks):
`POST {prefix}` records an application under its `application_no` (the same number again is the
same application), `GET {prefix}/{application_no}` answers its status. The sandbox operator
decides at `/sandbox-ops/merchants/{application_no}`: approve (ACTIVE, a sub-merchant id),
reject with a reason, ask for verification (NEED_VERIFY: the bank's small test transfer to the
settlement account, or signing), suspend / resume.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

Result = tuple[int, dict[str, Any]]
Api = Callable[[Request, Callable[[dict[str, Any]], Result]], Awaitable[Response]]
APPLICATION_NO = re.compile(r"^[0-9A-Za-z_\-]{1,64}$")
REQUIRED = ("name", "licence_no", "mcc", "settlement_account", "settlement_account_name")
ACCOUNT = re.compile(r"^\d{8,32}$")


@dataclass
class Application:
    application_no: str
    name: str
    status: str = "REVIEWING"
    reason: str | None = None
    sub_merchant_id: str | None = None
    suspended: bool = False

    def view(self) -> dict[str, Any]:
        return {"application_no": self.application_no, "status": self.status,
                "sub_merchant_id": self.sub_merchant_id, "reason": self.reason}


class RegistrationBook:
    def __init__(self, prefix_for_ids: str) -> None:
        self.prefix = prefix_for_ids
        self.apps: dict[str, Application] = {}
        self.seq = 0

    def usable(self, sub_merchant_id: str) -> bool:
        return self.standing(sub_merchant_id) == "ACTIVE"

    def standing(self, sub_merchant_id: str) -> str:
        """ACTIVE (may trade), SUSPENDED, or UNKNOWN (no approved application names it)."""
        found = next((a for a in self.apps.values() if a.sub_merchant_id == sub_merchant_id
                      and a.status == "ACTIVE"), None)
        if found is None:
            return "UNKNOWN"
        return "SUSPENDED" if found.suspended else "ACTIVE"

    def refusal(self, sub_merchant_id: object, codes: dict[str, str]) -> Result | None:
        """A payment request's sub-merchant checked (partner form): None when it names none
        (the direct form) or one that may trade; else 403 with the channel's code for UNKNOWN
        or SUSPENDED (`codes`), 400 for a sub_merchant_id that is not a string."""
        if sub_merchant_id is None or sub_merchant_id == "":
            return None
        if not isinstance(sub_merchant_id, str):
            return 400, {"code": "PARAM_INVALID", "message": "sub_merchant_id is a string"}
        standing = self.standing(sub_merchant_id)
        if standing == "ACTIVE":
            return None
        return 403, {"code": codes[standing],
                     "message": "the sub-merchant is suspended" if standing == "SUSPENDED"
                     else "no sub-merchant registered (and approved) with this id"}

    def apply(self, body: dict[str, Any]) -> Result:
        no = body.get("application_no")
        if not isinstance(no, str) or not APPLICATION_NO.match(no):
            return 400, {"code": "INVALID_PARAMETER", "message": "application_no"}
        if no in self.apps:
            return 200, {"code": "SUCCESS", "message": "OK", "data": self.apps[no].view()}
        lacking = [k for k in REQUIRED if not isinstance(body.get(k), str) or not body[k]]
        if lacking:
            return 400, {"code": "INVALID_PARAMETER", "message": f"missing {', '.join(lacking)}"}
        if not ACCOUNT.match(body["settlement_account"]):
            return 400, {"code": "INVALID_PARAMETER", "message": "settlement_account"}
        self.apps[no] = Application(no, body["name"])
        return 200, {"code": "SUCCESS", "message": "OK", "data": self.apps[no].view()}

    def get(self, no: str) -> Result:
        found = self.apps.get(no)
        if found is None:
            return 404, {"code": "APPLICATION_NOT_FOUND", "message": no}
        return 200, {"code": "SUCCESS", "message": "OK", "data": found.view()}

    def decide(self, no: str, body: dict[str, Any]) -> JSONResponse:
        a = self.apps.get(no)
        if a is None:
            return JSONResponse({"code": "APPLICATION_NOT_FOUND"}, 404)
        decision = body.get("decision")
        if decision == "approve":
            self.seq += 1
            a.status, a.reason = "ACTIVE", None
            a.sub_merchant_id = a.sub_merchant_id or f"{self.prefix}{self.seq:08d}"
        elif decision == "reject":
            a.status, a.reason = "REJECTED", str(body.get("reason") or "资料不符")
        elif decision in ("verify", "sign"):
            a.status, a.reason = "NEED_VERIFY", "请确认结算账户收到的验证金额"
        elif decision in ("suspend", "resume") and a.status == "ACTIVE":
            a.suspended = decision == "suspend"
        else:
            return JSONResponse({"code": "INVALID_PARAMETER"}, 400)
        return JSONResponse(a.view())


def add_registration_routes(app: FastAPI, api: Api, path: str, book: RegistrationBook
                            ) -> RegistrationBook:
    """Route `book` (the sandbox's own, which its payment handlers consult)."""

    @app.post(path)
    async def apply(request: Request) -> Response:
        return await api(request, book.apply)

    @app.get(path + "/{no}")
    async def get(no: str, request: Request) -> Response:
        return await api(request, lambda _: book.get(no))

    @app.post("/sandbox-ops/merchants/{no}")
    async def decide(no: str, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        return book.decide(no, body if isinstance(body, dict) else {})

    return book
