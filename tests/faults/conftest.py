import pytest

from tests.faults.servers import PostgresServer, RedisServer
from tests.faults.stack import Stack


@pytest.fixture()
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def make_stack(tmp_path, tiny_model):
    stacks = []

    def make(database_url, broker_url, **env):
        stack = Stack(tmp_path / f"stack{len(stacks)}", database_url, broker_url, tiny_model, **env)
        stack.workdir.mkdir()
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()


@pytest.fixture()
def own_postgres():
    """A PostgreSQL server of this test's own, which it may restart."""
    server = PostgresServer()
    server.init()
    server.start()
    from shared.db.migrate import upgrade

    upgrade(server.url)
    yield server
    try:
        server.stop("immediate")
    except Exception:
        pass
    server.remove()


FAULT_TABLE: list[tuple] = []


@pytest.fixture()
def report():
    """Record one row of the fault table printed at the end of the run."""
    def add(fault: str, submitted: int, completed: int, duplicates: int, recover: str):
        FAULT_TABLE.append((fault, submitted, completed, duplicates, recover))

    return add


def pytest_terminal_summary(terminalreporter):
    if FAULT_TABLE:
        terminalreporter.section("fault table")
        terminalreporter.write_line("| fault | jobs submitted | jobs completed | duplicates | time to recover |")
        terminalreporter.write_line("|---|---:|---:|---:|---|")
        for row in FAULT_TABLE:
            terminalreporter.write_line("| " + " | ".join(str(v) for v in row) + " |")
