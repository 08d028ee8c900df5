"""The reconciliation context's public service (`from fulema.reconciliation import service`).

- `reconcile`            a channel's statement for a day: download or given file -> run
- `get_run`, `list_runs`, `report`   runs and their reports (channel, merchant, scenario)
- `list_discrepancies`, `investigate`, `resolve`   the discrepancy workflow (by transaction)
"""

from __future__ import annotations

from fulema.reconciliation.reports import get_run, list_runs, report
from fulema.reconciliation.runs import day_bounds, reconcile
from fulema.reconciliation.workflow import ADJUSTMENT_TOPIC, get, investigate, list_discrepancies, resolve

__all__ = ["ADJUSTMENT_TOPIC", "day_bounds", "get", "get_run", "investigate",
           "list_discrepancies", "list_runs", "reconcile", "report", "resolve"]
