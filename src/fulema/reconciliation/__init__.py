"""Reconciliation: channel statements imported in their own formats, matched against our
payments and refunds, discrepancies found and worked through (see docs/reconciliation.md)."""
