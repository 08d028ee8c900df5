"""The burst benchmark at tiny sizes on SQLite: it must produce its whole report, the limits
must really refuse part of the burst, and no answered order may be missing (or refused and
written anyway). Nothing here asserts a timing: the figures belong to docs/operations.md."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from bench.burst import QUICK, choose_limits, main, parse_shape, run
from bench.burst_report import per_second, recovered_after, render
from bench.burst_sizing import Budget, Costs, cpu_limits

from bench import front

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


def test_the_cpu_rule_sizes_the_limits_from_the_cost_of_a_create_and_the_cores() -> None:
    # 5 ms in the API process, 2 ms in the worker; at half of one core and half of half a
    # core: 100/s and 125/s, so C = 100/s; B usually sends 20/s
    costs = Costs(rate=20.0, creates=200, api_ms=5.0, worker_ms=2.0, p99_ms=40.0)
    limits, derivation = cpu_limits(costs, Budget(), usual=20.0, ip_factor=1.25)
    assert limits.app_rate == 80.0  # what B's usual rate leaves of C
    assert limits.app_burst == 40  # half a second of it
    assert limits.ip_rate == 100.0
    assert limits.global_rate == 128.0  # per IP 100 + 1.4 x B's 20: above what passes
    assert any("C = 100.0" in line for line in derivation)
    # two processes carry twice; the worker then decides
    limits, _ = cpu_limits(costs, Budget(), usual=20.0, processes=2)
    assert limits.app_rate == 125.0 - 20.0


def test_a_merchant_is_never_limited_below_its_usual_peak() -> None:
    costs = Costs(rate=20.0, creates=200, api_ms=20.0, worker_ms=None, p99_ms=40.0)
    limits, derivation = cpu_limits(costs, Budget(), usual=20.0)  # C = 25/s: too little
    assert limits.app_rate == 28.0  # 1.4 x 20
    assert any("cannot carry" in line for line in derivation)


def test_a_shape_names_its_changes() -> None:
    assert parse_shape("nginx") == ("nginx", {})
    assert parse_shape("nginx+burst=0.05+conn=1") == ("nginx", {"burst": 0.05, "conn": 1.0})
    assert parse_shape("none+burst=0.1") == ("none", {"burst": 0.1})
    assert parse_shape("nginx+share=0.35") == ("nginx", {"share": 0.35})
    for bad in ("nginx+colour=red", "none+conn=1", "haproxy", "nginx+burst"):
        with pytest.raises(ValueError, match=r"nginx|change"):
            parse_shape(bad)


def test_recovery_is_the_first_second_from_which_every_second_is_good() -> None:
    timeline: list[list[float]] = [[0.1, 0.9, 200], [0.5, 0.01, 429], [1.2, 0.2, 200],
                                   [2.3, 0.05, 200], [3.4, 0.06, 200]]
    seconds = per_second(timeline)
    assert [s["ok"] for s in seconds] == [1, 1, 1, 1]
    assert seconds[0]["refused"] == 1
    assert recovered_after(seconds, 100.0) == 2.0  # second 1 is still slow (200 ms)
    assert recovered_after(seconds, 1000.0) == 1.0  # second 0 had a refusal
    assert recovered_after(seconds, 10.0) is None


@pytest.mark.skipif(front.nginx_binary() is None, reason=front.NGINX_MISSING)
async def test_tiny_burst_through_the_nginx_front_is_refused_there_and_loses_nothing(
        tmp_path: Path) -> None:
    plan = TINY.__class__(**{**TINY.__dict__, "fronts": ("none", "nginx")})
    results = await run(plan=plan, db="sqlite", out_dir=tmp_path, log=False)
    assert list(results["shapes"]) == ["none", "nginx"]
    through = results["shapes"]["nginx"]
    burst = through["analysis"]["burst"]
    assert burst["refused"] > 0, "10x the sustainable rate must meet the front's limit"
    assert set(burst["error_kinds"]) <= {"429 RATE_LIMITED", "503 OVERLOADED"}
    assert through["front_refusals"]["front"] > 0  # refused by nginx, before Python
    assert through["analysis"]["lost"] == 0, through["lost_check"]
    assert through["front_cpu"]["cores_busy"] >= 0
    assert results["analysis"] == results["shapes"]["none"]["analysis"]
    assert "nginx front" in render(results)


@pytest.mark.parametrize("share", ["0", "-0.1", "0.6"])
def test_a_usual_rate_outside_what_the_bench_can_mean_is_refused_before_anything_runs(
        share: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--normal-share", share])
    assert stopped.value.code == 2
    assert "--normal-share" in capsys.readouterr().err
