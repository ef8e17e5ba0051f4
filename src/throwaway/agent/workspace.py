"""A task's live sandbox in this process, brought back to its last snapshot when fresh."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from throwaway.sandbox import Sandbox
    from throwaway.store import BlobStore


class Workspace:
    """The sandbox a task's tool calls share, started on first use.

    Checkpoints hold only the hash of a file-system snapshot; the snapshot's
    blobs live in `blobs`. A sandbox started for a step that follows a
    snapshot (after a crash, or on another machine) is first restored to it,
    so the task sees the files it had. Without `blobs` nothing is snapshotted.
    """

    def __init__(self, factory: Callable[[], Sandbox], blobs: BlobStore | None = None) -> None:
        self._factory = factory
        self.blobs = blobs
        self._sandbox: Sandbox | None = None

    @property
    def started(self) -> bool:
        return self._sandbox is not None

    def get(self, snapshot: str | None) -> tuple[Sandbox, bool]:
        """The live sandbox, and whether it was just restored from `snapshot`."""
        if self._sandbox is not None:
            return self._sandbox, False
        sandbox = self._factory()
        sandbox.start()
        restored = False
        try:
            if snapshot and self.blobs is not None:
                sandbox.restore(self.blobs, snapshot)
                restored = True
                # A cell reports the /output files changed since the previous
                # cell; an empty cell makes the restored files the baseline,
                # so the next cell does not claim to have written them.
                sandbox.exec("pass")
        except BaseException:
            sandbox.close()
            raise
        self._sandbox = sandbox
        return sandbox, restored

    @property
    def restarts(self) -> int:
        """How many times the sandbox's runtime was replaced (see `Sandbox.restarts`)."""
        return self._sandbox.restarts if self._sandbox is not None else 0

    def snapshot(self) -> str | None:
        """Store the sandbox's writable files in the blob store; the snapshot's hash (None: no store)."""
        assert self._sandbox is not None, "snapshot() before the sandbox started"
        if self.blobs is None:
            return None
        return self._sandbox.snapshot(self.blobs)

    def close(self) -> None:
        if self._sandbox is not None:
            try:
                self._sandbox.close()
            finally:
                self._sandbox = None
