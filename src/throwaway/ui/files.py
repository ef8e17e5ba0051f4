"""The guest's files as a snapshot holds them: the tree at a step, one file's bytes, the whole tree as a zip.

A snapshot's manifest came from the guest, so nothing in it is trusted: an
entry that is not a well-formed folder, file or link is left out, a file is
looked up by its exact path in the manifest (never on the host's disk), and a
zip holds only paths with no empty, ``.`` or ``..`` parts.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from urllib.parse import quote

from throwaway.fs.snapshot import load_manifest
from throwaway.store import BlobStore

_SHA = re.compile(r"[0-9a-f]{64}")

# Raster images the page may show inline, told by their first bytes, never by their name.
_IMAGE_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
]


def sniff_image(data: bytes) -> str | None:
    """The media type of a PNG, JPEG, GIF or WebP image, by its magic bytes; None for anything else (SVG too)."""
    for magic, media_type in _IMAGE_MAGIC:
        if data.startswith(magic):
            return media_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class Entry:
    """One entry of a snapshot: kind is "d" (folder), "f" (file) or "l" (link, `target` set)."""

    kind: str
    path: str
    mode: int
    sha: str = ""
    target: str = ""

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1] or "/"

    @property
    def depth(self) -> int:
        return self.path.count("/") - 1

    @property
    def url_path(self) -> str:
        """The path for a URL, without its leading slash, each part percent-encoded."""
        return quote(self.path.lstrip("/"), safe="/")


def _entry(raw: object) -> Entry | None:
    if not isinstance(raw, list) or len(raw) != 5:
        return None
    kind, path, mode, _mtime, last = raw
    if not isinstance(path, str) or not path.startswith("/") or not isinstance(mode, int):
        return None
    if kind == "d":
        return Entry("d", path, mode)
    if kind == "f" and isinstance(last, str) and _SHA.fullmatch(last):
        return Entry("f", path, mode, sha=last)
    if kind == "l" and isinstance(last, str):
        return Entry("l", path, mode, target=last)
    return None


class Snapshots:
    """Reads snapshots from a blob store, keeping the last few manifests and image sniffs in memory.

    Both are safe to cache for ever: a snapshot and a blob are named by the
    hash of their bytes.
    """

    def __init__(self, blobs: BlobStore, cache_size: int = 64) -> None:
        self.blobs = blobs
        self._size = cache_size
        self._trees: OrderedDict[str, list[Entry]] = OrderedDict()
        self._images: OrderedDict[str, str | None] = OrderedDict()
        self._lock = Lock()

    def tree(self, digest: str) -> list[Entry]:
        """The snapshot's well-formed entries, sorted by path. KeyError if there is no such snapshot."""
        with self._lock:
            if digest in self._trees:
                self._trees.move_to_end(digest)
                return self._trees[digest]
        if not _SHA.fullmatch(digest or ""):
            raise KeyError(f"not a snapshot: {digest!r}")
        try:
            raw = load_manifest(self.blobs, digest)["entries"]
        except (ValueError, TypeError) as e:
            raise KeyError(f"snapshot {digest} cannot be read: {e}") from None
        entries = sorted((e for e in map(_entry, raw if isinstance(raw, list) else []) if e), key=lambda e: e.path)
        with self._lock:
            self._trees[digest] = entries
            while len(self._trees) > self._size:
                self._trees.popitem(last=False)
        return entries

    def file(self, digest: str, path: str) -> tuple[Entry, bytes]:
        """The file at exactly `path` in the snapshot and its bytes; KeyError if the snapshot has no such file."""
        for entry in self.tree(digest):
            if entry.path == path and entry.kind == "f":
                return entry, self.blobs.get(entry.sha)
        raise KeyError(f"no file {path!r} in snapshot {digest}")

    def image_type(self, sha: str) -> str | None:
        """The raster image type of blob `sha` (see `sniff_image`), remembered."""
        with self._lock:
            if sha in self._images:
                return self._images[sha]
        try:
            kind = sniff_image(self.blobs.get(sha)[:16])
        except (KeyError, ValueError):
            kind = None
        with self._lock:
            self._images[sha] = kind
            while len(self._images) > self._size * 64:
                self._images.popitem(last=False)
        return kind

    def zip(self, digest: str) -> bytes:
        """Every folder and file of the snapshot as a zip; links and unsafe paths are left out."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for entry in self.tree(digest):
                name = safe_zip_name(entry.path)
                if name is None or entry.kind == "l":
                    continue
                if entry.kind == "d":
                    archive.writestr(name + "/", b"")
                else:
                    archive.writestr(name, self.blobs.get(entry.sha))
        return out.getvalue()


def safe_zip_name(path: str) -> str | None:
    """`path` as a relative name inside a zip, or None if extracting it could land outside the folder."""
    parts = path.split("/")[1:]
    if not parts or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        return None
    return "/".join(parts)


def content_disposition(kind: str, filename: str) -> str:
    """A Content-Disposition header for `filename` (which the guest chose): an ASCII fallback and the UTF-8 name."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:100] or "file"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
