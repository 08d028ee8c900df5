"""The marketing context's public service: what payments, points, the web cashier and the API
call (`from fulema.marketing import service as marketing`). A facade over one module per
subject:

- `quoting`   the best discount for an order (or the payer's pick), signed into a quote,
              or chosen inside the order's own transaction (`best_in`)
- `budget`    verify a quote and reserve it in the order's transaction; split a refund
              between cash and each discount
- `settlement` settle reservations on payment events, one event or a round of them
- `campaigns` operator use cases and per-day figures
- `coupons`   templates, claim and grant (also on events), revoke, expiry
- `demo_seed` the demo merchant's campaign and coupon template (development only)
"""

from __future__ import annotations

from fulema.marketing.budget import points_multiplier, refund_split, reserve, verify
from fulema.marketing.campaigns import create as create_campaign
from fulema.marketing.campaigns import list_campaigns, stats
from fulema.marketing.campaigns import move as move_campaign
from fulema.marketing.coupons import (
    create_template,
    expire_coupons,
    issue,
    list_for_payer,
    revoke,
)
from fulema.marketing.demo_seed import DemoMarketing, seed_demo_marketing
from fulema.marketing.quotes import Quote
from fulema.marketing.quoting import Picks, best_in, key_of, no_discount_quote, quote
from fulema.marketing.settlement import on_paid, on_paid_after_close, on_refund, on_unpaid

__all__ = [
    "DemoMarketing",
    "Picks",
    "Quote",
    "best_in",
    "create_campaign",
    "create_template",
    "expire_coupons",
    "issue",
    "key_of",
    "list_campaigns",
    "list_for_payer",
    "move_campaign",
    "no_discount_quote",
    "on_paid",
    "on_paid_after_close",
    "on_refund",
    "on_unpaid",
    "points_multiplier",
    "quote",
    "refund_split",
    "reserve",
    "revoke",
    "seed_demo_marketing",
    "stats",
    "verify",
]
