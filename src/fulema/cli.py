"""The `fulema` command: serve, worker, migrate, demo, docs.

An entry point: each command builds the settings tree from FULEMA_* once (`get_settings`) and
hands it on; a tree that may not run here (`Settings.check_production`) stops the command with
the variables to fix, before anything starts.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer
import uvicorn

from fulema.core.channel_settings import ConfigurationError
from fulema.core.config import Settings, get_settings
from fulema.core.logs import configure_logging

# A crash of a command must not print its local variables (the settings tree holds secrets):
# typer's rich tracebacks show them unless told not to.
app = typer.Typer(help="Fulema (付了码) aggregated payment platform", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)


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
    """Run the scheduler and outbox dispatcher without serving HTTP (production)."""
    from fulema.app import create_app
    from fulema.ops.worker import background_tasks

    settings = _checked(get_settings().model_copy(update={"seed_demo": False}))
    configure_logging(settings)

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


@app.command("docs-errors")
def docs_errors(out: Path = Path("docs/errors.md")) -> None:
    """Regenerate docs/errors.md from the error-code table."""
    from fulema.core.errors import errors_markdown

    out.write_text(errors_markdown(), encoding="utf-8")
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    app()
