"""Structured logs: one JSON object per line.

The gateway writes one ``request`` line per SOAP request with its request id,
outcome and duration.  Names, addresses and FINs never go to the log: the
access audit holds who asked for what.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

#: LogRecord attributes that are not extra fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Format a record as one line of JSON (UTC time, level, logger, message, extras)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as JSON."""
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send the service's (and Spyne's, and gunicorn's) logs to stderr as JSON lines.

    The records skip what the lines never show: the caller's file and line
    (a stack walk per record), the thread and process names.
    """
    logging._srcfile = None  # the logging HOWTO's "Optimization"
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("service").setLevel(level.upper())
    # Spyne logs every client fault with its parser message at ERROR: keep them
    # out of the way, the gateway logs the mapped outcome.
    logging.getLogger("spyne").setLevel(logging.CRITICAL)
