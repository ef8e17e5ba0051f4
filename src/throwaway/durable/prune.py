"""Pruning the blob store: old snapshots of finished tasks go, everything a live task may need stays."""

from __future__ import annotations

import time
from typing import Any

from throwaway.fs.snapshot import load_manifest

from . import backend
from .names import TOOL_STEP, WORKFLOW_NAME
from .queue import client

FINISHED = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


def prune(older_than: float, blobs: Any = None) -> dict[str, int]:
    """Delete the snapshots of tasks that finished more than `older_than` seconds ago.

    Kept: every blob a task that is unfinished (queued, running, interrupted)
    or finished recently can reach from its checkpoints, and every blob
    written within `older_than` (a running task may be writing it now).
    Returns counts: tasks kept, tasks pruned, blobs removed.
    """
    cutoff = time.time() - older_than
    blobs = blobs if blobs is not None else backend.blob_store(*backend.configured())
    keep: set[str] = set()
    kept = pruned = 0
    for wf in client().list_workflows(name=WORKFLOW_NAME, load_input=False, load_output=False):
        if wf.status in FINISHED and (wf.updated_at or 0) / 1000 < cutoff:
            pruned += 1
            continue
        kept += 1
        for step in client().list_workflow_steps(wf.workflow_id):
            output = step.get("output")
            if step.get("function_name") == TOOL_STEP and isinstance(output, dict) and output.get("snapshot"):
                keep |= _reachable(blobs, output["snapshot"])
    removed = blobs.prune(keep, cutoff)
    return {"tasks_kept": kept, "tasks_pruned": pruned, "blobs_removed": removed}


def _reachable(blobs: Any, digest: str) -> set[str]:
    """A snapshot's manifest and the blobs of its files."""
    try:
        entries = load_manifest(blobs, digest)["entries"]
    except (KeyError, ValueError):
        return {digest}
    return {digest} | {sha for kind, _, _, _, sha in entries if kind == "f"}
