"""The message center's typed views: what its services return and its API answers, one type
each (ARCHITECTURE.md: services return pydantic views, so the OpenAPI document describes
every answer)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

DeliveryStatus = Literal["QUEUED", "SENT", "FAILED", "DEAD"]


class DeliveryOut(BaseModel):
    """One SMS or push message of the delivery log (`message_deliveries`)."""

    delivery_id: str
    event_id: str
    event: str
    merchant_id: str
    channel: Literal["sms", "push"]
    recipient: str = Field(description="Masked phone or push target")
    text: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    provider_ref: str | None
    sent_at: datetime | None
    created_at: datetime
