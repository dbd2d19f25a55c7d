"""Log lines for people (XRAY_LOG_FORMAT=text, the embedded run) or for machines (json: one JSON object
per line, what containers use), the same events either way.

Every line written while a job or batch is in hand carries its ids as fields (``job_id``,
``batch_id``): the worker's task and the web's request put them in context, and :class:`IdsFilter`
copies them onto each record. Ids only: file names and patient data never go into a log line.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Callable, Iterator

from pythonjsonlogger.json import JsonFormatter

from shared.ops.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
IDS = ("job_id", "batch_id")
_ids: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("xray_log_ids", default={})


@contextlib.contextmanager
def ids(**values) -> Iterator[None]:
    """Lines logged inside carry these ids (None values are left out)."""
    token = _ids.set({**_ids.get(), **{k: str(v) for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _ids.reset(token)


class IdsFilter(logging.Filter):
    """Copies the ids in context (and those ``lookup`` finds, e.g. a request's URL) onto each record;
    ids passed explicitly with ``extra=`` win."""

    def __init__(self, lookup: Callable[[], dict[str, str]] | None = None):
        super().__init__()
        self.lookup = lookup

    def filter(self, record: logging.LogRecord) -> bool:
        found = {**(self.lookup() if self.lookup else {}), **_ids.get()}
        for key, value in found.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def formatter(settings: Settings, process: str) -> logging.Formatter:
    if settings.log_format == "json":
        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=False,
                             rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                             static_fields={"process": process})
    return logging.Formatter(TEXT_FORMAT)


def configure(settings: Settings, process: str, level: int | str = logging.INFO, force: bool = False,
              lookup: Callable[[], dict[str, str]] | None = None) -> None:
    """The root logger writes to stderr in the chosen format. Like logging.basicConfig, it leaves a root
    logger that already has handlers alone (tests capture logs that way) unless ``force``."""
    root = logging.getLogger()
    if root.handlers and not force:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings, process))
    handler.addFilter(IdsFilter(lookup))
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # Python warnings become log lines of the same format
