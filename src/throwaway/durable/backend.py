"""Where durable state lives, and starting DBOS on it.

Everything a task leaves behind is in one data folder (``./.throwaway`` or
``$THROWAWAY_DATA``): the DBOS system database (SQLite, unless ``--db`` or
``$THROWAWAY_DATABASE_URL`` names a Postgres one), the blob store that holds
file-system snapshots, and the lock files that tell a running task from an
interrupted one. With Postgres, the blobs go to a table of that database
instead, so a task that moves to another machine finds its files.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: reading tasks (`throwaway tasks`) needs neither SQLAlchemy nor DBOS
    import sqlalchemy as sa

    from throwaway.store import BlobStore, SqlBlobStore

APP_NAME = "throwaway"

# DBOS recovers a workflow only under the application version that started it,
# and by default derives that version from a hash of the workflow's source, so
# any edit would strand every interrupted task. We pin it instead, and bump it
# only when the sequence of steps a task takes changes incompatibly.
APPLICATION_VERSION = "throwaway-task-1"

DEFAULT_DATA_DIR = ".throwaway"


@dataclass(frozen=True)
class Backend:
    """The durable backend this process launched: where tasks and their files live."""

    data_dir: Path
    database_url: str
    blobs: BlobStore | SqlBlobStore
    executor_id: str

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def where(self) -> str:
        """The database, for people to read: the SQLite file, or the URL without its password."""
        return where(self.database_url)

    def lock_path(self, task_id: str) -> Path:
        return lock_path(self.data_dir, task_id)


_lock = threading.RLock()
_current: Backend | None = None


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: `data_dir`, else ``$THROWAWAY_DATA``, else ``./.throwaway``."""
    raw = data_dir or os.environ.get("THROWAWAY_DATA") or DEFAULT_DATA_DIR
    return Path(raw).expanduser().resolve()


def resolve_database_url(data_dir: Path, database_url: str | None = None) -> str:
    """The system database: `database_url`, else ``$THROWAWAY_DATABASE_URL``, else SQLite in the data folder."""
    url = database_url or os.environ.get("THROWAWAY_DATABASE_URL")
    if url:
        # DBOS picks the Postgres driver (psycopg 3) itself.
        return url
    return f"sqlite:///{data_dir / 'tasks.sqlite'}"


def sqlite_engine(url: str) -> sa.Engine:
    """A SQLite engine tuned for checkpoints: WAL, synchronous=NORMAL.

    DBOS's default rollback journal costs about 18 ms a step here; WAL with
    synchronous=NORMAL about 2 ms. NORMAL in WAL mode can lose the last commits
    on a power cut, never on a process crash, and never corrupts the database:
    a crash, which is what durable tasks must survive, loses nothing.
    """
    import sqlalchemy as sa
    from sqlalchemy import event

    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn: Any, _record: Any) -> None:
        # The same settings DBOS applies to engines it makes itself, plus WAL.
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    return engine


def where(database_url: str) -> str:
    """A database URL for people to read: the SQLite file, or the URL without its password."""
    if database_url.startswith("sqlite"):
        return database_url.removeprefix("sqlite:///")
    # As SQLAlchemy's render_as_string(hide_password=True), without importing it.
    scheme, sep, rest = database_url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
    return f"{scheme}{sep}{netloc}{slash}{path}"


def lock_path(data_dir: Path, task_id: str) -> Path:
    """The lock file a process holds while it runs the task (see `locks`)."""
    return data_dir / "locks" / f"{task_id}.lock"


def configured() -> tuple[Path, str]:
    """The data folder and database this process uses: the launched ones, else the configured ones.

    For reading tasks without launching DBOS (which would start an executor).
    """
    with _lock:
        if _current is not None:
            return _current.data_dir, _current.database_url
    folder = resolve_data_dir()
    return folder, resolve_database_url(folder)


def blob_store(data_dir: Path, database_url: str) -> BlobStore | SqlBlobStore:
    """Where snapshots go: a table of the database when it is Postgres (every worker reaches it), else a folder."""
    from throwaway.store import BlobStore, SqlBlobStore

    if database_url.startswith("sqlite"):
        return BlobStore(data_dir / "blobs")
    return SqlBlobStore(engine(database_url))


def engine(database_url: str) -> sa.Engine:
    """An engine on the tasks' database for throwaway's own tables (blobs, workers)."""
    import sqlalchemy as sa

    if database_url.startswith("sqlite"):
        return sqlite_engine(database_url)
    url = sa.make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")  # the driver DBOS itself uses
    return sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)


def new_executor_id() -> str:
    # DBOS recovers, at launch, the pending workflows of its own executor id.
    # Each CLI process gets a fresh id, so starting one never adopts a task
    # another live process is still running; interrupted tasks come back only
    # when asked (`throwaway resume`).
    return os.environ.get("THROWAWAY_EXECUTOR_ID") or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def launch(data_dir: str | os.PathLike[str] | None = None, database_url: str | None = None,
           *, queues: tuple[str, ...] = (), executor_id: str | None = None) -> Backend:
    """Start DBOS on the data folder (idempotent) and return the backend.

    Called by everything that runs tasks; call it yourself to pick a folder or
    a Postgres URL other than the defaults. Only a worker names `queues`: any
    other process never takes submitted tasks from them.
    """
    global _current
    from dbos import DBOS, DBOSConfig

    from . import workflow  # noqa: F401  (registers the task workflow before launch)
    from .serialization import JsonSerializer

    folder = resolve_data_dir(data_dir)
    url = resolve_database_url(folder, database_url)
    with _lock:
        if _current is not None:
            if _current.data_dir == folder and _current.database_url == url:
                return _current
            shutdown()
        folder.mkdir(parents=True, exist_ok=True)
        config: DBOSConfig = {
            "name": APP_NAME,
            "system_database_url": url,
            "application_version": APPLICATION_VERSION,
            "executor_id": executor_id or new_executor_id(),
            "serializer": JsonSerializer(),
            "log_level": os.environ.get("THROWAWAY_LOG_LEVEL", "WARNING"),
        }
        if url.startswith("sqlite"):
            config["system_database_engine"] = sqlite_engine(url)
        DBOS(config=config)
        DBOS.listen_queues(list(queues))
        DBOS.launch()
        if url.startswith("sqlite"):
            from .prepared import install_on_running_dbos

            install_on_running_dbos()  # each step's checkpoint statements built once (see `prepared`)
        _current = Backend(
            data_dir=folder,
            database_url=url,
            blobs=blob_store(folder, url),
            executor_id=config["executor_id"],
        )
        return _current


def current() -> Backend:
    """The launched backend, launching one with the defaults if there is none."""
    with _lock:
        return _current or launch()


def shutdown() -> None:
    """Stop DBOS in this process (tasks it was running stay resumable)."""
    global _current
    from dbos import DBOS

    with _lock:
        if _current is None:
            return
        DBOS.destroy(workflow_completion_timeout_sec=0)
        _current = None
