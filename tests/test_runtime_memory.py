"""The runtime's boot leaves less memory resident (worker.js: the snapshot is
restored page by page, zero pages left alone; Pyodide's wasm bytes are freed
once compiled; the standard library's zip is kept once, not twice), and it
does so through hooks on Pyodide's boot: each test shows that a hook did its
part and left nothing behind that guest code could see or be hurt by. The
figures themselves are in bench/bench_memory.py.
"""

from __future__ import annotations

import hashlib

from throwaway.sandbox import Sandbox
from throwaway.sandbox.runtime import PYODIDE_VERSION, ensure_runtime


def test_the_boot_hooks_are_gone_once_booted(sandbox):
    r = sandbox.exec(
        "import js, pyodide_js\n"
        "[str(js.WebAssembly.instantiate), str(pyodide_js.FS.writeFile)[:20]]"
    )
    assert r.error is None, r.error
    instantiate, write_file = r.json
    assert "[native code]" in instantiate
    assert write_file.startswith("writeFile(path"), write_file


def test_guest_wasm_bytes_are_left_alone(sandbox):
    """Only Pyodide's own module's bytes are freed after boot, never what guest code compiles."""
    r = sandbox.exec(
        "import js\n"
        "from pyodide.ffi import to_js\n"
        "wasm = to_js(b'\\x00asm\\x01\\x00\\x00\\x00')\n"
        "result = await js.WebAssembly.instantiate(wasm)\n"
        "[wasm.length, bool(result.instance)]"
    )
    assert r.error is None, r.error
    assert r.json == [8, True]


def test_the_standard_library_is_whole_and_writable(sandbox):
    zip_file = ensure_runtime().pyodide_dir / "python_stdlib.zip"
    r = sandbox.exec(
        "import hashlib, sys, glob\n"
        "path = glob.glob('/lib/python3*.zip')[0]\n"
        "digest = hashlib.sha256(open(path, 'rb').read()).hexdigest()\n"
        "import email.mime.text, decimal, zipfile\n"
        "digest"
    )
    assert r.error is None, r.error
    assert r.json == hashlib.sha256(zip_file.read_bytes()).hexdigest(), PYODIDE_VERSION
    # The file system owns those bytes now: changing the file is the guest's own business.
    r = sandbox.exec("import glob, os\np = glob.glob('/lib/python3*.zip')[0]\n"
                     "open(p + '.copy', 'wb').write(open(p, 'rb').read())\nos.path.getsize(p + '.copy')")
    assert r.json == zip_file.stat().st_size


def test_two_runtimes_restore_the_same_state(fresh):
    """Zero pages are skipped on restore: two runtimes booted from one snapshot
    hold the same interpreter, and it works (modules, the guest module, a computation)."""
    code = ("import sys, hashlib, _throwaway\n"
            "[hashlib.sha256(repr(sorted(sys.modules)).encode()).hexdigest(), sum(i * i for i in range(10**5))]")
    first, second = fresh(), Sandbox().start()
    try:
        a, b = first.exec(code), second.exec(code)
        assert a.error is None, a.error
        assert a.json == b.json and a.json[1] == 333328333350000
    finally:
        second.close()
