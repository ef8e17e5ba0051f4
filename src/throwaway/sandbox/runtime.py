"""Where the runtime's pieces live, and how to set them up.

Deno comes from the `deno` PyPI package. Pyodide comes from the npm registry,
fetched once by Deno into the cache folder (`throwaway setup` does it ahead of
time); after that nothing here needs a network.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PYODIDE_VERSION = "314.0.7"
JS_DIR = Path(__file__).parent / "js"
# The guest half (Python run inside Pyodide), baked into the boot snapshot.
GUEST_FILE = Path(__file__).parent / "guest" / "_throwaway.py"


class SetupError(RuntimeError):
    """The runtime could not be set up; the message says what to do."""


def cache_root() -> Path:
    """The cache folder: $THROWAWAY_CACHE, else $XDG_CACHE_HOME/throwaway."""
    if env := os.environ.get("THROWAWAY_CACHE"):
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(base) / "throwaway").resolve()


@functools.lru_cache(maxsize=None)
def deno_bin() -> Path:
    """The Deno binary shipped by the `deno` package (or $THROWAWAY_DENO)."""
    # Cached: `deno.find_deno_bin` reads sysconfig, which is not safe to
    # initialise from several threads at once (a pool boots in threads).
    if env := os.environ.get("THROWAWAY_DENO"):
        return Path(env)
    try:
        import deno
    except ImportError:  # pragma: no cover - it is a hard dependency
        raise SetupError("Deno is missing: run `pip install deno`.") from None
    return Path(deno.find_deno_bin())


@dataclass(frozen=True)
class Runtime:
    """The files one Deno runtime needs: Pyodide's assets and our JS program."""

    pyodide_dir: Path
    deno_dir: Path
    cache: Path

    @property
    def lock_path(self) -> Path:
        return self.pyodide_dir / "pyodide-lock.json"

    @property
    def packages_dir(self) -> Path:
        return self.cache / "packages"

    @property
    def snapshots_dir(self) -> Path:
        return self.cache / "snapshots"

    @property
    def code_cache_dir(self) -> Path:
        """The DENO_DIR whose V8 code cache the runtime boots with (see
        `codecache`): one for each Deno binary, Pyodide and version of our JS
        (the runtime cannot add to it, so a change makes a new one)."""
        return self.cache / "code-cache" / _code_key()

    def snapshot_path(self, preload: tuple[str, ...] = ()) -> Path:
        """The memory snapshot's file, keyed by Pyodide version, our guest code
        and the preloaded packages: a change to any of them makes a new one."""
        h = hashlib.sha256()
        h.update(PYODIDE_VERSION.encode())
        for file in (JS_DIR / "worker.js", JS_DIR / "channel.js", GUEST_FILE):
            h.update(file.read_bytes())
        h.update(json.dumps(sorted(preload)).encode())
        return self.snapshots_dir / f"pyodide-{PYODIDE_VERSION}-{h.hexdigest()[:16]}.snap"


CODE_CACHE_FORMAT = 2  # how `codecache` lays the folder out: a change makes a new one


@functools.lru_cache(maxsize=None)
def _code_key() -> str:
    deno = deno_bin()
    h = hashlib.sha256(f"{PYODIDE_VERSION}:{CODE_CACHE_FORMAT}".encode())
    try:
        st = deno.stat()
        h.update(f"{deno.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    except OSError:
        h.update(str(deno).encode())
    # Deno keys its entries by the module's path and source: both count.
    h.update(str(JS_DIR.resolve()).encode())
    for file in sorted(JS_DIR.glob("*.js")):
        h.update(file.name.encode() + b"\0" + file.read_bytes())
    return h.hexdigest()[:16]


def ensure_runtime(cache: Path | None = None) -> Runtime:
    """Return the runtime, fetching Pyodide from the npm registry if it is not
    cached, and preparing the code cache its boot reads once the boot
    snapshot exists (see `codecache`; about a second, once)."""
    cache = cache or cache_root()
    home = cache / "pyodide" / PYODIDE_VERSION
    deno_dir = cache / "deno"
    pyodide_dir = home / "node_modules" / "pyodide"
    if not (pyodide_dir / "pyodide.asm.wasm").exists():
        _install_pyodide(home, deno_dir)
    runtime = Runtime(pyodide_dir=pyodide_dir.resolve(), deno_dir=deno_dir, cache=cache)
    from .codecache import ensure_code_cache  # it starts runtimes: it needs this module

    ensure_code_cache(runtime)
    return runtime


def _install_pyodide(home: Path, deno_dir: Path) -> None:
    # Install into a temporary folder, then rename: a half-finished download
    # never looks like a usable runtime.
    home.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=home.parent))
    try:
        (tmp / "package.json").write_text(json.dumps({"dependencies": {"pyodide": PYODIDE_VERSION}}))
        proc = subprocess.run(
            [str(deno_bin()), "install", "--quiet", "--node-modules-dir=auto"],
            cwd=tmp,
            env={**os.environ, "DENO_DIR": str(deno_dir), "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0 or not (tmp / "node_modules/pyodide/pyodide.asm.wasm").exists():
            raise SetupError(
                f"Could not fetch Pyodide {PYODIDE_VERSION} from the npm registry:\n"
                f"{proc.stderr.strip()}\n"
                "Check your network or npm registry settings (NPM_CONFIG_REGISTRY), "
                "then run `throwaway setup` again."
            )
        if home.exists():
            shutil.rmtree(home)
        tmp.rename(home)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def deno_command(runtime: Runtime, *, memory_mb: int, readable: tuple[Path, ...] = ()) -> list[str]:
    """The command line of one runtime process: no network, no env, no
    processes, no writes; reads only Pyodide's assets, our JS, the package
    caches and the boot snapshot.

    It holds no configuration beyond Deno's own flags: argv is visible to
    every user of the machine (/proc/PID/cmdline), so the runtime's key and
    settings reach it as the first frame on its stdin (see `Session.boot`)."""
    readable = [runtime.pyodide_dir, JS_DIR.resolve(), GUEST_FILE.resolve(), runtime.packages_dir, runtime.snapshots_dir, *readable]
    pages = max(memory_mb * 16, 256)  # wasm pages are 64 KiB
    return [
        str(deno_bin()),
        "run",
        "--quiet",
        "--no-prompt",
        "--no-config",
        "--no-lock",
        "--cached-only",
        "--unstable-worker-options",
        "--allow-read=" + ",".join(str(p) for p in readable),
        # A 1 MB semi-space (V8 sizes it up to 16 MB) keeps each of the two
        # isolates' young generation small: about 5 MB less a sandbox (PSS);
        # guest Python lives in wasm memory, the JS heaps hold little.
        f"--v8-flags=--wasm-max-mem-pages={pages},--max-old-space-size={max(memory_mb // 2, 256)},"
        "--max-semi-space-size=1",
        str(JS_DIR / "main.js"),
    ]


def with_pipes(cmd: list[str], down: int, up: int) -> list[str]:
    """`cmd` (from `deno_command`) for a runtime whose frames come on file
    descriptor `down` and go out on `up`, as the process sees them.

    The protocol does not travel on stdin and stdout: guest code can read and
    write those (Deno.stdin, node:fs on fd 0, a read it leaves running would
    take the host's next frame). The main thread alone opens the pipes, by
    /proc/self/fd/N: the permission for that path is the main module's, and
    the worker's permissions (main.js) name no /proc path; Deno's resources
    and node:fs's fds are each isolate's own, so the worker has no number for
    them either. The numbers follow the script (Deno.args)."""
    if cmd[1:2] != ["run"]:
        raise ValueError("not a `deno run` command line")
    return [cmd[0], "run", f"--allow-read=/proc/self/fd/{down}", f"--allow-write=/proc/self/fd/{up}", *cmd[2:],
            str(down), str(up)]


def deno_env(runtime: Runtime) -> dict[str, str]:
    """A clean environment: the host's variables (API keys!) never reach Deno.

    DENO_DIR: Deno writes there with no permission asked: the Cache API
    (`caches`, open to guest code), whose data would outlive the process and
    reach every sandbox, and code caches that grow with every module guest
    code imports (a data: URL each time). So it is the prepared code cache
    (`codecache`: Pyodide's 1.2 MB of JS then loads without being compiled,
    0.1-0.25 s less a boot) only where the kernel forbids the process every
    file write (`landlock`, applied by `process` to each runtime); elsewhere
    it points where no folder can ever be made, and the runtime compiles its
    JS each time.

    glibc's malloc gives each thread that allocates an arena of its own and
    keeps freed memory in it: V8's compiler threads leave about 25 MB a
    process behind after the boot. One arena, trimmed past 128 KB, gives it
    back (a sandbox's PSS 166 -> 127 MB here, guest code no slower).
    """
    from .codecache import usable_code_cache

    deno_dir = usable_code_cache(runtime) or os.path.join(os.devnull, "deno")
    return {"DENO_DIR": str(deno_dir), "NO_COLOR": "1", "DENO_NO_UPDATE_CHECK": "1",
            "PATH": os.defpath, **MALLOC_TUNING}


def boot_config(runtime: Runtime, *, key: bytes, frame_bytes: int, snapshot: Path, preload: tuple[str, ...],
                read: list[Path]) -> dict:
    """The runtime's configuration: its first frame on stdin (see `Session.boot`)."""
    return {
        "t": "config",
        "key": key.hex(),
        "frameBytes": frame_bytes,
        "snapshot": str(snapshot),
        "indexURL": str(runtime.pyodide_dir) + "/",
        "preload": list(preload),
        "read": [str(p) for p in read] + [str(snapshot)],
    }


MALLOC_TUNING = {"MALLOC_ARENA_MAX": "1", "MALLOC_TRIM_THRESHOLD_": "131072"}


# The runtime process's data memory past its wasm memory and JS heap: what
# Deno itself maps (about 1.4 GB of it, mostly untouched) and some room.
DATA_BASE_MB = 2048
# Its stderr goes to a file on the host; guest code can write there too.
STDERR_MAX = 64 << 20


def process_limits(memory_mb: int) -> dict[int, int]:
    """Kernel limits for the runtime process (`resource.RLIMIT_*` -> value; applied on Linux).

    V8 caps the guest's wasm memory and the JS heap, but not ArrayBuffers,
    which guest code can allocate at will through `js`: RLIMIT_DATA bounds
    them (an allocation past it fails with a RangeError). The only file the
    process writes is its stderr, which guest code can write as well:
    RLIMIT_FSIZE bounds it (past it the process dies and is replaced).
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return {}
    return {
        resource.RLIMIT_DATA: (DATA_BASE_MB + 2 * memory_mb) << 20,
        resource.RLIMIT_FSIZE: STDERR_MAX,
    }

