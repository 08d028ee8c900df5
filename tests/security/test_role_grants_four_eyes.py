"""Four eyes on role grants: a named admin who grants a role (to a new operator or an existing
one) changes nothing until a different admin approves; the operator the roles are for cannot
approve them; removing roles runs at once; both names are in the audit trail."""

from __future__ import annotations

from typing import Any

import httpx

from fulema.core import audit
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.operators import service
from tests.security.operator_helpers import BOOTSTRAP, operator, ops_client


def _code(resp: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = resp.json()
    return resp.status_code, body.get("code", body.get("status", ""))


async def _roles(db: Database, name: str) -> list[str]:
    return sorted((await service.get_operator(db, name=name)).roles)


async def test_granting_admin_waits_for_a_second_admin(db: Database, settings: Settings) -> None:
    maker = await operator(db, "zhou.admin", "admin")
    checker = await operator(db, "wang.admin", "admin")
    target = await operator(db, "li.fin", "finance")
    finance = await operator(db, "sun.fin", "finance")
    async with ops_client(db, settings) as http:
        no_reason = await http.put("/ops/v1/operators/li.fin/roles", headers=maker,
                                   json={"roles": ["finance", "admin"]})
        assert _code(no_reason) == (400, "VALIDATION_ERROR")
        asked = await http.put("/ops/v1/operators/li.fin/roles", headers=maker,
                               json={"roles": ["finance", "admin"], "reason": "接任系统管理员"})
        assert asked.status_code == 202, asked.text
        req = asked.json()
        assert (req["kind"], req["status"], req["requested_by"]) == (
            "operator.set_roles", "PENDING", "zhou.admin")
        assert req["summary"] == {"from": ["finance"], "to": ["admin", "finance"],
                                  "granted": ["admin"]}
        assert await _roles(db, "li.fin") == ["finance"]  # nothing changed yet

        path = f"/ops/v1/approvals/{req['id']}/approve"
        assert _code(await http.post(path, headers=maker)) == (403, "APPROVAL_OWN_REQUEST")
        assert _code(await http.post(path, headers=finance)) == (403, "OPERATOR_FORBIDDEN")
        assert _code(await http.post(path, headers=target)) == (403, "OPERATOR_FORBIDDEN")
        assert await _roles(db, "li.fin") == ["finance"]

        done = await http.post(path, json={"note": "已核对任命"}, headers=checker)
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["decided_by"]) == ("APPROVED", "wang.admin")
        assert await _roles(db, "li.fin") == ["admin", "finance"]
        # the new admin can now act as one
        assert (await http.get("/ops/v1/operators", headers=target)).status_code == 200
    trail = [(r.actor, r.action) for r in await audit.search(db, target_id="li.fin")][::-1]
    assert trail[-3:] == [("zhou.admin", "approval.request"), ("wang.admin", "operator.set_roles"),
                          ("wang.admin", "approval.approve")]


async def test_the_operator_the_roles_are_for_cannot_approve_them(db: Database,
                                                                   settings: Settings) -> None:
    maker = await operator(db, "qin.admin", "admin")
    checker = await operator(db, "xia.admin", "admin")
    target = await operator(db, "xia.admin2", "admin")
    async with ops_client(db, settings) as http:
        asked = await http.put("/ops/v1/operators/xia.admin2/roles", headers=maker,
                               json={"roles": ["admin", "finance"], "reason": "兼管财务"})
        assert asked.status_code == 202, asked.text
        refused = await http.post(f"/ops/v1/approvals/{asked.json()['id']}/approve",
                                  headers=target)
        assert _code(refused) == (403, "OPERATOR_FORBIDDEN")
        state = (await http.get(f"/ops/v1/approvals/{asked.json()['id']}", headers=maker)).json()
        assert state["status"] == "PENDING"  # still there for a disinterested admin
        assert await _roles(db, "xia.admin2") == ["admin"]
        ok = await http.post(f"/ops/v1/approvals/{asked.json()['id']}/approve", headers=checker)
        assert ok.json()["status"] == "APPROVED", ok.text
    assert await _roles(db, "xia.admin2") == ["admin", "finance"]


async def test_a_new_operator_holds_no_role_until_a_second_admin_approves(
        db: Database, settings: Settings) -> None:
    maker = await operator(db, "hu.admin", "admin")
    checker = await operator(db, "lu.admin", "admin")
    async with ops_client(db, settings) as http:
        created = await http.post("/ops/v1/operators", headers=maker,
                                  json={"name": "new.review", "roles": ["reviewer"],
                                        "reason": "新入职审核员"})
        assert created.status_code == 201, created.text
        assert created.json()["roles"] == []
        approval_id = created.json()["pending_approval_id"]
        issued = await http.post("/ops/v1/operators/new.review/tokens", headers=maker, json={})
        token = {"Authorization": f"Bearer {issued.json()['token']}"}
        assert (await http.get("/ops/v1/merchants", headers=token)).status_code == 403
        ok = await http.post(f"/ops/v1/approvals/{approval_id}/approve", headers=checker)
        assert ok.json()["status"] == "APPROVED", ok.text
        assert (await http.get("/ops/v1/merchants", headers=token)).status_code == 200
        no_reason = await http.post("/ops/v1/operators", headers=maker,
                                    json={"name": "other.review", "roles": ["reviewer"]})
        assert _code(no_reason) == (400, "VALIDATION_ERROR")


async def test_removing_a_role_runs_at_once_and_break_glass_acts_alone(
        db: Database, settings: Settings) -> None:
    admin = await operator(db, "ye.admin", "admin")
    await operator(db, "bo.ops", "finance", "risk")
    async with ops_client(db, settings) as http:
        removed = await http.put("/ops/v1/operators/bo.ops/roles", headers=admin,
                                 json={"roles": ["risk"]})
        assert removed.status_code == 200, removed.text
        assert removed.json()["roles"] == ["risk"]
        glass = await http.put("/ops/v1/operators/bo.ops/roles", headers=BOOTSTRAP,
                               json={"roles": ["risk", "admin"]})
        assert glass.status_code == 200, glass.text
    assert await _roles(db, "bo.ops") == ["admin", "risk"]
