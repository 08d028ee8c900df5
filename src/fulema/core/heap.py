"""The process's heap after startup, out of the cyclic collector's sight.

A full (generation 2) collection scans every tracked object. With everything startup built in
it (the app, SQLAlchemy's compiled machinery, pydantic's validators, settings, keys) one took
90-260 ms in a platform process under the speaker benchmark and stalled every loop of it, the
announcements included. What startup built lives as long as the process, so it is frozen
(`gc.freeze`, Python's own tool for this) and a full collection scans only what requests and
rounds make. Processes that build many apps (the test suite) leave it off: frozen cycles are
never collected.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    gc.collect()
    gc.freeze()
