import pytest
from pydantic_ai import models as pydantic_ai_models

from throwaway.sandbox import Sandbox

from .pg import Cluster


@pytest.fixture(scope="session")
def sandbox():
    """One sandbox shared by the tests that only run ordinary cells."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def fresh():
    """A sandbox of the test's own, for tests that break or limit it."""
    boxes = []

    def make(**kwargs):
        sb = Sandbox(**kwargs).start()
        boxes.append(sb)
        return sb

    yield make
    for sb in boxes:
        sb.close()


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL server of this test run's own (skips where its programs are not installed)."""
    cluster = Cluster()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="module")
def postgres(pg_cluster):
    """The URL of a database of its own for this test module (created by DBOS on first use)."""
    return pg_cluster.url("throwaway_tasks")


@pytest.fixture
def no_real_models(monkeypatch):
    """Refuse any request to a real model provider (use it in modules of scripted models only)."""
    monkeypatch.setattr(pydantic_ai_models, "ALLOW_MODEL_REQUESTS", False)


@pytest.fixture
def data(tmp_path):
    """Durable tasks in a data folder of the test's own (SQLite); DBOS stopped after."""
    from throwaway.durable import backend

    yield backend.launch(tmp_path / "data")
    backend.shutdown()
