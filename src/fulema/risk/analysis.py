"""The daily analysis job (事后分析): scores every merchant with payments in the last
`HISTORY_DAYS` from the monitor's transactions, stores the scores, and opens (or joins) a case
for the top scores. Run again on the same day it rewrites that day's scores and opens nothing
twice (a merchant's case in progress is reused)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import FulemaError
from fulema.merchants import service as merchants
from fulema.risk.cases import open_case_in
from fulema.risk.models import RiskScore, RiskTxn
from fulema.risk.scoring import Txn, category_tickets, features, score

HISTORY_DAYS = 90
TOP = 20
MIN_SCORE = 400
BEIJING = timedelta(hours=8)


@dataclass(frozen=True)
class ScoringRun:
    day: str
    scored: int
    cases_opened: int
    top: tuple[tuple[str, int], ...]


async def run_daily_scoring(db: Database, *, top: int = TOP, min_score: int = MIN_SCORE
                            ) -> ScoringRun:
    now = clock.now()
    day = (now + BEIJING).strftime("%Y%m%d")
    async with db.transaction() as s:
        rows = list(await s.scalars(select(RiskTxn).where(
            RiskTxn.at >= now - timedelta(days=HISTORY_DAYS))))
    by_merchant: dict[str, list[Txn]] = defaultdict(list)
    for r in rows:
        by_merchant[r.merchant_id].append(Txn(merchant_id=r.merchant_id, payer_id=r.payer_id,
                                              amount_fen=r.amount_fen,
                                              refunded_fen=r.refunded_fen, at=r.at))
    mcc_of: dict[str, str] = {}
    for mid in by_merchant:
        try:
            mcc_of[mid] = (await merchants.check_merchant(db, merchant_id=mid)).mcc
        except FulemaError:
            mcc_of[mid] = ""
    tickets = category_tickets(by_merchant, mcc_of)
    scored: list[tuple[str, int, dict[str, float]]] = []
    for mid, txns in by_merchant.items():
        f = features(txns, category_ticket_fen=tickets.get(mcc_of[mid], 0.0))
        scored.append((mid, score(f), f.as_dict()))
    scored.sort(key=lambda x: -x[1])
    opened = 0
    async with db.transaction() as s:
        for mid, value, feats in scored:
            row = await s.get(RiskScore, (mid, day))
            if row is None:
                s.add(RiskScore(merchant_id=mid, day=day, score=value, features=feats))
            else:
                row.score, row.features = value, feats
        for mid, value, feats in scored[:top]:
            if value < min_score:
                break
            strongest = max((k for k in feats if k.endswith(("share", "ratio"))),
                            key=lambda k: feats[k])
            _cid, new = await open_case_in(s, merchant_id=mid, source="scoring", score=value,
                                           summary=f"daily score {value} ({strongest} "
                                                   f"{feats[strongest]:.2f})")
            opened += new
    return ScoringRun(day=day, scored=len(scored), cases_opened=opened,
                      top=tuple((m, v) for m, v, _f in scored[:top]))


async def scores_for(db: Database, *, merchant_id: str) -> list[dict[str, object]]:
    async with db.transaction() as s:
        rows = await s.scalars(select(RiskScore).where(RiskScore.merchant_id == merchant_id)
                               .order_by(RiskScore.day.desc()).limit(30))
        return [{"day": r.day, "score": r.score, "features": r.features} for r in rows]
