"""Log output: one JSON object per line in production, readable lines at a terminal.

The worker logs through the standard :mod:`logging` module; structlog's
``ProcessorFormatter`` renders every record, ours and the libraries', the same way. A
JSON line holds ``timestamp`` (ISO-8601 UTC), ``level``, ``logger``, ``event`` (the
message) and the record's extra fields, e.g. ``conversation_id``::

    {"event": "conversation 9a3c… closed (ended, 12 utterances)", "conversation_id": "9a3c…",
     "level": "info", "logger": "indexer.completion", "timestamp": "2026-11-22T10:00:00.123Z"}

What is logged never holds a transcript text, a PII value, a token or a secret: messages
name ids, counts, settings and error kinds only (tested by scanning the logs of an end to
end run).
"""

from __future__ import annotations

import logging
from typing import Final, TextIO

import stamina
import structlog

__all__ = ["LOG_FORMATS", "configure_logging"]

LOG_FORMATS: Final = ("auto", "json", "console")
#: Libraries that log a line per request or a traceback per retry: warnings only.
_QUIET: Final = ("httpx", "hypercorn", "indexer.emulator.hypercorn", "indexer.monitoring.hypercorn")


def configure_logging(level: str, fmt: str, stream: TextIO) -> None:
    """Send every log record to ``stream`` as JSON (``json``) or readable lines (``console``).

    :param fmt: ``auto`` picks ``console`` when ``stream`` is a terminal, else ``json``.
    :raises ValueError: an unknown level or format.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    final: list[structlog.typing.Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if as_json:
        final.append(structlog.processors.format_exc_info)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[*final, renderer])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # stamina would log its retries through structlog's own default (console lines on
    # stdout); through the standard library they take the handler above like the rest.
    stamina.instrumentation.set_on_retry_hooks([stamina.instrumentation.LoggingOnRetryHook])
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # opensearch-py logs every failed attempt with a traceback; the sink logs one line instead.
    logging.getLogger("opensearch").setLevel(logging.ERROR)
