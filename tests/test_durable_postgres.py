"""Tasks on Postgres (by URL) instead of the default SQLite.

The test starts its own PostgreSQL cluster in a temporary folder on a free
loopback port, and stops it after; it is skipped where PostgreSQL's server
programs are not installed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from throwaway import Agent
from throwaway.testing import ScriptedModel, tool_call
from throwaway.durable import backend, get_task, list_tasks

from .test_durable_crash import (
    test_killed_task_resumes_without_rerunning_finished_steps as crash_test,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    # Not under pytest's tmp_path: its parents are private to us, and the
    # server may have to run as another user.
    folder = Path(tempfile.mkdtemp(prefix="throwaway-pg-"))
    data = folder / "data"
    # PostgreSQL refuses to run as root: run it as the postgres user then.
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_user + ["initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    port = _free_port()
    subprocess.run(as_user + ["pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                              f"-p {port} -k {folder} -h 127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/throwaway_tasks"
    finally:
        subprocess.run(as_user + ["pg_ctl", "-D", str(data), "-m", "immediate", "stop"], check=False,
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


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
