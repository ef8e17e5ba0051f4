"""Tasks on Postgres (by URL) instead of the default SQLite.

The tests use a PostgreSQL cluster of the test run's own (`tests/pg.py`,
the `postgres` fixture); they are skipped where PostgreSQL's server programs
are not installed.
"""

from __future__ import annotations

import time

import pytest

from throwaway import Agent
from throwaway.testing import ScriptedModel, tool_call
from throwaway.durable import backend, get_task, list_tasks

from .test_durable_crash import (
    test_killed_task_resumes_without_rerunning_finished_steps as crash_test,
)


def test_a_task_on_postgres(postgres, tmp_path):
    model = ScriptedModel([tool_call("execute_python", code="open('/output/pg.txt', 'w').write('pg')"), "stored"])
    rt = backend.launch(tmp_path / "data", postgres)
    try:
        assert not rt.is_sqlite and not (tmp_path / "data" / "tasks.sqlite").exists()
        result = Agent("pg", model=model).run("use postgres", task_id="pg-1", output_dir=tmp_path / "out")
        assert result.answer == "stored" and (tmp_path / "out" / "pg.txt").read_text() == "pg"
        assert [t.task_id for t in list_tasks()] == ["pg-1"]
        assert get_task("pg-1").status == "done"
    finally:
        backend.shutdown()


@pytest.mark.slow
def test_a_killed_task_resumes_on_postgres(postgres, tmp_path, monkeypatch):
    # The same crash test as on SQLite, with the system database in Postgres.
    monkeypatch.setenv("THROWAWAY_DATABASE_URL", postgres.rsplit("/", 1)[0] + f"/crash_{int(time.time())}")
    crash_test(tmp_path, "tool 3")
