"""Logging for the long-running commands (ingest, agent, router): our INFO lines, not our libraries'.

httpx logs every request at INFO ("HTTP Request: POST …/write … 204"): one line per InfluxDB write and per
registry poll, which buried the ingest's own lines. It and httpcore are held at WARNING unless --verbose.
"""

from __future__ import annotations

import logging

CHATTY = ("httpx", "httpcore")  # request-per-line loggers of the HTTP client under InfluxDB and the registry
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(verbose: bool, *, level: int = logging.INFO) -> None:
    """Log to stderr at ``level`` (DEBUG with ``verbose``), the HTTP client's request lines at WARNING."""
    logging.basicConfig(level=logging.DEBUG if verbose else level, format=FORMAT)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
