"""Clearing and settlement: cycles, the business-day calendar, batches, payouts, statements."""
