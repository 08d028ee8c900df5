"""The burst benchmark at tiny sizes on SQLite: it must produce its whole report, the limits
must really refuse part of the burst, and no answered order may be missing (or refused and
written anyway). Nothing here asserts a timing: the figures belong to docs/operations.md."""

from __future__ import annotations

from pathlib import Path

import orjson
from bench.burst import QUICK, choose_limits, run
from bench.burst_report import per_second, recovered_after

TINY = QUICK.__class__(**{**QUICK.__dict__, "calibrate": 0.8, "unloaded": 0.8, "burst": 0.8,
                          "recovery": 1.2, "warmup": 0.3})


def _stamp_of(path: Path) -> str:
    return str(orjson.loads(path.read_bytes())["stamp"])


async def test_tiny_burst_on_sqlite_reports_everything_and_loses_nothing(tmp_path: Path
                                                                        ) -> None:
    results = await run(plan=TINY, db="sqlite", out_dir=tmp_path, log=False)
    assert _stamp_of(Path(results["json_path"])) == results["stamp"]
    a = results["analysis"]
    assert results["sustainable_rate"] > 0
    assert set(results["phases"]) == {"A_alone", "B_alone", "A_burst", "B_during",
                                      "A_recovery"}
    assert results["phases"]["B_alone"]["ok"] > 0  # the second merchant's app really works
    burst = a["burst"]
    assert burst["sent"] == burst["accepted"] + burst["refused"] + burst["other_errors"]
    assert burst["accepted"] > 0
    assert burst["refused"] > 0, "10x the sustainable rate must meet the app's limit"
    assert set(burst["error_kinds"]) <= {"429 RATE_LIMITED", "503 OVERLOADED"}
    assert burst["refusal_p50_ms"] is not None
    assert a["lost"] == 0, results["lost_check"]
    assert set(a["recovery"]) >= {"first_good_second", "recovered_after_s", "seconds"}
    for check in results["lost_check"].values():
        assert check["lost"] == check["duplicates"] == check["refused_in_db"] == 0, check
    assert [g["goal"] for g in a["goals"]][2].startswith("accepted but lost")
    assert all(g["met"] in (True, False, None) for g in a["goals"])
    assert results["limiter_cost"]["refused_us"] > 0
    assert set(results["server_cpu"]) >= {"A_alone", "B_alone", "burst"}
    assert len(results["loadavg_before"]) == 3


def test_the_limits_follow_the_measured_rate() -> None:
    plan = QUICK.__class__(**{**QUICK.__dict__, "app_share": 0.5, "ip_factor": 2.0})
    limits = choose_limits(200.0, 0.05, plan)
    assert limits.app_rate == 100.0
    assert limits.app_burst == 50
    assert limits.app_concurrency == 10  # 100/s x 0.05 s x 2
    assert limits.ip_rate == 200.0
    env = limits.env()
    assert env["FULEMA_RATELIMIT_ENABLED"] == "true"
    assert env["FULEMA_RATELIMIT_APP_CREATE_RATE"] == "100.0"


def test_the_default_limits_leave_headroom_and_refuse_before_the_signature() -> None:
    # one merchant at its limit plus the other at its normal rate: 0.6 S; the per-IP limit
    # close to the app's, and the app's limit above a merchant's normal rate
    plan = QUICK
    limits = choose_limits(100.0, 0.05, plan)
    assert limits.app_rate + 100.0 * plan.normal_share == 60.0
    assert limits.app_rate > 100.0 * plan.normal_share
    assert limits.ip_rate == 1.25 * limits.app_rate


def test_recovery_is_the_first_second_from_which_every_second_is_good() -> None:
    timeline: list[list[float]] = [[0.1, 0.9, 200], [0.5, 0.01, 429], [1.2, 0.2, 200],
                                   [2.3, 0.05, 200], [3.4, 0.06, 200]]
    seconds = per_second(timeline)
    assert [s["ok"] for s in seconds] == [1, 1, 1, 1]
    assert seconds[0]["refused"] == 1
    assert recovered_after(seconds, 100.0) == 2.0  # second 1 is still slow (200 ms)
    assert recovered_after(seconds, 1000.0) == 1.0  # second 0 had a refusal
    assert recovered_after(seconds, 10.0) is None
