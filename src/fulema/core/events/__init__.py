"""Domain events: the transactional outbox, the sequencer and the named consumers.

See `outbox` (what is written with each change), `consumers` (who reads, and what a poisoned
event does to each), `dispatcher` (how they are served) and `admin` (what an operator does).
"""

from fulema.core.events.consumers import (
    Consumer,
    ConsumerState,
    DeadLetter,
    EventReceipt,
    Handler,
    Poison,
    Start,
    first_deliveries,
    first_delivery,
    fresh_events,
    receipts_among,
    write_receipts,
)
from fulema.core.events.dispatcher import Dispatcher
from fulema.core.events.outbox import (
    OUTBOX_TABLE,
    ArchivedEvent,
    Event,
    EventStream,
    OutboxEvent,
    outbox_row,
    publish,
    publish_now,
)

__all__ = [
    "OUTBOX_TABLE",
    "ArchivedEvent",
    "Consumer",
    "ConsumerState",
    "DeadLetter",
    "Dispatcher",
    "Event",
    "EventReceipt",
    "EventStream",
    "Handler",
    "OutboxEvent",
    "Poison",
    "Start",
    "first_deliveries",
    "first_delivery",
    "fresh_events",
    "outbox_row",
    "publish",
    "publish_now",
    "receipts_among",
    "write_receipts",
]
