"""The guest half of the runtime: runs cells and calls the host. Runs inside Pyodide.

It is imported before the memory snapshot is taken, so it must hold no
reference to JS objects at import time: the bridge (`_throwaway_host`, a JS
module registered after every boot) is looked up lazily.
"""

import ast
import builtins
import errno
import io
import json
import linecache
import os
import sys
import traceback
import types
import zipfile
from inspect import CO_COROUTINE

from _pyodide._base import find_imports

NAMESPACE = {"__name__": "__main__", "__builtins__": builtins}
MAX_REPR = 100_000
MAX_MESSAGE = 100_000  # an error's message, and its traceback, in characters
PART = 4 << 20  # host-call data goes in parts of this size (the host's frames are bounded)
INTERNAL_FILES = ("/_pyodide/", "_throwaway.py", "<throwaway>")

# Our own JSON functions, taken before any guest code runs: guest code may
# replace json.dumps (or the module) in its interpreter, and the runner must
# go on speaking plain JSON to the host. (The host trusts none of it anyway.)
_dumps = json.JSONEncoder().encode
_dumps_strict = json.JSONEncoder(allow_nan=False).encode
_loads = json.JSONDecoder().decode


class HostError(Exception):
    """The host answered a call with an error of a type the guest does not know."""


# Errors the host may raise in the guest, by name; anything else becomes HostError.
_ERRORS = {
    cls.__name__: cls
    for cls in (
        OSError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
        NotADirectoryError, TimeoutError, ValueError, TypeError, KeyError, LookupError,
        RuntimeError, NotImplementedError, ConnectionError, ImportError, ModuleNotFoundError,
    )
}


def call(name, args=None, data=b""):
    """Call the host's handler `name` synchronously; returns (value, bytes).

    Blocks this worker until the host answers. An error on the host side is
    raised here with its own type where that is a builtin one.
    """
    import _throwaway_host

    args = _dumps(args)
    if isinstance(data, (bytes, bytearray, memoryview)) and len(data) > PART:
        # Too large for one frame: the host gathers the parts for this call.
        view = memoryview(data).cast("B")
        while len(view) > PART:
            _check(*_throwaway_host.call("wire.more", "null", bytes(view[:PART])))
            view = view[PART:]
        data = bytes(view)
    return _check(*_throwaway_host.call(name, args, data or None))


def _check(head, payload):
    """A host call's reply as (value, bytes), or its error raised."""
    reply = _loads(head)
    if not reply.get("ok"):
        err = reply.get("error") or {}
        cls = _ERRORS.get(err.get("type"), HostError)
        message = str(err.get("message", "host call failed"))
        code = getattr(errno, str(err.get("errno")), None) if err.get("errno") else None
        if issubclass(cls, OSError) and isinstance(code, int):
            # Errno numbers differ between the host and the guest: they cross by name.
            raise cls(code, message, *([err["filename"]] if err.get("filename") else []))
        raise cls(message)
    return reply.get("value"), payload.to_bytes() if payload is not None else b""


# --- packages --------------------------------------------------------------

_installed = set()


def _missing_imports(code):
    if "import" not in code:
        return []
    try:
        names = find_imports(code)
    except SyntaxError:
        return []
    missing = []
    for name in names:
        top = name.split(".")[0]
        if top in sys.modules or top in missing:
            continue
        try:
            import importlib.util

            if importlib.util.find_spec(top) is not None:
                continue
        except (ImportError, ValueError):
            pass
        missing.append(top)
    return missing


def _split(wheels):
    """Wheels not yet installed, split into pure-Python ones and ones with libraries."""
    pure, binary = [], []
    for w in wheels:
        if w["name"] in _installed:
            continue
        (pure if w.get("pure") else binary).append(w)
    return pure, binary


def _unpack(wheel):
    """Install a pure-Python wheel: unzip it into site-packages."""
    import site

    target = site.getsitepackages()[0]
    from js import Deno  # the worker may read the package cache, nothing else

    data = Deno.readFileSync(wheel["path"]).to_bytes()
    zipfile.ZipFile(io.BytesIO(data)).extractall(target)
    _installed.add(wheel["name"])


async def _load(wheels):
    import pyodide_js

    await pyodide_js.loadPackage([w["path"] for w in wheels], messageCallback=_progress, errorCallback=_progress)
    _installed.update(w["name"] for w in wheels)


def _progress(msg):
    print(msg, file=sys.stderr)


class _Install:
    """What install() returns: already done for pure wheels; awaitable for the rest."""

    def __init__(self, names, binary):
        self.names, self._binary = names, binary

    def __await__(self):
        if self._binary:
            yield from _load(self._binary).__await__()
            self._binary = []
        return self.names

    def __repr__(self):
        return f"<installed {', '.join(self.names) or 'nothing'}>"


def install(*requirements):
    """Install packages from PyPI (or Pyodide's own) through the host.

    Pure-Python wheels are installed at once; packages with compiled parts
    need `await install(...)`.
    """
    reqs = [r for item in requirements for r in ([item] if isinstance(item, str) else item)]
    value, _ = call("packages.install", {"requirements": reqs})
    pure, binary = _split(value["wheels"])
    for w in pure:
        _unpack(w)
    return _Install([w["name"] for w in value["wheels"]], binary)


async def _ensure_imports(missing):
    value, _ = call("packages.imports", {"imports": missing})
    pure, binary = _split(value["wheels"])
    if binary or pure:
        _progress("Loading " + ", ".join(w["name"] for w in value["wheels"]))
    for w in pure:
        _unpack(w)
    if binary:
        await _load(binary)


def _micropip_shim():
    """A `micropip` whose install() goes through the host (the guest has no network)."""
    mod = types.ModuleType("micropip", "micropip for throwaway: installs through the host.")

    async def install_(requirements, keep_going=False, deps=True, **_):
        await install(requirements)

    mod.install = install_
    mod.list = lambda: sorted(_installed)
    return mod


# --- cells -----------------------------------------------------------------


def _json_value(value):
    if isinstance(value, (dict, list, tuple, str, int, float, bool)):
        try:
            text = _dumps_strict(value)
        except BaseException:  # not JSON data, nested too deeply, a hostile subclass
            return None
        if len(text) <= MAX_REPR:
            return text
    return None


def _trimmed_traceback(exc):
    """The traceback from the guest's own code down: the runner's frames are cut."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
        tb = tb.tb_next
    if tb is None and not isinstance(exc, SyntaxError):
        tb = exc.__traceback__
        while tb is not None and any(s in tb.tb_frame.f_code.co_filename for s in INTERNAL_FILES):
            tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _clip(text):
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "...[truncated]"


def _error(exc, files=None):
    kind = type(exc).__name__
    try:
        message = str(exc)
    except BaseException as e:  # a hostile __str__ must not break the runner
        message = f"<unprintable {kind}: {type(e).__name__}>"
    try:
        tb = _trimmed_traceback(exc)
    except BaseException as e:
        tb = f"<no traceback: {type(e).__name__}>"
    if not isinstance(message, str) or not isinstance(tb, str):
        message, tb = f"<unprintable {kind}>", ""
    return _dumps({"error": {"type": kind, "message": _clip(message), "traceback": _clip(tb)}, "files": files or []})


_output_seen = {}


def _files_under(folder, out):
    # scandir, not walk(): this runs after every cell and must cost next to nothing.
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _files_under(entry.path, out)
        elif entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            out[entry.path] = [st.st_mtime_ns, st.st_size]
    return out


def _output_changes():
    """Files under /output created or changed since the last cell."""
    global _output_seen
    now = _files_under("/output", {})
    changed = sorted(p for p, v in now.items() if _output_seen.get(p) != v)
    _output_seen = now
    return changed


def _finish(value, files=None):
    _flush()
    if value is None and not files:
        return "{}"
    if value is None:
        return _dumps({"files": files})
    try:
        text = repr(value)
        if not isinstance(text, str):
            raise TypeError("__repr__ returned a non-string")
    except BaseException as e:  # a hostile __repr__ must not break the runner
        text = f"<unrepresentable {type(value).__name__}: {type(e).__name__}>"
    if len(text) > MAX_REPR:
        text = text[:MAX_REPR] + "...[truncated]"
    out = {"value": text, "files": files or []}
    js = _json_value(value)
    if js is not None:
        out["json"] = js
    return _dumps(out)


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def _compile(code, filename):
    """Compile a cell into its body and, if it ends in an expression, that
    expression (so its value can be returned, as in Jupyter; a trailing `;`
    keeps it quiet)."""
    tree = compile(code, filename, "exec", ast.PyCF_ONLY_AST | FLAGS)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not code.rstrip().endswith(";"):
        last = compile(ast.Expression(tree.body.pop().value), filename, "eval", FLAGS)
    return (compile(tree, filename, "exec", FLAGS) if tree.body else None), last


def _is_async(code):
    return code is not None and code.co_flags & CO_COROUTINE


async def _run_async(body, last, missing, user):
    try:
        if missing:
            await _ensure_imports(missing)
        if body is not None:
            value = eval(body, NAMESPACE)
            if _is_async(body):
                await value
        value = None
        if last is not None:
            value = eval(last, NAMESPACE)
            if _is_async(last):
                value = await value
    except BaseException as e:
        _flush()
        return _error(e, _output_changes() if user else None)
    return _finish(value, _output_changes() if user else None)


def run_cell(code, cell_id):
    """Run one cell in the persistent namespace; returns the result as JSON,
    or a coroutine for the runtime to await (top-level await, package loads).
    A cell without a number is the host's own (snapshots, mounts): it runs in
    the same namespace but stays out of tracebacks' cell numbering."""
    filename = f"<cell {cell_id}>" if cell_id is not None else "<throwaway>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    try:
        body, last = _compile(code, filename)
    except BaseException as e:
        return _error(e)
    missing = _missing_imports(code)
    user = cell_id is not None
    if missing or _is_async(body) or _is_async(last):
        return _run_async(body, last, missing, user)
    try:
        if body is not None:
            exec(body, NAMESPACE)
        value = eval(last, NAMESPACE) if last is not None else None
    except BaseException as e:
        _flush()
        return _error(e, _output_changes() if user else None)
    return _finish(value, _output_changes() if user else None)


# --- files: mounts, transfers, tree walks, snapshots -----------------------


def prepare(folders, plan, cwd):
    """Lay out the tree after a boot: in-memory folders, then the host-backed
    mounts. (The memory snapshot holds the interpreter, not the files.)"""
    import _throwaway_host

    for path in folders:
        os.makedirs(path, exist_ok=True)
    for m in plan:
        _throwaway_host.mount(m["path"], m["id"])
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)


def send_file(path):
    """Hand a guest file to the host."""
    with open(path, "rb") as f:
        call("session.file", {"path": path}, f.read())


def receive_file(path):
    """Write a file the host hands over."""
    _, data = call("session.take", {"path": path})
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def walk(roots, skip=()):
    """The in-memory tree under `roots` (host-backed mounts in `skip` left out):
    [kind, path, mode, mtime_ns, size or link target] for each entry."""
    import stat

    skip = set(skip)
    entries = []
    for root in roots:
        if not os.path.isdir(root) or root in skip:
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) not in skip)
            st = os.lstat(dirpath)
            entries.append(["d", dirpath, stat.S_IMODE(st.st_mode), st.st_mtime_ns, 0])
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    entries.append(["l", p, 0o777, st.st_mtime_ns, os.readlink(p)])
                elif stat.S_ISREG(st.st_mode):
                    entries.append(["f", p, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size])
    return entries


_hashes = {}  # path -> (mtime_ns, size, sha256): unchanged files are not hashed again


def snapshot_tree(roots, skip=()):
    """Send the host the in-memory files it does not have yet; return the
    tree's entries, each file's size replaced by its sha256."""
    import hashlib

    entries = walk(roots, skip)
    paths = {}
    for entry in entries:
        if entry[0] != "f":
            continue
        path, mtime_ns, size = entry[1], entry[3], entry[4]
        known = _hashes.get(path)
        if known is not None and known[:2] == (mtime_ns, size):
            sha = known[2]
        else:
            with open(path, "rb") as f:
                sha = hashlib.sha256(f.read()).hexdigest()
            _hashes[path] = (mtime_ns, size, sha)
        entry[4] = sha
        paths[sha] = path
    missing, _ = call("snapshot.missing", {"shas": sorted(paths)})
    for sha in missing:
        with open(paths[sha], "rb") as f:
            call("snapshot.put", {"sha": sha}, f.read())
    return entries


def restore_tree(roots, skip=()):
    """Make the in-memory tree under `roots` exactly the host's snapshot."""
    import shutil

    manifest, _ = call("snapshot.manifest")
    skip = set(skip)
    for root in roots:  # clear what is there now
        if os.path.isdir(root):
            for name in os.listdir(root):
                p = os.path.join(root, name)
                if p in skip:
                    continue
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
    blobs = {}
    dirs = []
    for kind, path, mode, mtime_ns, extra in manifest["entries"]:
        if kind == "d":
            os.makedirs(path, exist_ok=True)
            dirs.append((path, mode, mtime_ns))
        elif kind == "l":
            os.symlink(extra, path)
            try:
                os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
            except (NotImplementedError, OSError):
                pass
        else:
            sha = extra
            if sha not in blobs:
                blobs[sha] = call("snapshot.get", {"sha": sha})[1]
            with open(path, "wb") as f:
                f.write(blobs[sha])
            os.chmod(path, mode)
            os.utime(path, ns=(mtime_ns, mtime_ns))
    for path, mode, mtime_ns in reversed(dirs):  # deepest first: filling a folder changes its mtime
        os.chmod(path, mode)
        os.utime(path, ns=(mtime_ns, mtime_ns))
    _output_changes()  # restored files are not the next cell's output
    return len(manifest["entries"])


def boot():
    """Prepare the interpreter (before the snapshot): streams, modules, cwd."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
    guest = types.ModuleType("throwaway", "Host access for guest code: call(), install().")
    guest.call, guest.install, guest.HostError = call, install, HostError
    sys.modules["throwaway"] = guest
    sys.modules["micropip"] = _micropip_shim()
