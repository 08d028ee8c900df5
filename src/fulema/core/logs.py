"""Logging: structlog for our own lines and the standard library's (uvicorn, SQLAlchemy), one
format, and three guards so that a secret never reaches a log line.

Why guards: left unconfigured, structlog renders an exception with rich's pretty traceback,
which prints every local variable of every frame: a 500 on a signed request printed the
merchant's HMAC secret, the operator token and the platform secret. So:

1. Tracebacks never carry locals: the JSON renderer's `ExceptionDictTransformer` and the console
   renderer's formatter are built with `show_locals=False` (and the CLI's typer app with
   `pretty_exceptions_show_locals=False`).
2. Redaction by key name (`redact`): any value under a key that names a secret or a personal
   identifier (secret, token, key, password, authorization, signature, card, account, phone,
   ...) is replaced, at any depth, before rendering.
3. The settings' own secrets (operator token, platform secret, channel keys) are scrubbed from
   the rendered line whatever key or message carried them (`ScrubbingRenderer`).

Production (outside development) writes one JSON object a line; development a readable console
line. `FULEMA_LOG_FORMAT` and `FULEMA_LOG_LEVEL` override.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from fulema.core.config import Settings

REDACTED = "[REDACTED]"
_SENSITIVE_KEY = re.compile(
    r"secret|token|passw|authori[sz]ation|signature|(^|[_\-])sign($|[_\-])|(^|[_\-])key($|[_\-])"
    r"|apikey|api_key|private|cookie|card|account|phone|mobile|id_?card|auth_code|payer_code"
    r"|cvv|pem$",
    re.IGNORECASE)
_NEVER_REDACTED = frozenset({"event", "level", "timestamp", "logger", "logger_name"})
_MIN_SCRUB = 8  # shorter settings values are not secrets worth scrubbing (and would mangle text)


def is_sensitive(key: str) -> bool:
    return key not in _NEVER_REDACTED and bool(_SENSITIVE_KEY.search(key))


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: (REDACTED if isinstance(k, str) and is_sensitive(k) else _redact_value(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: every value under a sensitive key name, at any depth, replaced."""
    return {k: (REDACTED if is_sensitive(k) else _redact_value(v)) for k, v in event_dict.items()}


class ScrubbingRenderer:
    """Wraps the final renderer: any known secret in the rendered line becomes [REDACTED]."""

    def __init__(self, renderer: Processor, secrets: Iterable[str]) -> None:
        self.renderer = renderer
        self.secrets = sorted({s for s in secrets if len(s) >= _MIN_SCRUB}, key=len, reverse=True)

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> Any:
        line = self.renderer(logger, name, event_dict)
        if isinstance(line, str):
            for secret in self.secrets:
                line = line.replace(secret, REDACTED)
        return line


def settings_secrets(settings: Settings) -> list[str]:
    """Every string in the tree under a sensitive key name (tokens, secrets, keys)."""
    found: list[str] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list | tuple):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and is_sensitive(key) and not key.endswith(("_path", "_file")):
            found.append(node)

    walk(settings.model_dump())
    return found


def _renderer(json: bool) -> Processor:
    if json:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False,
                                         exception_formatter=structlog.dev.plain_traceback)


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Route structlog and the standard library through one handler with the guards above.
    Called by the entry points (the ASGI factory, the CLI), never by library code."""
    json = settings.log_format == "json" or (not settings.log_format
                                            and not settings.is_development)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    exceptions: list[Processor] = (
        [structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))]
        if json else [])
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exceptions,
                    ScrubbingRenderer(_renderer(json), settings_secrets(settings))])
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy", "httpx"):
        named = logging.getLogger(name)
        named.handlers = []
        named.propagate = True
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False)
