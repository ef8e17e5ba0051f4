"""Ways out of the sandbox, each shown shut, on the real Deno + Pyodide runtime.

Guest code reaches the worker's whole JS world through `import js` (Deno.*,
fetch, Worker, node: modules, postMessage), so permissions, not hiding, keep it
in; and everything the worker (or the runtime process) sends is untrusted
input to the main thread and to the host. Each test below tries one door and
asserts what would differ if it were open: the exact Deno error
(NotCapable: Requires ... access), a host-side file that must not appear or
change, a local server that must see no connection, a host that must go on
working.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from throwaway.fs.filesystem import FileSystem
from throwaway.sandbox import AsyncSandbox, Limits, Sandbox
from throwaway.sandbox.runtime import JS_DIR, STDERR_MAX, ensure_runtime

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="checks Linux paths (/proc, /etc) and rlimits")

PROJECT = Path(__file__).resolve().parents[1]

# Guest-side helper: run a thunk, await what it returns, report [kind, text].
PRELUDE = """
import js, json, sys
from pyodide.ffi import to_js

def _obj(d):
    return to_js(d, dict_converter=js.Object.fromEntries)

async def _try(f):
    try:
        r = f()
        if hasattr(r, "then") or hasattr(r, "__await__"):
            r = await r
        return ["ok", str(r)[:2000]]
    except BaseException as e:
        return [type(e).__name__, str(e)[:2000]]
"""


def attempt(sb: Sandbox, expr: str, setup: str = "", timeout: float | None = None) -> list[str]:
    """Run `expr` (a Python expression, usually touching `js`) in the guest;
    return ["ok", str(value)] or [exception class, message]."""
    r = sb.exec(PRELUDE + setup + f"\nawait _try(lambda: {expr})", timeout=timeout)
    assert r.error is None, r.error
    return r.json


def js_attempt(sb: Sandbox, code: str) -> list[str]:
    """Evaluate JS in the worker (a Promise is awaited)."""
    return attempt(sb, f"js.eval({code!r})")


def denied(result: list[str], access: str) -> None:
    kind, message = result
    assert kind != "ok", f"expected {access} access to be denied, got {message!r}"
    assert f"Requires {access} access" in message, message


def not_capable(result: list[str], access: str) -> None:
    """Denied by the permission check itself (Deno's NotCapable error)."""
    denied(result, access)
    assert "NotCapable" in result[1], result[1]


def host_snapshots() -> dict[str, str]:
    folder = ensure_runtime().snapshots_dir
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.snap")}


def tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under folder: size and mtime."""
    out = {}
    for p in folder.rglob("*"):
        if p.is_file():
            st = p.stat()
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def victim():
    """A sandbox for the tests that get their worker (or runtime) replaced:
    each such test checks that it works again afterwards."""
    with Sandbox(limits=Limits(timeout=5, grace=0.3, memory_mb=256)) as sb:
        yield sb


@pytest.fixture(scope="module")
def listener():
    """A TCP server on a free loopback port that records every connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    seen: list[tuple] = []

    def loop():
        while True:
            try:
                conn, addr = srv.accept()
            except OSError:
                return
            seen.append(addr)
            conn.close()

    threading.Thread(target=loop, daemon=True).start()
    yield srv.getsockname()[1], seen
    srv.close()


def assert_listener_untouched(listener) -> None:
    port, seen = listener
    time.sleep(0.3)
    assert seen == [], f"the guest reached the host's port {port}: {seen}"
    # The check can fail: a real connection is seen.
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    deadline = time.monotonic() + 2
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(seen) == 1
    seen.clear()


# --- reading host files --------------------------------------------------------


def test_python_open_sees_only_the_guest_tree(sandbox):
    r = sandbox.exec(
        "import os\n"
        "found = {}\n"
        f"for p in ['/etc/passwd', '/etc/hostname', {str(PROJECT / 'pyproject.toml')!r},"
        f" {str(Path.home() / '.bashrc')!r}, {str(JS_DIR / 'main.js')!r}, '/proc/self/environ']:\n"
        "    try:\n"
        "        found[p] = open(p).read()[:50]\n"
        "    except OSError as e:\n"
        "        found[p] = type(e).__name__\n"
        "found, sorted(os.listdir('/'))"
    )
    found, top = r.json
    assert set(found.values()) == {"FileNotFoundError"}, found
    assert not {"etc", "usr", "work", "root", "bin"} & set(top), top


HOST_FILES = {
    "etc-passwd": "/etc/passwd",
    "proc-environ": "/proc/self/environ",
    "proc-cmdline": "/proc/self/cmdline",
    "proc-mem": "/proc/self/mem",
    "home": str(Path.home() / ".bashrc"),
    "project-source": str(PROJECT / "src/throwaway/sandbox/session.py"),
    "project-tests": str(PROJECT / "tests/conftest.py"),
    "dotdot-from-allowed": str(JS_DIR) + "/../session.py",
}


@pytest.mark.parametrize("path", HOST_FILES.values(), ids=HOST_FILES.keys())
def test_deno_cannot_read_host_files(sandbox, path):
    not_capable(attempt(sandbox, f"js.Deno.readTextFileSync({path!r})"), "read")
    not_capable(attempt(sandbox, f"js.Deno.statSync({path!r}).size"), "read")
    not_capable(js_attempt(sandbox, f"import('node:fs').then(fs => fs.readFileSync({path!r}, 'utf8'))"), "read")
    denied(attempt(sandbox, f"js.fetch('file://{path}')"), "read")


def test_deno_cannot_list_host_folders(sandbox):
    for folder in ("/", "/etc", str(Path.home()), str(PROJECT), str(JS_DIR.parent)):
        not_capable(attempt(sandbox, f"list(js.Deno.readDirSync({folder!r}))"), "read")
    not_capable(attempt(sandbox, "js.Deno.realPathSync('/etc')"), "read")
    not_capable(attempt(sandbox, "js.Deno.readLinkSync('/proc/self/exe')"), "read")
    not_capable(attempt(sandbox, "js.Deno.chdir('/')"), "read")


def test_the_allowed_folders_are_readable(sandbox):
    # The counterpart of the tests above: reading is denied by path, not broken.
    kind, text = attempt(sandbox, f"js.Deno.readTextFileSync({str(JS_DIR / 'channel.js')!r})[:40]")
    assert kind == "ok" and text == (JS_DIR / "channel.js").read_text()[:40]


def test_the_boot_snapshot_is_read_only(sandbox):
    # The worker reads the boot snapshot itself (while Pyodide loads, which
    # saves a copy and time); it is Pyodide's heap after our own boot code,
    # shared by every sandbox and holding nothing of the host's. It must not
    # be writable: a changed snapshot would be every later sandbox's start.
    snap = str(sandbox._session.runtime.snapshot_path(sandbox._session.preload))
    # The configuration is not in argv: only the numbers of the host's pipes (see runtime.with_pipes).
    kind, args = attempt(sandbox, "js.Deno.args.join(' ')")
    assert kind == "ok" and [a.isdigit() for a in args.split()] == [True, True], args
    before = hashlib.sha256(Path(snap).read_bytes()).hexdigest()
    assert attempt(sandbox, f"js.Deno.readFileSync({snap!r}).length") == ["ok", str(Path(snap).stat().st_size)]
    not_capable(attempt(sandbox, f"js.Deno.writeFileSync({snap!r}, js.Uint8Array.new(3))"), "write")
    not_capable(attempt(sandbox, f"js.Deno.truncateSync({snap!r}, 0)"), "write")
    assert hashlib.sha256(Path(snap).read_bytes()).hexdigest() == before


def test_pyodide_cannot_mount_host_folders(sandbox):
    result = attempt(
        sandbox,
        "pyodide_js.FS.mount(pyodide_js.FS.filesystems.NODEFS, _obj({'root': '/etc'}), '/tmp')",
        setup="import pyodide_js",
    )
    not_capable(result, "read")
    assert sandbox.exec("import os; os.path.exists('/tmp/passwd')").json is False


def test_imports_from_outside_the_allowed_folders(sandbox, tmp_path):
    denied(js_attempt(sandbox, f"import('file://{PROJECT}/tests/wheels.py')"), "read")
    denied(js_attempt(sandbox, "import('file:///etc/passwd', {with: {type: 'text'}})"), "read")
    denied(js_attempt(sandbox, f"import('file://{PROJECT}/.venv/pyvenv.cfg', {{with: {{type: 'json'}}}})"), "read")
    # A data: module runs with the worker's permissions, no more.
    data_module = "data:text/javascript,export default Deno.readTextFileSync('/etc/passwd')"
    not_capable(js_attempt(sandbox, f"import({data_module!r})"), "read")
    # Python imports see the guest's tree only.
    r = sandbox.exec(f"import sys\nsys.path.insert(0, {str(PROJECT / 'tests')!r})\nimport conftest")
    assert r.error.type == "ModuleNotFoundError"
    # Pyodide's package loader and our wheel installer read through Deno too.
    wheel = tmp_path / "evil-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    r = sandbox.exec(f"import pyodide_js\nawait pyodide_js.loadPackage({str(wheel)!r})")
    assert f'Requires read access to "{wheel}"' in r.stderr, r
    assert sandbox.exec("import importlib.util\nimportlib.util.find_spec('evil')").value is None
    not_capable(attempt(sandbox, "_throwaway._unpack({'path': '/etc/passwd', 'name': 'x'})",
                        setup="import _throwaway"), "read")


# --- writing host files --------------------------------------------------------


@pytest.fixture
def bait():
    """A host file in the package cache, a folder the worker may read."""
    path = ensure_runtime().packages_dir / f".security-bait-{uuid.uuid4().hex}"
    path.write_text("untouched")
    yield path
    path.unlink(missing_ok=True)


def test_deno_cannot_write_anywhere(sandbox, tmp_path, bait):
    runtime = ensure_runtime()
    name = f".marker-{uuid.uuid4().hex}"
    targets = [tmp_path / "marker", JS_DIR / name, runtime.pyodide_dir / name, runtime.packages_dir / name,
               runtime.snapshots_dir / name]
    for t in targets:
        not_capable(attempt(sandbox, f"js.Deno.writeTextFileSync({str(t)!r}, 'x')"), "write")
        not_capable(attempt(sandbox, f"js.Deno.mkdirSync({str(t)!r})"), "write")
        not_capable(attempt(sandbox, f"js.Deno.openSync({str(t)!r}, _obj({{'write': True, 'create': True}}))"), "write")
        not_capable(js_attempt(sandbox, f"import('node:fs').then(fs => fs.writeFileSync({str(t)!r}, 'x'))"), "write")
        assert not t.exists()
    b = str(bait)
    for expr in (f"js.Deno.removeSync({b!r})", f"js.Deno.renameSync({b!r}, {b + '.moved'!r})",
                 f"js.Deno.truncateSync({b!r}, 0)", f"js.Deno.chmodSync({b!r}, 0o777)",
                 f"js.Deno.utimeSync({b!r}, 0, 0)", f"js.Deno.writeTextFileSync({b!r}, 'pwned')",
                 f"js.Deno.writeTextFileSync({b!r}, 'pwned', _obj({{'append': True}}))",
                 f"js.Deno.copyFileSync({str(JS_DIR / 'main.js')!r}, {b!r})"):
        not_capable(attempt(sandbox, expr), "write")
    assert bait.read_text() == "untouched" and not Path(b + ".moved").exists()
    assert "NotCapable" in attempt(sandbox, f"js.Deno.symlinkSync('/etc/passwd', {str(tmp_path / 'link')!r})")[1]
    not_capable(attempt(sandbox, "js.Deno.makeTempFileSync()"), "write")
    not_capable(attempt(sandbox, "js.Deno.makeTempDirSync()"), "write")
    assert list(tmp_path.iterdir()) == []


def test_no_storage_api_reaches_the_disk(sandbox, victim):
    """The Cache API needs no permission and stores under DENO_DIR: it must
    not work, or its data would outlive the sandbox and reach the next one."""
    deno_dir = ensure_runtime().deno_dir
    before = tree_state(deno_dir)
    put = ("async def put():\n"
           "    cache = await js.caches.open('leak')\n"
           "    await cache.put('http://cache.invalid/', js.Response.new('secret'))\n")
    r = attempt(sandbox, "put()", setup=put)
    assert r[0] != "ok", "guest code wrote to the Cache API"
    assert "localStorage" not in sandbox.exec("import js; dir(js)").value
    other = victim  # another sandbox, another runtime process
    get = ("async def get():\n"
           "    hit = await (await js.caches.open('leak')).match('http://cache.invalid/')\n"
           "    return await hit.text() if hit else None\n")
    assert attempt(other, "get()", setup=get)[1] != "secret"
    # Modules guest code imports (each data: URL is a new one) must leave no
    # code cache behind either.
    r = sandbox.exec(PRELUDE + "for i in range(20):\n"
                     "    await js.eval('import(\"data:text/javascript,export const v = %d; const pad = [%s];\")'"
                     " % (i, ','.join(map(str, range(3000)))))\n'imported'")
    assert r.json == "imported", r.error
    assert tree_state(deno_dir) == before


# --- the network -----------------------------------------------------------------


def test_no_network(sandbox, listener):
    port, _ = listener
    url = f"http://127.0.0.1:{port}/"
    not_capable(attempt(sandbox, f"js.fetch({url!r})"), "net")
    not_capable(attempt(sandbox, f"js.Deno.connect(_obj({{'hostname': '127.0.0.1', 'port': {port}}}))"), "net")
    not_capable(attempt(sandbox, f"js.Deno.connectTls(_obj({{'hostname': '127.0.0.1', 'port': {port}}}))"), "net")
    not_capable(attempt(sandbox, f"js.WebSocket.new('ws://127.0.0.1:{port}/')"), "net")
    not_capable(attempt(sandbox, "js.Deno.listen(_obj({'port': 0}))"), "net")
    not_capable(attempt(sandbox, "js.Deno.resolveDns('example.com', 'A')"), "net")
    not_capable(js_attempt(sandbox, f"import('node:net').then(n => new Promise((ok, no) => n.connect({port}, "
                                    "'127.0.0.1').on('connect', () => ok('connected')).on('error', no)))"), "net")
    not_capable(js_attempt(sandbox, f"import('node:http').then(h => new Promise((ok, no) => "
                                    f"h.get({url!r}, r => ok(r.statusCode)).on('error', no)))"), "net")
    # A remote module, or a worker from a URL, is an import, also refused
    # (and guest code can start no worker at all: test_guest_workers.py).
    denied(js_attempt(sandbox, f"import('{url}m.js')"), "import")
    message = js_attempt(
        sandbox, f"new Promise(ok => {{ const w = new Worker('{url}w.js', {{type: 'module'}}); "
                 "w.onerror = e => { e.preventDefault(); ok('error: ' + e.message) }; "
                 "w.onmessage = () => ok('ran') })")[1]
    assert "Requires import access" in message or "Workers are not available" in message, message
    # EventSource connects in the background: give it time, then look at the server.
    kind, state = js_attempt(sandbox, f"new Promise(ok => {{ const s = new EventSource({url!r}); "
                                      "s.onerror = () => { s.close(); ok('error') }; s.onopen = () => ok('open') })")
    assert state == "error"
    # Python's own ways out.
    kind, message = attempt(sandbox, f"pyodide.http.pyfetch({url!r})", setup="import pyodide.http")
    assert kind != "ok" and "Requires net access" in message
    kind, message = attempt(sandbox, f"pyodide.http.open_url({url!r}).read()", setup="import pyodide.http")
    assert kind != "ok"
    kind, message = attempt(sandbox, f"urllib.request.urlopen({url!r}, timeout=2).read()",
                            setup="import urllib.request")
    assert kind == "URLError"
    kind, message = attempt(sandbox, f"socket.create_connection(('127.0.0.1', {port}), timeout=2)",
                            setup="import socket")
    assert kind in ("OSError", "ConnectionRefusedError", "TimeoutError")
    assert "XMLHttpRequest" not in sandbox.exec("import js; dir(js)").value
    assert_listener_untouched(listener)


def test_no_udp(victim):
    sb = victim
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    # node:dgram reports the denial as an uncaught error, which may kill the
    # worker: that is the guest's own loss, and it is replaced.
    send = (f"import('node:dgram').then(d => {{ const s = d.createSocket('udp4'); s.on('error', () => {{}}); "
            f"s.send('leak', {port}, '127.0.0.1') }})")
    sb.exec(PRELUDE + f"await _try(lambda: js.eval({send!r}))")
    with pytest.raises(socket.timeout):
        srv.recvfrom(100)
    srv.close()
    assert sb.exec("'alive'").json == "alive"


def test_packages_gateway_refuses_urls_paths_and_options(sandbox, listener):
    """The host fetches packages for the guest: a requirement must not steer it."""
    port, _ = listener
    for req in (f"evil @ http://127.0.0.1:{port}/evil-1.0-py3-none-any.whl", f"--index-url=http://127.0.0.1:{port}/",
                f"http://127.0.0.1:{port}/x.whl", "/etc/passwd", "../../etc/passwd", "file:///etc/passwd",
                "-r /etc/passwd", "six; python_version>'1'"):
        kind, message = attempt(sandbox, f"throwaway.call('packages.install', {{'requirements': [{req!r}]}})",
                                setup="import throwaway")
        assert kind == "ImportError" and "not a requirement the sandbox accepts" in message, (req, kind, message)
    assert_listener_untouched(listener)


# --- processes, environment, FFI, system -------------------------------------------


def test_no_processes(sandbox, tmp_path):
    marker = tmp_path / "ran"
    victim = subprocess.Popen(["sleep", "60"])
    try:
        not_capable(attempt(sandbox, f"js.Deno.Command.new('/bin/sh', _obj({{'args': ['-c', 'touch {marker}']}}))"
                                     ".outputSync()"), "run")
        not_capable(attempt(sandbox, f"js.Deno.Command.new('touch', _obj({{'args': ['{marker}']}})).spawn()"), "run")
        kind, message = attempt(sandbox, f"js.Deno.run(_obj({{'cmd': ['touch', '{marker}']}}))")
        assert kind != "ok" and ("NotCapable" in message or "not a function" in message)
        for call in (f"execSync('touch {marker}')", f"spawnSync('touch', ['{marker}'])"):
            assert js_attempt(sandbox, f"import('node:child_process').then(cp => cp.{call})")[0] != "ok"
        not_capable(attempt(sandbox, f"js.Deno.kill({victim.pid}, 'SIGKILL')"), "run")
        not_capable(attempt(sandbox, "js.Deno.kill(js.Deno.ppid, 'SIGKILL')"), "run")
        time.sleep(0.2)
        assert victim.poll() is None, "the guest killed a host process"
        assert not marker.exists()
    finally:
        victim.kill()
        victim.wait()


def test_no_ffi(sandbox):
    symbols = "_obj({'getpid': {'parameters': [], 'result': 'i32'}})"
    not_capable(attempt(sandbox, f"js.Deno.dlopen('libc.so.6', {symbols})"), "ffi")
    kind, _ = js_attempt(sandbox, "import('node:process').then(p => p.dlopen({exports: {}}, 'libc.so.6'))")
    assert kind != "ok"


def test_no_system_information(sandbox):
    for expr in ("hostname()", "osRelease()", "networkInterfaces()", "loadavg()", "systemMemoryInfo()", "uid()",
                 "osUptime()"):
        not_capable(attempt(sandbox, f"js.Deno.{expr}"), "sys")
    not_capable(js_attempt(sandbox, "import('node:os').then(os => os.homedir())"), "sys")


def test_host_environment_is_invisible(fresh, monkeypatch):
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("THROWAWAY_SECURITY_SECRET", secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    sb = fresh()
    # The runtime process itself was started with a clean environment ...
    environ = Path(f"/proc/{sb.pid}/environ").read_bytes().decode()
    assert secret not in environ and "THROWAWAY_SECURITY_SECRET" not in environ
    # ... and the worker may not even read that.
    not_capable(attempt(sb, "js.Deno.env.get('THROWAWAY_SECURITY_SECRET')"), "env")
    not_capable(attempt(sb, "js.Deno.env.toObject()"), "env")
    not_capable(attempt(sb, "js.Deno.env.get('HOME')"), "env")
    not_capable(js_attempt(sb, "import('node:process').then(p => JSON.stringify(p.env))"), "env")
    not_capable(attempt(sb, "js.Deno.readTextFileSync('/proc/self/environ')"), "read")
    r = sb.exec("import os, js\n(dict(os.environ), str(js.Deno.args.length))")
    assert secret not in json.dumps(r.json)
    assert "THROWAWAY_SECURITY_SECRET" not in r.json[0]


def test_permissions_stay_denied(sandbox):
    for name in ("read", "write", "net", "env", "run", "ffi", "sys", "import"):
        kind, state = attempt(sandbox, f"js.Deno.permissions.querySync(_obj({{'name': {name!r}}})).state")
        assert kind == "ok" and state != "granted", (name, state)
        kind, state = attempt(sandbox, f"js.Deno.permissions.requestSync(_obj({{'name': {name!r}}})).state")
        assert state != "granted", (name, state)
        kind, state = attempt(sandbox, f"js.Deno.permissions.request(_obj({{'name': {name!r}}}))"
                                       ".then(lambda s: s.state)")
        assert state != "granted", (name, state)
    passwd = "_obj({'name': 'read', 'path': '/etc/passwd'})"
    assert attempt(sandbox, f"js.Deno.permissions.requestSync({passwd}).state")[1] != "granted"
    assert attempt(sandbox, "js.Deno.permissions.revokeSync(_obj({'name': 'read'})).state")[0] == "ok"
    not_capable(attempt(sandbox, "js.Deno.readTextFileSync('/etc/passwd')"), "read")


NESTED = {
    "inherit": '"inherit"',
    "default": "undefined",
    "net": "{net: true}",
    "write": "{write: true}",
    "read-all": "{read: true}",
    "run": '{run: ["/bin/sh"]}',
    "env": "{env: true}",
    "everything": '{read: true, write: true, net: true, env: true, run: true, ffi: true, sys: true, import: true}',
}


@pytest.mark.parametrize("permissions", NESTED.values(), ids=NESTED.keys())
def test_nested_workers_gain_nothing(sandbox, permissions):
    source = ("try { postMessage('read: ' + Deno.readTextFileSync('/etc/passwd').slice(0, 20)) } "
              "catch (e) { postMessage(String(e)) }")
    code = (f"new Promise(ok => {{ const w = new Worker('data:text/javascript,' + encodeURIComponent({source!r}), "
            f"{{type: 'module', deno: {{permissions: {permissions}}}}}); "
            "w.onmessage = e => { w.terminate(); ok(e.data) }; "
            "w.onerror = e => { e.preventDefault(); ok('error: ' + e.message) } })")
    _kind, message = js_attempt(sandbox, code)
    assert not message.startswith("read:"), message
    # No worker starts at all (test_guest_workers.py); were one to, it could not escalate.
    assert ("Workers are not available" in message or "Requires read access" in message
            or "Can't escalate parent thread permissions" in message), message


def test_node_worker_threads_gain_nothing(sandbox):
    code = ("import('node:worker_threads').then(wt => new Promise(ok => { "
            "const w = new wt.Worker(\"const {parentPort} = require('node:worker_threads'); "
            "try { parentPort.postMessage(require('node:fs').readFileSync('/etc/passwd', 'utf8')) } "
            "catch (e) { parentPort.postMessage(String(e)) }\", {eval: true}); "
            "w.on('message', m => { w.terminate(); ok(m) }); w.on('error', e => ok('error: ' + e)) }))")
    kind, message = js_attempt(sandbox, code)
    assert "root:" not in message and ("Requires read access" in message or kind != "ok"), message


def test_remote_and_uncached_modules_are_refused(sandbox):
    denied(js_attempt(sandbox, "import('jsr:@std/path')"), "import")
    kind, _message = js_attempt(sandbox, "import('npm:left-pad')")
    assert kind != "ok"


# --- the runtime's own channels ---------------------------------------------------------


# The host numbers execs (its own internal ones too) from the cell number up:
# one forged result for each id it may be waiting for.
FORGED_RESULT = """
import js, json, struct, sys, time
cell = int(sys._getframe().f_code.co_filename.strip('<>').split()[1])
frames = b''
for i in range(cell, cell + 100):
    head = json.dumps({'t': 'result', 'id': i, 'limit': None,
                       'r': json.dumps({'value': "'forged'", 'json': '"forged"'})}).encode()
    frames += struct.pack('<II', len(head), 0) + head
js.Deno.stdout.writeSync(js.Uint8Array.new(list(frames)))
time.sleep(0.3)
'real'
"""


def test_guest_cannot_forge_frames_on_the_runtimes_stdout(victim):
    """Deno.stdout is the host's channel, and the worker can write to it: a
    frame written there must not pass for the runtime's."""
    sb = victim
    snaps = host_snapshots()
    r = sb.exec(FORGED_RESULT)
    assert r.json != "forged" and "forged" not in (r.value or "")
    assert r.json == "real" or r.restarted
    head = json.dumps({"t": "snapshot"}).encode()
    forged = struct.pack("<II", len(head), 4) + head + b"evil"
    r = sb.exec(f"import js, time\njs.Deno.stdout.writeSync(js.Uint8Array.new(list({forged!r})))\ntime.sleep(0.3)")
    assert host_snapshots() == snaps
    assert sb.exec("6 * 7").json == 42


def test_async_sandbox_rejects_forged_frames_too():
    async def main():
        async with AsyncSandbox() as sb:
            r = await sb.exec(FORGED_RESULT)
            assert r.json != "forged" and (r.json == "real" or r.restarted)
            assert (await sb.exec("6 * 7")).json == 42

    asyncio.run(main())


JUNK = {
    "console.log": "js.console.log('hello from the guest')",
    "huge-prefix": "js.Deno.stdout.writeSync(js.Uint8Array.new([255] * 64))",
    "half-frame": "js.Deno.stdout.writeSync(js.Uint8Array.new([10, 0, 0, 0, 0, 0, 0, 0, 123]))",
    "node-fs-fd1": "await js.eval(\"import('node:fs').then(fs => fs.writeSync(1, 'junk'))\")",
    "nested-worker": "js.eval(\"new Worker('data:text/javascript,console.log(1); "
                     "Deno.stdout.writeSync(new Uint8Array(99))', {type: 'module'})\")",
}


@pytest.mark.parametrize("write", JUNK.values(), ids=JUNK.keys())
def test_junk_on_the_runtimes_stdout_does_not_break_the_host(victim, write):
    sb = victim
    r = sb.exec(f"import js, asyncio\n{write}\nawait asyncio.sleep(0.3)\n'done'")  # must not raise on the host
    assert r.json == "done" or r.restarted or "Workers are not available" in str(r.error), r
    assert sb.exec("6 * 7").json == 42


def test_stderr_flood_is_bounded(victim):
    """The runtime's stderr goes to a file on the host; the guest can write there."""
    sb = victim
    r = sb.exec("import js\nchunk = js.Uint8Array.new(1 << 20)\nn = 0\n"
                "try:\n    for n in range(256):\n        js.Deno.stderr.writeSync(chunk)\n"
                "except Exception:\n    pass\nn")
    assert r.restarted or r.json <= STDERR_MAX >> 20, r
    size = os.stat(f"/proc/{sb.pid}/fd/2").st_size
    assert size <= STDERR_MAX
    assert sb.exec("'alive'").json == "alive"


FORGED_POSTS = {
    "result": "{'t': 'result', 'id': cell, 'json': json.dumps({'value': \"'forged'\"})}",
    "call": "{'t': 'call', 'name': 'security.spy', 'args': '{}'}",
    "out": "{'t': 'out', 's': 'stdout', 'data': 'forged output'}",
    "ready": "{'t': 'ready'}",
    "booterror": "{'t': 'booterror', 'message': 'forged boot error'}",
    "fatal": "{'t': 'fatal', 'message': 'forged'}",
    "snapshot": "{'t': 'snapshot', 'data': js.Uint8Array.new(1024)}",
    "exec": "{'t': 'exec', 'id': cell + 1, 'code': 'forged_global = 1', 'timeout': 5}",
    "init": "{'t': 'init', 'make': True}",
}


@pytest.mark.parametrize("kind", FORGED_POSTS)
def test_forged_postmessage_is_ignored(sandbox, kind):
    message = FORGED_POSTS[kind]
    called = []
    sandbox.calls.add("security.spy", lambda args, data: called.append(args))
    snaps = host_snapshots() if kind == "snapshot" else None
    r = sandbox.exec(
        "import js, json, sys, time\n"
        "from pyodide.ffi import to_js\n"
        "cell = int(sys._getframe().f_code.co_filename.strip('<>').split()[1])\n"
        f"js.postMessage(to_js({message}, dict_converter=js.Object.fromEntries))\n"
        "time.sleep(0.1)\n"
        "'real'"
    )
    assert r.json == "real" and r.error is None and not r.restarted
    assert "forged" not in r.stdout + r.stderr
    r = sandbox.exec("'forged_global' in globals()")
    assert r.json is False
    assert called == []
    if snaps is not None:
        assert host_snapshots() == snaps


def test_forged_alive_gets_no_second_init(sandbox):
    """The main thread hands a worker its init (snapshot, shared buffers) when
    it says "alive": only once, or guest code could ask for it (31 MB a time)."""
    r = sandbox.exec(
        "import js, asyncio\n"
        "js.eval('globalThis.__seen = []; self.addEventListener(\"message\", e => __seen.push(e.data && e.data.t))')\n"
        "from pyodide.ffi import to_js\n"
        "for _ in range(3):\n"
        "    js.postMessage(to_js({'t': 'alive'}, dict_converter=js.Object.fromEntries))\n"
        "await asyncio.sleep(0.5)\n"
        "list(js.__seen)"
    )
    assert r.json == []


def test_host_calls_with_bad_names_and_arguments(sandbox):
    setup = "import throwaway, _throwaway_host\n"
    kind, message = attempt(sandbox, "throwaway.call('no.such.handler')", setup)
    assert kind == "LookupError" and "no host function named" in message
    # Names the main thread refuses are answered at once, not left to hang.
    started = time.monotonic()
    assert attempt(sandbox, "throwaway.call('x' * 300)", setup) [0] == "ValueError"
    assert attempt(sandbox, "throwaway.call('')", setup)[0] == "ValueError"
    # The raw bridge: a reply head with the error, not a crash or a hang.
    for args in ("12, '{}', None", "'packages.install', 12, None", "None, None, None"):
        kind, head = attempt(sandbox, f"_throwaway_host.call({args})[0]", setup)
        assert kind == "ok" and json.loads(head)["error"]["type"] == "ValueError", (args, head)
    assert time.monotonic() - started < 10
    # Arguments that are not JSON.
    head = attempt(sandbox, "_throwaway_host.call('packages.install', '{not json', None)[0]", setup)[1]
    assert json.loads(head)["error"]["type"] == "ValueError"
    kind, message = attempt(sandbox, "throwaway.call('packages.install', {'requirements': 'six'})", setup)
    assert kind == "ValueError"


def test_huge_host_call_arguments(victim):
    sb = victim
    seen = []
    sb.calls.add("security.echo", lambda args, data: seen.append(len(args)) or "ok")
    # Building a 70M-character string takes seconds on a loaded machine: the
    # test is about the size check, so the cell gets time enough.
    kind, message = attempt(sb, "throwaway.call('security.echo', 'x' * 70_000_000)", "import throwaway\n", timeout=60)
    assert kind == "ValueError" and "too large" in message
    assert seen == []
    assert attempt(sb, "throwaway.call('security.echo', 'x' * 1000)", "import throwaway\n") == ["ok", "('ok', b'')"]
    assert sb.exec("6 * 7").json == 42


def test_huge_exception_message(victim):
    sb = victim
    # The result (message and traceback) is over the host's 64 MiB header limit.
    r = sb.exec("raise ValueError('x' * 36_000_000)")  # must not raise on the host
    assert r.error is not None and not r.restarted
    assert sb.exec("6 * 7").json == 42


# --- hostile guests: the host and other sandboxes go on ------------------------------------


def test_busy_loop_in_javascript_is_killed(victim):
    sb = victim
    r = sb.exec("import js\njs.eval('while (true) {}')", timeout=0.5)
    assert r.limit == "timeout" and r.restarted
    assert sb.exec("'alive'").json == "alive"


def cpu_seconds(pid: int, wall: float) -> float:
    """CPU time process `pid` uses in the next `wall` seconds."""

    def used() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = used()
    time.sleep(wall)
    return used() - before


def test_a_killed_worker_leaves_nothing_running(victim):
    """worker.terminate() does not stop a thread stuck in JS (deno#35657): a
    hard kill must not leave it burning a core in the runtime process."""
    r = victim.exec("import js\njs.eval('while (true) {}')", timeout=0.5)
    assert r.limit == "timeout" and r.restarted
    assert victim.exec("1").json == 1
    time.sleep(0.3)
    assert cpu_seconds(victim.pid, 1.0) < 0.5


def test_no_guest_code_runs_between_cells(fresh):
    """A Worker would run on between cells, out of reach of every deadline:
    guest code cannot start one, and the idle runtime uses no CPU. (Timers,
    asyncio tasks and work handed to Deno's threads: test_guest_workers.py.)"""
    sb = fresh()
    r = sb.exec("import js\nerrors = []\nfor _ in range(2):\n    try:\n"
                "        js.eval(\"new Worker('data:text/javascript,while (true) {}', {type: 'module'})\")\n"
                "    except Exception as e:\n        errors.append(str(e))\nerrors")
    assert len(r.json) == 2 and all("Workers are not available" in e for e in r.json), r.json
    time.sleep(1.0)
    assert cpu_seconds(sb.pid, 2.0) < 0.3


def test_javascript_heap_bomb(victim, sandbox):
    sandbox.exec("bystander = 'unharmed'")
    sb = victim  # memory_mb=256
    r = sb.exec("import js\njs.eval('globalThis.keep = []; for (;;) keep.push(new Array(1e6).fill(1))')")
    assert r.restarted and r.limit in ("memory", "crash"), r
    assert sb.exec("'alive'").json == "alive"
    assert sandbox.exec("bystander").json == "unharmed"


def test_array_buffer_bomb_is_capped(fresh, sandbox):
    """ArrayBuffers live outside V8's heap limit and the wasm memory cap: they
    must still not take the host's memory (here: 16 x 256 MB asked for)."""
    sandbox.exec("bystander = 'unharmed'")
    sb = fresh(limits=Limits(memory_mb=256, timeout=30, grace=0.3))
    r = sb.exec("import js\n"
                "js.eval('globalThis.keep = []; try { for (let i = 0; i < 16; i++) "
                "keep.push(new Uint8Array(256 << 20).fill(1)) } catch (e) { globalThis.failure = String(e) }')\n"
                "(js.keep.length, str(getattr(js, 'failure', None)))")
    if not r.restarted:
        count, failure = r.json
        assert count < 16 and "allocation failed" in failure, r.json
        assert count * 256 <= 2 * 1024
    assert sb.exec("import js\njs.keep = None\n'alive'").json == "alive"
    # Even a worker replaced while the memory is still taken comes back
    # (the runtime process may die for want of memory, and is replaced too).
    assert sb.exec("import js\njs.eval('while (true) {}')", timeout=0.5).restarted
    assert sb.exec("6 * 7").json == 42
    assert sandbox.exec("bystander").json == "unharmed"


def test_endless_output_on_every_path(fresh):
    sb = fresh(limits=Limits(output_bytes=10_000, timeout=10))
    for code in ("while True: print('x' * 100)",
                 "import sys\nwhile True: sys.stderr.write('e' * 100)",
                 "import os\nwhile True: os.write(1, b'y' * 100)",
                 "import os\nwhile True: os.write(2, b'z' * 100)"):
        r = sb.exec(code)
        assert r.limit == "output", (code, r)
        assert len(r.stdout.encode()) + len(r.stderr.encode()) <= 10_000
    assert sb.exec("print('ok')").stdout == "ok\n"


def test_deep_recursion(victim, sandbox):
    r = sandbox.exec("def f(n): return f(n + 1)\nf(0)")
    assert r.error.type == "RecursionError"
    # Past the recursion limit the C stack (the JS stack, here) overflows:
    # the interpreter is left broken beneath Python, so it is replaced.
    sb = victim
    r = sb.exec("import sys\nsys.setrecursionlimit(10**7)\ndef g(n): return g(n + 1)\ng(0)", timeout=10)
    assert r.error is not None
    assert r.error.type == "RecursionError" or (r.restarted and r.limit in ("crash", "timeout")), r
    assert sb.exec("'alive'").json == "alive"
    assert sb.exec("import sys\nsys.getrecursionlimit() < 10**7").json is True


EXITS = {
    "os._exit": "import os\nos._exit(0)",
    "os.abort": "import os\nos.abort()",
    "Deno.exit": "import js\njs.Deno.exit(0)",
    "self.close": "import js\njs.eval('self.close()')",
}


def test_sys_exit(sandbox):
    r = sandbox.exec("import sys\nsys.exit(3)")
    assert r.error.type == "SystemExit"
    assert sandbox.exec("'alive'").json == "alive"


@pytest.mark.parametrize("code", EXITS.values(), ids=EXITS.keys())
def test_exits(victim, code):
    # The interpreter ends beneath Python (replaced at once), or the worker
    # closes silently (replaced at the deadline).
    r = victim.exec(code, timeout=1)
    assert r.restarted and r.limit in ("crash", "timeout"), r
    assert victim.exec("6 * 7").json == 42


def test_closing_the_standard_streams(fresh):
    sb = fresh()
    r = sb.exec("import os, sys\nos.close(0)\nos.close(1)\nos.close(2)\nsys.stdout = sys.stderr = None\n'closed'")
    assert r.json == "closed"
    assert sb.exec("6 * 7").json == 42


def test_tampering_with_the_interrupt_buffer(victim):
    sb = victim
    r = sb.exec("import js, pyodide_js\n"
                "pyodide_js.setInterruptBuffer(js.Uint8Array.new(js.SharedArrayBuffer.new(1)))\n"
                "while True: pass", timeout=0.5)
    assert r.limit == "timeout" and r.restarted
    assert sb.exec("'alive'").json == "alive"


def test_overwriting_the_workers_globals(victim):
    sb = victim
    r = sb.exec("import js\n"
                "js.eval('self.onmessage = null; self.postMessage = () => {}; self.close = () => {}; "
                "Atomics.notify = () => 0; JSON.stringify = () => \"{\"')\n"
                "'overwritten'", timeout=1)
    # The worker's messages are garbage now (its result among them): the host
    # neither hangs nor fails, and the worker is replaced at the deadline.
    assert r.limit == "timeout" and r.restarted, r
    assert sb.exec("6 * 7").json == 42


def test_sandboxes_do_not_share_anything(victim, sandbox):
    a, b = victim, sandbox
    a.exec("import js\njs.eval('globalThis.__got = []; "
           "new BroadcastChannel(\"throwaway\").onmessage = e => __got.push(e.data)')")
    b.exec("import js\njs.eval('new BroadcastChannel(\"throwaway\").postMessage(\"hello from b\")')\n"
           "security_b_only = 'b only'")
    time.sleep(0.2)
    assert a.exec("import js\nlist(js.__got)").json == []
    assert a.exec("security_b_only").error.type == "NameError"


# --- host-backed mounts --------------------------------------------------------------------


def test_mounts_keep_to_their_folder(tmp_path):
    data, secret = tmp_path / "data", tmp_path / "secret"
    data.mkdir()
    secret.mkdir()
    (secret / "key.txt").write_text("top secret")
    (data / "ok.txt").write_text("public")
    (data / "link.txt").symlink_to(secret / "key.txt")
    (data / "linkdir").symlink_to(secret)
    fs = FileSystem()
    fs.mount_host("/data", data)
    with Sandbox(fs=fs, limits=Limits(timeout=10)) as sb:
        assert sb.exec("open('/data/ok.txt').read()").json == "public"
        for code in ("open('/data/link.txt').read()", "open('/data/linkdir/key.txt').read()",
                     "open('/data/../secret/key.txt').read()", "open('/data/ok.txt', 'w').write('x')",
                     "open('/data/new.txt', 'w').write('x')", "open('/data/linkdir/new.txt', 'w').write('x')",
                     "import os; os.remove('/data/ok.txt')", "import os; os.rename('/data/ok.txt', '/data/moved.txt')",
                     "import os; os.mkdir('/data/d')"):
            r = sb.exec(code)
            assert r.error is not None and "secret" not in (r.value or ""), (code, r)
            assert r.error.type in ("PermissionError", "OSError", "FileNotFoundError"), (code, r.error)
        # Straight to the host call, past the guest's own path handling.
        for p in ("/../secret/key.txt", "/linkdir/key.txt", "/link.txt", "/./../secret", "/ok.txt\0"):
            kind, message = attempt(sb, f"throwaway.call('fs', {{'op': 'open', 'm': 0, 'p': {p!r}, 'mode': 'r'}})",
                                    "import throwaway\n")
            assert kind in ("PermissionError", "OSError", "FileNotFoundError"), (p, kind, message)
            assert str(tmp_path) not in message
        kind, _ = attempt(sb, "throwaway.call('fs', {'op': 'open', 'm': 99, 'p': '/', 'mode': 'r'})",
                          "import throwaway\n")
        assert kind == "OSError"
    assert (data / "ok.txt").read_text() == "public" and (secret / "key.txt").read_text() == "top secret"
    assert sorted(p.name for p in data.iterdir()) == ["link.txt", "linkdir", "ok.txt"]
    assert sorted(p.name for p in secret.iterdir()) == ["key.txt"]
