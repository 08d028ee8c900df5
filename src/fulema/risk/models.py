"""Risk tables: rules and their versions, lists, decisions, alerts, cases, and what the monitor
keeps from payment events (transactions, daily figures, scores). Amounts are integer fen
(BigInteger): risk reads them as figures, it never moves money."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, UTCDateTime


class RiskRule(Base):
    """The current version of each rule; `risk_rule_versions` keeps every version."""

    __tablename__ = "risk_rules"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RiskRuleVersion(Base):
    __tablename__ = "risk_rule_versions"

    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean)
    changed_by: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RiskListEntry(Base):
    __tablename__ = "risk_list_entries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    list_name: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(256))
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("list_name", "value", name="uq_risk_list_entries_name_value"),)


class RiskState(Base):
    """One row per key; `ruleset` holds the version every process compares its cache with."""

    __tablename__ = "risk_state"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class RiskDecision(Base):
    __tablename__ = "risk_decisions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    action: Mapped[str] = mapped_column(String(8))  # pay | refund
    merchant_id: Mapped[str] = mapped_column(String(40))
    out_no: Mapped[str] = mapped_column(String(64))  # out_trade_no or out_refund_no
    outcome: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(40))
    fired: Mapped[list[str]] = mapped_column(JSON)
    errors: Mapped[list[str]] = mapped_column(JSON)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))
    way_code: Mapped[str] = mapped_column(String(16))
    ruleset_version: Mapped[int] = mapped_column(BigInteger)
    case_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_risk_decisions_merchant_at", "merchant_id", "created_at"),
        Index("ix_risk_decisions_out_no", "merchant_id", "out_no"),
    )


class RiskAlert(Base):
    __tablename__ = "risk_alerts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    merchant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(16), nullable=True)
    severity: Mapped[str] = mapped_column(String(8))  # info | warning | critical
    summary: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))  # open | acknowledged
    dedupe_key: Mapped[str] = mapped_column(String(160))
    handled_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_risk_alerts_dedupe_key"),
        Index("ix_risk_alerts_status_at", "status", "created_at"),
    )


class RiskCase(Base):
    __tablename__ = "risk_cases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(16))  # review | scoring | alert | manual
    summary: Mapped[str] = mapped_column(String(256))
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(256), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_risk_cases_merchant_status", "merchant_id", "status"),
                      Index("ix_risk_cases_status_opened", "status", "opened_at"))


class RiskTxn(Base):
    """What the monitor keeps of each payment (from payment events) for the daily analysis."""

    __tablename__ = "risk_txns"

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    payer_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_risk_txns_merchant_at", "merchant_id", "at"),)


class RiskDailyStat(Base):
    """Per merchant (scope `merchant`) or channel (scope `channel`) and Beijing day."""

    __tablename__ = "risk_daily_stats"

    scope: Mapped[str] = mapped_column(String(12), primary_key=True)
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    pay_count: Mapped[int] = mapped_column(Integer, default=0)
    pay_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    fail_count: Mapped[int] = mapped_column(Integer, default=0)
    refund_count: Mapped[int] = mapped_column(Integer, default=0)
    refund_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    review_count: Mapped[int] = mapped_column(Integer, default=0)


class RiskScore(Base):
    __tablename__ = "risk_scores"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)  # 0..1000
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
