"""A step's checkpoint on SQLite with statements built once, not on every step.

Every DBOS step reads its checkpoint (is there a recorded output? is the
workflow cancelled?) and writes it (is this process still the workflow's
owner? insert the output). DBOS builds these four statements anew on each
call, and SQLAlchemy then derives each one's cache key from scratch: about
0.6 ms of the 0.9 ms a bare step costs here, twice per step of the agent
loop. DBOS already compiles its hot inserts once on Postgres
(``SystemDatabase._execute_prepared``) but not on SQLite, and not these.

`install` gives DBOS's SQLite system database the same four statements,
built once with bound parameters and compiled once to SQL text, which each
step hands to the driver on DBOS's own connection and transaction, as
`_execute_prepared` does on Postgres. The SQL that runs (byte for byte), its
transaction, the checks and the errors are DBOS's own: the methods below are
DBOS 3.4.0's, line for line, but for where the statement comes from. Anything
off that path (a sharded database, a step that records a child workflow under
a shard key, a column type the driver's values would need converting for)
goes through SQLAlchemy or DBOS's own code.

The methods replaced are fingerprinted: if an upgraded DBOS changed any of
them, `install` leaves DBOS as it is (steps cost what they cost, nothing is
lost), and ``tests/test_prepared_checkpoints.py`` fails to say the copy needs a look.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from typing import Any

import sqlalchemy as sa
from dbos._context import current_owner_xid
from dbos._error import (
    DBOSStepNondeterminismError,
    DBOSUnexpectedStepError,
    DBOSWorkflowCancelledError,
    DBOSWorkflowConflictIDError,
)
from dbos._sys_db import SystemDatabase, WorkflowStatusString
from dbos._sys_db_sqlite import SQLiteSystemDatabase
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# sha256 of the source of each DBOS method this module stands in for (DBOS 3.4.0).
FINGERPRINTS = {
    "_check_operation_execution_txn": "766d41e9fedd809e1658d40b91f7e12b7099a7e6d4617c5f64b443d46e572673",
    "_record_operation_result_txn": "c3ddd7275cd9a49b21ef22cf57ceac9cc1104d676ae6b77618e30f63a708aaec",
    "_check_owner_txn": "5cea51935d85ccd674e9ecd476baeb5f353d63c0dad18d7b53cd4d9a4311579f",
    "_wf": "52241343bd49e90807ce647c961df5a4e4a5265abd0e8463327f4308923fcc66",
    "_wf_values": "253d217618fbf3a891379c2c70d35b9c89ffddd98136d4a010be55c60385bd64",
    "_child_values": "c2d5ebd5fbfcc988d27238fce7d8f24421649a36f8aa6b112d02c5a06ed25009",
    "_key_column": "89f6ce11b5d4da22871c05713fa2da052625cbf3c06ea186c1ffd01841ce8c55",
}


def fingerprint(name: str) -> str:
    return hashlib.sha256(inspect.getsource(getattr(SystemDatabase, name)).encode()).hexdigest()


def changed() -> list[str]:
    """The DBOS methods whose source differs from the ones this module copies ([] when none)."""
    return [name for name, digest in FINGERPRINTS.items() if fingerprint(name) != digest]


def install(sys_db: Any) -> bool:
    """Give DBOS's SQLite system database `sys_db` prebuilt checkpoint statements; False if left as it was."""
    if type(sys_db) is not SQLiteSystemDatabase:
        return isinstance(sys_db, PreparedCheckpoints)
    if different := changed():
        log.warning("DBOS's %s changed since throwaway's prepared checkpoints were written; "
                    "using DBOS's own (slower) statements", ", ".join(different))
        return False
    sys_db.__class__ = PreparedCheckpoints
    return True


class PreparedCheckpoints(SQLiteSystemDatabase):
    """DBOS's SQLite system database, with its step checkpoints' statements built and compiled once."""

    def _run(self, conn: Any, name: str, params: dict[str, Any]) -> Any:
        """Run statement `name` with `params` on DBOS's connection `conn`; its result."""
        compiled = self.__dict__.setdefault("_compiled", {})
        if name not in compiled:
            compiled[name] = self._compile(self._build(name), list(params))
        stmt, sql, order, constants, processors = compiled[name]
        connection = conn.connection() if isinstance(conn, Session) else conn
        if sql is None or connection.dialect is not self.engine.dialect:
            return conn.execute(stmt, params)  # through SQLAlchemy, its compiled cache
        values = []
        for key in order:
            value = params[key] if key in params else constants[key]
            values.append(processors[key](value) if key in processors else value)
        return connection.exec_driver_sql(sql, tuple(values))

    def _compile(self, stmt: Any, keys: list[str]) -> tuple[Any, str | None, tuple[str, ...], dict, dict]:
        """`stmt` as SQL text with its parameters' order, constants and converters (no text: not plain)."""
        dialect = self.engine.dialect
        compiled = stmt.compile(
            dialect=dialect, column_keys=keys, render_schema_translate=True,
            schema_translate_map=self.engine.get_execution_options().get("schema_translate_map"),
        )
        processors: dict[str, Any] = {}
        constants: dict[str, Any] = {}
        for bind_name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[bind_name] = processor
            if bind_name not in keys:
                constants[bind_name] = bind.value  # the statement's own constants, such as 'now'
        # Rows come back as the driver gives them: only where SQLAlchemy would not convert them.
        plain = dialect.positional and compiled.positiontup is not None and not any(
            column[3].dialect_impl(dialect).result_processor(dialect, None) is not None
            for column in compiled._result_columns
        )
        order = tuple(compiled.positiontup or ())
        return stmt, str(compiled) if plain else None, order, constants, processors

    def _build(self, name: str) -> Any:
        ws, oo = self.tables.workflow_status, self.tables.operation_outputs
        wid = sa.bindparam("wid", type_=ws.c.workflow_uuid.type)
        if name == "status":
            return sa.select(ws.c.status).where(ws.c.workflow_uuid == wid)
        if name == "output":
            return sa.select(
                oo.c.output, oo.c.error, oo.c.function_name, oo.c.child_workflow_id, oo.c.serialization,
            ).where(
                oo.c.workflow_uuid == sa.bindparam("wid", type_=oo.c.workflow_uuid.type),
                oo.c.function_id == sa.bindparam("fid", type_=oo.c.function_id.type),
            )
        if name == "owner":
            # A write, so pysqlite opens BEGIN IMMEDIATE here; a SELECT would run in autocommit.
            return (sa.update(ws).where(ws.c.workflow_uuid == wid)
                    .values(owner_xid=ws.c.owner_xid).returning(ws.c.owner_xid))
        if name == "insert":
            # The row's values come with each execution; only the SQL-side timestamp is fixed here.
            return (
                self.dialect.insert(oo)
                .values(retention_timestamp=self._now_ms_sql())
                .on_conflict_do_update(
                    index_elements=self._key_conflict("workflow_uuid", "function_id"),
                    set_={"completed_at_epoch_ms": oo.c.completed_at_epoch_ms},
                )
                .returning(oo.c.completed_at_epoch_ms)
            )
        raise KeyError(name)

    def _check_operation_execution_txn(self, workflow_id: str, function_id: int, function_name: str,
                                       conn: Any) -> Any:
        self._reject_shard_key(workflow_id, None)  # as DBOS's `_wf` does
        workflow_status_rows = self._run(conn, "status", {"wid": workflow_id}).all()
        operation_output_rows = self._run(conn, "output", {"wid": workflow_id, "fid": function_id}).all()
        assert len(workflow_status_rows) > 0, f"Error: Workflow {workflow_id} does not exist"
        workflow_status = workflow_status_rows[0][0]
        if workflow_status == WorkflowStatusString.CANCELLED.value:
            raise DBOSWorkflowCancelledError(f"Workflow {workflow_id} is cancelled. Aborting function.")
        if not operation_output_rows:
            return None
        output, error, recorded_function_name, child_workflow_id, serialization = operation_output_rows[0][:5]
        if function_name != recorded_function_name:
            raise DBOSUnexpectedStepError(workflow_id=workflow_id, step_id=function_id,
                                          expected_name=function_name, recorded_name=recorded_function_name)
        return {"output": output, "error": error, "serialization": serialization,
                "child_workflow_id": child_workflow_id, "child_shard_key": None}

    def _check_owner_txn(self, conn: Any, workflow_id: str, owner_xid: str) -> None:
        self._reject_shard_key(workflow_id, None)
        current = self._run(conn, "owner", {"wid": workflow_id}).scalar()
        if current != owner_xid:
            raise DBOSWorkflowConflictIDError(workflow_id)

    def _record_operation_result_txn(self, result: Any, completed_at_epoch_ms: int, conn: Any, *,
                                     owner_xid: str | None = None,
                                     child_values: dict[str, Any] | None = None) -> None:
        extra = child_values if child_values is not None else self._child_values(result["child_workflow_id"])
        if extra or self._wf_values(result["workflow_uuid"]):
            return super()._record_operation_result_txn(result, completed_at_epoch_ms, conn,
                                                        owner_xid=owner_xid, child_values=child_values)
        error = result["error"]
        output = result["output"]
        assert error is None or output is None, "Only one of error or output can be set"
        if owner_xid is None:
            owner_xid = current_owner_xid(result["workflow_uuid"])
        if owner_xid is not None:
            self._check_owner_txn(conn, result["workflow_uuid"], owner_xid)
        try:
            res = self._run(conn, "insert", {
                "workflow_uuid": result["workflow_uuid"],
                "function_id": result["function_id"],
                "function_name": result["function_name"],
                "started_at_epoch_ms": result["started_at_epoch_ms"],
                "completed_at_epoch_ms": completed_at_epoch_ms,
                "output": output,
                "error": error,
                "child_workflow_id": result["child_workflow_id"],
                "serialization": result["serialization"],
                "application_name": self.app_name,
            })
            rows = res.fetchall()
            if len(rows) > 0:
                existing_completed_at = rows[0][0]
                if existing_completed_at is None or int(existing_completed_at) != completed_at_epoch_ms:
                    raise DBOSStepNondeterminismError(result["workflow_uuid"], result["function_id"])
        except DBAPIError as dbapi_error:
            if self._is_unique_constraint_violation(dbapi_error):
                raise DBOSStepNondeterminismError(result["workflow_uuid"], result["function_id"])  # noqa: B904 - as DBOS
            raise
        return None


def install_on_running_dbos() -> bool:
    """`install` on the system database of the DBOS this process launched."""
    from dbos._dbos import _get_dbos_instance

    return install(_get_dbos_instance()._sys_db)
