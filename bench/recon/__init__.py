"""Reconciliation benchmark: `python -m bench.recon` (see docs/reconciliation.md)."""
