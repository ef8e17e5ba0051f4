"""Blobs in a database table, for workers on many machines that share one database.

Same contract as the folder store (`BlobStore`): content-addressed, each blob
written once. A blob's row is written in one transaction, so a process killed
mid-upload leaves no half-written blob under a valid name.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import sqlalchemy as sa

from .blobs import _DIGEST

TABLE = "throwaway_blobs"
T = TypeVar("T")

# A database that restarts is waited for this long before a blob operation fails.
RECONNECT_SECONDS = 60.0


class SqlBlobStore:
    """Blobs in a table (``throwaway_blobs``) of the given database (Postgres, or SQLite)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        meta = sa.MetaData()
        self.table = sa.Table(
            TABLE,
            meta,
            sa.Column("digest", sa.String(64), primary_key=True),
            sa.Column("data", sa.LargeBinary, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
        )
        self._retrying(lambda: meta.create_all(engine, checkfirst=True))

    def __repr__(self) -> str:
        return f"<SqlBlobStore {self.engine.url.render_as_string(hide_password=True)}>"

    def put(self, data: bytes) -> str:
        """Store `data` (once) and return its sha256 hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        if self.has(digest):
            return digest

        def insert() -> None:
            with self.engine.begin() as c:
                exists = c.execute(sa.select(self.table.c.digest).where(self.table.c.digest == digest)).first()
                if exists is None:
                    c.execute(self.table.insert().values(digest=digest, data=data, created_at=time.time()))

        try:
            self._retrying(insert)
        except sa.exc.IntegrityError:
            pass  # another worker stored the same bytes first
        return digest

    def get(self, digest: str) -> bytes:
        """Return the blob stored under `digest`; KeyError if there is none."""
        _check(digest)

        def read() -> bytes | None:
            with self.engine.connect() as c:
                row = c.execute(sa.select(self.table.c.data).where(self.table.c.digest == digest)).first()
            return None if row is None else bytes(row[0])

        data = self._retrying(read)
        if data is None:
            raise KeyError(f"no blob {digest} in {self!r}")
        return data

    def has(self, digest: str) -> bool:
        if _DIGEST.fullmatch(digest) is None:
            return False

        def look() -> bool:
            with self.engine.connect() as c:
                return c.execute(sa.select(self.table.c.digest).where(self.table.c.digest == digest)).first() is not None

        return self._retrying(look)

    def prune(self, keep: Iterable[str], older_than: float) -> int:
        """Delete blobs written before `older_than` (epoch seconds) whose digest is not in `keep`."""
        keep = set(keep)

        def delete() -> int:
            with self.engine.begin() as c:
                rows = c.execute(sa.select(self.table.c.digest).where(self.table.c.created_at < older_than)).all()
                doomed = [r[0] for r in rows if r[0] not in keep]
                for start in range(0, len(doomed), 500):
                    c.execute(self.table.delete().where(self.table.c.digest.in_(doomed[start:start + 500])))
                return len(doomed)

        return self._retrying(delete)

    def _retrying(self, action: Callable[[], T]) -> T:
        """Run `action`, waiting out a database that went away (a restart), up to `RECONNECT_SECONDS`."""
        deadline = time.monotonic() + RECONNECT_SECONDS
        pause = 0.2
        while True:
            try:
                return action()
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 5.0)


def _check(digest: str) -> None:
    if _DIGEST.fullmatch(digest) is None:
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
