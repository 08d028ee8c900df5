"""What `fulema gateway nginx-config` writes for given settings: the front's buckets are the
in-process limiter's (rates, bursts, the same endpoint classes), callbacks are never limited,
and what nginx cannot take as is is refused before a file is written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bench import front as bench_front
from fulema.cli import app as cli
from fulema.core.channel_settings import RateLimitSection
from fulema.gateway.front import (
    FrontOptions,
    classify_like_the_front,
    nginx_burst,
    nginx_rate,
    render_nginx,
    retry_after,
)
from fulema.gateway.protection import classify

PREFIXES = ["/", "/api/v1/", "/api/v1/orders", "/api/v1/orders/ord_1/refunds",
            "/api/v1/orders/ord_1", "/pay/", "/pay/q/P1", "/pay/result/ord_1/status",
            "/pay/oauth/wechat/callback", "/callbacks/", "/callbacks/bankpay", "/ops/v1/",
            "/portal/", "/portal/reports.csv", "/healthz", "/metrics", "/bills/v1/billers"]


@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]),
       prefix=st.sampled_from(PREFIXES),
       rest=st.text(alphabet=st.sampled_from(list("ab/.?%\n csv_-")), max_size=12))
def test_the_front_classifies_every_request_as_the_application_does(
        method: str, prefix: str, rest: str) -> None:
    for path in (prefix, prefix + rest):
        assert classify_like_the_front(method, path) == classify(method, path), (method, path)


def test_rates_are_per_minute_and_bursts_count_as_nginx_counts() -> None:
    assert nginx_rate(36.6) == "2196r/m"  # about 0.35 x 104.5/s, to a sixtieth
    assert nginx_rate(0.01) == "1r/m"  # nginx's least
    assert nginx_burst(200) == 199  # burst=b lets b + 1 through at once
    assert nginx_burst(1) == 0
    text = render_nginx(RateLimitSection(app_refund_burst=1), FrontOptions())
    assert "limit_req zone=fulema_app_refund nodelay;" in text  # nginx refuses burst=0


def _blocks(text: str) -> dict[str, str]:
    """Each `location X { ... }` of the file, by X (locations here do not nest)."""
    return {m.group(1): m.group(2) for m in re.finditer(r"location (\S+) \{(.*?)\n    \}",
                                                         text, re.S)}


def test_the_file_carries_the_settings_limits() -> None:
    limits = RateLimitSection(app_create_rate=10, app_create_burst=20, app_query_rate=30,
                              ip_api_rate=12.5, ip_api_burst=25, cashier_ip_rate=1,
                              cashier_ip_burst=20, app_concurrency=16, global_rate=2000)
    text = render_nginx(limits, FrontOptions(upstreams=("10.0.0.5:8000", "10.0.0.6:8000"),
                                             listen="8080", real_ip_from=("10.1.0.0/16",)))
    assert "limit_req_zone $fulema_key_app_create zone=fulema_app_create:10m rate=600r/m;" in text
    assert "limit_req_zone $fulema_key_ip_api zone=fulema_ip_api:10m rate=750r/m;" in text
    assert "limit_req_zone $fulema_key_app_query zone=fulema_app_query:10m rate=1800r/m;" in text
    assert "limit_req zone=fulema_app_create burst=19 nodelay;" in text
    assert "limit_req zone=fulema_ip_api burst=24 nodelay;" in text
    assert "limit_conn fulema_app_conn 64;" in text  # 4 x APP_CONCURRENCY: a ceiling
    for line in ("limit_req_status 429;", "limit_conn_status 429;", "listen 8080;",
                 "server 10.0.0.5:8000;", "server 10.0.0.6:8000;", "keepalive 64;",
                 "keepalive_timeout 4s;",
                 "proxy_http_version 1.1;", 'proxy_set_header Connection "";',
                 "proxy_set_header X-Forwarded-For $remote_addr;",
                 "set_real_ip_from 10.1.0.0/16;", "real_ip_header X-Forwarded-For;"):
        assert line in text, line
    # the app's buckets: app id and address, never the unproven header alone
    assert '"$http_x_fulema_app_id $binary_remote_addr"' in text
    locations = _blocks(text)
    assert "limit_req" not in locations["/callbacks/"]  # a payment a channel reports lands
    assert locations["/"].count("limit_req zone=") == 9
    json_refusal = locations["@fulema_refused_json"]
    assert '"code":"RATE_LIMITED"' in json_refusal
    assert "add_header Retry-After $fulema_retry_after always;" in json_refusal
    assert "text/html" in locations["@fulema_refused_page"]


def test_retry_after_is_one_token_of_the_slowest_bucket() -> None:
    waits = retry_after(RateLimitSection(cashier_ip_rate=0.2, app_refund_rate=0.5),
                        FrontOptions())
    assert waits["cashier"] == 5
    assert waits["refund"] == 2
    assert waits["create"] == 1


def test_fronts_share_the_limits() -> None:
    one = render_nginx(RateLimitSection(app_create_rate=10, app_create_burst=20),
                       FrontOptions(fronts=1))
    two = render_nginx(RateLimitSection(app_create_rate=10, app_create_burst=20),
                       FrontOptions(fronts=2))
    assert "zone=fulema_app_create:10m rate=600r/m;" in one
    assert "zone=fulema_app_create:10m rate=300r/m;" in two
    assert "limit_req zone=fulema_app_create burst=9 nodelay;" in two


def test_the_fronts_app_buckets_may_hold_less_than_the_settings_burst() -> None:
    limits = RateLimitSection(app_create_rate=10, app_create_burst=20, app_query_rate=30,
                              app_query_burst=2, ip_api_rate=12.5, ip_api_burst=25)
    text = render_nginx(limits, FrontOptions(app_burst_seconds=0.1))
    assert "limit_req zone=fulema_app_create nodelay;" in text  # 1 at once: 0.1 s of 10/s
    assert "limit_req zone=fulema_app_query burst=1 nodelay;" in text  # 2: the setting's, less
    assert "limit_req zone=fulema_ip_api burst=24 nodelay;" in text  # not an app's: unchanged
    unchanged = render_nginx(limits, FrontOptions())
    assert "limit_req zone=fulema_app_create burst=19 nodelay;" in unchanged
    result = CliRunner().invoke(
        cli, ["gateway", "nginx-config", "--app-burst-seconds", "0.1"],
        env={"FULEMA_RATELIMIT_APP_CREATE_RATE": "10", "FULEMA_RATELIMIT_APP_CREATE_BURST": "20"})
    assert result.exit_code == 0, result.output
    assert "limit_req zone=fulema_app_create nodelay;" in result.output


def test_limits_off_in_the_settings_are_off_at_the_front() -> None:
    text = render_nginx(RateLimitSection(enabled=False), FrontOptions())
    assert "limit_req zone=" not in text
    assert "limit_conn fulema_app_conn" not in text


@pytest.mark.parametrize("options", [
    {"upstreams": ("127.0.0.1:8000; include /etc/passwd",)},
    {"upstreams": ("127.0.0.1:8000\n",)},  # a new line would be a new directive
    {"listen": "80 default_server; }"},
    {"real_ip_from": ("0.0.0.0/0 ; x",)},
    {"refusal_log": "/var/log/x.log; error_log /dev/null"},
    {"zone_size": "10m;"},
    {"timing_log": "/var/log/t.log; access_log /dev/null"},
    {"upstreams": ()},
    {"fronts": 0},
    {"app_burst_seconds": -1},
])
def test_what_nginx_would_not_take_as_is_is_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each names the value it refused
        FrontOptions(**options)  # type: ignore[arg-type]


def test_the_command_writes_the_file_from_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "fulema.conf"
    result = CliRunner().invoke(
        cli, ["gateway", "nginx-config", "--listen", "8080", "--upstream", "127.0.0.1:9000",
              "-o", str(out)],
        env={"FULEMA_RATELIMIT_APP_CREATE_RATE": "2.5", "FULEMA_RATELIMIT_APP_CREATE_BURST": "5"})
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "zone=fulema_app_create:10m rate=150r/m;" in text
    assert "limit_req zone=fulema_app_create burst=4 nodelay;" in text
    assert "server 127.0.0.1:9000;" in text


def test_the_command_refuses_a_bad_address_without_writing(tmp_path: Path) -> None:
    out = tmp_path / "fulema.conf"
    result = CliRunner().invoke(cli, ["gateway", "nginx-config", "--upstream", "a b",
                                      "-o", str(out)])
    assert result.exit_code == 2
    assert not out.exists()


@pytest.mark.skipif(bench_front.nginx_binary() is None, reason=bench_front.NGINX_MISSING)
@pytest.mark.parametrize("limits", [RateLimitSection(), RateLimitSection(
    app_create_rate=36.575, app_create_burst=18, ip_api_rate=45.7, ip_api_burst=46,
    cashier_ip_rate=0.05, app_concurrency=8, app_refund_burst=1, cashier_plate_burst=1),
    RateLimitSection(app_concurrency=100_000, ip_api_rate=0.1, ip_api_burst=1)])
def test_nginx_accepts_the_file(tmp_path: Path, limits: RateLimitSection) -> None:
    bench_front.write(tmp_path, limits, ["127.0.0.1:9"], port=18999)
    checked: subprocess.CompletedProcess[str] = bench_front.check(tmp_path)
    assert checked.returncode == 0, checked.stderr
