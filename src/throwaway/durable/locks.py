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
import threading
from pathlib import Path

# Locks this process holds, by path, with how many holders share each: the
# caller that starts a task takes its lock before DBOS records the task (so it
# never reads as interrupted in between) and the task's own run takes it again.
_held: dict[Path, list[int]] = {}  # path -> [fd, holders]
_guard = threading.Lock()


class TaskLock:
    """An exclusive, non-blocking lock on a task, held by the process running it.

    Re-entrant within a process: a second `acquire` of a lock this process
    holds succeeds, and the file is unlocked when the last holder releases.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._holding = False

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it."""
        with _guard:
            if self._holding:
                return True
            entry = _held.get(self.path)
            if entry is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    return False
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                entry = _held[self.path] = [fd, 0]
            entry[1] += 1
            self._holding = True
            return True

    def release(self) -> None:
        with _guard:
            if not self._holding:
                return
            self._holding = False
            entry = _held[self.path]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[self.path]
                fcntl.flock(entry[0], fcntl.LOCK_UN)
                os.close(entry[0])

    def __enter__(self) -> TaskLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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
