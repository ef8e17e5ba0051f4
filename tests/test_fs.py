"""The guest's file system on the real runtime: host folders and resources
served live, path checks, quotas, /output artifacts and snapshots."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sqlite3
import zipfile

import pytest

from throwaway.store import BlobStore
from throwaway.fs import FileSystem, Resource
from throwaway.fs.snapshot import files_of
from throwaway.sandbox import Limits, Sandbox


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    root = tmp_path_factory.mktemp("host")
    ro = root / "ro"
    (ro / "sub").mkdir(parents=True)
    (ro / "hello.txt").write_text("hello host\n")
    (ro / "sub" / "data.bin").write_bytes(bytes(range(256)) * 100)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("inner/a.txt", "zipped")
    (ro / "archive.zip").write_bytes(buf.getvalue())
    (root / "secret.txt").write_text("outside the mount")
    os.symlink(root / "secret.txt", ro / "escape-link")
    os.symlink(ro / "hello.txt", ro / "inside-link")
    rw = root / "rw"
    rw.mkdir()
    return root


class Tickets(Resource):
    """A resource folder: /open/<n>.json computed on read; writes land in `sent`."""

    writable = True

    def __init__(self):
        super().__init__("tickets")
        self.sent = {}

    def list(self, path):
        if path == "/":
            return ["open/", "README.md"]
        if path == "/open":
            return ["1.json", "2.json"]
        raise FileNotFoundError(2, "No such file or directory")

    async def read(self, path):
        await asyncio.sleep(0)
        if path == "/README.md":
            return "Tickets live here.\n"
        if path.startswith("/open/"):
            return '{"id": %s}' % path[6:-5]
        raise FileNotFoundError(2, "No such file or directory")

    def write(self, path, data):
        self.sent[path] = data

    def delete(self, path):
        self.sent.pop(path, None)


@pytest.fixture(scope="module")
def world(host):
    fs = FileSystem()
    fs.mount_host("/data", host / "ro", description="read-only data")
    fs.mount_host("/work", host / "rw", writable=True, description="shared work folder", quota_bytes=30_000_000)
    tickets = fs.mount("/tickets", Tickets())
    calls = {"n": 0}

    @fs.file("/network/current-ip", description="the current IP address")
    async def current_ip():
        calls["n"] += 1
        await asyncio.sleep(0.01)
        return f"203.0.113.{calls['n']}\n"

    @fs.file("/network/send", write=True)
    def send(data):
        calls["sent"] = data

    with Sandbox(fs=fs) as sb:
        yield sb, fs, tickets, calls


def run(sb, code):
    r = sb.exec(code)
    assert r.ok, r.error and r.error.traceback
    return r.json


# -- the mount table --------------------------------------------------------------


def test_default_mounts_and_descriptions():
    fs = FileSystem()
    assert [m.path for m in fs.mounts] == ["/home/user", "/output", "/tmp"]
    assert "/output  (output, read-write)" in fs.describe()
    with pytest.raises(ValueError):
        fs.mount_host("/lib/x", ".")
    with pytest.raises(ValueError):
        fs.mount_host("relative", ".")
    fs.mount_host("/data", ".")
    with pytest.raises(ValueError, match="overlaps"):
        fs.mount_host("/data/inner", ".")


def test_describe_lists_resources_and_files(world):
    _, fs, _, _ = world
    text = fs.describe()
    assert "/network  (resource, read-write)  current-ip: the current IP address" in text
    assert "/data  (host, read-only)  read-only data" in text


# -- host folders ---------------------------------------------------------------------


def test_read_list_stat_walk(world):
    sb, *_ = world
    assert run(sb, "open('/data/hello.txt').read()") == "hello host\n"
    # The link that leads out of the mount is not even listed.
    assert run(sb, "import os; sorted(os.listdir('/data'))") == ["archive.zip", "hello.txt", "inside-link", "sub"]
    assert run(sb, "os.path.getsize('/data/sub/data.bin'), os.path.isdir('/data/sub')") == [25600, True]
    assert run(sb, "sorted(f for _, _, fs in os.walk('/data/sub') for f in fs)") == ["data.bin"]
    assert run(sb, "import pathlib; pathlib.Path('/data/hello.txt').read_text()") == "hello host\n"
    assert run(sb, "open('/data/inside-link').read()") == "hello host\n"  # a link that stays inside


def test_c_level_access_zipfile_shutil_sqlite(world, host):
    sb, *_ = world
    assert run(sb, "import zipfile; zipfile.ZipFile('/data/archive.zip').read('inner/a.txt').decode()") == "zipped"
    assert run(sb, "import shutil; shutil.copy('/data/sub/data.bin', '/home/user/copy.bin'); "
                   "os.path.getsize('/home/user/copy.bin')") == 25600
    run(sb, "import sqlite3\ndb = sqlite3.connect('/work/t.db')\ndb.execute('create table t (x)')\n"
            "db.executemany('insert into t values (?)', [(i,) for i in range(100)])\ndb.commit(); db.close()")
    with sqlite3.connect(host / "rw" / "t.db") as db:  # the host reads what the guest wrote
        assert db.execute("select count(*), sum(x) from t").fetchone() == (100, 4950)
    assert run(sb, "sqlite3.connect('/work/t.db').execute('select max(x) from t').fetchone()[0]") == 99


def test_writes_renames_and_deletes_reach_the_host(world, host):
    sb, *_ = world
    rw = host / "rw"
    run(sb, "open('/work/a.txt', 'w').write('one\\n'); open('/work/a.txt', 'a').write('two\\n')")
    assert (rw / "a.txt").read_text() == "one\ntwo\n"
    run(sb, "os.mkdir('/work/d'); os.rename('/work/a.txt', '/work/d/b.txt')")
    assert (rw / "d" / "b.txt").read_text() == "one\ntwo\n" and not (rw / "a.txt").exists()
    run(sb, "f = open('/work/d/b.txt', 'r+'); f.seek(0); f.write('ONE'); f.close()")
    assert (rw / "d" / "b.txt").read_text() == "ONE\ntwo\n"
    run(sb, "os.truncate('/work/d/b.txt', 3)")
    assert (rw / "d" / "b.txt").read_text() == "ONE"
    run(sb, "os.unlink('/work/d/b.txt'); os.rmdir('/work/d')")
    assert not (rw / "d").exists()


def test_host_changes_are_seen_live(world, host):
    sb, *_ = world
    (host / "rw" / "live.txt").write_text("v1")
    assert run(sb, "open('/work/live.txt').read()") == "v1"
    (host / "rw" / "live.txt").write_text("version 2")
    (host / "rw" / "new.txt").write_text("new")
    assert run(sb, "open('/work/live.txt').read(), 'new.txt' in os.listdir('/work')") == ["version 2", True]


def test_large_files_cross_in_chunks(world, host):
    sb, *_ = world
    big = os.urandom(12 * 1024 * 1024)
    (host / "rw" / "big.bin").write_bytes(big)
    digest = run(sb, "import hashlib; hashlib.sha256(open('/work/big.bin', 'rb').read()).hexdigest()")
    assert digest == hashlib.sha256(big).hexdigest()
    run(sb, "open('/work/out.bin', 'wb').write(bytes(range(256)) * 40000)")
    assert (host / "rw" / "out.bin").read_bytes() == bytes(range(256)) * 40000
    os.unlink(host / "rw" / "big.bin")
    os.unlink(host / "rw" / "out.bin")


# -- safety -----------------------------------------------------------------------------


def test_read_only_mount_refuses_writes_with_erofs(world, host):
    sb, *_ = world
    code = ("import errno\nout = []\nfor f in [lambda: open('/data/hello.txt', 'w'), lambda: open('/data/new', 'w'),"
            " lambda: os.unlink('/data/hello.txt'), lambda: os.mkdir('/data/d'),"
            " lambda: os.rename('/data/hello.txt', '/data/x')]:\n"
            "    try:\n        f(); out.append('allowed')\n    except OSError as e:\n"
            "        out.append(e.errno == errno.EROFS)\nout")
    assert run(sb, code) == [True] * 5
    assert (host / "ro" / "hello.txt").read_text() == "hello host\n"
    assert sorted(os.listdir(host / "ro")) == ["archive.zip", "escape-link", "hello.txt", "inside-link", "sub"]


def test_escapes_are_refused(world, host):
    sb, *_ = world
    # A host symlink that points outside the mount: permission denied, contents never sent.
    r = sb.exec("open('/data/escape-link').read()")
    assert r.error.type == "PermissionError"
    assert "outside" not in (r.stdout + str(r.value))
    # '..' is resolved by the guest's own tree, so it never leaves the mount.
    assert sb.exec("open('/data/../../secret.txt').read()").error.type == "FileNotFoundError"
    # Forged host calls with hostile paths and ids.
    code = ("from throwaway import call\nout = []\n"
            "for args in [{'op': 'stat', 'm': 0, 'p': '/../secret.txt'}, {'op': 'open', 'm': 0, 'p': '/../../etc/passwd', 'mode': 'r'},"
            " {'op': 'stat', 'm': 99, 'p': '/'}, {'op': 'stat', 'm': 0, 'p': 'etc/passwd'}, {'op': 'list', 'm': 0, 'p': '/\\x00'},"
            " {'op': 'read', 'h': 12345, 'pos': 0, 'len': 10}, {'op': 'open', 'm': 1, 'p': '/../secret.txt', 'mode': 'w'}]:\n"
            "    try:\n        call('fs', args); out.append('allowed')\n    except OSError as e:\n        out.append(type(e).__name__)\nout")
    assert run(sb, code) == ["PermissionError", "PermissionError", "OSError", "OSError", "OSError", "OSError",
                             "PermissionError"]
    assert (host / "secret.txt").read_text() == "outside the mount"


def test_error_messages_never_show_host_paths(world, host):
    sb, *_ = world
    r = sb.exec("open('/work/no/such/file.txt').read()")
    assert r.error.type == "FileNotFoundError"
    assert str(host) not in r.error.message + r.error.traceback


def test_write_quota(host, tmp_path):
    fs = FileSystem()
    fs.mount_host("/work", tmp_path, writable=True, quota_bytes=100_000)
    with Sandbox(fs=fs) as sb:
        assert sb.exec("open('/work/a', 'wb').write(b'x' * 60_000)").ok
        r = sb.exec("with open('/work/b', 'wb') as f:\n    f.write(b'y' * 60_000)")
        assert r.limit == "disk"
        assert r.error.type == "OSError" and "No space left" in r.error.message  # ENOSPC
        r = sb.exec("open('/work/c', 'wb').write(b'z' * 60_000)")  # the error is swallowed at finalization...
        assert r.limit == "disk" and not r.ok  # ...but the result still says the write was refused
        assert (tmp_path / "a").stat().st_size == 60_000


# -- resources ---------------------------------------------------------------------------


def test_async_file_resource_is_computed_on_each_read(world):
    sb, _, _, calls = world
    first = run(sb, "open('/network/current-ip').read()")
    second = run(sb, "open('/network/current-ip').read()")
    assert first.startswith("203.0.113.") and first != second
    assert run(sb, "os.listdir('/network')") == ["current-ip", "send"]


def test_write_only_file_resource_gets_the_bytes_on_close(world):
    sb, _, _, calls = world
    run(sb, "with open('/network/send', 'w') as f:\n    f.write('hello ')\n    f.write('world')")
    assert calls["sent"] == b"hello world"
    assert sb.exec("open('/network/current-ip', 'w')").error.type == "OSError"  # EROFS


def test_resource_folder(world):
    sb, _, tickets, _ = world
    assert run(sb, "sorted(os.listdir('/tickets')), os.listdir('/tickets/open')") == [
        ["README.md", "open"], ["1.json", "2.json"]]
    assert run(sb, "import json; json.load(open('/tickets/open/2.json'))") == {"id": 2}
    assert run(sb, "os.path.isdir('/tickets/open'), os.path.getsize('/tickets/README.md')") == [True, 19]
    run(sb, "open('/tickets/reply.txt', 'w').write('thanks')")
    assert tickets.sent["/reply.txt"] == b"thanks"
    assert sb.exec("open('/tickets/nope.json')").error.type == "FileNotFoundError"


# -- artifacts ---------------------------------------------------------------------------


def test_output_files_are_reported_and_collected(world, tmp_path):
    sb, *_ = world
    sb.output_changes()
    r = sb.exec("os.makedirs('/output/charts', exist_ok=True)\nopen('/output/charts/a.png', 'wb').write(b'PNG')\n"
                "open('/home/user/not-output.txt', 'w').write('x')")
    assert r.files == ["/output/charts/a.png"]
    assert sb.exec("1").files == []  # nothing changed since
    assert sb.output_changes() == ["/output/charts/a.png"]
    assert sb.output_changes() == []
    written = sb.collect_output(tmp_path / "out")
    assert (tmp_path / "out" / "charts" / "a.png").read_bytes() == b"PNG"
    assert tmp_path / "out" / "charts" / "a.png" in written
    assert sb.read_file("/output/charts/a.png") == b"PNG"
    sb.write_file("/home/user/from-host/x.txt", b"hi")
    assert run(sb, "open('/home/user/from-host/x.txt').read()") == "hi"


# -- snapshots ---------------------------------------------------------------------------


TREE = """
import os
os.makedirs('/home/user/proj/deep', exist_ok=True)
for i in range(5):
    open(f'/home/user/proj/deep/f{i}.txt', 'w').write('same content')
open('/home/user/proj/run.sh', 'w').write('#!/bin/sh')
os.chmod('/home/user/proj/run.sh', 0o750)
os.symlink('/home/user/proj/run.sh', '/home/user/proj/link')
open('/output/result.csv', 'w').write('a,b\\n1,2\\n')
open('/tmp/scratch', 'wb').write(os.urandom(1000))
"""

STATE = """
import os, hashlib
def state():
    out = []
    for root in ['/home/user', '/output', '/tmp']:
        for d, dirs, files in os.walk(root):
            st = os.lstat(d); out.append([d, st.st_mode, st.st_mtime_ns])
            for f in sorted(files + [x for x in dirs if os.path.islink(os.path.join(d, x))]):
                p = os.path.join(d, f); st = os.lstat(p)
                if os.path.islink(p):  # a link's own mtime cannot be set in the guest
                    out.append([p, st.st_mode, 0, os.readlink(p)])
                else:
                    out.append([p, st.st_mode, st.st_mtime_ns, hashlib.sha256(open(p, 'rb').read()).hexdigest()])
    return sorted(out)
state()
"""


def test_snapshot_restores_identical_files_modes_mtimes(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    with Sandbox() as a:
        run(a, TREE)
        before = run(a, STATE)
        digest = a.snapshot(store)
    files = files_of(store, digest)
    assert len(set(files[p] for p in files if "/deep/" in p)) == 1  # five equal files, one blob
    with Sandbox() as b:
        run(b, "open('/home/user/stray.txt', 'w').write('not in the snapshot')")
        b.restore(store, digest)
        assert run(b, STATE) == before
        assert run(b, "os.path.exists('/home/user/stray.txt')") is False


def test_a_restart_brings_back_the_last_snapshot(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    with Sandbox(limits=Limits(timeout=1, grace=0.3)) as sb:
        run(sb, "open('/home/user/keep.txt', 'w').write('kept')")
        sb.snapshot(store)
        run(sb, "open('/home/user/later.txt', 'w').write('after the snapshot')")
        r = sb.exec("import js\njs.eval('while (true) {}')")
        assert r.restarted
        assert run(sb, "import os; sorted(os.listdir('/home/user')), os.getcwd()") == [["keep.txt"], "/home/user"]


def test_snapshots_send_only_what_the_store_lacks(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    blobs = lambda: sorted(p for p in (tmp_path / "blobs").rglob("*") if p.is_file())  # noqa: E731
    with Sandbox() as sb:
        run(sb, TREE)
        first = sb.snapshot(store)
        after_first = blobs()
        assert sb.snapshot(store) == first and blobs() == after_first  # nothing changed, nothing stored
        run(sb, "open('/home/user/proj/run.sh', 'a').write('\\necho changed')")
        second = sb.snapshot(store)
        assert second != first
        assert len(blobs()) == len(after_first) + 2  # the changed file and the new manifest


def test_restored_files_are_not_the_next_cells_output(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    with Sandbox() as a:
        run(a, "open('/output/old.txt', 'w').write('from before')")
        digest = a.snapshot(store)
    with Sandbox() as b:
        b.restore(store, digest)
        assert b.exec("1").files == []
        assert b.exec("open('/output/new.txt', 'w').write('x')").files == ["/output/new.txt"]
