"""Path checks: a path from the guest never leaves the mount it names.

Host folders are walked from a descriptor of the mount's folder, never by host
path, so nothing is checked first and used later. Where the kernel has it
(Linux 5.6+), `openat2` with RESOLVE_BENEATH finds the folder that holds an
entry in one call; otherwise, and whenever that call meets an absolute link,
the path is walked one component at a time with O_NOFOLLOW, links read and
followed by this code. A link is followed only while where it leads stays
inside the mount (an absolute link must name the mount's own folder); a host
process swapping links during a walk can make the lookup fail, never leave the
mount.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import posixpath
import stat
import sys
from pathlib import Path

SYSTEM_DIRS = ("/lib", "/dev", "/proc", "/sys", "/bin", "/usr", "/etc")
MAX_LINKS = 40  # as Linux: past this many links in one lookup, ELOOP

# A folder is opened only as a folder: O_DIRECTORY refuses anything else before
# it is opened (a FIFO never blocks here), O_NOFOLLOW refuses a link.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def mount_point(path: str) -> str:
    """A guest mount point from the host's configuration, normalized; ValueError if unusable."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise ValueError(f"a mount point must be an absolute guest path, not {path!r}")
    norm = posixpath.normpath(path)
    if norm == "/" or any(norm == d or norm.startswith(d + "/") for d in SYSTEM_DIRS):
        raise ValueError(f"cannot mount at {norm!r}: it is the guest's own system folder")
    return norm


def guest_rel(rel: object) -> str:
    """A mount-relative path from the guest ('/a/b'), checked: no '..', no NUL."""
    if not isinstance(rel, str) or not rel.startswith("/") or "\0" in rel or len(rel) > 4096:
        raise OSError(errno.EINVAL, "Invalid argument")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EACCES, "Permission denied")
    return "/" + "/".join(parts)


def lookup(root_fd: int, root: Path, rel: str, *, follow: bool = True) -> tuple[int, str]:
    """Find the guest path `rel` beneath the folder open as `root_fd` (whose
    real host path is `root`): a new descriptor of the folder that holds the
    entry, and the entry's name in it ('.' for the folder itself). The caller
    closes the descriptor and acts on the entry with `dir_fd=` and no-follow
    flags, so what it touches is that entry, inside the mount.

    With `follow`, a final link is followed (while it stays inside); the name
    returned was then not a link when looked at. Without it, the name is the
    guest's last component as is (unlink, rename, rmdir act on a link itself).
    A missing last component is not an error (create, mkdir). Links leading
    outside: PermissionError (EACCES).
    """
    parts = [p for p in guest_rel(rel).split("/") if p]
    if not parts:
        return os.dup(root_fd), "."
    if _openat2_usable():
        try:
            fd = _openat2(root_fd, "/".join(parts[:-1]) or ".", DIR_FLAGS & ~os.O_NOFOLLOW)
        except OSError as e:
            # EXDEV: an absolute link, or a link leading out; the walk tells
            # them apart (and refuses the second with EACCES).
            if e.errno not in (errno.EXDEV, errno.ELOOP, errno.EAGAIN):
                raise
        else:
            if not follow or not _is_link(fd, parts[-1]):
                return fd, parts[-1]
            os.close(fd)
    return _walk(root_fd, root, parts, follow)


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _walk(root_fd: int, root: Path, parts: list[str], follow: bool) -> tuple[int, str]:
    """The lookup one component at a time. Only one folder is held open at a
    time: '..' (from a link) walks down again from the root along the names
    taken, each with O_NOFOLLOW, rather than trusting a folder's own parent."""
    todo = list(reversed(parts))
    names: list[str] = []  # the real folders, from the root, that lead to `cur`
    cur = os.dup(root_fd)
    links = 0
    try:
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if not names:
                    raise OSError(errno.EACCES, "Permission denied")
                names.pop()
                os.close(cur)
                cur = -1
                cur = _descend(root_fd, names)
                continue
            last = not todo
            if last and not follow:
                fd, cur = cur, -1
                return fd, name
            try:
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    fd, cur = cur, -1
                    return fd, name
                raise
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, "Too many levels of symbolic links")
                try:
                    target = os.readlink(name, dir_fd=cur)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                    todo.append(name)  # no longer a link: look at it again (counted, so this ends)
                    continue
                if target.startswith("/"):
                    inner = _under(root, target)
                    names.clear()
                    os.close(cur)
                    cur = -1
                    cur = os.dup(root_fd)
                    todo.extend(reversed(inner))
                else:
                    todo.extend(reversed(target.split("/")))
                continue
            if last:
                fd, cur = cur, -1
                return fd, name
            nxt = os.open(name, DIR_FLAGS, dir_fd=cur)
            os.close(cur)
            cur = nxt
            names.append(name)
        fd, cur = cur, -1
        return fd, "."
    finally:
        if cur >= 0:
            os.close(cur)


def _descend(root_fd: int, names: list[str]) -> int:
    fd = os.dup(root_fd)
    for name in names:
        try:
            nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nxt
    return fd


def _under(root: Path, target: str) -> list[str]:
    """The components of an absolute link's target below `root`; EACCES if it is not below."""
    base = str(root)
    if base == "/":
        return target.split("/")
    if target == base or target.startswith(base + "/"):
        return target[len(base):].split("/")
    raise OSError(errno.EACCES, "Permission denied")


# -- openat2 (Linux 5.6+), through the raw system call -----------------------------

_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}.get(platform.machine())
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08
_openat2_state: bool | None = None  # None: not tried yet


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _openat2(dir_fd: int, path: str, flags: int) -> int:
    assert _libc is not None and _SYS_OPENAT2 is not None
    how = _OpenHow(flags, 0, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
    _libc.syscall.restype = ctypes.c_long
    fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_long(dir_fd), ctypes.c_char_p(os.fsencode(path)),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return fd


def _openat2_usable() -> bool:
    """Whether openat2 works here: tried once (no such call before Linux 5.6,
    and container filters may refuse it with ENOSYS or EPERM)."""
    global _openat2_state
    if _openat2_state is None:
        _openat2_state = False
        if _libc is not None and _SYS_OPENAT2 is not None:
            try:
                fd = _openat2(-100, ".", os.O_PATH | os.O_CLOEXEC)  # AT_FDCWD
            except OSError:
                pass
            else:
                os.close(fd)
                _openat2_state = True
    return _openat2_state


def use_openat2(enabled: bool | None) -> None:
    """Force the walk (False), allow openat2 again (None: probe); for tests."""
    global _openat2_state
    _openat2_state = False if enabled is False else None
