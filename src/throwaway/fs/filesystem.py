"""The mount table: what the guest's tree holds, and who serves each part."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from typing import Any, TypeVar

from .mounts import Files, HostDir, MemoryMount, Mount, OutputMount
from .paths import mount_point

F = TypeVar("F", bound=Callable[..., Any])

HOME = "/home/user"
OUTPUT = "/output"


class FileSystem:
    """The guest's tree: memory folders, /output, host folders and resources.

    >>> fs = FileSystem()
    >>> @fs.file("/network/current-ip", description="this machine's public IP address")
    ... async def current_ip():
    ...     return "203.0.113.7"
    >>> fs.mount_host("/data", ".", description="the project's data, read-only")
    <HostDir /data>

    `/home/user` (the working directory), `/tmp` and `/output` are there by
    default. Every mount has a one-line description for the agent's prompt.
    `max_open_files` caps the host files (and resource files being written)
    one sandbox may hold open at once; past it the guest's open gets EMFILE.
    """

    def __init__(self, *, max_open_files: int = 256) -> None:
        self.max_open_files = max_open_files
        self._mounts: dict[str, Mount] = {}
        self.mount(HOME, MemoryMount("your working folder (in memory, kept between steps)"))
        self.mount("/tmp", MemoryMount("scratch space (in memory)"))
        self.mount(OUTPUT, OutputMount("put files for the user here; they are handed over after each step"))

    def mount(self, path: str, mount: Mount, *, description: str | None = None) -> Mount:
        """Mount `mount` at the guest path `path` (replacing what was there)."""
        path = mount_point(path)
        if description is not None:
            mount.description = description
        if mount.host_backed:
            for other, existing in self._mounts.items():
                if existing.host_backed and other != path and _overlap(other, path):
                    raise ValueError(f"{path} overlaps the host-backed mount {other}")
        mount.path = path
        self._mounts[path] = mount
        return mount

    def mount_host(self, path: str, host_path: str | os.PathLike[str], *, writable: bool = False,
                   description: str = "", quota_bytes: int = 100 * 1024 * 1024,
                   max_entries: int = 10_000) -> HostDir:
        """Serve the host folder `host_path` at `path`, read-only unless `writable`
        (caps: see `HostDir`)."""
        mount = HostDir(host_path, writable=writable, description=description, quota_bytes=quota_bytes,
                        max_entries=max_entries)
        self.mount(path, mount)
        return mount

    def file(self, path: str, *, description: str = "", write: bool = False) -> Callable[[F], F]:
        """Serve one virtual file computed by the decorated function.

        The function (plain or async) is called each time the guest opens the
        file and returns its contents (str or bytes). With `write=True` it is
        called with the bytes the guest wrote, when the guest closes the file.
        """
        path = mount_point(path)
        folder, name = posixpath.split(path)

        def register(fn: F) -> F:
            files = self._mounts.get(folder)
            if files is None:
                files = self.mount(folder, Files())
            elif not isinstance(files, Files):
                raise ValueError(f"{folder} is already a {files.kind} mount; put the file in a folder of its own")
            files.add(name, fn, write)
            if description:
                line = f"{name}: {description}"
                files.description = f"{files.description}; {line}" if files.description else line
            return fn

        return register

    def copy(self) -> FileSystem:
        """A new mount table holding the same mounts: mounting on the copy leaves this one as it is.

        Mounts are definitions (a folder, functions); what a sandbox opens on
        them lives in that sandbox, so tasks can share them safely.
        """
        other = FileSystem.__new__(FileSystem)
        other.max_open_files = self.max_open_files
        other._mounts = dict(self._mounts)
        return other

    def unmount(self, path: str) -> None:
        del self._mounts[mount_point(path)]

    @property
    def mounts(self) -> list[Mount]:
        """The mounts, by path."""
        return [self._mounts[p] for p in sorted(self._mounts)]

    def host_backed(self) -> list[Mount]:
        return [m for m in self.mounts if m.host_backed]

    def memory_roots(self) -> list[str]:
        """The guest folders that hold in-memory files (what snapshots cover)."""
        return [m.path for m in self.mounts if not m.host_backed]

    def describe(self) -> str:
        """The mount table as lines for a prompt: path, kind and access, description."""
        lines = []
        for m in self.mounts:
            access = "read-write" if m.writable else "read-only"
            lines.append(f"{m.path}  ({m.kind}, {access})  {m.description}".rstrip())
        return "\n".join(lines)


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")
