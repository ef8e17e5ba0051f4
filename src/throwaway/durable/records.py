"""DBOS's records of tasks, read straight from its tables: no DBOS, no SQLAlchemy.

Everything that reads tasks goes through here: `throwaway tasks` and `show`,
the web view, `TaskHandle`, resume and cancel (which then write through
DBOS). Importing DBOS and SQLAlchemy costs a process about 0.6 s here, more
than the rest of a read-only command together; the DB-API drivers (sqlite3,
or psycopg for Postgres) and a few plain queries cost a few milliseconds.

The tables are DBOS's, the same in SQLite and Postgres (there in the schema
``dbos``): `workflow_status`, its inputs and outputs in `workflow_input` and
`workflow_output` (older rows keep them in `workflow_status`), the steps'
checkpoints in `operation_outputs`. Their layout is the one of the DBOS schema
versions in `KNOWN_SCHEMA_VERSIONS`; a database at any other version is
refused with a message that says so (a DBOS upgrade that changes the tables
fails the tests, not a user's command). Values are decoded as DBOS would with
our serializer (`decoding`); a value that is not ours, a pickle above all, is
never unpickled: it comes back as its text, with a warning, as DBOS does.
Workers' heartbeats (``throwaway_workers``, see `workers`) are read here too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .decoding import SERIALIZER_NAME, CheckpointNotJson, decode, not_json

# `dbos_migrations.version` of the DBOS versions whose tables this module
# knows (125: DBOS 3.4.0, SQLite and Postgres). After upgrading DBOS, check
# the queries below against its migrations (dbos/_migration.py), then add it.
KNOWN_SCHEMA_VERSIONS = frozenset({125})

SCHEMA = "dbos"  # DBOS's system schema in Postgres (its default; we never change it)
APP_NAME = "throwaway"  # as `backend.APP_NAME`: rows of other applications on the database are not ours

# A worker silent for longer than this is dead: its tasks read as interrupted, and a
# survivor's reaper recovers them (`workers`).
LEASE_SECONDS = 30.0

# How long a read waits for a Postgres server that is away (restarting) before it gives up.
RECONNECT_SECONDS = 30.0

log = logging.getLogger("throwaway.durable")


class UnreadableDatabase(RuntimeError):
    """The tasks' database cannot be read: unreachable, or tables of a DBOS version we do not know."""


@dataclass(frozen=True)
class Workflow:
    """A task's row: DBOS's status, who owns it, when, and its decoded input, output and error."""

    workflow_id: str
    status: str
    executor_id: str | None
    queue_name: str | None
    created_at: int | None  # epoch ms
    updated_at: int | None
    forked_from: str | None
    input: Any  # {"args": [...], "kwargs": {...}}, or the text DBOS stored if it is not ours
    output: Any
    error: Any  # an exception (see `decoding`), or text


@dataclass(frozen=True)
class Step:
    """A finished step's checkpoint: its function id and name, decoded output or error, timing."""

    function_id: int
    function_name: str
    output: Any
    error: Any
    started_at_epoch_ms: int | None
    completed_at_epoch_ms: int | None


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as its heartbeat row shows it; `age` is seconds since its last beat."""

    executor_id: str
    host: str
    pid: int
    queue: str
    age: float

    def describe(self) -> str:
        return f"worker {self.executor_id} (pid {self.pid} on {self.host})"


_WORKFLOW_COLUMNS = """ws.workflow_uuid, ws.status, ws.executor_id, ws.queue_name, ws.created_at, ws.updated_at,
    ws.forked_from, ws.serialization, COALESCE(wi.inputs, ws.inputs), COALESCE(wo.output, ws.output),
    COALESCE(wo.error, ws.error)"""
# Rows of our application, or of none (DBOS's own filter for a client named like ours).
_OURS = "(ws.application_name = ? OR ws.application_name IS NULL)"


class Tables:
    """DBOS's tables in one database, over one DB-API connection (use from one thread)."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.sqlite = database_url.startswith("sqlite")
        self._prefix = "" if self.sqlite else f"{SCHEMA}."
        self._conn: Any = None

    # --- tasks ---------------------------------------------------------------------------

    def latest(self, name: str, limit: int | None = None) -> list[Workflow]:
        """Workflows named `name`, newest first."""
        return self._workflows(f"ws.name = ? AND {_OURS} ORDER BY ws.created_at DESC"
                               + (" LIMIT ?" if limit else ""), (name, APP_NAME, *([limit] if limit else [])))

    def by_id(self, name: str, workflow_id: str) -> Workflow | None:
        found = self._workflows("ws.workflow_uuid = ? AND ws.name = ?", (workflow_id, name))
        return found[0] if found else None

    def by_prefix(self, name: str, prefix: str, limit: int = 2) -> list[Workflow]:
        """Workflows whose id starts with `prefix`, oldest first (up to `limit`)."""
        return self._workflows(f"substr(ws.workflow_uuid, 1, ?) = ? AND ws.name = ? AND {_OURS} "
                               "ORDER BY ws.created_at LIMIT ?", (len(prefix), prefix, name, APP_NAME, limit))

    def queued(self, name: str) -> list[tuple[str, str | None]]:
        """(id, queue) of the workflows waiting on a queue, oldest first: the order queues take them in."""
        return [(r[0], r[1]) for r in self._rows(
            f"SELECT ws.workflow_uuid, ws.queue_name FROM {self._prefix}workflow_status ws "
            f"WHERE ws.name = ? AND ws.status = 'ENQUEUED' AND {_OURS} ORDER BY ws.created_at", (name, APP_NAME))]

    def steps(self, workflow_id: str) -> list[Step]:
        """The workflow's finished steps, by function id."""
        rows = self._rows(
            "SELECT function_id, function_name, output, error, started_at_epoch_ms, completed_at_epoch_ms, "
            f"serialization FROM {self._prefix}operation_outputs WHERE workflow_uuid = ? ORDER BY function_id",
            (workflow_id,))
        return [Step(r[0], r[1], _value(r[2], r[6], workflow_id, "step output"),
                     _value(r[3], r[6], workflow_id, "step error"), r[4], r[5]) for r in rows]

    def _workflows(self, where: str, params: Sequence[Any]) -> list[Workflow]:
        rows = self._rows(
            f"SELECT {_WORKFLOW_COLUMNS} FROM {self._prefix}workflow_status ws "
            f"LEFT JOIN {self._prefix}workflow_input wi ON wi.workflow_uuid = ws.workflow_uuid "
            f"LEFT JOIN {self._prefix}workflow_output wo ON wo.workflow_uuid = ws.workflow_uuid WHERE {where}",
            params)
        return [Workflow(workflow_id=r[0], status=r[1], executor_id=r[2], queue_name=r[3], created_at=r[4],
                         updated_at=r[5], forked_from=r[6], input=_value(r[8], r[7], r[0], "input"),
                         output=_value(r[9], r[7], r[0], "output"), error=_value(r[10], r[7], r[0], "error"))
                for r in rows]

    # --- workers ---------------------------------------------------------------------------

    def live_workers(self, lease: float) -> dict[str, WorkerInfo]:
        """Workers whose heartbeat (the database's clock) is within `lease` seconds, by executor id."""
        now = ("((julianday('now') - 2440587.5) * 86400.0)" if self.sqlite
               else "extract(epoch from clock_timestamp())")
        if self._connection() is None or not self._has("throwaway_workers", schema=None):
            return {}
        rows = self._rows(f"SELECT executor_id, host, pid, queue, {now} - beat_at FROM throwaway_workers", ())
        found = [WorkerInfo(r[0], r[1], int(r[2]), r[3], float(r[4])) for r in rows]
        return {w.executor_id: w for w in found if w.age <= lease}

    # --- the connection -------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of a query written with ``?`` placeholders; none if DBOS has made no tables yet."""
        conn = self._connection()
        if conn is None:
            return []
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        except Exception as e:
            if self.sqlite or not _away(e):
                raise
        self.close()  # the server went away under a kept connection (a restart): once more, on a new one
        conn = self._connection()
        return conn.execute(sql, tuple(params)).fetchall() if conn is not None else []

    def _connection(self) -> Any:
        if self._conn is None:
            conn = self._connect()
            if conn is None:
                return None
            self._conn = conn
            try:
                version = self._schema_version()
            except BaseException:
                self.close()
                raise
            if version is None:  # no tables yet: ask again next time, DBOS may make them meanwhile
                self.close()
                return None
            if version not in KNOWN_SCHEMA_VERSIONS:
                self.close()
                raise UnreadableDatabase(_unknown_version(version, self.url))
        return self._conn

    def _connect(self) -> Any:
        if self.sqlite:
            import sqlite3
            from pathlib import Path

            path = self.url.removeprefix("sqlite:///").partition("?")[0]
            if not Path(path).is_file():
                return None  # no database yet: no tasks (reading never makes one)
            # Read-only: reading tasks never writes. WAL lets it read while tasks are written.
            return sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=30)
        import psycopg

        url = self.url
        scheme, sep, rest = url.partition("://")
        url = f"{scheme.partition('+')[0]}{sep}{rest}"  # SQLAlchemy's "postgresql+psycopg" to libpq's "postgresql"
        deadline = time.monotonic() + RECONNECT_SECONDS
        delay, warned = 0.1, False
        while True:
            try:
                return psycopg.connect(url, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as e:
                if 'database "' in str(e) and "does not exist" in str(e):  # libpq gives no SQLSTATE here
                    return None  # no database yet: no tasks (DBOS makes it when a task is first written)
                if not _away(e) or time.monotonic() + delay > deadline:
                    from .backend import where

                    raise UnreadableDatabase(f"cannot open the tasks' database {where(self.url)}: "
                                             f"{' '.join(str(e).split())}") from None
                if not warned:
                    log.warning("the tasks' database is not answering (%s); trying again for up to %.0f s",
                                " ".join(str(e).split()), RECONNECT_SECONDS)
                    warned = True
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _has(self, table: str, schema: str | None) -> bool:
        if self.sqlite:
            return bool(self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                           (table,)).fetchall())
        name = f"{schema}.{table}" if schema else table
        return self._conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]

    def _schema_version(self) -> int | None:
        """DBOS's migration version of the tables; None if it has made none."""
        if not self._has("dbos_migrations", schema=None if self.sqlite else SCHEMA):
            return None
        row = self._conn.execute(f"SELECT max(version) FROM {self._prefix}dbos_migrations").fetchone()
        return row[0] if row and row[0] is not None else None

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # a connection that is already broken
                conn.close()


def _away(e: BaseException) -> bool:
    """A Postgres error that means the server is away (down, restarting, refusing connections), not a bad query."""
    import psycopg

    if not isinstance(e, psycopg.OperationalError):
        return False
    code = getattr(e, "sqlstate", None) or ""
    if code:  # connection, resources, operator intervention (a restart); not a cancelled query
        return code.startswith(("08", "53", "57")) and code != "57014"
    # No SQLSTATE (a failed connect): a server that answered FATAL is there, unless it is starting or full.
    text = str(e)
    if "FATAL:" in text:
        return any(w in text for w in ("starting up", "shutting down", "recovery", "too many", "connection slots"))
    return True


def _unknown_version(version: int, url: str) -> str:
    from .backend import where

    known = ", ".join(str(v) for v in sorted(KNOWN_SCHEMA_VERSIONS))
    newer = version > max(KNOWN_SCHEMA_VERSIONS)
    return (f"the tasks' database {where(url)} has DBOS's tables at schema version {version}; this throwaway "
            f"reads version {known} only. "
            + ("A newer DBOS wrote them (another machine runs a newer throwaway?): upgrade throwaway here."
               if newer else "An older DBOS wrote them: run a task with this throwaway (`throwaway run`, "
                             "or a worker) and DBOS upgrades them."))


def _value(text: str | None, serialization: str | None, workflow_id: str, what: str) -> Any:
    """A stored value decoded as DBOS decodes it with our serializer; its text if that cannot be done."""
    if text is None:
        return None
    if serialization in (None, SERIALIZER_NAME):
        try:
            return decode(text)
        except CheckpointNotJson as e:
            why = str(e)
    else:
        why = not_json(text, pickled=True) if serialization == "py_pickle" else (
            f"stored as {serialization!r}, which throwaway does not read")
    log.warning("task %s: its %s cannot be read back, shown as text: %s", workflow_id, what, why)
    return text


_local = threading.local()


def tables(database_url: str) -> Tables:
    """The tables of `database_url`, on a connection this thread keeps (for the last database it read)."""
    kept: Tables | None = getattr(_local, "tables", None)
    if kept is None or kept.url != database_url:
        if kept is not None:
            kept.close()
        kept = _local.tables = Tables(database_url)
    return kept
