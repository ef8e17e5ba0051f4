"""Forbid a process every file write, whoever it runs as: Linux's Landlock.

The runtime process writes no file (its stderr is a file the host opened for
it), but Deno itself writes under DENO_DIR with no permission asked: the
Cache API (open to guest code) and the V8 code cache. So the runtime gets a
real DENO_DIR, for the code cache that makes its boot fast, only when the
kernel can refuse those writes: Landlock, unlike file modes, binds root too,
and it holds for the process and everything it starts.

`forbid_writes` runs in the child between fork and exec (`preexec_fn`): it
makes no Python objects it could not make before the fork, takes no lock,
and raises if the kernel says no, so a process that cannot be confined is
never started.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

_CREATE_RULESET, _RESTRICT_SELF = 444, 446  # the same number on every architecture
_VERSION = 1  # LANDLOCK_CREATE_RULESET_VERSION: ask for the ABI version
_NO_NEW_PRIVS = 38  # PR_SET_NO_NEW_PRIVS

# LANDLOCK_ACCESS_FS_*: everything that writes, makes, removes or links a file.
_WRITE_V1 = (
    (1 << 1)  # WRITE_FILE
    | (1 << 4) | (1 << 5)  # REMOVE_DIR, REMOVE_FILE
    | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)  # MAKE_CHAR ... MAKE_SYM
)
_REFER = 1 << 13  # ABI 2: link or rename a file into another folder
_TRUNCATE = 1 << 14  # ABI 3


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:  # pragma: no cover - no libc to load
        return None


@functools.lru_cache(maxsize=None)
def abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none (not Linux,
    an old kernel, or Landlock left out of the kernel's security modules)."""
    libc = _libc()
    if libc is None:
        return 0
    version = libc.syscall(ctypes.c_long(_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION))
    return max(int(version), 0)


def available() -> bool:
    """Whether `forbid_writes` can confine a process here."""
    return abi() >= 1


@functools.lru_cache(maxsize=None)
def _prepared() -> tuple:
    # Everything the child needs (ctypes' function objects included), made
    # before any fork.
    version = abi()
    handled = _WRITE_V1 | (_REFER if version >= 2 else 0) | (_TRUNCATE if version >= 3 else 0)
    attr = _RulesetAttr(handled, 0, 0)
    libc = _libc()
    return (libc.prctl, libc.syscall, libc.close, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), attr,
            ctypes.c_long(_CREATE_RULESET), ctypes.c_long(_RESTRICT_SELF), ctypes.c_uint32(0),
            ctypes.c_int(_NO_NEW_PRIVS))


def forbid_writes() -> None:
    """Forbid this process, and all it starts, to write, make, remove, link
    or truncate any file, by path (already open descriptors stay usable).

    For `subprocess.Popen(preexec_fn=forbid_writes)`; call `prepare()` first
    in the parent. Raises OSError if the kernel refuses: the child is then
    not started.
    """
    prctl, syscall, close, attr_ref, size, _attr, create, restrict, zero, nnp = _prepared()
    if prctl(nnp, 1, 0, 0, 0) != 0:  # required to confine oneself without privileges
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    fd = syscall(create, attr_ref, size, zero)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    # No rule is added: no folder is writable.
    if syscall(restrict, ctypes.c_int(fd), zero) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    close(fd)


def prepare() -> bool:
    """Make what `forbid_writes` needs now, in the parent; whether it can work here."""
    if not available():
        return False
    _prepared()
    return True
