"""The front's configuration: nginx `limit_req`/`limit_conn` written from FULEMA_RATELIMIT_*, so
a burst is refused before it reaches Python.

Why: a refusal in the API process costs 0.36 ms of server CPU before the signature and 0.92 ms
after it (`bench/refusal_cost.py`), so refusing ten times the sustainable rate fills the core
that serves the sustainable rate. nginx refuses in C for a few microseconds. The in-process
limits (`gateway/protection.py`) stay as the second line: they are exact with shared Redis
buckets, they know the signature and the process's pressure, and they still guard a process
that is reached without the front.

The front mirrors the in-process layers it can see without the signature:

- the endpoint class is worked out by the same rules as `protection.classify` (`CLASS_RULES`,
  checked against it by a test), in an nginx `map`;
- the global bucket, the merchant API per source IP, the cashier and OAuth pages per payer IP
  and per QR plate, the result pages' poll per IP, and the app's bucket per endpoint class;
- the app's bucket is keyed by the app id header **and** the source address: the header is
  not yet proven at the front, so a caller naming another merchant's app id spends only a
  bucket of its own address, never that merchant's (a merchant calling from k addresses has
  k times its limit at the front; the in-process bucket, after the signature, stays one);
- the app's concurrency (`limit_conn`) is a ceiling `conn_factor` times the in-process share,
  because nginx cannot see whether the process is pressed (the in-process share bites only
  then: a merchant at its usual rate holds more slots whenever the process slows down);
- channel callbacks, health and metrics are never limited, and refunds already accepted do not
  come through here (jobs and channel callbacks carry them).

A refusal answers 429 with `Retry-After` and the documented error body (`RATE_LIMITED`, with
the request id also sent as `X-Request-Id`); the cashier's pages get the same page in Chinese
and English as the in-process refusal. The template is `deploy/nginx/fulema.conf.j2`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import orjson

from fulema.core.channel_settings import RateLimitSection
from fulema.core.errors import ErrorCode
from fulema.gateway.protection import (
    CALLBACK,
    CASHIER,
    CREATE,
    EXEMPT,
    EXPORT,
    MERCHANT,
    OPS,
    POLL,
    QUERY,
    REFUND,
)

# (regex over "METHOD path", class), first match wins, as in `protection.classify` (and as
# nginx's `map` tries regexes: in order of appearance). Written for Python's `re`; `\Z` (end of
# the string) becomes PCRE's `\z` in the file. `$` is the same in both: the end, or before a
# final newline, as `classify`'s own regexes.
CLASS_RULES: tuple[tuple[str, str], ...] = (
    (r"^\S+ /callbacks/", CALLBACK),
    (r"^GET /pay/result/[^/]+/status$", POLL),
    (r"^\S+ /pay/", CASHIER),
    (r"^POST /api/v1/orders\Z", CREATE),
    (r"^POST /api/v1/orders/[^/]+/refunds$", REFUND),
    (r"^GET /api/v1/", QUERY),
    (r"^\S+ /api/v1/", MERCHANT),
    (r"^\S+ /ops/", OPS),
    (r"^\S+ /portal/(?s:.*)\.csv\Z", EXPORT),
)

# Classes charged to each before-signature bucket, as `Protection.before_auth` charges them.
GLOBAL_CLASSES = (CASHIER, POLL, CREATE, REFUND, QUERY, MERCHANT, OPS, EXPORT)
IP_API_CLASSES = (CREATE, REFUND, QUERY, MERCHANT, EXPORT)
APP_CLASSES = (CREATE, QUERY, REFUND, MERCHANT)  # what `admit_app` limits per app

# An app id the front accounts per app: our ids are plain; anything else is left to the
# per-IP bucket and the signature.
APP_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# X-Request-Id a caller may give (the app echoes the same: core/web.py `_PLAIN_ID`).
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"

# Checked whole (`fullmatch`: `$` would let a final newline through into the file).
_ADDRESS = re.compile(r"unix:/[^\s;{}'\"$\\]+|[A-Za-z0-9.\-\[\]:]+")  # host:port, or a port
_NETWORK = re.compile(r"[0-9A-Fa-f.:\[\]]+(/[0-9]{1,3})?|unix:")  # set_real_ip_from
_PATH = re.compile(r"[^\s;{}'\"$\\]+")
_SIZE = re.compile(r"[0-9]+[km]?")


def template_dir() -> Path:
    """`deploy/nginx` of a checkout, or its copy inside an installed wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parent / "nginx", here.parents[3] / "deploy" / "nginx"):
        if (candidate / "fulema.conf.j2").is_file():
            return candidate
    raise FileNotFoundError("deploy/nginx/fulema.conf.j2 is missing from this installation")


@dataclass(frozen=True)
class FrontOptions:
    """What the settings do not say: where the front listens and what it proxies to."""

    upstreams: tuple[str, ...] = ("127.0.0.1:8000",)  # the API processes (host:port)
    listen: str = "80"
    # peers (load balancers) whose X-Forwarded-For names the client: nginx's realip module
    real_ip_from: tuple[str, ...] = ()
    fronts: int = 1  # nginx instances the load balancer spreads over: each takes 1/fronts
    conn_factor: float = 4.0  # the front's app concurrency ceiling / APP_CONCURRENCY
    # per zone: ~160,000 address keys or ~80,000 app keys; the least recently used go when full
    zone_size: str = "10m"
    keepalive: int = 64  # idle connections kept open to the API processes, per nginx worker
    refusal_log: str = "/var/log/nginx/fulema-refusals.log"  # "off": none
    # every answer with nginx's and the upstream's times (no payer address, no query string):
    # to find where a request's time goes under load; "off" (the default): none
    timing_log: str = "off"
    # The per-app buckets' burst at the front, in seconds of their rate (0: the setting's
    # burst). With `nodelay` nginx lets a bucket's whole burst through at once when a burst
    # starts, and those requests queue behind each other in the API process; the in-process
    # bucket behind keeps the setting's burst, so it tolerates the jitter between the two.
    app_burst_seconds: float = 0.0
    max_body_bytes: int = 64 * 1024  # FULEMA_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        for value in (*self.upstreams, self.listen):
            if not _ADDRESS.fullmatch(value):
                raise ValueError(f"not an address nginx takes as is: {value!r}")
        for value in self.real_ip_from:
            if not _NETWORK.fullmatch(value):
                raise ValueError(f"not an address or network: {value!r}")
        if not self.upstreams:
            raise ValueError("at least one upstream API process")
        for log in (self.refusal_log, self.timing_log):
            if log != "off" and not _PATH.fullmatch(log):
                raise ValueError(f"not a plain file path: {log!r}")
        if not _SIZE.fullmatch(self.zone_size):
            raise ValueError(f"not an nginx size: {self.zone_size!r}")
        if self.fronts < 1 or self.conn_factor <= 0 or self.keepalive < 1:
            raise ValueError("fronts, conn_factor and keepalive must be positive")
        if self.app_burst_seconds < 0:
            raise ValueError("app_burst_seconds must not be negative")


@dataclass(frozen=True)
class Zone:
    """One nginx `limit_req_zone`: its key variable, rate (nginx syntax) and burst."""

    name: str
    key: str
    rate: str
    burst: int  # nginx's: requests beyond the first that may come at once
    per_second: float


def nginx_rate(per_second: float) -> str:
    """Requests per minute: nginx takes whole numbers only, per second or per minute, and
    keeps the rate in thousandths of a request per second; per minute keeps 0.35 x S exact to
    a sixtieth of a request per second."""
    return f"{max(1, round(per_second * 60))}r/m"


def nginx_burst(burst: int) -> int:
    """nginx admits a request while its excess is at most `burst`, so `burst=b` lets b + 1 come
    at once where our bucket of b tokens lets b."""
    return max(0, burst - 1)


def _zone(name: str, key: str, rate: float, burst: int, fronts: int) -> Zone:
    share = rate / fronts
    return Zone(name, key, nginx_rate(share), nginx_burst(math.ceil(burst / fronts)), share)


def _app_burst(rate: float, burst: int, options: FrontOptions) -> int:
    """The app's bucket at the front: the setting's, or `app_burst_seconds` of its rate if
    that is less (at least one request)."""
    if options.app_burst_seconds <= 0:
        return burst
    return min(burst, max(1, math.ceil(rate * options.app_burst_seconds)))


def zones(config: RateLimitSection, options: FrontOptions) -> list[Zone]:
    c, n = config, options.fronts
    return [
        _zone("fulema_global", "$fulema_key_global", c.global_rate, c.global_burst, n),
        _zone("fulema_ip_api", "$fulema_key_ip_api", c.ip_api_rate, c.ip_api_burst, n),
        _zone("fulema_ip_cashier", "$fulema_key_ip_cashier", c.cashier_ip_rate,
              c.cashier_ip_burst, n),
        _zone("fulema_plate", "$fulema_key_plate", c.cashier_plate_rate,
              c.cashier_plate_burst, n),
        _zone("fulema_ip_poll", "$fulema_key_ip_poll", c.cashier_poll_ip_rate,
              c.cashier_poll_ip_burst, n),
        _zone("fulema_app_create", "$fulema_key_app_create", c.app_create_rate,
              _app_burst(c.app_create_rate, c.app_create_burst, options), n),
        _zone("fulema_app_query", "$fulema_key_app_query", c.app_query_rate,
              _app_burst(c.app_query_rate, c.app_query_burst, options), n),
        _zone("fulema_app_refund", "$fulema_key_app_refund", c.app_refund_rate,
              _app_burst(c.app_refund_rate, c.app_refund_burst, options), n),
        _zone("fulema_app_other", "$fulema_key_app_merchant", c.app_other_rate,
              _app_burst(c.app_other_rate, c.app_other_burst, options), n),
    ]


def retry_after(config: RateLimitSection, options: FrontOptions) -> dict[str, int]:
    """Retry-After per class: the time one token of its slowest bucket takes (nginx does not
    say which zone refused), at least a second, as the in-process refusal rounds it."""
    by_zone = {z.name: z.per_second for z in zones(config, options)}
    charged = {
        CASHIER: ["fulema_global", "fulema_ip_cashier", "fulema_plate"],
        POLL: ["fulema_global", "fulema_ip_poll"],
        CREATE: ["fulema_global", "fulema_ip_api", "fulema_app_create"],
        QUERY: ["fulema_global", "fulema_ip_api", "fulema_app_query"],
        REFUND: ["fulema_global", "fulema_ip_api", "fulema_app_refund"],
        MERCHANT: ["fulema_global", "fulema_ip_api", "fulema_app_other"],
        EXPORT: ["fulema_global", "fulema_ip_api"],
        OPS: ["fulema_global"],
    }
    return {k: max(1, math.ceil(1 / min(by_zone[z] for z in names)))
            for k, names in charged.items()}


def _pcre(python_regex: str) -> str:
    return python_regex.replace(r"\Z", r"\z")


def _nginx_quoted(text: str) -> str:
    """`text` inside nginx single quotes (its parser unescapes backslashes and quotes)."""
    if "$" in text:
        raise ValueError("nginx would read $ as a variable")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def refusal_json() -> str:
    """The body of the front's 429, in our error format; `REQUEST_ID` becomes nginx's
    variable in the template."""
    body = orjson.dumps({"code": ErrorCode.RATE_LIMITED.value,
                         "message": ErrorCode.RATE_LIMITED.description,
                         "request_id": "REQUEST_ID"}).decode()
    return _nginx_quoted(body).replace("REQUEST_ID", "${fulema_request_id}")


def refusal_page() -> str:
    """The cashier's refusal page, as `protection._refuse` writes it (the wait is nginx's)."""
    page = ("<!doctype html><meta charset=utf-8><meta name=viewport "
            "content='width=device-width'><title>稍后再试</title><p>付款人数较多，请 WAIT "
            "秒后再试。</p><p lang=en>Too many requests: please try again in WAIT s.</p>")
    return _nginx_quoted(page).replace("WAIT", "${fulema_retry_after}")


def body_too_large_json() -> str:
    body = orjson.dumps({"code": ErrorCode.BODY_TOO_LARGE.value,
                         "message": ErrorCode.BODY_TOO_LARGE.description,
                         "request_id": "REQUEST_ID"}).decode()
    return _nginx_quoted(body).replace("REQUEST_ID", "${fulema_request_id}")


def upstream_down_json() -> str:
    """The body of the front's own 502/504 (no API process reached or none answered in time),
    answered as 503 `UPSTREAM_UNAVAILABLE` in our error format instead of nginx's HTML page."""
    body = orjson.dumps({"code": ErrorCode.UPSTREAM_UNAVAILABLE.value,
                         "message": ErrorCode.UPSTREAM_UNAVAILABLE.description,
                         "request_id": "REQUEST_ID"}).decode()
    return _nginx_quoted(body).replace("REQUEST_ID", "${fulema_request_id}")


def render_nginx(config: RateLimitSection, options: FrontOptions) -> str:
    """The http-level nginx file (Debian: /etc/nginx/conf.d/fulema.conf)."""
    env = jinja2.Environment(  # noqa: S701 - an nginx file, not HTML; every value is checked
        loader=jinja2.FileSystemLoader(template_dir()), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    c = config
    # nginx takes a connection limit below 65536 (a setting far above it means: no ceiling)
    app_conn = min(65535, max(1, math.ceil(c.app_concurrency * options.conn_factor
                                           / options.fronts)))
    return env.get_template("fulema.conf.j2").render(
        o=options, zones=zones(config, options), app_conn=app_conn,
        rules=[(_pcre(regex), klass) for regex, klass in CLASS_RULES],
        global_classes=GLOBAL_CLASSES, ip_api_classes=IP_API_CLASSES,
        app_classes=APP_CLASSES, retry_after=retry_after(config, options),
        exempt=(EXEMPT, CALLBACK), cashier=CASHIER, poll=POLL,
        app_id_pattern=APP_ID_PATTERN, request_id_pattern=REQUEST_ID_PATTERN,
        refusal_json=refusal_json(), refusal_page=refusal_page(),
        body_too_large_json=body_too_large_json(), upstream_down_json=upstream_down_json(),
        enabled=c.enabled)


def classify_like_the_front(method: str, path: str) -> str:
    """What the front's `map` decides, in Python: for the test that holds it to `classify`."""
    subject = f"{method} {path}"
    for regex, klass in CLASS_RULES:
        if re.search(regex, subject):
            return klass
    return EXEMPT
