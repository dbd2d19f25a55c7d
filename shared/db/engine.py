"""The one engine and session factory for a process.

SQLite (the embedded default) is shared by the web and the worker processes, so it runs in WAL mode
with a busy timeout: readers never block the writer and a writer waits instead of failing.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Iterator, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # pool_pre_ping: a Postgres restart must cost one reconnect, not a failed request.
    return create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=10)


log = logging.getLogger(__name__)
T = TypeVar("T")


def is_disconnect(exc: BaseException) -> bool:
    """The database is unreachable (restart, network), as opposed to a query or constraint error."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    text = str(getattr(exc, "orig", exc)).lower()
    markers = ("could not connect", "connection refused", "server closed the connection", "terminating connection",
               "the database system is starting up", "the database system is shutting down", "connection reset",
               "no connection to the server", "ssl syscall")
    return isinstance(exc, DBAPIError) and any(marker in text for marker in markers)


def retry_on_disconnect(operation: Callable[[], T], deadline_seconds: float, what: str = "database write") -> T:
    """Run operation, retrying with exponential backoff while the database is unreachable."""
    deadline = time.monotonic() + deadline_seconds
    delay = 0.2
    while True:
        try:
            return operation()
        except DBAPIError as exc:
            if not is_disconnect(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: database unreachable (%s); retrying in %.1f s", what, type(exc.orig).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class Database:
    """Owns one engine and its session factory; one per process (after any fork, see dispose)."""

    def __init__(self, database_url: str):
        self.url = database_url
        self.engine = make_engine(database_url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        """Drop pooled connections, e.g. those inherited across a fork."""
        self.engine.dispose(close=False)
