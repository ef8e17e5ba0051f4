"""Step checkpoints on SQLite with statements built once (`throwaway.durable.prepared`).

They must be DBOS's own checkpoints in every way but cost: the same SQL, the
same answers, the same errors. Each behaviour below runs against DBOS's own
class and against ours.
"""

from __future__ import annotations

import pytest
from dbos import DBOS, SetWorkflowID
from dbos._dbos import _get_dbos_instance
from dbos._error import (
    DBOSStepNondeterminismError,
    DBOSUnexpectedStepError,
    DBOSWorkflowCancelledError,
    DBOSWorkflowConflictIDError,
)
from dbos._sys_db_sqlite import SQLiteSystemDatabase
from sqlalchemy import event

from throwaway.durable import backend, prepared


@DBOS.step(name="test.prepared_step")
def _step(n: int) -> dict:
    return {"n": n, "text": "x" * 50}


@DBOS.workflow(name="test.prepared_workflow")
def _workflow(n: int) -> list:
    return [_step(i) for i in range(n)]


@pytest.fixture
def sys_db(tmp_path):
    backend.launch(tmp_path / "data")
    db = _get_dbos_instance()._sys_db
    yield db
    db.__class__ = prepared.PreparedCheckpoints
    backend.shutdown()


def test_launch_on_sqlite_prepares_the_checkpoints_of_this_dbos(sys_db):
    assert prepared.changed() == [], (
        "DBOS changed methods that throwaway.durable.prepared copies: compare them with the copies there, "
        "update the copies, then FINGERPRINTS")
    assert type(sys_db) is prepared.PreparedCheckpoints


def test_install_leaves_a_changed_dbos_alone(sys_db, monkeypatch):
    sys_db.__class__ = SQLiteSystemDatabase
    monkeypatch.setitem(prepared.FINGERPRINTS, "_check_owner_txn", "0" * 64)
    assert prepared.install(sys_db) is False
    assert type(sys_db) is SQLiteSystemDatabase


def _statements_of_one_step(db, workflow_id: str) -> list:
    seen, on = [], []

    def record(conn, cursor, statement, parameters, context, executemany):
        if on:  # Timestamps differ between runs; the rest must not.
            seen.append((statement, [p if not (isinstance(p, int) and p > 10**12) else "<ms>" for p in parameters]))

    @DBOS.workflow(name=f"test.one_step_{workflow_id}")
    def one_step() -> None:
        on.append(1)
        _step(7)
        on.clear()

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with SetWorkflowID("step-of-" + workflow_id):
            one_step()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return [(s, [p for p in ps if p != "step-of-" + workflow_id]) for s, ps in seen]


def test_a_step_runs_the_same_sql_as_dbos_own(sys_db):
    ours = _statements_of_one_step(sys_db, "ours")
    sys_db.__class__ = SQLiteSystemDatabase
    theirs = _statements_of_one_step(sys_db, "theirs")
    assert len(ours) == 4  # read the task's status and the checkpoint; check the owner, insert the checkpoint
    assert ours == theirs


@pytest.fixture(params=["dbos", "prepared", "prepared, through SQLAlchemy"])
def each_class(request, sys_db, monkeypatch):
    if request.param == "dbos":
        sys_db.__class__ = SQLiteSystemDatabase
    elif request.param == "prepared, through SQLAlchemy":  # the way taken when the driver's values need converting
        compile_ = prepared.PreparedCheckpoints._compile
        monkeypatch.setattr(prepared.PreparedCheckpoints, "_compile",
                            lambda self, stmt, keys: (compile_(self, stmt, keys)[0], None, (), {}, {}))
    with SetWorkflowID(f"wf-{request.param}"):
        _workflow(1)
    return sys_db, f"wf-{request.param}"


def _result(workflow_id: str, function_id: int, output: str | None = '"out"', error: str | None = None) -> dict:
    return {"workflow_uuid": workflow_id, "function_id": function_id, "function_name": "test.prepared_step",
            "output": output, "error": error, "serialization": "throwaway_json", "started_at_epoch_ms": 1,
            "child_workflow_id": None}


def test_a_recorded_step_reads_back(each_class):
    db, wid = each_class
    assert db.check_operation_execution(wid, 100, "test.prepared_step") is None
    db.record_operation_result(_result(wid, 100), completed_at_epoch_ms=5)
    found = db.check_operation_execution(wid, 100, "test.prepared_step")
    assert (found["output"], found["error"], found["serialization"]) == ('"out"', None, "throwaway_json")
    db.record_operation_result(_result(wid, 101, output=None, error="!error:{}"), completed_at_epoch_ms=5)
    assert db.check_operation_execution(wid, 101, "test.prepared_step")["error"] == "!error:{}"
    # The step the workflow itself ran reads back too.
    assert db.check_operation_execution(wid, 1, "test.prepared_step")["output"] is not None


def test_another_step_at_a_recorded_place_is_refused(each_class):
    db, wid = each_class
    db.record_operation_result(_result(wid, 100), completed_at_epoch_ms=5)
    with pytest.raises(DBOSUnexpectedStepError):
        db.check_operation_execution(wid, 100, "test.another_step")


def test_recording_a_step_twice_is_nondeterminism_unless_it_is_the_same_attempt(each_class):
    db, wid = each_class
    db.record_operation_result(_result(wid, 100), completed_at_epoch_ms=5)
    db.record_operation_result(_result(wid, 100), completed_at_epoch_ms=5)  # a retried commit: fine
    with pytest.raises(DBOSStepNondeterminismError):
        db.record_operation_result(_result(wid, 100), completed_at_epoch_ms=6)


def test_a_process_that_no_longer_owns_the_task_cannot_record(each_class):
    db, wid = each_class
    with pytest.raises(DBOSWorkflowConflictIDError):
        db.record_operation_result(_result(wid, 100), completed_at_epoch_ms=5, owner_xid="not-the-owner")
    assert db.check_operation_execution(wid, 100, "test.prepared_step") is None


def test_a_cancelled_task_stops_at_its_next_step(each_class):
    db, wid = each_class
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE workflow_status SET status = 'CANCELLED' WHERE workflow_uuid = ?", (wid,))
    with pytest.raises(DBOSWorkflowCancelledError):
        db.check_operation_execution(wid, 100, "test.prepared_step")


def test_a_step_of_no_task_is_an_error(each_class):
    db, _ = each_class
    with pytest.raises(AssertionError, match="does not exist"):
        db.check_operation_execution("no-such-task", 1, "test.prepared_step")
