"""The runtime's boot reads a V8 code cache from a real DENO_DIR, which guest
code must not be able to write: Deno writes there with no permission asked
(the Cache API, code caches of the modules guest code imports), so the kernel
forbids the runtime process every file write (Landlock), root or not.

Each test shows the door shut on the real runtime: the cache folder's every
byte and timestamp unchanged after guest code tried, a file that must not
appear, and the confinement itself seen from outside the process.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from throwaway.sandbox import Sandbox, landlock
from throwaway.sandbox.codecache import usable_code_cache
from throwaway.sandbox.runtime import ensure_runtime

from .test_security import PRELUDE, attempt

pytestmark = pytest.mark.skipif(not landlock.available(), reason="needs Linux with Landlock")

def folder_state(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under folder: size, mtime and content hash."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    runtime = ensure_runtime()
    with Sandbox(runtime=runtime) as sb:  # the first boot makes the boot snapshot, if need be
        sb.exec("1")
    folder = usable_code_cache(ensure_runtime())
    assert folder is not None and (folder / "v8_code_cache_v2").exists()
    return folder


@pytest.fixture
def sandbox(cache_dir):
    with Sandbox() as sb:
        yield sb


def test_the_runtime_boots_with_the_cache_and_cannot_write_files(sandbox, cache_dir):
    env = environ(sandbox.pid)
    assert env["DENO_DIR"] == str(cache_dir)
    status = Path(f"/proc/{sandbox.pid}/status").read_text()
    assert "NoNewPrivs:\t1" in status  # set with the Landlock domain, before exec


def test_guest_code_cannot_write_the_code_cache(sandbox, cache_dir, tmp_path):
    before = folder_state(cache_dir)
    # The Cache API asks no permission: it would store under DENO_DIR.
    put = ("async def put():\n"
           "    cache = await js.caches.open('leak')\n"
           "    await cache.put('http://cache.invalid/', js.Response.new('secret'))\n")
    kind, _ = attempt(sandbox, "put()", setup=put)
    assert kind != "ok", "guest code wrote to the Cache API"
    # Every data: URL guest code imports is a new module Deno would cache.
    r = sandbox.exec(PRELUDE + "for i in range(20):\n"
                     "    await js.eval('import(\"data:text/javascript,export const v = %d; const pad = [%s];\")'"
                     " % (i, ','.join(map(str, range(3000)))))\n'imported'")
    assert r.json == "imported", r.error
    # And the files themselves, by name (Deno's permissions refuse first).
    for name in ("v8_code_cache_v2", "v8_code_cache_v2-wal", "planted"):
        target = str(cache_dir / name)
        kind, message = attempt(sandbox, f"js.Deno.writeTextFileSync({target!r}, 'pwned')")
        assert kind != "ok" and "NotCapable" in message, message
    assert sandbox.exec("1 + 1").json == 2
    assert folder_state(cache_dir) == before
    assert not (cache_dir / "planted").exists()


def test_what_one_sandbox_stores_never_reaches_another(cache_dir):
    put = ("async def put():\n"
           "    cache = await js.caches.open('leak')\n"
           "    await cache.put('http://cache.invalid/', js.Response.new('secret'))\n")
    get = ("async def get():\n"
           "    hit = await (await js.caches.open('leak')).match('http://cache.invalid/')\n"
           "    return await hit.text() if hit else None\n")
    with Sandbox() as one:
        attempt(one, "put()", setup=put)
    with Sandbox() as other:
        assert attempt(other, "get()", setup=get)[1] != "secret"


def test_the_confinement_binds_root_and_what_the_process_starts(tmp_path):
    # Not a Deno permission: the kernel's, for any program, whoever runs it.
    target = tmp_path / "written"
    assert landlock.prepare()
    r = subprocess.run(["sh", "-c", f"echo x > {target}; mkdir {tmp_path / 'd'}; sh -c 'touch {target}.2'"],
                       preexec_fn=landlock.forbid_writes, capture_output=True, text=True)
    assert "Permission denied" in r.stderr
    assert list(tmp_path.iterdir()) == []
    # Reading stays allowed.
    r = subprocess.run([sys.executable, "-c", "print(open('/etc/hostname').read() != '')"],
                       preexec_fn=landlock.forbid_writes, capture_output=True, text=True)
    assert r.stdout.strip() == "True", r.stderr
