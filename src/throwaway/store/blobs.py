"""A content-addressed blob store: each blob is stored once, under its sha256."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobStore:
    """Blobs in a local folder, named by the sha256 of their bytes.

    Writes are atomic (a temporary file renamed into place), so a crash never
    leaves a half-written blob under a valid name.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        if _DIGEST.fullmatch(digest) is None:
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        """Store `data` (once) and return its sha256 hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return digest

    def get(self, digest: str) -> bytes:
        """Return the blob stored under `digest`; KeyError if there is none."""
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            raise KeyError(f"no blob {digest} in {self.root}") from None

    def has(self, digest: str) -> bool:
        try:
            return self._path(digest).exists()
        except ValueError:
            return False

    def prune(self, keep: Iterable[str], older_than: float) -> int:
        """Delete blobs written before `older_than` (epoch seconds) whose digest is not in `keep`."""
        keep = set(keep)
        removed = 0
        for path in self.root.glob("??/*"):
            digest = path.parent.name + path.name
            if _DIGEST.fullmatch(digest) and digest not in keep and path.stat().st_mtime < older_than:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
