"""Which tasks a live process on this machine is running.

DBOS records a pending task the same way whether its process is running it or
died mid-step. A task's process holds an exclusive lock on a file named for the
task while it runs; the operating system drops the lock when the process dies,
however it dies. So a pending task whose lock is free was interrupted.
(Machine-local: with Postgres and many machines, ask DBOS's executor ids.)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class TaskLock:
    """An exclusive, non-blocking lock on a task, held by the process running it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def holder(path: Path) -> int | None:
    """The pid of the live process holding the lock at `path`, or None if it is free."""
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = path.read_text().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
