"""The data folder, the SQLite settings, JSON checkpoints and task locks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest
from dbos import DBOS

from throwaway import Agent
from throwaway.durable import backend, get_task
from throwaway.durable.locks import TaskLock, holder
from throwaway.testing import ScriptedModel
from throwaway.durable.serialization import JsonSerializer


@pytest.fixture
def launched(tmp_path):
    rt = backend.launch(tmp_path / "data")
    yield rt
    backend.shutdown()


def test_data_folder_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("THROWAWAY_DATA", str(tmp_path / "elsewhere"))
    folder = backend.resolve_data_dir()
    assert folder == tmp_path / "elsewhere"
    assert backend.resolve_database_url(folder) == f"sqlite:///{folder / 'tasks.sqlite'}"
    monkeypatch.setenv("THROWAWAY_DATABASE_URL", "postgresql://u:p@localhost:5432/tasks")
    assert backend.resolve_database_url(folder) == "postgresql://u:p@localhost:5432/tasks"


def test_sqlite_connections_use_wal_and_normal_sync(tmp_path):
    engine = backend.sqlite_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_launch_puts_everything_in_the_data_folder(launched):
    assert launched.database_url == f"sqlite:///{launched.data_dir / 'tasks.sqlite'}"
    assert launched.blobs.root == launched.data_dir / "blobs"
    db = sqlite3.connect(launched.data_dir / "tasks.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # persistent in the file
    db.close()
    assert backend.launch(launched.data_dir) is launched  # idempotent


def test_checkpoints_are_plain_json(launched):
    @DBOS.step(name="test.json_step")
    def json_step(n: int) -> dict:
        return {"n": n, "items": [1, "two", None]}

    @DBOS.workflow(name="test.json_workflow")
    def json_workflow(n: int) -> dict:
        return json_step(n)

    assert json_workflow(7) == {"n": 7, "items": [1, "two", None]}
    db = sqlite3.connect(launched.data_dir / "tasks.sqlite")
    rows = db.execute("SELECT output, serialization FROM operation_outputs WHERE function_name='test.json_step'")
    assert rows.fetchall() == [('{"n":7,"items":[1,"two",null]}', "throwaway_json")]
    db.close()


def test_serializer_keeps_exceptions():
    s = JsonSerializer()
    assert s.deserialize(s.serialize({"a": [1, 2.5, "x"]})) == {"a": [1, 2.5, "x"]}
    err = s.deserialize(s.serialize(ValueError("boom")))
    assert isinstance(err, ValueError) and str(err) == "boom"


def test_task_lock_tells_running_from_interrupted(tmp_path):
    path = tmp_path / "locks" / "t1.lock"
    assert holder(path) is None
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from throwaway.durable.locks import TaskLock\n"
        f"assert TaskLock(Path({str(path)!r})).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        assert holder(path) == child.pid
        assert not TaskLock(path).acquire()
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5
    while holder(path) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder(path) is None  # the OS dropped the dead process's lock
    lock = TaskLock(path)
    assert lock.acquire()
    lock.release()


def test_task_lock_is_reentrant_within_a_process(tmp_path):
    path = tmp_path / "t2.lock"
    outer, inner = TaskLock(path), TaskLock(path)
    assert outer.acquire() and inner.acquire()
    inner.release()
    assert holder(path) is not None  # the outer holder still has it
    outer.release()
    assert holder(path) is None


def test_a_task_reads_running_from_its_first_moment(launched, tmp_path):
    """While DBOS has recorded a task but its agent is still being built, it reads as running here,
    not as interrupted (the web view offered Resume instead of Cancel in that moment)."""
    seen = []

    class Watched(Agent):
        def task(self, task_id, spec):
            seen.append(get_task(task_id).status)
            return super().task(task_id, spec)

    agent = Watched("test-first-moment", model=ScriptedModel(["Nothing to do."]))
    result = agent.run("Say nothing", output_dir=tmp_path / "out")
    assert result.status == "done"
    assert seen == ["running"]
    assert holder(launched.lock_path(result.task_id)) is None  # released at its end
