"""How the training commands talk to the person: every module logs (``logging.getLogger(__name__)``, under
``training``), and ``xray-model`` shows those lines plainly on standard output, tables included. One way,
so the same messages reach a terminal, a CI log or a test's captured output, and a caller that runs the
pipeline in its own process can route them elsewhere with ordinary logging configuration."""
from __future__ import annotations

import logging
import sys


class _StandardOutput(logging.StreamHandler):
    """Writes to whatever sys.stdout is when a line is written (a test may have replaced it since)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


def show_on_standard_output() -> None:
    """The ``training`` loggers' lines (INFO and up) on standard output, once per process."""
    logger = logging.getLogger("training")
    logger.setLevel(logging.INFO)
    logger.propagate = False  # TensorFlow's converters configure the root logger: each line would show twice
    if not any(isinstance(handler, _StandardOutput) for handler in logger.handlers):
        logger.addHandler(_StandardOutput())
