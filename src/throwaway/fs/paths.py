"""Path checks: a path from the guest never leaves the mount it names."""

from __future__ import annotations

import errno
import os
import posixpath
from pathlib import Path

SYSTEM_DIRS = ("/lib", "/dev", "/proc", "/sys", "/bin", "/usr", "/etc")


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


def inside(root: Path, rel: str, *, must_exist: bool = True) -> Path:
    """The host path for a guest path under `root`, with symlinks resolved;
    PermissionError if it (or, for a new file, its folder) is outside root."""
    target = root.joinpath(*[p for p in guest_rel(rel).split("/") if p])
    resolved = Path(os.path.realpath(target))
    if not must_exist and not os.path.lexists(target):
        resolved = Path(os.path.realpath(target.parent)) / target.name
    if resolved != root and root not in resolved.parents:
        raise OSError(errno.EACCES, "Permission denied")
    return resolved
