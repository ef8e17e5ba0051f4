"""Snapshots of the guest's in-memory tree, content-addressed.

A snapshot is a manifest (every folder, file and link under the in-memory
roots, with modes and mtimes; files by sha256) stored as a blob itself, so a
snapshot is named by one hash and each file's bytes are stored once, however
many snapshots hold them.
"""

from __future__ import annotations

import json
from typing import Any

from ..store import BlobStore
from ..wire.calls import HostCalls


class SnapshotWriter:
    """Takes the files the store lacks from the guest, then writes the manifest."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def calls(self) -> HostCalls:
        calls = HostCalls()
        calls.add("snapshot.missing", self._missing)
        calls.add("snapshot.put", self._put)
        return calls

    def _missing(self, args: Any, data: bytes) -> list[str]:
        shas = args.get("shas") if isinstance(args, dict) else None
        if not isinstance(shas, list) or not all(isinstance(s, str) for s in shas):
            raise ValueError("snapshot.missing needs a list of shas")
        return [sha for sha in shas if not self.store.has(sha)]

    def _put(self, args: Any, data: bytes) -> None:
        sha = args.get("sha") if isinstance(args, dict) else None
        if self.store.put(data) != sha:
            raise ValueError("snapshot.put: the bytes do not match their sha256")

    def finish(self, entries: list) -> str:
        """Store the manifest for the walked `entries` (files carry their
        sha256); returns its digest."""
        for kind, path, _, _, sha in entries:
            if kind == "f" and not self.store.has(sha):
                raise RuntimeError(f"the guest listed {path} but its contents never arrived")
        manifest = json.dumps({"version": 1, "entries": entries}, sort_keys=True, separators=(",", ":"))
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
