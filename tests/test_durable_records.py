"""Reading tasks straight from DBOS's tables (`durable.records`), on SQLite and on Postgres.

The tasks are written by DBOS itself (a finished one, a failed one, a queued
one); what `records` reads must be what DBOS reads from the same rows, and
`throwaway tasks` / `show` must do it without importing DBOS, SQLAlchemy or
pydantic. A database whose DBOS tables are at a schema version we do not
know is refused with a message, never misread.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import pickle
import sqlite3
import subprocess
import sys
import time

import pytest

from throwaway import Agent
from throwaway.durable import backend, checkpoints, get_task, list_tasks
from throwaway.durable import records as records_module
from throwaway.durable.names import WORKFLOW_NAME
from throwaway.durable.records import KNOWN_SCHEMA_VERSIONS, UnreadableDatabase, tables
from throwaway.durable.tasks import TaskNotFound
from throwaway.testing import ScriptedModel, ScriptExhausted

pytestmark = pytest.mark.usefixtures("no_real_models")

# Modules a read-only command must not load: each costs a process a good part of a second.
HEAVY = ("dbos", "sqlalchemy", "pydantic", "pydantic_ai", "throwaway.sandbox", "throwaway.agent.loop")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def written(request, tmp_path_factory):
    """A database with three tasks DBOS wrote: done, failed (a step raised) and queued; DBOS stopped after."""
    tmp = tmp_path_factory.mktemp(f"records-{request.param}")
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("pg_cluster").url(f"records_{int(time.time() * 1000)}")
    rt = backend.launch(tmp / "data", url)
    try:
        done = Agent("records", model=ScriptedModel(["the answer"])).run(
            "a task that answers", task_id="rec-done-1", output_dir=tmp / "out")
        assert done.status == "done"
        with pytest.raises(ScriptExhausted):
            Agent("records", model=ScriptedModel([])).run("a task that fails", task_id="rec-failed-1",
                                                          output_dir=tmp / "out")
        Agent("records", model=ScriptedModel(["never run"])).submit("a queued task", task_id="rec-queued-1",
                                                                    output_dir=tmp / "out")
        yield {"url": rt.database_url, "data": rt.data_dir, "kind": request.param}
    finally:
        backend.shutdown()


def dbos_client(url: str):
    """DBOS's own reading of the same rows (what `throwaway tasks` used before it read the tables itself)."""
    from dbos import DBOSClient

    from throwaway.durable.serialization import JsonSerializer

    if url.startswith("sqlite"):
        return DBOSClient(system_database_engine=backend.sqlite_engine(url), serializer=JsonSerializer(),
                          application_name=backend.APP_NAME)
    return DBOSClient(system_database_url=url, serializer=JsonSerializer(), application_name=backend.APP_NAME)


def same_error(ours, theirs) -> bool:
    if theirs is None or ours is None:
        return ours is theirs
    return (type(ours).__name__, str(ours)) == (type(theirs).__name__, str(theirs))


def test_rows_read_as_dbos_reads_them(written):
    client = dbos_client(written["url"])
    try:
        theirs = client.list_workflows(name=WORKFLOW_NAME, sort_desc=True)
        ours = tables(written["url"]).latest(WORKFLOW_NAME)
        assert [w.workflow_id for w in ours] == [w.workflow_id for w in theirs]
        assert {w.status for w in ours} == {"SUCCESS", "ERROR", "ENQUEUED"}
        for mine, dbos in zip(ours, theirs, strict=True):
            assert (mine.status, mine.executor_id, mine.queue_name, mine.created_at, mine.updated_at,
                    mine.forked_from) == (dbos.status, dbos.executor_id, dbos.queue_name, dbos.created_at,
                                          dbos.updated_at, dbos.forked_from)
            assert mine.input == json.loads(json.dumps(dbos.input))  # DBOS gives args as a tuple
            assert mine.output == dbos.output
            assert same_error(mine.error, dbos.error)
            steps = tables(written["url"]).steps(mine.workflow_id)
            their_steps = client.list_workflow_steps(mine.workflow_id)
            assert [(s.function_id, s.function_name, s.output, s.started_at_epoch_ms, s.completed_at_epoch_ms)
                    for s in steps] == [(s["function_id"], s["function_name"], s["output"],
                                         s["started_at_epoch_ms"], s["completed_at_epoch_ms"])
                                        for s in their_steps]
            assert all(same_error(s.error, t["error"]) for s, t in zip(steps, their_steps, strict=True))
        assert any(s.error is not None for s in tables(written["url"]).steps("rec-failed-1"))
    finally:
        client.destroy()


def test_tasks_read_back(written, monkeypatch):
    monkeypatch.setenv("THROWAWAY_DATA", str(written["data"]))
    if written["kind"] == "postgres":
        monkeypatch.setenv("THROWAWAY_DATABASE_URL", written["url"])
    assert backend.configured()[1] == written["url"]
    found = {t.task_id: t for t in list_tasks()}
    assert {k: t.status for k, t in found.items()} == {
        "rec-done-1": "done", "rec-failed-1": "failed", "rec-queued-1": "queued"}
    assert found["rec-done-1"].output["answer"] == "the answer"
    assert found["rec-done-1"].prompt == "a task that answers" and found["rec-done-1"].model == "scripted"
    assert found["rec-failed-1"].error.startswith("ScriptExhausted: ")
    assert (found["rec-queued-1"].position, found["rec-queued-1"].queue) == (1, "throwaway-tasks")
    assert get_task("rec-fail").task_id == "rec-failed-1"  # a unique prefix
    with pytest.raises(TaskNotFound, match="more than one"):
        get_task("rec-")
    with pytest.raises(TaskNotFound, match="no task"):
        get_task("nope")
    names = [cp["name"] for cp in checkpoints("rec-done-1")]
    assert names[0] == "throwaway.prepare" and "throwaway.model" in names


def test_live_workers_read_from_their_heartbeats(written):
    from throwaway.durable.workers import heartbeats

    beats = heartbeats(written["url"])
    beats.beat("rec-worker-1", "throwaway-tasks")
    try:
        live = tables(written["url"]).live_workers(lease=30)
        assert live["rec-worker-1"].pid == os.getpid() and 0 <= live["rec-worker-1"].age < 30
        assert "rec-worker-1" not in tables(written["url"]).live_workers(lease=-1)  # past its lease: dead
    finally:
        beats.leave("rec-worker-1")
        beats.engine.dispose()


@pytest.mark.parametrize("command", [["tasks"], ["tasks", "--json"], ["show", "rec-done-1"], ["show", "rec-failed-1"]])
def test_read_only_commands_load_neither_dbos_nor_sqlalchemy(written, command):
    code = ("import sys\nfrom throwaway.cli import main\n"
            f"try:\n    main({command!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))")
    env = {"THROWAWAY_DATA": str(written["data"]), "PATH": "/usr/bin:/bin"}
    if written["kind"] == "postgres":
        env["THROWAWAY_DATABASE_URL"] = written["url"]
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stderr
    *shown, loaded = out.stdout.strip().splitlines()
    assert loaded == "[]"
    shown = "\n".join(shown)
    if command == ["tasks"]:
        assert "rec-done-1" in shown and "rec-failed-1" in shown and "#1 on throwaway-tasks" in shown
    elif command[0] == "show":
        assert ("Status: done" if command[1] == "rec-done-1" else "ScriptExhausted") in shown


def test_the_installed_dbos_writes_a_schema_version_we_know(written):
    from dbos._migration import get_dbos_migrations, sqlite_migrations

    assert len(sqlite_migrations) in KNOWN_SCHEMA_VERSIONS
    assert len(get_dbos_migrations("dbos", True, False)) in KNOWN_SCHEMA_VERSIONS
    assert tables(written["url"])._schema_version() in KNOWN_SCHEMA_VERSIONS


@pytest.fixture
def sqlite_db(tmp_path, monkeypatch):
    """A SQLite database with one finished task (DBOS stopped after); the environment points at it."""
    rt = backend.launch(tmp_path / "data")
    try:
        Agent("records", model=ScriptedModel(["fine"])).run("one", task_id="one-1", output_dir=tmp_path / "out")
    finally:
        backend.shutdown()
    monkeypatch.setenv("THROWAWAY_DATA", str(rt.data_dir))
    return rt.data_dir / "tasks.sqlite"


def test_tables_of_an_unknown_dbos_version_are_refused_with_a_message(sqlite_db):
    with sqlite3.connect(sqlite_db) as db:
        db.execute("UPDATE dbos_migrations SET version = 999")
    with pytest.raises(UnreadableDatabase, match="schema version 999.*upgrade throwaway"):
        list_tasks()
    out = subprocess.run([sys.executable, "-m", "throwaway.cli", "tasks"], check=False, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "THROWAWAY_DATA": str(sqlite_db.parent)})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "schema version 999" in out.stderr and "reads version 125" in out.stderr
    with sqlite3.connect(sqlite_db) as db:
        db.execute("UPDATE dbos_migrations SET version = 3")
    with pytest.raises(UnreadableDatabase, match="older DBOS"):
        list_tasks()


class Boom:
    """Unpickling this makes a folder: the proof that a row was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("serialization", ["py_pickle", None])
def test_a_pickled_checkpoint_is_read_as_text_never_unpickled(sqlite_db, tmp_path, caplog, serialization):
    marker = tmp_path / "unpickled"
    crafted = base64.b64encode(pickle.dumps(Boom(str(marker)))).decode()
    with sqlite3.connect(sqlite_db) as db:
        db.execute("UPDATE operation_outputs SET output = ?, serialization = ? WHERE workflow_uuid = 'one-1' "
                   "AND function_id = 1", (crafted, serialization))
        db.execute("UPDATE workflow_output SET output = ? WHERE workflow_uuid = 'one-1'", (crafted,))
        db.execute("UPDATE workflow_status SET serialization = ? WHERE workflow_uuid = 'one-1'", (serialization,))
    with caplog.at_level(logging.WARNING, logger="throwaway.durable"):
        assert checkpoints("one-1")[0]["output"] == crafted
        task = get_task("one-1")
    assert task.output is None and task.status == "done" and not marker.exists()
    assert "never unpickles" in caplog.text


def test_no_database_yet_means_no_tasks(tmp_path, monkeypatch, request):
    monkeypatch.setenv("THROWAWAY_DATA", str(tmp_path / "data"))
    assert list_tasks() == []
    with pytest.raises(TaskNotFound):
        get_task("x")
    assert not (tmp_path / "data" / "tasks.sqlite").exists()  # reading never makes a database
    pg = request.getfixturevalue("pg_cluster")
    monkeypatch.setenv("THROWAWAY_DATABASE_URL", pg.url("records_never_made"))
    assert list_tasks() == []


def test_an_unreachable_postgres_is_a_message_not_a_hang(tmp_path, monkeypatch, caplog):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(records_module, "RECONNECT_SECONDS", 0.5)
    monkeypatch.setenv("THROWAWAY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("THROWAWAY_DATABASE_URL", f"postgresql://u:secret@127.0.0.1:{port}/tasks")
    with caplog.at_level(logging.WARNING, logger="throwaway.durable"), \
            pytest.raises(UnreadableDatabase, match="cannot open the tasks' database") as e:
        list_tasks()
    assert "secret" not in str(e.value) and "not answering" in caplog.text  # waited for it first


def test_a_server_that_refuses_us_is_a_message_at_once(pg_cluster, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("THROWAWAY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("THROWAWAY_DATABASE_URL", pg_cluster.url("tasks").replace("postgres@", "nobody@"))
    with caplog.at_level(logging.WARNING, logger="throwaway.durable"), \
            pytest.raises(UnreadableDatabase, match='role "nobody" does not exist'):
        list_tasks()
    assert "not answering" not in caplog.text  # not waited for as if the server were away


def test_a_kept_connection_survives_a_postgres_restart(pg_cluster, tmp_path):
    url = pg_cluster.url("records_restart")
    backend.launch(tmp_path / "data", url)  # DBOS makes its tables
    backend.shutdown()
    kept = tables(url)
    assert kept.latest(WORKFLOW_NAME) == []
    pg_cluster.restart()  # the server goes away under the kept connection, and comes back
    assert tables(url) is kept and kept.latest(WORKFLOW_NAME) == []


def test_a_model_failure_reads_back_as_itself():
    from throwaway.agent.models import ModelFailed
    from throwaway.durable.decoding import decode
    from throwaway.durable.serialization import JsonSerializer

    back = decode(JsonSerializer().serialize(ModelFailed("model x at http://h: refused")))
    assert type(back) is ModelFailed and str(back) == "model x at http://h: refused"


def test_every_command_is_found_where_the_cli_looks_for_it():
    from throwaway.cli import COMMAND_MODULES, main

    for home in set(COMMAND_MODULES.values()):
        module = importlib.import_module(f"throwaway.cli.{home}")
        assert sorted(c.name for c in module.COMMANDS) == sorted(
            name for name, where in COMMAND_MODULES.items() if where == home)
    assert all(main.get_command(None, name).name == name for name in COMMAND_MODULES)
