"""Workers: processes that take submitted tasks from a DBOS queue and carry each other's tasks.

Each worker writes a heartbeat row (``throwaway_workers``: executor id, host,
pid, queue, last beat) every few seconds. A worker that sees another silent
for longer than the lease claims it (one atomic DELETE of its row: exactly one
survivor wins) and has DBOS recover that executor's pending tasks: they go
back to their queue and the next free worker runs them from their last
finished step. DBOS recovers only its own executor's work by itself; this is
the small reaper that covers a dead machine.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from throwaway.agent import events

from . import backend, drain
from .records import LEASE_SECONDS, WorkerInfo, tables

QUEUE = "throwaway-tasks"
BEAT_SECONDS = 3.0
TABLE = "throwaway_workers"


class Heartbeats:
    """The heartbeat table, on the tasks' database (Postgres, or SQLite for one machine).

    Times are the database's clock, so machines with skewed clocks agree on who is silent.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        meta = sa.MetaData()
        self.table = sa.Table(
            TABLE,
            meta,
            sa.Column("executor_id", sa.String(200), primary_key=True),
            sa.Column("host", sa.String(200), nullable=False),
            sa.Column("pid", sa.Integer, nullable=False),
            sa.Column("queue", sa.String(200), nullable=False),
            sa.Column("beat_at", sa.Float, nullable=False),
        )
        meta.create_all(engine, checkfirst=True)
        if engine.dialect.name == "sqlite":
            self._now: Any = sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)")
        else:
            self._now = sa.literal_column("extract(epoch from clock_timestamp())")

    def beat(self, executor_id: str, queue: str) -> None:
        """Say this worker is alive (insert its row, or move its beat to now)."""
        with self.engine.begin() as c:
            done = c.execute(self.table.update().where(self.table.c.executor_id == executor_id)
                             .values(beat_at=self._now))
            if done.rowcount == 0:
                c.execute(self.table.insert().values(executor_id=executor_id, host=socket.gethostname(),
                                                     pid=os.getpid(), queue=queue, beat_at=self._now))

    def workers(self) -> list[WorkerInfo]:
        """Every worker with a row, newest beat first."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(self.table, (self._now - self.table.c.beat_at).label("age"))
                             .order_by(self.table.c.beat_at.desc())).all()
        return [WorkerInfo(r.executor_id, r.host, r.pid, r.queue, float(r.age)) for r in rows]

    def claim(self, executor_id: str, lease: float) -> bool:
        """Take a silent worker's row away; True for exactly one caller, and only if it is still silent."""
        with self.engine.begin() as c:
            gone = c.execute(self.table.delete().where(self.table.c.executor_id == executor_id)
                             .where(self.table.c.beat_at < self._now - lease))
            return gone.rowcount == 1

    def leave(self, executor_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(self.table.delete().where(self.table.c.executor_id == executor_id))


def heartbeats(database_url: str | None = None) -> Heartbeats:
    """The heartbeat table of the tasks' database (the launched one, or `database_url`)."""
    return Heartbeats(backend.engine(database_url or backend.configured()[1]))


def live_workers(database_url: str | None = None, lease: float = LEASE_SECONDS) -> dict[str, WorkerInfo]:
    """Workers that beat within the lease, by executor id (read as `throwaway tasks` reads them)."""
    return tables(database_url or backend.configured()[1]).live_workers(lease)


class Worker:
    """Runs submitted tasks: up to `concurrency` at once from `queue`, each in its own sandbox.

    `run()` blocks until the worker is stopped: the first SIGTERM or SIGINT
    lets the steps in flight finish, hands the worker's unfinished tasks back
    to the queue and exits; a second one exits at once (the reaper of another
    worker then recovers its tasks after the lease).
    """

    def __init__(self, *, queue: str = QUEUE, concurrency: int = 2, lease: float = LEASE_SECONDS,
                 beat: float = BEAT_SECONDS, data_dir: str | None = None, database_url: str | None = None,
                 say: Callable[[str], None] = print) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.concurrency = concurrency
        self.lease = lease
        self.beat_every = beat
        self.data_dir = data_dir
        self.database_url = database_url
        self.say = say
        self._stop = threading.Event()
        self._signals = 0

    def run(self) -> None:
        from dbos import DBOS

        # The first beat comes before launch: a launched executor may take a task at once.
        folder = backend.resolve_data_dir(self.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        url = backend.resolve_database_url(folder, self.database_url)
        self.executor_id = backend.new_executor_id()
        self.table = heartbeats(url)
        self.table.beat(self.executor_id, self.queue)
        rt = backend.launch(folder, url, queues=(self.queue,), executor_id=self.executor_id)
        DBOS.register_queue(self.queue, worker_concurrency=self.concurrency, polling_interval_sec=0.1)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.say(f"worker {self.executor_id}: taking tasks from queue {self.queue!r}, "
                 f"{self.concurrency} at once, database {rt.where}")
        with events.listen("*", self._report):
            threading.Thread(target=self._heartbeat, name="throwaway-heartbeat", daemon=True).start()
            self._stop.wait()
            self._hand_back()

    # --- inside the worker -----------------------------------------------------

    def _report(self, event: events.Event) -> None:
        kind = event.get("type")
        if kind == "task":
            self.say(f"start  {event['task_id']}  {' '.join(str(event.get('prompt', '')).split())[:60]}")
        elif kind == "done":
            self.say(f"finish {event['task_id']}  {event.get('status')} in {event.get('steps')} steps")
        elif kind == "error":
            self.say(f"failed {event['task_id']}  {event.get('error')}")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.beat_every):
            try:
                self.table.beat(self.executor_id, self.queue)
                self._reap()
            except sa.exc.SQLAlchemyError as e:  # the database restarting: try again next beat
                self.say(f"heartbeat failed ({type(e).__name__}); retrying")

    def _reap(self) -> None:
        from dbos import DBOS

        for other in self.table.workers():
            if other.executor_id == self.executor_id or other.age <= self.lease:
                continue
            if self.table.claim(other.executor_id, self.lease):
                handles = DBOS._recover_pending_workflows([other.executor_id])
                self.say(f"{other.describe()} silent for {other.age:.0f} s: "
                         f"{len(handles)} task(s) back on the queue")

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals += 1
        if self._signals > 1:
            self.say("stopping now")
            os._exit(1)
        self.say("stopping: finishing the steps in flight (signal again to stop at once)")
        self._stop.set()

    def _hand_back(self) -> None:
        """Stop taking tasks, let the steps in flight finish, put this worker's tasks back on the queue."""
        from dbos import DBOS
        from dbos._dbos import _get_dbos_instance

        # DBOS's own shutdown begins by setting these: the queue threads stop dequeuing.
        for stop in _get_dbos_instance().background_thread_stop_events:
            stop.set()
        drain.stop()
        handles = DBOS._recover_pending_workflows([self.executor_id])
        self.table.leave(self.executor_id)
        self.say(f"stopped; {len(handles)} unfinished task(s) handed back to the queue")
        sys.stdout.flush()
        sys.stderr.flush()
        # Parked task threads never return; nothing of theirs is left to save.
        os._exit(0)
