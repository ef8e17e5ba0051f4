"""Flows on a session's files: mounts, transfers, /output artifacts, snapshots.

Each runs host-internal cells (which stay out of the user's cell numbering)
with short-lived host calls for the bytes, and is driven by `Sandbox` or
`AsyncSandbox` like any other flow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..store import BlobStore
from ..fs.snapshot import SnapshotReader, SnapshotWriter
from ..wire.calls import HostCalls
from .session import Flow, RuntimeLost, SandboxError, Session

INTERNAL_TIMEOUT = 120.0

# Guest errors that mean the same on the host.
_ERRORS = {cls.__name__: cls for cls in (FileNotFoundError, IsADirectoryError, NotADirectoryError,
                                        PermissionError, FileExistsError, OSError, ValueError)}


@contextlib.contextmanager
def _serving(session: Session, calls: HostCalls) -> Iterator[None]:
    """Add these host calls for the length of one flow."""
    saved = {name: fn for name, fn in session.calls.items() if name in calls}
    for name, fn in calls.items():
        session.calls.add(name, fn)
    try:
        yield
    finally:
        for name, _ in calls.items():
            session.calls.remove(name)
        for name, fn in saved.items():
            session.calls.add(name, fn)


def run(session: Session, code: str) -> Flow:
    """Run a host-internal cell; its value, or the guest's error raised here."""
    r = yield from session.exec(code, INTERNAL_TIMEOUT, None, internal=True)
    if r.restarted and r.limit != "timeout":
        # The runtime dropped its worker under this cell (and laid out the
        # files of a new one): the work is to be done again (`Session.redo`).
        # (Work that ran out of time would only do so again.)
        raise RuntimeLost(f"the runtime's worker was replaced: {r.error}", replaced=True)
    if r.error is not None:
        cls = _ERRORS.get(r.error.type)
        if cls is not None:
            raise cls(r.error.message)
        raise SandboxError(f"{r.error.type}: {r.error.message}")
    return r.json


def prepare(session: Session, folders: list[str], plan: list[dict], cwd: str) -> Flow:
    """Make the in-memory folders and mount the host-backed ones (after each boot)."""
    code = f"__import__('_throwaway').prepare({folders!r}, {plan!r}, {cwd!r})"
    r = yield from session.exec(code, INTERNAL_TIMEOUT, None, internal=True)
    if r.restarted:
        # The runtime replaced its worker under this cell (a guest that used
        # up the runtime's memory leaves the next worker none), and has
        # prepared the new one already. (A runtime that died raises
        # RuntimeLost: `Session.boot` starts another.)
        return
    if r.error is not None:
        cls = _ERRORS.get(r.error.type)
        if cls is not None:
            raise cls(r.error.message)
        raise SandboxError(f"{r.error.type}: {r.error.message}")


def read_file(session: Session, path: str) -> Flow:
    box: dict[str, bytes] = {}
    calls = HostCalls()
    calls.add("session.file", lambda args, data: box.__setitem__("data", data))
    with _serving(session, calls):
        yield from run(session, f"__import__('_throwaway').send_file({path!r})")
    return box["data"]


def write_file(session: Session, path: str, data: bytes) -> Flow:
    calls = HostCalls()
    calls.add("session.take", lambda args, _: bytes(data))
    with _serving(session, calls):
        yield from run(session, f"__import__('_throwaway').receive_file({path!r})")


def walk(session: Session, roots: list[str], skip: list[str]) -> Flow:
    entries = yield from run(session, f"__import__('_throwaway').walk({roots!r}, {skip!r})")
    return entries


def snapshot(session: Session, store: BlobStore, roots: list[str], skip: list[str]) -> Flow:
    writer = SnapshotWriter(store)
    with _serving(session, writer.calls()):
        entries = yield from run(session, f"__import__('_throwaway').snapshot_tree({roots!r}, {skip!r})")
    return writer.finish(entries)


def restore(session: Session, store: BlobStore, digest: str, roots: list[str], skip: list[str]) -> Flow:
    reader = SnapshotReader(store, digest)
    with _serving(session, reader.calls()):
        yield from run(session, f"__import__('_throwaway').restore_tree({roots!r}, {skip!r})")


def changed(before: dict[str, Any], entries: list) -> tuple[dict[str, Any], list[str]]:
    """The files under a walk that are new or changed since `before` (path -> (mtime, size))."""
    now = {path: [mtime, size] for kind, path, _, mtime, size in entries if kind == "f"}
    return now, sorted(p for p, v in now.items() if before.get(p) != v)
