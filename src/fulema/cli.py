"""The `fulema` command: serve, worker, migrate, demo, docs.

An entry point: each command builds the settings tree from FULEMA_* once (`get_settings`) and
hands it on; a tree that may not run here (`Settings.check_production`) stops the command with
the variables to fix, before anything starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from fulema.cli_dr import dr_app
from fulema.core.channel_settings import ConfigurationError
from fulema.core.config import Settings, get_settings
from fulema.core.logs import configure_logging
from fulema.gateway.cli import gateway_app
from fulema.merchants import users_cli as merchant_users_cli
from fulema.operators import cli as operators_cli

# A crash of a command must not print its local variables (the settings tree holds secrets):
# typer's rich tracebacks show them unless told not to.
app = typer.Typer(help="Fulema (付了码) aggregated payment platform", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
app.add_typer(dr_app, name="dr")
keys_app = typer.Typer(help="Encryption at rest: the keyring (docs/security.md)",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(gateway_app, name="gateway")  # fulema gateway nginx-config
operators_cli.install(app, get_settings)  # fulema operator ..., fulema audit verify
merchant_users_cli.install(app, get_settings)  # fulema merchant-user create


def _checked(settings: Settings) -> Settings:
    """The tree, or exit 2 with the guard's message (one line naming every variable)."""
    try:
        settings.check_production()
    except ConfigurationError as exc:
        typer.echo(f"fulema: {exc}", err=True)
        raise typer.Exit(2) from exc
    return settings


@app.command()
def migrate() -> None:
    """Apply database migrations to FULEMA_DATABASE_URL."""
    from fulema.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    typer.echo(f"migrated {settings.database_url.split('@')[-1]}")


@app.command()
def serve(host: str | None = None, port: int | None = None, workers: int = 1,
          auto_migrate: bool = typer.Option(True, help="apply migrations before serving")) -> None:
    """Run the platform. Embedded default: SQLite, sandbox channels, in-process worker."""
    settings = _checked(get_settings())
    configure_logging(settings)
    if auto_migrate:
        from fulema.migrate import upgrade

        upgrade(settings.database_url)
    host, port = host or settings.host, port or settings.port
    if "public_base_url" not in settings.model_fields_set:
        # Payers, channels and the sandboxes call us back at the public URL: unless it was
        # configured, it is where this server listens (`--port 8765` must not send payers
        # to :8000). Each worker process builds its tree at start-up (the factory below),
        # hence the variable, written for them before they start.
        reachable = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
        os.environ["FULEMA_PUBLIC_BASE_URL"] = f"http://{reachable}:{port}"
    # log_config=None: uvicorn keeps its hands off logging; each worker process's factory
    # (`app_from_environment`) configures it (core/logs.py: no locals, redaction)
    uvicorn.run("fulema.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_config=None, log_level=settings.log_level.lower())


@app.command()
def sandbox(name: str = typer.Argument(help="wechat, alipay, unionpay, ecny or bankpay"),
            host: str = "127.0.0.1", port: int = 8100) -> None:
    """Serve one channel's sandbox on its own port: the channel's real paths at the root
    (point a published client library's base URL here), and /sandbox/<name> as mounted."""
    from fulema.sandboxes import BUILDERS, standalone_app

    if name not in BUILDERS:
        raise typer.BadParameter(f"choose one of {', '.join(BUILDERS)}", param_hint="NAME")
    reachable = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
    settings = get_settings().model_copy(update={"public_base_url": f"http://{reachable}:{port}"})
    configure_logging(settings)
    uvicorn.run(standalone_app(name, settings), host=host, port=port, log_config=None,
                log_level=settings.log_level.lower())


@app.command()
def worker() -> None:
    """Run the event dispatcher, the scheduled jobs and the speaker hub without serving HTTP
    (production, beside API processes started with FULEMA_RUN_BACKGROUND=false). Stops
    cleanly on SIGTERM: loops cancelled, job leases released."""
    from fulema.ops.worker import run_worker

    settings = _checked(get_settings().model_copy(update={"seed_demo": False,
                                                          "run_background": True}))
    configure_logging(settings)
    asyncio.run(run_worker(settings))


@app.command()
def demo(url: str = typer.Option("", help="a running `fulema serve`; empty runs in process")
         ) -> None:
    """Tell the whole story: apply, approve, plate, scan, pay 12.50, notify, refund 2.50."""
    from fulema.demo import run_demo

    asyncio.run(run_demo(url or None, get_settings()))


@app.command("bench", context_settings={"allow_extra_args": True,
                                        "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Benchmark the payment hot path against this machine's limits (docs/performance.md).
    Runs `python -m bench` from a source checkout; arguments pass through (e.g. --quick)."""
    import subprocess
    import sys

    raise typer.Exit(subprocess.call([sys.executable, "-m", "bench", *ctx.args]))  # noqa: S603


@app.command()
def reconcile(
    channel: Annotated[str, typer.Option(help="wechat, alipay, unionpay, ecny or bankpay")],
    date: Annotated[str, typer.Option(help="the statement's day, YYYY-MM-DD (Beijing)")],
    file: Annotated[Path | None, typer.Option(
        help="reconcile this file instead of downloading it through the channel")] = None,
) -> None:
    """Reconcile a channel's statement for a day against our payments (docs/reconciliation.md)."""
    import datetime as dt

    from rich.progress import Progress

    from fulema.app import create_app
    from fulema.core.errors import FulemaError
    from fulema.reconciliation import service as reconciliation

    settings = _checked(get_settings().model_copy(update={"seed_demo": False,
                                                          "run_background": False}))
    try:
        day = dt.date.fromisoformat(date)
    except ValueError as exc:
        typer.echo(f"fulema: --date {date!r} is not YYYY-MM-DD", err=True)
        raise typer.Exit(2) from exc
    data = file.read_bytes() if file is not None else None

    async def run() -> None:
        application = create_app(settings)
        deps = application.state.payments
        with Progress() as bar:
            task = bar.add_task(f"{channel} {day}", total=1.0)

            def tell(step: str, done: float) -> None:
                bar.update(task, completed=done, description=f"{channel} {day}: {step}")

            try:
                run = await reconciliation.reconcile(deps, channel=channel, day=day, data=data,
                                                     actor="cli", progress=tell)
            finally:
                await application.state.http.aclose()
                await deps.db.dispose()
        typer.echo(f"run {run.run_id}: {run.lines} lines, {run.ours} of ours, {run.matched} "
                   f"matched, {run.discrepancies} discrepancies, {run.auto_resolved} "
                   f"cross-day resolved")
        for result, figures in sorted(run.summary.items()):
            typer.echo(f"  {result:16} {figures['count']:>9} lines  ours "
                       f"{figures['our_amount']:>14} fen  channel {figures['channel_amount']:>14} fen")

    try:
        asyncio.run(run())
    except FulemaError as exc:
        typer.echo(f"fulema: {exc.code.value}: {exc.message}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def settle(date: str = typer.Option(..., "--date", help="the trade date to settle, YYYY-MM-DD"),
           pay: bool = typer.Option(True, help="also send the payouts it makes")) -> None:
    """Settle one date: a batch per merchant with money due (a date already settled is a
    no-op), then send the payouts through the configured bank transfer service."""
    from datetime import date as Date

    from fulema.app import build_payouts
    from fulema.core.db import Database
    from fulema.core.money import Money
    from fulema.settlement import service as settlement

    try:
        day = Date.fromisoformat(date)
    except ValueError as exc:
        raise typer.BadParameter("YYYY-MM-DD", param_hint="--date") from exc
    settings = _checked(get_settings())

    async def run() -> None:
        db = Database(settings.database_url)
        try:
            s = await settlement.run_settlement(db, settings, settle_date=day)
            word = "already settled" if s.already_done else "settled"
            typer.echo(f"{day}: {word}: {s.batches} batches ({s.settled} settled, {s.held} held, "
                       f"{s.carried} carried forward), net {Money(s.net_settled).to_yuan()} yuan")
            if pay:
                sent = await settlement.process_payouts(db, settings, build_payouts(settings))
                typer.echo(f"payouts handled: {sent}")
        finally:
            await db.dispose()

    asyncio.run(run())


@app.command()
def speaker(device: str = typer.Option(..., help="the speaker id (its MQTT username)"),
            url: str = typer.Option("", help="broker, mqtt://host:port (default: "
                                    "FULEMA_SPEAKER_MQTT_URL's host, else 127.0.0.1:1883)"),
            password: str = typer.Option("", help="its broker password (default: derived "
                                         "from FULEMA_SPEAKER_SECRET, as provisioned)"),
            wav_dir: Annotated[Path | None, typer.Option(
                help="with espeak-ng installed, also speak each announcement into a WAV here")
            ] = None) -> None:
    """A cloud speaker simulator: subscribes to its topic, checks signatures, plays each
    announcement once (printed), acknowledges, and catches up on what it missed."""
    from fulema.messaging.domain import device_key, device_password
    from fulema.messaging.transport import parse_mqtt_url

    settings = get_settings()
    broker = parse_mqtt_url(url or settings.speaker_mqtt_url or "mqtt://127.0.0.1:1883")
    key = device_key(settings.speaker_secret, device)

    def play(body: dict[str, object]) -> None:
        typer.echo(f"{body['ts']} {body['message_id']} {body['amount_yuan']} "
                   f"{body['channel']} {body['text']}")
        if wav_dir is not None:
            from fulema.messaging.device import speak_to_wav

            wav_dir.mkdir(parents=True, exist_ok=True)
            speak_to_wav(str(body["text"]), wav_dir / f"{body['message_id']}.wav")

    async def run() -> None:
        from fulema.messaging.device import SpeakerDevice

        dev = SpeakerDevice(speaker_id=device, key=key, host=broker.host, port=broker.port,
                            username=device,
                            password=password or device_password(settings.speaker_secret, device),
                            prefix=settings.speaker_topic_prefix, on_play=play)
        typer.echo(f"speaker {device} listening on {broker.host}:{broker.port} "
                   f"({settings.speaker_topic_prefix}/speakers/{device}/messages)", err=True)
        await dev.run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command("speaker-credentials")
def speaker_credentials(device: str = typer.Option(..., help="the speaker id")) -> None:
    """What to provision into a speaker and the broker: username, password, signing key
    (derived from FULEMA_SPEAKER_SECRET), and the broker's ACL (docs/messaging.md)."""
    from fulema.messaging.broker import acl_text
    from fulema.messaging.broker import speaker_credentials as credentials

    settings = get_settings()
    c = credentials(settings.speaker_secret, device)
    typer.echo(f"username {c.username}\npassword {c.password}\nsign_key {c.sign_key_hex}\n"
               f"# mosquitto_passwd -b <password_file> {c.username} {c.password}\n")
    typer.echo(acl_text(settings.speaker_topic_prefix))


@app.command("docs-errors")
def docs_errors(out: Path = Path("docs/errors.md")) -> None:
    """Regenerate docs/errors.md from the error-code table."""
    from fulema.core.errors import errors_markdown

    out.write_text(errors_markdown(), encoding="utf-8")
    typer.echo(f"wrote {out}")


@keys_app.command("status")
def keys_status() -> None:
    """The keys, and how many stored values each sealed column has left to re-encrypt."""
    from fulema.ops import keys_cli

    for line in asyncio.run(keys_cli.status(get_settings())):
        typer.echo(line)


@keys_app.command("rotate")
def keys_rotate(
        purpose: list[str] = typer.Option(  # noqa: B008 - typer's way
            [], help="app_secret, bank_account, phone or payer_id; repeat; default all"),
        activate_in: int | None = typer.Option(
            None, min=0, help="seconds until the new keys write (default "
            "FULEMA_CRYPTO_ACTIVATION_DELAY_SECONDS)")) -> None:
    """New data keys; old values stay readable; run `keys reencrypt` once they write."""
    from fulema.core.vault import PURPOSES
    from fulema.ops import keys_cli

    try:
        lines = keys_cli.rotate(get_settings(), tuple(purpose or PURPOSES), activate_in)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--purpose") from exc
    for line in lines:
        typer.echo(line)


@keys_app.command("reencrypt")
def keys_reencrypt(batch: int = typer.Option(500, min=1, max=10_000)) -> None:
    """Seal plaintext leftovers and move values to the current keys, batch by batch."""
    from fulema.ops import keys_cli

    for line in asyncio.run(keys_cli.reencrypt(get_settings(), batch)):
        typer.echo(line)


@keys_app.command("rewrap")
def keys_rewrap() -> None:
    """Wrap every key of the keyring under the current master key."""
    from fulema.ops import keys_cli

    for line in keys_cli.rewrap(get_settings()):
        typer.echo(line)



jobs_app = typer.Typer(help="Scheduled jobs: the job table and manual runs", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
def jobs_list() -> None:
    """Every job: period, who holds it, last success, last error, rounds and failures."""
    from rich.console import Console
    from rich.table import Table

    from fulema.core.db import Database
    from fulema.ops import scheduler

    settings = get_settings()

    async def run() -> list[scheduler.ScheduledJob]:
        db = Database(settings.database_url)
        try:
            return await scheduler.table(db)
        finally:
            await db.dispose()

    table = Table("job", "every (s)", "held by", "next due", "last ok", "runs", "failures",
                  "last error")
    for j in asyncio.run(run()):
        table.add_row(j.name, f"{j.period_seconds:g}", j.owner or "-",
                      j.next_due_at.isoformat(timespec="seconds") if j.next_due_at else "-",
                      j.last_ok_at.isoformat(timespec="seconds") if j.last_ok_at else "-",
                      str(j.runs), str(j.failures), (j.last_error or "")[:60])
    Console().print(table)


@jobs_app.command("run")
def jobs_run(name: str = typer.Argument(help="a job name from `fulema jobs list`")) -> None:
    """Run one round of a job now (recorded as a manual run), under its lease."""
    from fulema.app import create_app
    from fulema.ops import scheduler
    from fulema.ops.worker import declared_jobs

    settings = _checked(get_settings().model_copy(update={"seed_demo": False,
                                                           "run_background": False}))

    async def run() -> tuple[bool, object] | list[str]:
        application = create_app(settings)
        try:
            jobs = {j.name: j for j in declared_jobs(application)}
            if name not in jobs:
                return sorted(jobs)
            return await scheduler.run_now(application.state.db, jobs[name])
        finally:
            await application.state.http.aclose()
            await application.state.db.dispose()

    try:
        result = asyncio.run(run())
    except RuntimeError as exc:  # held by another process
        typer.echo(f"fulema: {exc}", err=True)
        raise typer.Exit(1) from exc
    if isinstance(result, list):
        typer.echo(f"fulema: no job {name}; known: {', '.join(result)}", err=True)
        raise typer.Exit(2)
    ok, done = result
    typer.echo(f"{name}: {'ok' if ok else 'FAILED'} ({done})")
    if not ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
