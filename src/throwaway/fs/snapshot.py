"""Snapshots of the guest's in-memory tree, content-addressed.

A snapshot is a manifest (every folder, file and link under the in-memory
roots, with modes and mtimes; files by sha256) stored as a blob itself, so a
snapshot is named by one hash and each file's bytes are stored once, however
many snapshots hold them.
"""

from __future__ import annotations

import json
from typing import Any

from ..durable.blobs import BlobStore
from ..sandbox.bridge import HostCalls


class SnapshotWriter:
    """Takes the guest's files as it sends them, then writes the manifest."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.hashes: dict[str, str] = {}

    def calls(self) -> HostCalls:
        calls = HostCalls()
        calls.add("snapshot.put", self._put)
        return calls

    def _put(self, args: Any, data: bytes) -> None:
        path = args.get("path") if isinstance(args, dict) else None
        if not isinstance(path, str):
            raise ValueError("snapshot.put needs a path")
        self.hashes[path] = self.store.put(data)

    def finish(self, entries: list) -> str:
        """Store the manifest for the walked `entries`; returns its digest."""
        out = []
        for kind, path, mode, mtime_ns, extra in entries:
            if kind == "f":
                if path not in self.hashes:
                    raise RuntimeError(f"the guest listed {path} but did not send it")
                extra = self.hashes[path]
            out.append([kind, path, mode, mtime_ns, extra])
        manifest = json.dumps({"version": 1, "entries": out}, sort_keys=True, separators=(",", ":"))
        return self.store.put(manifest.encode())


class SnapshotReader:
    """Serves a stored snapshot to the guest that restores it."""

    def __init__(self, store: BlobStore, digest: str) -> None:
        self.store = store
        self.manifest = load_manifest(store, digest)

    def calls(self) -> HostCalls:
        calls = HostCalls()
        calls.add("snapshot.manifest", lambda args, data: self.manifest)
        calls.add("snapshot.get", self._get)
        return calls

    def _get(self, args: Any, data: bytes) -> bytes:
        sha = args.get("sha") if isinstance(args, dict) else None
        if not isinstance(sha, str):
            raise ValueError("snapshot.get needs a sha")
        return self.store.get(sha)


def load_manifest(store: BlobStore, digest: str) -> dict:
    """The manifest of snapshot `digest`: {"version": 1, "entries": [...]}."""
    manifest = json.loads(store.get(digest))
    if not isinstance(manifest, dict) or manifest.get("version") != 1:
        raise ValueError(f"{digest} is not a snapshot manifest")
    return manifest


def files_of(store: BlobStore, digest: str) -> dict[str, str]:
    """path -> sha256 of each file in the snapshot."""
    return {path: sha for kind, path, _, _, sha in load_manifest(store, digest)["entries"] if kind == "f"}
