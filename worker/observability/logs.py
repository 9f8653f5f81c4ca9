"""Structured logs: JSON lines with the trace and span ids on every line (``worker``), or
readable coloured lines (``dev``). Log records carry their facts in ``extra=``."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from worker.secrets import RedactingFilter

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, trace ids, and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            data["trace_id"] = format(context.trace_id, "032x")
            data["span_id"] = format(context.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already formatted (and its secrets masked: RedactingFilter)
            data["exception"] = record.exc_text
        return json.dumps(data, default=str)


#: The logger the worker gives FastStream's broker (its subscribers and consumers).
BROKER_LOGGER = "faststream.broker"
_LIBRARY_LEVELS = {
    "aiokafka": logging.WARNING,  # its INFO lines are about connections, not heals
    "faststream": logging.INFO,  # the app's few lines: starting, started, shutting down
    BROKER_LOGGER: logging.WARNING,  # per-task and per-partition chatter below that
}


def configure_logging(*, json_lines: bool, level: int = logging.INFO) -> None:
    """JSON lines on stderr, or rich's readable console handler."""
    handler: logging.Handler
    if json_lines:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
    else:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=True)
    import faststream  # noqa: F401  (installs its own handler on import: take it over below)

    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, threshold in _LIBRARY_LEVELS.items():
        logger = logging.getLogger(name)
        logger.setLevel(threshold)
        # FastStream gives its logger a plain-text handler of its own when it is first
        # imported (hence the import above) and stops propagation: its lines would bypass
        # the JSON lines (and their trace ids) without this.
        logger.handlers.clear()
        logger.propagate = True
