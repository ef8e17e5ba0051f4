"""The V8 code cache the runtime boots with, prepared once, read-only after.

Without one, every runtime compiles Pyodide's JS (pyodide.asm.mjs, 1.2 MB)
and our own before it runs them: 0.1-0.25 s of a boot on a 2-core machine.
Deno keeps such a cache in DENO_DIR, and writes it as it goes; but the same
folder takes what guest code stores through the Cache API, with no
permission asked. So the cache is written once, by a runtime that boots and
stops without running any guest code, into a folder of its own; from then on
every runtime reads it with file writes forbidden by the kernel (`landlock`).
Where the kernel cannot forbid them, there is no cache (`usable_code_cache`
says None) and nothing changes.

V8 takes a code cache only from a process with the same V8 flags, and the
runtime's flags carry its memory limit (`deno_command`): the cache is made
with the default `Limits().memory_mb`, and a runtime with another limit
reads it, has it refused and compiles its JS as it did before.

THROWAWAY_CODE_CACHE=0 turns it off.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import warnings
import tempfile
import time
from pathlib import Path

from ..wire import frames
from . import landlock
from .limits import Limits
from .process import Process, RuntimeDied
from .runtime import GUEST_FILE, JS_DIR, Runtime, SetupError, boot_config, deno_command, deno_env, process_limits

WARM_TIMEOUT = 120.0
_failed: set[Path] = set()  # folders this process could not make: not tried again


def _enabled() -> bool:
    return os.environ.get("THROWAWAY_CODE_CACHE", "1") != "0" and landlock.available()


def usable_code_cache(runtime: Runtime) -> Path | None:
    """The code cache folder for the runtime's DENO_DIR, or None: none made
    yet, or this kernel cannot keep the runtime from writing to it."""
    if not _enabled():
        return None
    folder = runtime.code_cache_dir
    return folder if folder.is_dir() else None


def ensure_code_cache(runtime: Runtime) -> Path | None:
    """Make the code cache if it is missing and can be used; its folder, or None.

    It needs the boot snapshot (made by the first boot): until that exists,
    this does nothing and runtimes boot without the cache. Two processes
    making it at once each make their own and the first rename wins.
    """
    if not _enabled():
        return None
    folder = runtime.code_cache_dir
    if folder.is_dir():
        return folder
    snapshot = runtime.snapshot_path(())
    if not snapshot.exists() or folder in _failed:
        return None
    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".making-", dir=folder.parent))
        _warm(runtime, tmp / "made", snapshot)
        _seal(tmp / "made", tmp / "sealed")
        try:
            (tmp / "sealed").rename(folder)
        except OSError:  # another process made it first
            if not folder.is_dir():
                raise
    except (SetupError, OSError) as e:
        # Runtimes boot without it, as before: slower, not broken.
        _failed.add(folder)
        warnings.warn(f"throwaway: no code cache for the runtime's boot ({e}); boots take 0.1-0.25 s longer",
                      RuntimeWarning, stacklevel=2)
        return None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _warm(runtime: Runtime, deno_dir: Path, snapshot: Path) -> None:
    """Boot a runtime with a writable DENO_DIR up to "ready", then stop it.

    It gets its configuration and then the order to stop: no guest code, and
    no host code but ours, ever runs in it (the same JS and snapshot as every
    runtime, so Deno caches the code all of them load)."""
    deno_dir.mkdir()
    limits = Limits()
    key = frames.new_key()
    cmd = deno_command(runtime, memory_mb=limits.memory_mb)
    env = {**deno_env(runtime), "DENO_DIR": str(deno_dir)}
    read = [runtime.pyodide_dir, JS_DIR.resolve(), GUEST_FILE.resolve(), runtime.packages_dir]
    config = boot_config(runtime, key=key, frame_bytes=limits.frame_bytes, snapshot=snapshot, preload=(), read=read)
    runtime.packages_dir.mkdir(parents=True, exist_ok=True)
    proc = Process(cmd, env, process_limits(limits.memory_mb), key=key, confine=False)
    try:
        proc.send(frames.encode(config))
        deadline = time.monotonic() + WARM_TIMEOUT
        while True:
            msg = proc.recv(deadline, 1 << 30)
            if msg is None:
                raise SetupError(f"the runtime did not start within {WARM_TIMEOUT:.0f} s while making its code cache")
            if msg.type == "ready":
                break
            if msg.type == "fatal":
                raise SetupError(f"the runtime failed while making its code cache: {msg.get('message', str, '')}")
        proc.send(frames.encode({"t": "shutdown"}))
        try:
            proc.proc.wait(timeout=WARM_TIMEOUT)
        except Exception:  # noqa: BLE001 - killed below either way
            pass
    except RuntimeDied as died:
        raise SetupError(f"the runtime died while making its code cache: {died}") from None
    finally:
        proc.kill()
    if not (deno_dir / "v8_code_cache_v2").exists():
        raise SetupError(f"Deno wrote no code cache into {deno_dir}")


def _seal(made: Path, folder: Path) -> None:
    """Copy Deno's SQLite caches from `made` into `folder`, readable by a
    process that can write nothing.

    Deno opens them in WAL mode and gives a cache up if its opening writes
    (switching a read-only database to WAL, or analyzing it). A read-only WAL reader needs the
    -wal and -shm files as an open connection leaves them: so everything is
    checkpointed into the database, and the three files are copied while the
    connection is open (closing it rewrites them).
    """
    folder.mkdir()
    for db in made.glob("*_v2"):
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                raise SetupError(f"{db} is not in WAL mode")
            # Deno's opening runs PRAGMA optimize, which analyzes tables that
            # were never analyzed: a write. Done here, it finds nothing to do.
            conn.execute("ANALYZE")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
            for suffix in ("", "-wal", "-shm"):
                shutil.copyfile(db.with_name(db.name + suffix), folder / (db.name + suffix))
        finally:
            conn.close()
