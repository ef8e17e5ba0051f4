"""A task's live sandbox in this process, brought back to its checkpoint when fresh."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .blobs import BlobStore

if TYPE_CHECKING:
    from throwaway.sandbox import Sandbox


class SandboxSession:
    """The sandbox a task's tool steps share, started on first use.

    Checkpoints hold only the hash of a file-system snapshot; the snapshot's
    blobs live in `blobs`. A sandbox started for a step that follows a
    checkpoint (after a crash, or on another machine) is first restored to
    that snapshot, so the task sees the files it had.
    """

    def __init__(self, factory: Callable[[], Sandbox], blobs: BlobStore) -> None:
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
            if snapshot:
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

    def snapshot(self) -> str:
        """Store the sandbox's writable files in the blob store; return the snapshot's hash."""
        assert self._sandbox is not None, "snapshot() before the sandbox started"
        return self._sandbox.snapshot(self.blobs)

    def close(self) -> None:
        if self._sandbox is not None:
            try:
                self._sandbox.close()
            finally:
                self._sandbox = None
