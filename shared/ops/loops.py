"""Start-up for the service's long-running loops (`xray-recovery`, `xray-pacs`): log lines with times, and
SIGINT/SIGTERM end the loop after its current round instead of killing it mid-write."""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from shared.ops import logs
from shared.ops.config import Settings, load_settings


def run_until_stopped(run: Callable[[Settings, threading.Event], None], process: str) -> None:
    settings = load_settings()
    logs.configure(settings, process)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per HTTP request is noise
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(settings, stop)
