"""The payments context's public service: what other contexts, the API and the jobs call
(`from fulema.payments import service as payments`).

A thin facade over one module per use case, so a caller has one import and a reader finds
each use case in a file of its own:

- `orders_create`  check, record (idempotent per out_trade_no), hand to the channel
- `orders_channel` the channel step: create at the channel, or charge a payer code
- `orders_apply`   apply what a channel says (answer, callback, query) to an order
- `orders_query`   the merchant's query and the payer's result page
- `orders_close`   close an unpaid order at the channel, then here
- `orders_state`   the one path for state changes (ORM `record`, Core `ACCEPT`)
- `views`          rows into typed views (`schemas.*Out`) and event payloads

- `exports`        a channel's day as two CSV tables, for reconciliation

Refunds and merchant notifications are `refunds` and `notifications`.
"""

from __future__ import annotations

from fulema.payments.deps import Deps
from fulema.payments.exports import (
    PAY_COLUMNS,
    REFUND_COLUMNS,
    ChannelRecords,
    export_channel_day,
    lookup_records,
)
from fulema.payments.orders_apply import apply_trade_result, sync_with_channel
from fulema.payments.orders_close import close_order
from fulema.payments.orders_create import NewOrder, create_order
from fulema.payments.orders_query import get_order, order_by_id, query_order
from fulema.payments.refunds import create_refund

__all__ = [
    "PAY_COLUMNS",
    "REFUND_COLUMNS",
    "ChannelRecords",
    "Deps",
    "NewOrder",
    "apply_trade_result",
    "close_order",
    "create_order",
    "create_refund",
    "export_channel_day",
    "get_order",
    "lookup_records",
    "order_by_id",
    "query_order",
    "sync_with_channel",
]
