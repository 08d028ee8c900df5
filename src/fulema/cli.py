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

from fulema.core.channel_settings import ConfigurationError
from fulema.core.config import Settings, get_settings

app = typer.Typer(help="Fulema (付了码) aggregated payment platform", no_args_is_help=True)


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
    uvicorn.run("fulema.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level="info")


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
    uvicorn.run(standalone_app(name, settings), host=host, port=port, log_level="info")


@app.command()
def worker() -> None:
    """Run the scheduler and outbox dispatcher without serving HTTP (production)."""
    from fulema.app import create_app
    from fulema.ops.worker import background_tasks

    settings = _checked(get_settings().model_copy(update={"seed_demo": False}))

    async def run() -> None:
        application = create_app(settings)
        tasks = background_tasks(application)
        await asyncio.gather(*tasks)

    asyncio.run(run())


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


if __name__ == "__main__":
    app()
