"""Serves the guest's file operations on host-backed mounts (the "fs" host call).

One `FsServer` per sandbox: it holds the open files (handles) and the bytes
written against each mount's quota. Every path is checked by the mount; host
paths never reach the guest, not even in error messages.
"""

from __future__ import annotations

import errno
import os
import stat as stat_
from dataclasses import dataclass, field
from typing import Any

from ..wire.calls import Reply
from .filesystem import FileSystem
from .mounts import FileInfo, HostDir, Mount, Resource, _bytes, _then
from .paths import guest_rel

WHOLE = 4 * 1024 * 1024  # files up to this size go to the guest whole, at open


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
        self.written: dict[str, int] = {}
        self.quota_hit = False

    def plan(self) -> list[dict[str, Any]]:
        """What the guest mounts at boot: each host-backed mount's path and id."""
        self._mounts = self.fs.host_backed()
        return [{"path": m.path, "id": i} for i, m in enumerate(self._mounts)]

    def reset(self) -> None:
        """Forget open files (the worker that had them is gone)."""
        for h in self._handles.values():
            if h.fd is not None:
                os.close(h.fd)
        self._handles.clear()

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

    def _new_handle(self, handle: _Handle) -> int:
        self._next += 1
        self._handles[self._next] = handle
        return self._next

    def _read(self, h: _Handle, args: dict, data: bytes) -> bytes:
        pos, length = _int(args, "pos"), min(_int(args, "len"), WHOLE)
        if h.fd is not None:
            return os.pread(h.fd, length, pos)
        return h.data[pos : pos + length]

    def _write(self, h: _Handle, args: dict, data: bytes) -> dict:
        pos = _int(args, "pos")
        if h.fd is not None:
            mount = h.mount
            assert isinstance(mount, HostDir)
            used = self.written.get(mount.path, 0)
            if used + len(data) > mount.quota_bytes:
                self.quota_hit = True
                raise OSError(errno.ENOSPC, f"No space left on device (the {mount.quota_bytes}-byte write quota "
                                            f"of {mount.path} is used up)")
            self.written[mount.path] = used + len(data)
            os.pwrite(h.fd, data, pos)
            return {}
        if h.buffer is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if len(h.buffer) < pos:
            h.buffer.extend(b"\0" * (pos - len(h.buffer)))
        h.buffer[pos : pos + len(data)] = data
        return {}

    def _close(self, h: _Handle, args: dict, data: bytes) -> Any:
        self._handles.pop(args["h"], None)
        if h.fd is not None:
            os.close(h.fd)
        elif h.buffer is not None:
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
        path = m.resolve(rel)
        if stat_.S_ISDIR(os.stat(path).st_mode):
            if mode != "r":
                raise OSError(errno.EISDIR, "Is a directory")
            return {"h": None, "whole": True, "stat": _stat(m.stat(rel))}
        if mode == "r":
            flags = os.O_RDONLY
        else:
            m.check_writable()
            flags = (os.O_WRONLY if mode == "w" else os.O_RDWR) | (os.O_TRUNC if args.get("trunc") else 0)
        fd = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        info = m.stat(rel)
        if mode == "r" and info.size <= WHOLE:
            try:
                data = os.pread(fd, WHOLE + 1, 0)
            finally:
                os.close(fd)
            # Sent whole, and no handle kept: the guest's close costs no call.
            return Reply({"h": None, "whole": True, "stat": _stat(FileInfo(False, len(data), info.mtime, m.writable))},
                         data)
        return {"h": self._new_handle(_Handle(m, rel, fd=fd)), "whole": False, "stat": _stat(info)}

    def _host_create(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        fd = os.open(m.resolve(rel, must_exist=False), os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o644)
        os.close(fd)
        return _stat(m.stat(rel))

    def _host_mkdir(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        os.mkdir(m.resolve(rel, must_exist=False), 0o755)
        return _stat(m.stat(rel))

    def _host_unlink(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        os.unlink(m.resolve(rel, must_exist=False))
        return {}

    def _host_rmdir(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        os.rmdir(m.resolve(rel))
        return {}

    def _host_rename(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        os.rename(m.resolve(rel, must_exist=False), m.resolve(guest_rel(args.get("to")), must_exist=False))
        return {}

    def _host_truncate(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        os.truncate(m.resolve(rel), _int(args, "size"))
        return {}

    def _host_utime(self, m: HostDir, rel: str, args: dict) -> dict:
        m.check_writable()
        t = _int(args, "mtime") / 1000
        os.utime(m.resolve(rel), (t, t))
        return {}

    # -- resources ----------------------------------------------------------------

    def _resource_stat(self, m: Resource, rel: str, args: dict) -> Any:
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
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
        raise OSError(errno.EINVAL, "Invalid argument")
    return int(v)
