"""Logging set-up: one JSON object per line (default) or plain text for humans."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

from fhir_server.observability import RequestIdFilter
from fhir_server.settings import Settings


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line with time, level, logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "method", "route", "status", "duration_ms", "client_id"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(payload).decode()


def configure_logging(settings: Settings) -> None:
    """Install the root handler once per process according to LOG_LEVEL and LOG_FORMAT."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
            defaults={"request_id": "-"}))
    # Every record logged while a request runs carries its id (on the handler, so that
    # records of every logger get it).
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # pgserver logs every command line it runs at INFO; keep its warnings only.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
