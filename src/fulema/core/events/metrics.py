"""Prometheus figures per consumer: what an operator alerts on."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LAG = Gauge("fulema_event_consumer_lag", "Events sequenced but not yet handled by the consumer",
            ["consumer"])
BLOCKED = Gauge("fulema_event_consumer_blocked",
                "1 while a STOP consumer is stuck at an event it failed max_attempts times",
                ["consumer"])
DEAD_LETTERS = Counter("fulema_event_dead_letters_total", "Events set aside as dead letters",
                       ["consumer"])
DELIVERED = Counter("fulema_event_deliveries_total", "Events a consumer's handler took",
                    ["consumer"])
