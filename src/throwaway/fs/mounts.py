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
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .paths import DIR_FLAGS, guest_rel, lookup

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
    """A real host folder, read-only unless `writable`.

    What the guest may do to it is capped per sandbox: `quota_bytes` is how
    much the files it writes may grow the folder by (a write counts up to its
    end offset and a truncate its new length, so a sparse write far out counts
    in full; shrinking and deleting give back what the same sandbox added);
    `max_entries` is how many files and folders it may create (net of those it
    deletes). Only regular files and folders are opened: a FIFO, socket or
    device in the folder gets ENXIO and is never opened. Links are followed
    only while they lead inside the folder.
    """

    kind = "host"
    host_backed = True

    def __init__(self, root: str | os.PathLike[str], *, writable: bool = False, description: str = "",
                 quota_bytes: int = 100 * 1024 * 1024, max_entries: int = 10_000) -> None:
        super().__init__(description)
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise ValueError(f"{root} is not a folder on the host")
        self.writable = writable
        self.quota_bytes = quota_bytes
        self.max_entries = max_entries

    @contextmanager
    def at(self, rel: str, *, follow: bool = True) -> Iterator[tuple[int, str]]:
        """The folder descriptor and name of the entry `rel` (see `paths.lookup`)."""
        root_fd = os.open(self.root, DIR_FLAGS)
        try:
            dir_fd, name = lookup(root_fd, self.root, rel, follow=follow)
        finally:
            os.close(root_fd)
        try:
            yield dir_fd, name
        finally:
            os.close(dir_fd)

    def check_writable(self) -> None:
        if not self.writable:
            raise OSError(errno.EROFS, "Read-only file system")

    def lstat(self, rel: str) -> os.stat_result:
        """The host's stat of the entry at `rel` (links inside followed)."""
        with self.at(rel) as (d, name):
            st = os.stat(name, dir_fd=d, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):  # swapped for a link since the lookup looked
            raise OSError(errno.ELOOP, "Too many levels of symbolic links")
        return st

    def stat(self, rel: str) -> FileInfo:
        st = self.lstat(rel)
        return FileInfo(stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime, self.writable)

    def list(self, rel: str) -> list[str]:
        with self.at(rel) as (d, name):
            fd = os.open(name, DIR_FLAGS, dir_fd=d)
        try:
            names = os.listdir(fd)
            shown = []
            for n in names:
                try:
                    is_link = stat.S_ISLNK(os.stat(n, dir_fd=fd, follow_symlinks=False).st_mode)
                except FileNotFoundError:
                    continue
                if is_link and not self._leads_inside(rel.rstrip("/") + "/" + n):
                    continue  # links that lead out of the mount are not shown at all
                shown.append(n)
            return sorted(shown)
        finally:
            os.close(fd)

    def _leads_inside(self, rel: str) -> bool:
        try:
            self.lstat(rel)
        except FileNotFoundError:
            return True  # a dangling link inside: shown, as the host shows it
        except OSError:
            return False
        return True

    def open_file(self, rel: str, flags: int) -> int:
        """A descriptor of the regular file at `rel` (EISDIR for a folder; see `open_entry`)."""
        fd, _ = self.open_entry(rel, flags)
        if fd is None:
            raise OSError(errno.EISDIR, "Is a directory")
        return fd

    def open_entry(self, rel: str, flags: int) -> tuple[int | None, os.stat_result]:
        """The entry at `rel` in one lookup: a folder's stat (and no descriptor),
        or a regular file opened with `flags`, and its stat. Anything else is
        refused before it is opened (ENXIO), and again after, in case it was
        swapped in between: the open itself never blocks."""
        with self.at(rel) as (d, name):
            st = os.stat(name, dir_fd=d, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                return None, st
            _regular(st)
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=d)
        try:
            st = os.fstat(fd)
            _regular(st)
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def create(self, rel: str) -> None:
        """Create the empty file `rel`; EEXIST if anything is there (even a link)."""
        with self.at(rel, follow=False) as (d, name):
            flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            os.close(os.open(name, flags, 0o644, dir_fd=d))

    def mkdir(self, rel: str) -> None:
        with self.at(rel, follow=False) as (d, name):
            os.mkdir(name, 0o755, dir_fd=d)

    def unlink(self, rel: str) -> int:
        """Remove the entry `rel` itself (a link, not what it points to); the bytes this frees."""
        with self.at(rel, follow=False) as (d, name):
            freed = _frees(d, name)
            os.unlink(name, dir_fd=d)
        return freed

    def rmdir(self, rel: str) -> None:
        with self.at(rel, follow=False) as (d, name):
            os.rmdir(name, dir_fd=d)

    def rename(self, rel: str, to: str) -> int:
        """Rename the entry `rel` to `to`; the bytes freed by replacing what was at `to`."""
        with self.at(rel, follow=False) as (d, name), self.at(to, follow=False) as (d2, name2):
            src = os.stat(name, dir_fd=d, follow_symlinks=False)
            try:
                dst = os.stat(name2, dir_fd=d2, follow_symlinks=False)
            except FileNotFoundError:
                dst = None
            # Renaming a file onto one of its own names frees nothing.
            same = dst is not None and (src.st_dev, src.st_ino) == (dst.st_dev, dst.st_ino)
            freed = 0 if same else _frees(d2, name2)
            os.rename(name, name2, src_dir_fd=d, dst_dir_fd=d2)
        return freed

    def utime(self, rel: str, mtime: float) -> None:
        with self.at(rel) as (d, name):
            os.utime(name, (mtime, mtime), dir_fd=d, follow_symlinks=False)


def _regular(st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise OSError(errno.EISDIR, "Is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.ENXIO, "No such device or address (only regular files and folders open here)")


def _frees(dir_fd: int, name: str) -> int:
    """What removing the entry would free: a regular file's size, if this is its only name."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 else 0


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
    # A file the guest writes is held on the host until it is closed: at most
    # this many bytes (its end offset), else EFBIG.
    max_write_bytes = 16 * 1024 * 1024

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
        return _then(fn(), lambda data: FileInfo(False, len(_bytes(data)), time.time(), False))

    def computes(self, path: str) -> bool:
        """Whether reading `path` calls its function (a readable file, not a write-only one)."""
        entry = self.files.get(path.lstrip("/"))
        return entry is not None and not entry[1]


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
