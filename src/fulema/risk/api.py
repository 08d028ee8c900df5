"""The risk operator API (/ops/v1/risk): rules and lists, decisions, alerts and their actions,
cases, the daily scoring. Every route needs the operator token and the `risk` role; every
change is audited (`core.audit`) by the service it calls."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from fulema.core.db import Database
from fulema.core.errors import ErrorCode as E
from fulema.core.errors import FulemaError
from fulema.core.web import OperatorRoute, error_responses, get_db, require_role
from fulema.risk import alerts, analysis, cases, rules, service
from fulema.risk.schemas import (
    AlertOut,
    CaseCloseBody,
    CaseOpenBody,
    CaseOut,
    ChangedOut,
    DecisionOut,
    ListEntryBody,
    ListEntryOut,
    ReasonBody,
    RuleBody,
    RuleListOut,
    RuleOut,
    ScoringOut,
    ValidateOut,
)

router = APIRouter(prefix="/ops/v1/risk", tags=["operations: risk"], route_class=OperatorRoute)

Operator = Annotated[str, Depends(require_role("risk"))]
Db = Annotated[Database, Depends(get_db)]
Limit = Annotated[int, Query(ge=1, le=200)]


# --- rules and lists -------------------------------------------------------------------------


@router.get("/rules", summary="Every rule (current versions) and the rule set's version")
async def list_rules(db: Db, _: Operator) -> RuleListOut:
    await rules.install_defaults(db)
    return RuleListOut(ruleset_version=await rules.current_version(db),
                       data=[RuleOut.model_validate(r) for r in await rules.list_rules(db)])


@router.post("/rules/validate", summary="Check a rule without saving it",
             responses=error_responses(E.RISK_RULE_INVALID))
async def validate_rule(body: RuleBody, db: Db, _: Operator) -> ValidateOut:
    await rules.install_defaults(db)
    rule = await rules.validate(db, body.rule, enabled=body.enabled)
    return ValidateOut(valid=True, id=rule.id)


@router.put("/rules", summary="Create a rule or write its next version (effective within "
            "a second in every process)",
            responses=error_responses(E.RISK_RULE_INVALID, E.RISK_RULE_CONFLICT))
async def save_rule(body: RuleBody, db: Db, operator: Operator) -> RuleOut:
    view = await rules.save_rule(db, body=body.rule, enabled=body.enabled, operator=operator,
                                 expected_version=body.expected_version)
    return RuleOut.model_validate(view)


@router.post("/rules/{rule_id}/disable", summary="Disable a rule (a new version)",
             responses=error_responses(E.RISK_RULE_NOT_FOUND, E.RISK_RULE_INVALID))
async def disable_rule(rule_id: str, db: Db, operator: Operator) -> RuleOut:
    return RuleOut.model_validate(await rules.set_enabled(db, rule_id=rule_id, enabled=False,
                                                          operator=operator))


@router.post("/rules/{rule_id}/enable", summary="Enable a rule (a new version)",
             responses=error_responses(E.RISK_RULE_NOT_FOUND, E.RISK_RULE_INVALID))
async def enable_rule(rule_id: str, db: Db, operator: Operator) -> RuleOut:
    return RuleOut.model_validate(await rules.set_enabled(db, rule_id=rule_id, enabled=True,
                                                          operator=operator))


@router.get("/rules/{rule_id}/versions", summary="Every version of a rule",
            responses=error_responses(E.RISK_RULE_NOT_FOUND))
async def rule_versions(rule_id: str, db: Db, _: Operator) -> dict[str, object]:
    return {"data": await rules.rule_versions(db, rule_id=rule_id)}


@router.get("/lists/{list_name}", summary="A list's entries")
async def list_entries(list_name: str, db: Db, _: Operator) -> dict[str, list[ListEntryOut]]:
    return {"data": [ListEntryOut.model_validate(e)
                     for e in await rules.list_entries(db, list_name=list_name)]}


@router.post("/lists/{list_name}", summary="Add to a list (blacklists, whitelists)",
             responses=error_responses(E.VALIDATION_ERROR, E.RISK_RULE_INVALID))
async def add_to_list(list_name: str, body: ListEntryBody, db: Db, operator: Operator
                      ) -> ChangedOut:
    return ChangedOut(changed=await rules.add_to_list(
        db, list_name=list_name, value=body.value, reason=body.reason, operator=operator))


# `:path`: an IP range's slash is part of the value (`/lists/ip-blacklist/10.0.0.0/8`)
@router.delete("/lists/{list_name}/{value:path}", summary="Remove from a list",
               responses=error_responses(E.RISK_RULE_INVALID))
async def remove_from_list(list_name: str, value: str, db: Db, operator: Operator) -> ChangedOut:
    return ChangedOut(changed=await rules.remove_from_list(db, list_name=list_name, value=value,
                                                           operator=operator))


# --- decisions and alerts --------------------------------------------------------------------


@router.get("/decisions", summary="Decisions with the rules that fired, newest first")
async def list_decisions(db: Db, _: Operator, merchant_id: str | None = None,
                         out_no: str | None = None, outcome: str | None = None,
                         limit: Limit = 50) -> dict[str, list[DecisionOut]]:
    rows = await service.list_decisions(db, merchant_id=merchant_id, out_no=out_no,
                                        outcome=outcome, limit=limit)
    return {"data": [DecisionOut.model_validate(r) for r in rows]}


@router.get("/alerts", summary="Alerts, newest first")
async def list_alerts(db: Db, _: Operator, status: str | None = None,
                      merchant_id: str | None = None, limit: Limit = 50
                      ) -> dict[str, list[AlertOut]]:
    found = await alerts.list_alerts(db, status=status, merchant_id=merchant_id, limit=limit)
    return {"data": [AlertOut.model_validate(a) for a in found]}


@router.post("/alerts/{alert_id}/acknowledge", summary="Acknowledge an alert",
             responses=error_responses(E.RISK_ALERT_NOT_FOUND))
async def acknowledge(alert_id: str, db: Db, operator: Operator) -> AlertOut:
    return AlertOut.model_validate(await alerts.acknowledge(db, alert_id=alert_id,
                                                            operator=operator))


@router.post("/merchants/{merchant_id}/freeze", summary="Freeze the merchant (payments refused)",
             responses=error_responses(E.MERCHANT_NOT_FOUND, E.ILLEGAL_STATE_TRANSITION))
async def freeze(merchant_id: str, body: ReasonBody, db: Db, operator: Operator) -> ChangedOut:
    await service.freeze_merchant(db, merchant_id=merchant_id, reason=body.reason,
                                  operator=operator)
    return ChangedOut(changed=True)


@router.post("/merchants/{merchant_id}/hold-settlement",
             summary="Hold the merchant's settlement (payments go on, payouts wait)",
             responses=error_responses(E.MERCHANT_NOT_FOUND, E.VALIDATION_ERROR))
async def hold(merchant_id: str, body: ReasonBody, db: Db, operator: Operator) -> ChangedOut:
    await service.hold_settlement(db, merchant_id=merchant_id, reason=body.reason,
                                  operator=operator)
    return ChangedOut(changed=True)


# --- cases and scoring -----------------------------------------------------------------------


@router.get("/cases", summary="Cases, newest first")
async def list_cases(db: Db, _: Operator, status: str | None = None,
                     merchant_id: str | None = None, limit: Limit = 50
                     ) -> dict[str, list[CaseOut]]:
    found = await cases.list_cases(db, status=status, merchant_id=merchant_id, limit=limit)
    return {"data": [CaseOut.model_validate(c) for c in found]}


@router.post("/cases", status_code=201, summary="Open a case by hand (or join the open one)",
             responses=error_responses(E.MERCHANT_NOT_FOUND))
async def open_case(body: CaseOpenBody, db: Db, operator: Operator) -> CaseOut:
    return CaseOut.model_validate(await cases.open_case(
        db, merchant_id=body.merchant_id, summary=body.summary, operator=operator))


@router.get("/cases/{case_id}", summary="A case", responses=error_responses(E.RISK_CASE_NOT_FOUND))
async def get_case(case_id: str, db: Db, _: Operator) -> CaseOut:
    return CaseOut.model_validate(await cases.get_case(db, case_id=case_id))


@router.post("/cases/{case_id}/investigate", summary="Take the case (open -> investigating)",
             responses=error_responses(E.RISK_CASE_NOT_FOUND, E.ILLEGAL_STATE_TRANSITION))
async def investigate(case_id: str, db: Db, operator: Operator) -> CaseOut:
    return CaseOut.model_validate(await cases.investigate(db, case_id=case_id, operator=operator))


@router.post("/cases/{case_id}/close", summary="Close as fraud (optionally freeze, hold "
             "settlement and blacklist in one step) or as no fraud",
             responses=error_responses(E.RISK_CASE_NOT_FOUND, E.ILLEGAL_STATE_TRANSITION,
                                       E.VALIDATION_ERROR, E.MERCHANT_NOT_FOUND))
async def close_case(case_id: str, body: CaseCloseBody, db: Db, operator: Operator) -> CaseOut:
    view = await cases.close(db, case_id=case_id, fraud=body.verdict == "fraud",
                             resolution=body.resolution, operator=operator, freeze=body.freeze,
                             hold_settlement=body.hold_settlement, blacklist=body.blacklist)
    return CaseOut.model_validate(view)


@router.post("/scoring/run", summary="Run the daily scoring now (it also runs once a day)")
async def run_scoring(db: Db, _: Operator) -> ScoringOut:
    done = await analysis.run_daily_scoring(db)
    return ScoringOut(**{**asdict(done), "top": list(done.top)})


@router.get("/merchants/{merchant_id}/scores", summary="The merchant's recent daily scores")
async def merchant_scores(merchant_id: str, db: Db, _: Operator) -> dict[str, object]:
    if not merchant_id:
        raise FulemaError(E.VALIDATION_ERROR)
    return {"data": await analysis.scores_for(db, merchant_id=merchant_id)}
