"""The kinds of mounts: memory folders, /output, host folders, and resources.

Memory mounts live in the guest. Host folders and resources are served by the
host, live, through `throwaway.fs.server`: the guest's file operations become
calls to the methods here. Resource methods may be plain or async.
"""

from __future__ import annotations

import errno
import inspect
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .paths import guest_rel, inside

Content = Union[bytes, str]
MaybeAsync = Union[Any, Awaitable[Any]]


@dataclass(frozen=True)
class FileInfo:
    """What `stat` tells about a path in a mount."""

    is_dir: bool
    size: int = 0
    mtime: float = 0.0  # seconds since the epoch
    writable: bool = False

    def mode(self) -> int:
        # The usual bits even on read-only mounts (as Linux shows them): the
        # host refuses writes there with EROFS, which says why.
        return (stat.S_IFDIR | 0o755) if self.is_dir else (stat.S_IFREG | 0o644)


class Mount:
    """A folder in the guest's tree. `kind` is how it is served; `description`
    is one line for the agent's prompt."""

    kind = "memory"
    writable = True
    host_backed = False

    def __init__(self, description: str = "") -> None:
        self.description = description
        self.path = ""  # set when mounted

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path or '(unmounted)'}>"


class MemoryMount(Mount):
    """Scratch files that live in the guest's memory (and in its snapshots)."""


class OutputMount(MemoryMount):
    """The guest's results: in memory, listed and copied out as artifacts."""

    kind = "output"


class HostDir(Mount):
    """A real host folder, read-only unless `writable`; `quota_bytes` caps
    what the guest may write into it per sandbox."""

    kind = "host"
    host_backed = True

    def __init__(self, root: str | os.PathLike[str], *, writable: bool = False, description: str = "",
                 quota_bytes: int = 100 * 1024 * 1024) -> None:
        super().__init__(description)
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise ValueError(f"{root} is not a folder on the host")
        self.writable = writable
        self.quota_bytes = quota_bytes

    def resolve(self, rel: str, *, must_exist: bool = True) -> Path:
        return inside(self.root, rel, must_exist=must_exist)

    def check_writable(self) -> None:
        if not self.writable:
            raise OSError(errno.EROFS, "Read-only file system")

    def stat(self, rel: str) -> FileInfo:
        st = os.stat(self.resolve(rel))
        return FileInfo(stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime, self.writable)

    def list(self, rel: str) -> list[str]:
        folder = self.resolve(rel)
        # Links that lead out of the mount are not shown at all.
        return sorted(n for n in os.listdir(folder) if _within(self.root, folder / n))


class Resource(Mount):
    """A folder whose files host functions compute: subclass it and override
    `list` and `read` (and `write`, `delete` for a writable one). Each method
    may be plain or async; paths are relative to the mount, like '/a/b.txt'.

    >>> class Tickets(Resource):
    ...     def list(self, path): return ["open/", "README.md"] if path == "/" else ["1.json"]
    ...     def read(self, path): return '{"id": 1}'
    """

    kind = "resource"
    host_backed = True
    writable = False

    def list(self, path: str) -> MaybeAsync:
        """Names in the folder `path`; a folder's name ends with '/'."""
        raise OSError(errno.ENOTDIR, "Not a directory")

    def read(self, path: str) -> MaybeAsync:
        """The contents of the file `path` (bytes or str)."""
        raise OSError(errno.ENOENT, "No such file or directory")

    def write(self, path: str, data: bytes) -> MaybeAsync:
        """Accept the contents written to `path` (called when the guest closes it)."""
        raise OSError(errno.EROFS, "Read-only file system")

    def can_write(self, path: str) -> bool:
        """Whether the guest may open `path` for writing (checked at open)."""
        return self.writable

    def delete(self, path: str) -> MaybeAsync:
        raise OSError(errno.EROFS, "Read-only file system")

    def stat(self, path: str) -> MaybeAsync:
        """Whether `path` is a folder or a file (and its size). The default
        looks the name up in its folder's listing, and reads files for their size."""
        if path == "/":
            return FileInfo(True, 0, time.time(), self.writable)
        parent, _, name = path.rpartition("/")
        return _then(self.list(parent or "/"), lambda names: self._info(path, name, names))

    def _info(self, path: str, name: str, names: Iterable[str]) -> MaybeAsync:
        names = set(names)
        if name + "/" in names:
            return FileInfo(True, 0, time.time(), self.writable)
        if name in names:
            return _then(self.read(path), lambda data: FileInfo(False, len(_bytes(data)), time.time(), self.writable))
        raise OSError(errno.ENOENT, "No such file or directory")


class Files(Resource):
    """Single virtual files in one folder, each computed by a host function
    (see `FileSystem.file`)."""

    def __init__(self, description: str = "") -> None:
        super().__init__(description)
        self.files: dict[str, tuple[Callable[..., Any], bool]] = {}
        # Contents computed for a stat (the guest's open looks the file up
        # first), kept briefly so that the open that follows does not compute
        # them a second time.
        self._fresh: dict[str, tuple[float, Any]] = {}

    @property
    def writable(self) -> bool:  # type: ignore[override]
        return any(w for _, w in self.files.values())

    def add(self, name: str, fn: Callable[..., Any], writable: bool) -> None:
        self.files[name] = (fn, writable)

    def list(self, path: str) -> list[str]:
        if path != "/":
            raise OSError(errno.ENOTDIR, "Not a directory")
        return sorted(self.files)

    def can_write(self, path: str) -> bool:
        return self.files.get(path.lstrip("/"), (None, False))[1]

    def _fn(self, path: str, *, write: bool) -> Callable[..., Any]:
        entry = self.files.get(guest_rel(path).lstrip("/"))
        if entry is None:
            raise OSError(errno.ENOENT, "No such file or directory")
        fn, writable = entry
        if write and not writable:
            raise OSError(errno.EROFS, "Read-only file system")
        return fn

    def read(self, path: str) -> MaybeAsync:
        fn = self._fn(path, write=False)
        if self.files[path.lstrip("/")][1]:
            return b""  # a write-only file reads as empty
        fresh = self._fresh.pop(path, None)
        if fresh is not None and time.monotonic() - fresh[0] < 2.0:
            return fresh[1]
        return fn()

    def write(self, path: str, data: bytes) -> MaybeAsync:
        return self._fn(path, write=True)(data)

    def stat(self, path: str) -> MaybeAsync:
        if path == "/":
            return FileInfo(True, 0, time.time(), False)
        fn, writable = self.files.get(path.lstrip("/"), (None, False))
        if fn is None:
            raise OSError(errno.ENOENT, "No such file or directory")
        if writable:
            return FileInfo(False, 0, time.time(), True)

        def info(data: Any) -> FileInfo:
            self._fresh[path] = (time.monotonic(), data)
            return FileInfo(False, len(_bytes(data)), time.time(), False)

        return _then(fn(), info)


def _within(root: Path, path: Path) -> bool:
    resolved = Path(os.path.realpath(path))
    return resolved == root or root in resolved.parents


def _bytes(data: Content) -> bytes:
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"a resource must give bytes or str, not {type(data).__name__}")


def _then(value: MaybeAsync, fn: Callable[[Any], Any]) -> MaybeAsync:
    """fn(value), or a coroutine doing that once `value` is awaited: the same
    code serves plain and async resource functions."""
    if inspect.isawaitable(value):

        async def later() -> Any:
            result = fn(await value)
            return await result if inspect.isawaitable(result) else result

        return later()
    return fn(value)


@dataclass(frozen=True)
class MountSpec:
    """A host folder mounted into the guest for one task (``--mount HOST:GUEST[:rw]``)."""

    host: str
    guest: str
    writable: bool = False

    @classmethod
    def parse(cls, text: str) -> MountSpec:
        """Read ``HOST:GUEST`` or ``HOST:GUEST:rw`` (or ``:ro``)."""
        host, sep, rest = text.partition(":")
        guest, _, mode = rest.partition(":")
        if not sep or not host or not guest.startswith("/") or mode not in ("", "ro", "rw"):
            raise ValueError(f"expected HOST:GUEST[:rw] with an absolute GUEST path, got {text!r}")
        return cls(str(Path(host).expanduser().resolve()), guest.rstrip("/") or "/", mode == "rw")
