"""Fixtures on real services: a fresh Postgres database per run, Redis with a queue of our own, a tiny
model artifact, and a real Celery worker process."""
from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from tests.helpers import (PG_SERVER, REDIS_URL, TEST_SECRET_KEY, TokenClient, WorkerProcess, api_token, forget_queue,
                           free_port, service_env)


def _admin_engine():
    return sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")


def _new_database():
    name = f"xray_test_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_SERVER} (start it; see README): {exc}")
    url = f"{PG_SERVER}/{name}"
    from shared.db.migrate import upgrade

    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_url():
    """A new Postgres database, migrated to head, dropped at the end of the run."""
    yield from _new_database()


@pytest.fixture()
def own_pg_url():
    """A database of the test's own, for tests that register other models than the shared stack's."""
    yield from _new_database()


@pytest.fixture(scope="session")
def redis_queue():
    """Redis URL and a queue name no other run uses."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (start it; see README): {exc}")
    queue = f"xray-test-{uuid.uuid4().hex[:8]}"
    yield REDIS_URL, queue
    forget_queue(REDIS_URL, queue)


@pytest.fixture()
def own_queue():
    """A queue name of the test's own on the shared Redis, its keys removed afterwards."""
    queue = f"xray-test-{uuid.uuid4().hex[:8]}"
    yield queue
    forget_queue(REDIS_URL, queue)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A small-cnn artifact at 64×64 with random weights: fast, and shaped like the served models."""
    from training.untrained import init_model

    path = tmp_path_factory.mktemp("models") / "tiny"
    init_model("small-cnn", 64, "none", path, name="tiny-test-model")
    return path


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory, pg_url, redis_queue, tiny_model):
    """Settings for Postgres + Redis + tiny model, with one real worker process serving them."""
    broker, queue = redis_queue
    var_dir = tmp_path_factory.mktemp("pg-stack")
    settings = {
        "database_url": pg_url,
        "broker_url": broker,
        "queue_name": queue,
        "var_dir": var_dir,
        "storage_dir": var_dir / "storage",
        "model_dir": tiny_model,
        "secret_key": TEST_SECRET_KEY,
    }
    env = service_env(
        DATABASE_URL=pg_url, CELERY_BROKER_URL=broker, XRAY_QUEUE=queue, XRAY_VAR_DIR=str(var_dir),
        XRAY_STORAGE_DIR=str(var_dir / "storage"), XRAY_MODEL_DIR=str(tiny_model),
    )
    worker = WorkerProcess(env, var_dir / "worker.log")
    try:
        worker.wait_ready()
        yield settings
    finally:
        worker.stop()


@pytest.fixture()
def pg_app(pg_stack):
    from web import create_app

    return create_app({**pg_stack, "TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture(scope="session")
def alice_token(pg_url):
    return api_token(pg_url, "alice")


@pytest.fixture(scope="session")
def bob_token(pg_url):
    return api_token(pg_url, "bob")


@pytest.fixture()
def pg_client(pg_app, alice_token):
    """The API as alice, with her token."""
    return TokenClient(pg_app.test_client(), alice_token)


def serve(app):
    """The app on a free port of 127.0.0.1 in a thread; yields its base URL."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture()
def live_server(pg_stack):
    """The web app over real HTTP (real Postgres, Redis and worker behind it); CSRF on, as in production."""
    from web import create_app

    yield from serve(create_app({**pg_stack, "RATELIMIT_KEY_PREFIX": f"t-{uuid.uuid4().hex}"}))


@pytest.fixture(params=["postgres", "sqlite"])
def db(request, tmp_path):
    """A migrated database of the test's own, on each engine the service runs on."""
    from shared.db.engine import Database
    from shared.db.migrate import upgrade

    if request.param == "postgres":
        url = request.getfixturevalue("own_pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'test.db'}"
        upgrade(url)
    database = Database(url)
    yield database
    database.engine.dispose()
