"""`fulema gateway ...`: the front's configuration, written from the same settings the
in-process limiter uses (docs/operations.md, "The front: refusals before Python")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fulema.core.config import get_settings
from fulema.gateway.front import FrontOptions, render_nginx

gateway_app = typer.Typer(help="The front in front of the API processes (nginx)",
                          no_args_is_help=True)


@gateway_app.command("nginx-config")
def nginx_config(
    upstream: Annotated[list[str] | None, typer.Option(
        help="an API process, host:port (repeat for each); default 127.0.0.1:8000")] = None,
    listen: Annotated[str, typer.Option(help="what nginx listens on: port or host:port")] = "80",
    real_ip_from: Annotated[list[str] | None, typer.Option(
        help="a load balancer in front of nginx whose X-Forwarded-For names the client "
             "(address or network; repeat)")] = None,
    fronts: Annotated[int, typer.Option(
        help="nginx instances the load balancer spreads over: each takes its share")] = 1,
    conn_factor: Annotated[float, typer.Option(
        help="the front's per-app concurrency ceiling, as a multiple of APP_CONCURRENCY")] = 4.0,
    zone_size: Annotated[str, typer.Option(help="shared memory per limit zone")] = "10m",
    keepalive: Annotated[int, typer.Option(
        help="idle connections to the API processes kept per nginx worker")] = 64,
    refusal_log: Annotated[str, typer.Option(
        help="file for one JSON line per 429 ('off': none)")] = "/var/log/nginx/fulema-refusals.log",
    timing_log: Annotated[str, typer.Option(
        help="file for every answer's nginx and upstream times, to find where a request's "
             "time goes under load ('off': none)")] = "off",
    app_burst_seconds: Annotated[float, typer.Option(
        help="the per-app buckets' burst at the front, in seconds of their rate, if less than "
             "the setting's (0: the setting's); the in-process bucket keeps the setting's")] = 0.0,
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="write here instead of stdout")] = None,
) -> None:
    """Write nginx's limit_req/limit_conn configuration from FULEMA_RATELIMIT_* (an http-level
    file: /etc/nginx/conf.d/fulema.conf on Debian). Check it with `nginx -t`, then reload."""
    settings = get_settings()
    try:
        options = FrontOptions(
            upstreams=tuple(upstream or ("127.0.0.1:8000",)), listen=listen,
            real_ip_from=tuple(real_ip_from or ()), fronts=fronts, conn_factor=conn_factor,
            zone_size=zone_size, keepalive=keepalive, refusal_log=refusal_log,
            timing_log=timing_log, app_burst_seconds=app_burst_seconds,
            max_body_bytes=settings.max_body_bytes)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    text = render_nginx(settings.ratelimit, options)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
