"""Serves the guest's file operations on host-backed mounts (the "fs" host call).

One `FsServer` per sandbox: it holds the open files (handles) and what the
guest has added to each writable mount. Every path is looked up by the mount,
beneath its folder; host paths never reach the guest, not even in error
messages.

Caps, each an errno in the guest: open handles (`FileSystem.max_open_files`,
EMFILE); bytes a writable host folder may grow by (`HostDir.quota_bytes`,
counted by end offset and truncate length, ENOSPC) and entries created in it
(`HostDir.max_entries`, EDQUOT), both reported as the cell's `limit == "disk"`;
a resource file being written (`Resource.max_write_bytes`, EFBIG) and all of a
sandbox's such buffers together (`MAX_BUFFERED`, ENOBUFS).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..wire.calls import Reply
from .filesystem import FileSystem
from .mounts import FileInfo, Files, HostDir, Mount, Resource, _bytes, _then
from .paths import guest_rel

WHOLE = 4 * 1024 * 1024  # files up to this size go to the guest whole, at open
MAX_BUFFERED = 64 * 1024 * 1024  # all resource files being written by one sandbox, together
FRESH_SECONDS = 2.0  # how long a resource's contents computed for a stat serve the open after it
MAX_OFFSET = 2**53  # positions and sizes past this are not numbers JavaScript sends exactly


@dataclass
class _Handle:
    mount: Mount
    rel: str
    fd: int | None = None  # host folders
    data: bytes = b""  # resources being read
    buffer: bytearray | None = None  # resources being written
    extra: dict[str, Any] = field(default_factory=dict)


class FsServer:
    """The host side of HOSTFS for one sandbox."""

    def __init__(self, fs: FileSystem) -> None:
        self.fs = fs
        self._mounts: list[Mount] = []
        self._handles: dict[int, _Handle] = {}
        self._next = 0
        # Host calls may come from several threads (a handler abandoned at a
        # deadline may still be running): the tables and counts change under this.
        self._lock = threading.Lock()
        self.used: dict[str, int] = {}  # bytes added to each writable host folder, by mount path
        self.entries: dict[str, int] = {}  # files and folders created in it, net of those removed
        self.quota_hit = False
        # Contents a resource function computed for a stat (the guest's open
        # looks the file up first), kept briefly so that the open that follows
        # does not compute them a second time. Per sandbox: never another's.
        self._fresh: dict[tuple[str, str], tuple[float, Any]] = {}

    @property
    def max_handles(self) -> int:
        return getattr(self.fs, "max_open_files", 256)

    def plan(self) -> list[dict[str, Any]]:
        """What the guest mounts at boot: each host-backed mount's path and id."""
        self._mounts = self.fs.host_backed()
        return [{"path": m.path, "id": i} for i, m in enumerate(self._mounts)]

    def reset(self) -> None:
        """Forget open files (the worker that had them is gone)."""
        with self._lock:
            handles = list(self._handles.values())
            self._handles.clear()
        for h in handles:
            if h.fd is not None:
                os.close(h.fd)

    def quick(self, args: Any) -> bool:
        """Whether this call only reads a host folder: a few local syscalls,
        bounded in size (at most WHOLE bytes a read), running none of a
        resource's functions. A blocking `Sandbox` runs such calls on its own
        thread instead of handing them to a handler thread and waiting for it:
        two thread wake-ups fewer a call (open()+read() of a small file about
        490 -> 380 us, load ~7). Writes (quotas, a resource's write function)
        and every resource call go to a handler thread, under the cell's
        deadline. The call itself checks its arguments as any other."""
        if not isinstance(args, dict):
            return False
        op = args.get("op")
        if op in ("read", "close"):
            h = self._handles.get(args.get("h"))  # type: ignore[arg-type]
            return h is not None and h.buffer is None  # a resource being written is handed over on close
        if op in ("stat", "list", "open"):
            i = args.get("m")
            return (isinstance(i, int) and 0 <= i < len(self._mounts) and isinstance(self._mounts[i], HostDir)
                    and (op != "open" or args.get("mode") == "r"))
        return False

    def __call__(self, args: Any, data: bytes) -> Any:
        if not isinstance(args, dict) or not isinstance(args.get("op"), str):
            raise OSError(errno.EINVAL, "Invalid argument")
        op = args["op"]
        try:
            if op in ("read", "write", "close"):
                return getattr(self, "_" + op)(self._handle(args), args, data)
            mount = self._mount(args)
            rel = guest_rel(args.get("p"))
            kind = "host" if isinstance(mount, HostDir) else "resource"
            method = getattr(self, f"_{kind}_{op}", None)
            if method is None:
                raise OSError(errno.ENOSYS, "Function not implemented")
            return method(mount, rel, args)
        except OSError as e:
            # Re-raised bare: the host's own paths stay out of the guest's view.
            raise OSError(e.errno, e.strerror or os.strerror(e.errno or errno.EIO)) from None

    # -- common ---------------------------------------------------------------

    def _mount(self, args: dict) -> Mount:
        i = args.get("m")
        if not isinstance(i, int) or not 0 <= i < len(self._mounts):
            raise OSError(errno.ENODEV, "No such device")
        return self._mounts[i]

    def _handle(self, args: dict) -> _Handle:
        h = self._handles.get(args.get("h"))  # type: ignore[arg-type]
        if h is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        return h

    def _room(self) -> None:
        if len(self._handles) >= self.max_handles:
            raise OSError(errno.EMFILE, f"Too many open files (at most {self.max_handles} open at once in "
                                        "mounted folders; close some)")

    def _new_handle(self, handle: _Handle) -> int:
        with self._lock:
            try:
                self._room()
            except OSError:
                if handle.fd is not None:
                    os.close(handle.fd)
                raise
            self._next += 1
            self._handles[self._next] = handle
            return self._next

    def _charge(self, mount: HostDir, grow: int) -> None:
        """Count `grow` bytes (negative: given back) against the mount's quota. Under the lock."""
        used = self.used.get(mount.path, 0)
        if grow > 0 and used + grow > mount.quota_bytes:
            self.quota_hit = True
            raise OSError(errno.ENOSPC, f"No space left on device (the {mount.quota_bytes}-byte write quota "
                                        f"of {mount.path} is used up)")
        self.used[mount.path] = max(0, used + grow)

    def _count_entry(self, mount: HostDir, n: int) -> None:
        """Count `n` created entries (negative: removed) against the mount's cap. Under the lock."""
        have = self.entries.get(mount.path, 0)
        if n > 0 and have + n > mount.max_entries:
            self.quota_hit = True
            raise OSError(errno.EDQUOT, f"Disk quota exceeded (at most {mount.max_entries} files and folders "
                                        f"may be created in {mount.path})")
        self.entries[mount.path] = max(0, have + n)

    def _read(self, h: _Handle, args: dict, data: bytes) -> bytes:
        pos, length = _int(args, "pos"), min(_int(args, "len"), WHOLE)
        if h.fd is not None:
            return os.pread(h.fd, length, pos)
        return h.data[pos : pos + length]

    def _write(self, h: _Handle, args: dict, data: bytes) -> dict:
        pos = _int(args, "pos")
        end = pos + len(data)
        if h.fd is not None:
            mount = h.mount
            assert isinstance(mount, HostDir)
            with self._lock:
                # By where the write ends, not by its length: a write far out
                # makes a file that large (sparse or not) and counts so.
                self._charge(mount, end - os.fstat(h.fd).st_size)
                os.pwrite(h.fd, data, pos)
            return {}
        if h.buffer is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        mount = h.mount
        assert isinstance(mount, Resource)
        if end > mount.max_write_bytes:
            h.extra["refused"] = True
            raise OSError(errno.EFBIG, f"File too large (a file written to {mount.path} may have at most "
                                       f"{mount.max_write_bytes} bytes)")
        with self._lock:
            grow = max(0, end - len(h.buffer))
            held = sum(len(o.buffer) for o in self._handles.values() if o.buffer is not None)
            if held + grow > MAX_BUFFERED:
                h.extra["refused"] = True
                raise OSError(errno.ENOBUFS, f"No buffer space available (files being written to resources "
                                             f"may hold at most {MAX_BUFFERED} bytes together; close some)")
            if len(h.buffer) < pos:
                h.buffer.extend(bytes(pos - len(h.buffer)))
            h.buffer[pos:end] = data
        return {}

    def _close(self, h: _Handle, args: dict, data: bytes) -> Any:
        with self._lock:
            self._handles.pop(args["h"], None)
        if h.fd is not None:
            os.close(h.fd)
        elif h.buffer is not None and not h.extra.get("refused"):
            # A file that had a write refused is not handed over cut short.
            mount = h.mount
            assert isinstance(mount, Resource)
            return _then(mount.write(h.rel, bytes(h.buffer)), lambda _: {})
        return {}

    # -- host folders -----------------------------------------------------------

    def _host_stat(self, m: HostDir, rel: str, args: dict) -> dict:
        return _stat(m.stat(rel))

    def _host_list(self, m: HostDir, rel: str, args: dict) -> dict:
        return {"names": m.list(rel)}

    def _host_open(self, m: HostDir, rel: str, args: dict) -> Any:
        mode = args.get("mode")
        if mode not in ("r", "w", "rw"):
            raise OSError(errno.EINVAL, "Invalid argument")
        if mode == "r":
            flags = os.O_RDONLY
        else:
            m.check_writable()
            flags = os.O_WRONLY if mode == "w" else os.O_RDWR
        # A folder, or a regular file opened; anything else refused without being opened.
        fd, st = m.open_entry(rel, flags)
        if fd is None:
            if mode != "r":
                raise OSError(errno.EISDIR, "Is a directory")
            return {"h": None, "whole": True, "stat": _stat(FileInfo(True, st.st_size, st.st_mtime, m.writable))}
        try:
            if mode != "r" and args.get("trunc"):
                with self._lock:
                    self._charge(m, -st.st_size)
                    os.ftruncate(fd, 0)
                st = os.fstat(fd)
            data = os.pread(fd, WHOLE + 1, 0) if mode == "r" and st.st_size <= WHOLE else None
        except BaseException:
            os.close(fd)
            raise
        if data is not None:
            os.close(fd)
            # Sent whole, and no handle kept: the guest's close costs no call.
            return Reply({"h": None, "whole": True,
                          "stat": _stat(FileInfo(False, len(data), st.st_mtime, m.writable))}, data)
        info = FileInfo(False, st.st_size, st.st_mtime, m.writable)
        return {"h": self._new_handle(_Handle(m, rel, fd=fd)), "whole": False, "stat": _stat(info)}

    def _host_create(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        with self._lock:
            self._count_entry(m, 1)
            try:
                m.create(rel)
            except BaseException:
                self._count_entry(m, -1)
                raise
        return _stat(m.stat(rel))

    def _host_mkdir(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        with self._lock:
            self._count_entry(m, 1)
            try:
                m.mkdir(rel)
            except BaseException:
                self._count_entry(m, -1)
                raise
        return _stat(m.stat(rel))

    def _host_unlink(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        with self._lock:
            freed = m.unlink(rel)
            self._charge(m, -freed)
            self._count_entry(m, -1)
        return {}

    def _host_rmdir(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        with self._lock:
            m.rmdir(rel)
            self._count_entry(m, -1)
        return {}

    def _host_rename(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        to = guest_rel(args.get("to"))
        with self._lock:
            self._charge(m, -m.rename(rel, to))
        return {}

    def _host_truncate(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        size = _int(args, "size")
        fd = m.open_file(rel, os.O_WRONLY)
        try:
            with self._lock:
                # By the new length: truncate(8 GiB) makes a file that large.
                self._charge(m, size - os.fstat(fd).st_size)
                os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return {}

    def _host_utime(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        m.utime(rel, _int(args, "mtime") / 1000)
        return {}

    # -- resources ----------------------------------------------------------------

    def _resource_stat(self, m: Resource, rel: str, args: dict) -> Any:
        if isinstance(m, Files) and m.computes(rel):
            def keep(data: Any) -> dict:
                with self._lock:
                    self._fresh[(m.path, rel)] = (time.monotonic(), data)
                return _stat(FileInfo(False, len(_bytes(data)), time.time(), False))

            return _then(m.read(rel), keep)
        return _then(m.stat(rel), _stat)

    def _resource_list(self, m: Resource, rel: str, args: dict) -> Any:
        return _then(m.list(rel), lambda names: {"names": [str(n).rstrip("/") for n in names]})

    def _resource_open(self, m: Resource, rel: str, args: dict) -> Any:
        if args.get("mode") != "r":
            if not m.can_write(rel):
                raise OSError(errno.EROFS, "Read-only file system")
            h = self._new_handle(_Handle(m, rel, buffer=bytearray()))
            return {"h": h, "whole": True, "stat": _stat(FileInfo(False, 0, 0, True))}

        def opened(content: Any) -> Reply:
            data = _bytes(content)
            info = FileInfo(False, len(data), 0, m.writable)
            if len(data) <= WHOLE:
                return Reply({"h": None, "whole": True, "stat": _stat(info)}, data)
            return Reply({"h": self._new_handle(_Handle(m, rel, data=data)), "whole": False, "stat": _stat(info)})

        with self._lock:
            fresh = self._fresh.pop((m.path, rel), None)
        if fresh is not None and time.monotonic() - fresh[0] < FRESH_SECONDS:
            return opened(fresh[1])
        return _then(m.read(rel), opened)

    def _resource_create(self, m: Resource, rel: str, args: dict) -> dict:
        if not m.can_write(rel):
            raise OSError(errno.EROFS, "Read-only file system")
        return _stat(FileInfo(False, 0, 0, True))

    def _resource_truncate(self, m: Resource, rel: str, args: dict) -> dict:
        if not m.can_write(rel):
            raise OSError(errno.EROFS, "Read-only file system")
        return {}  # a resource is written whole, on close

    def _resource_unlink(self, m: Resource, rel: str, args: dict) -> Any:
        return _then(m.delete(rel), lambda _: {})


def _stat(info: FileInfo) -> dict:
    return {"mode": info.mode(), "size": info.size, "mtime": int(info.mtime * 1000)}


def _int(args: dict, key: str) -> int:
    v = args.get(key)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_OFFSET:
        raise OSError(errno.EINVAL, "Invalid argument")
    return v
