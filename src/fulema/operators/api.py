"""Operator endpoints for operators themselves (/ops/v1/operators, admin), four-eyes approvals
(/ops/v1/approvals) and the audit trail (/ops/v1/audit, admin). Thin over `service`,
`core.approvals` and `core.audit`; every change is audited by the layer below."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel

from fulema.core import approvals, audit
from fulema.core.approvals import ApprovalAction, ApprovalOut, ApprovalStatus
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode as E
from fulema.core.errors import FulemaError
from fulema.core.web import (
    ROLES,
    OperatorRoute,
    error_responses,
    get_db,
    get_settings,
    operator_identity,
    require_role,
)
from fulema.operators import domain, four_eyes, passwords, service
from fulema.operators.domain import OperatorStatus
from fulema.operators.schemas import (
    ApprovalListOut,
    ApproveBody,
    AuditPageOut,
    AuditRecordOut,
    IssuedTokenOut,
    OperatorBody,
    OperatorListOut,
    OperatorOut,
    PasswordBody,
    RejectBody,
    RolesBody,
    TokenBody,
    TokenListOut,
    TokenOut,
)

router = APIRouter(prefix="/ops/v1", tags=["operations: operators"], route_class=OperatorRoute)

Admin = Annotated[str, Depends(require_role("admin"))]
Anyone = Annotated[str, Depends(require_role(*ROLES))]
Db = Annotated[Database, Depends(get_db)]
Conf = Annotated[Settings, Depends(get_settings)]
Name = Annotated[str, Query(max_length=40)]


def _actions(request: Request) -> dict[str, ApprovalAction]:
    declared: dict[str, ApprovalAction] = request.app.state.approval_actions
    return declared


Actions = Annotated[dict[str, ApprovalAction], Depends(_actions)]


# --- operators ---------------------------------------------------------------------------------


@router.post("/operators", status_code=201,
             summary="Create an operator (no token yet); its roles wait for a second admin",
             responses=error_responses(E.OPERATOR_EXISTS, E.VALIDATION_ERROR))
async def create_operator(body: OperatorBody, request: Request, db: Db, settings: Conf,
                          actor: Admin) -> OperatorOut:
    """A named admin creates the operator without roles and asks for them (four eyes:
    `operators.four_eyes`); `pending_approval_id` names the request. Break glass acts alone."""
    alone = operator_identity(request).break_glass
    if not alone:
        _reason_required(body.reason)
    view = await service.create_operator(db, name=body.name, display_name=body.display_name,
                                         roles=list(body.roles) if alone else [], actor=actor,
                                         reserved=(settings.operator_bootstrap_name,))
    out = OperatorOut.model_validate(view)
    if not alone:
        asked = await _ask_roles(db, name=body.name, roles=list(body.roles), before=[],
                                 reason=body.reason, actor=actor)
        out.pending_approval_id = asked.id
    return out


@router.get("/operators", summary="Every operator, by name")
async def list_operators(db: Db, _: Admin) -> OperatorListOut:
    return OperatorListOut(data=[OperatorOut.model_validate(o)
                                 for o in await service.list_operators(db)])


@router.get("/operators/{name}", summary="One operator",
            responses=error_responses(E.OPERATOR_NOT_FOUND))
async def get_operator(name: str, db: Db, _: Admin) -> OperatorOut:
    return OperatorOut.model_validate(await service.get_operator(db, name=name))


@router.put("/operators/{name}/roles", response_model=OperatorOut,
            summary="Replace an operator's roles: a grant waits for a second admin (202)",
            responses={**error_responses(E.OPERATOR_NOT_FOUND, E.VALIDATION_ERROR),
                       202: {"model": ApprovalOut,
                             "description": "A grant, waiting for a different admin "
                                            "(POST /ops/v1/approvals/{id}/approve)"}})
async def set_roles(name: str, body: RolesBody, request: Request, db: Db,
                    actor: Admin) -> Response:
    """Removing roles runs at once; adding any role is asked of a second admin (four eyes),
    who may not be the operator the roles are for. Break glass acts alone."""
    before = await service.current_roles(db, name=name)
    if operator_identity(request).break_glass or not domain.granted(before, body.roles):
        view = await service.set_roles(db, name=name, roles=list(body.roles), actor=actor)
        return _answer(OperatorOut.model_validate(view))
    _reason_required(body.reason)
    asked = await _ask_roles(db, name=name, roles=list(body.roles), before=sorted(before),
                             reason=body.reason, actor=actor)
    return _answer(ApprovalOut.model_validate(asked), 202)


def _reason_required(reason: str | None) -> None:
    if not (reason or "").strip():
        raise FulemaError(E.VALIDATION_ERROR, "reason: required to grant roles (four eyes)")


async def _ask_roles(db: Database, *, name: str, roles: list[str], before: list[str],
                     reason: str | None, actor: str) -> approvals.ApprovalView:
    domain.check_roles(roles)
    return await approvals.request(
        db, kind=four_eyes.SET_ROLES, target_type="operator", target_id=name,
        params={"name": name, "roles": sorted(set(roles))},
        summary={"from": before, "to": sorted(set(roles)),
                 "granted": domain.granted(set(before), roles)},
        reason=reason, requested_by=actor)


def _answer(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status_code,
                    media_type="application/json")


@router.post("/operators/{name}/disable", summary="Disable an operator: its tokens stop at once",
             responses=error_responses(E.OPERATOR_NOT_FOUND, E.VALIDATION_ERROR))
async def disable_operator(name: str, db: Db, actor: Admin) -> OperatorOut:
    return OperatorOut.model_validate(
        await service.set_status(db, name=name, status=OperatorStatus.DISABLED, actor=actor))


@router.post("/operators/{name}/enable", summary="Enable a disabled operator again",
             responses=error_responses(E.OPERATOR_NOT_FOUND))
async def enable_operator(name: str, db: Db, actor: Admin) -> OperatorOut:
    return OperatorOut.model_validate(
        await service.set_status(db, name=name, status=OperatorStatus.ACTIVE, actor=actor))


@router.put("/operators/{name}/password", status_code=204,
            summary="Set an operator's console password (ends its console sessions)",
            responses=error_responses(E.OPERATOR_NOT_FOUND, E.VALIDATION_ERROR))
async def set_password(name: str, body: PasswordBody, db: Db, actor: Admin) -> None:
    await passwords.set_password(db, name=name, password=body.password, actor=actor)


@router.post("/operators/{name}/tokens", status_code=201,
             summary="Issue an API token; the token is in this answer only",
             responses=error_responses(E.OPERATOR_NOT_FOUND, E.VALIDATION_ERROR))
async def issue_token(name: str, db: Db, actor: Admin,
                      body: TokenBody | None = None) -> IssuedTokenOut:
    body = body or TokenBody()
    issued = await service.issue_token(db, name=name, label=body.label, actor=actor,
                                       expires_in_days=body.expires_in_days)
    return IssuedTokenOut(**asdict(issued.info), token=issued.token)


@router.get("/operators/{name}/tokens", summary="An operator's tokens (never the secrets)",
            responses=error_responses(E.OPERATOR_NOT_FOUND))
async def list_tokens(name: str, db: Db, _: Admin) -> TokenListOut:
    return TokenListOut(data=[TokenOut.model_validate(t)
                              for t in await service.list_tokens(db, name=name)])


@router.post("/operators/{name}/tokens/{token_id}/revoke", summary="Revoke a token for good",
             responses=error_responses(E.OPERATOR_NOT_FOUND, E.OPERATOR_TOKEN_NOT_FOUND))
async def revoke_token(name: str, token_id: str, db: Db, actor: Admin) -> TokenOut:
    return TokenOut.model_validate(
        await service.revoke_token(db, name=name, token_id=token_id, actor=actor))


# --- four eyes -----------------------------------------------------------------------------------


@router.get("/approvals", summary="Approval requests, oldest first (cursor: starting_after)")
async def list_approvals(db: Db, _: Anyone,
                         status: ApprovalStatus | None = ApprovalStatus.PENDING,
                         limit: Annotated[int, Query(ge=1, le=100)] = 50,
                         starting_after: Annotated[str | None, Query(max_length=40)] = None
                         ) -> ApprovalListOut:
    rows = await approvals.list_requests(db, status=status, limit=limit,
                                         starting_after=starting_after)
    return ApprovalListOut(data=[ApprovalOut.model_validate(r) for r in rows])


@router.get("/approvals/{approval_id}", summary="One approval request",
            responses=error_responses(E.APPROVAL_NOT_FOUND))
async def get_approval(approval_id: str, db: Db, _: Anyone) -> ApprovalOut:
    return ApprovalOut.model_validate(await approvals.get(db, approval_id=approval_id))


_DECIDE = (E.APPROVAL_NOT_FOUND, E.APPROVAL_NOT_PENDING, E.APPROVAL_OWN_REQUEST,
           E.OPERATOR_FORBIDDEN)


@router.post("/approvals/{approval_id}/approve",
             summary="Approve (another operator than the one who asked): the action runs now",
             responses=error_responses(*_DECIDE, E.MERCHANT_NOT_FOUND, E.MERCHANT_CLOSED,
                                       E.ILLEGAL_STATE_TRANSITION, E.VALIDATION_ERROR))
async def approve(approval_id: str, request: Request, db: Db, actions: Actions, _: Anyone,
                  body: ApproveBody | None = None) -> ApprovalOut:
    me = operator_identity(request)
    view = await approvals.approve(db, actions, approval_id=approval_id, approver=me.name,
                                   approver_roles=me.roles, note=body.note if body else None)
    return ApprovalOut.model_validate(view)


@router.post("/approvals/{approval_id}/reject", summary="Reject: nothing runs",
             responses=error_responses(*_DECIDE))
async def reject(approval_id: str, body: RejectBody, request: Request, db: Db, actions: Actions,
                 _: Anyone) -> ApprovalOut:
    me = operator_identity(request)
    view = await approvals.reject(db, actions, approval_id=approval_id, approver=me.name,
                                  approver_roles=me.roles, reason=body.reason)
    return ApprovalOut.model_validate(view)


# --- the audit trail -----------------------------------------------------------------------------


@router.get("/audit", summary="Search the audit trail, newest first (cursor: starting_after)")
async def search_audit(db: Db, actor_name: Admin,
                       actor: Name | None = None,
                       action: Annotated[str | None, Query(max_length=64)] = None,
                       target_type: Annotated[str | None, Query(max_length=32)] = None,
                       target_id: Annotated[str | None, Query(max_length=64)] = None,
                       since: AwareDatetime | None = None,
                       until: AwareDatetime | None = None,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50,
                       starting_after: Annotated[str | None, Query(max_length=40)] = None
                       ) -> AuditPageOut:
    rows = await audit.search(db, actor=actor, action=action, target_type=target_type,
                              target_id=target_id, since=since, until=until, limit=limit + 1,
                              starting_after=starting_after)
    await audit.record_alone(db, actor=actor_name, action="audit.search", target_type="audit",
                             target_id="-", detail={k: v for k, v in {
                                 "actor": actor, "action": action, "target_type": target_type,
                                 "target_id": target_id}.items() if v is not None})
    return AuditPageOut(data=[AuditRecordOut.model_validate(r) for r in rows[:limit]],
                        has_more=len(rows) > limit)
