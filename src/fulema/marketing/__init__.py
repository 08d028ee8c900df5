"""Marketing: campaigns, coupons, quotes and budgets (see docs/marketing.md)."""
