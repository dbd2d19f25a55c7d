"""Log lines as JSON objects with the ids in context, or as text; XRAY_LOG_FORMAT checked."""
from __future__ import annotations

import io
import json
import logging

import pytest

from shared.ops import logs
from shared.ops.config import load_settings


def one_line(log_format: str, emit) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter(load_settings(log_format=log_format), "worker"))
    handler.addFilter(logs.IdsFilter(lambda: {"batch_id": "from-the-request"}))
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_lines_carry_the_ids_in_context_and_explicit_ids_win():
    def emit(logger):
        with logs.ids(job_id="job-1", batch_id=None):
            logger.info("job %s done", "job-1")
            logger.warning("about another", extra={"job_id": "job-2"})

    first, second = [json.loads(line) for line in one_line("json", emit).splitlines()]
    assert first == {"time": first["time"], "level": "INFO", "logger": "test.logs", "message": "job job-1 done",
                     "process": "worker", "job_id": "job-1", "batch_id": "from-the-request"}
    assert second["job_id"] == "job-2" and second["level"] == "WARNING"


def test_text_lines_read_as_before():
    line = one_line("text", lambda logger: logger.info("hello"))
    assert line.rstrip().endswith("INFO test.logs: hello")


def test_an_unknown_log_format_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="XRAY_LOG_FORMAT must be 'text' or 'json', got 'xml'"):
        load_settings(log_format="xml")
