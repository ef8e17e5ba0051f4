"""Hostile guest code against mounted host folders and resources, on the real
runtime: FIFOs, sockets and devices never open (and never block the host),
links swapped during a lookup never lead out, entry operations act on the entry
itself, and every cap holds: open handles, created entries, the write quota by
end offset and truncate length, resource write buffers."""

from __future__ import annotations

import os
import resource
import socket
import stat
import sys
import threading

import pytest

from throwaway.fs import FileSystem, paths
from throwaway.sandbox import Limits, Sandbox

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="FIFOs, devices, /proc/self/fd and openat2 are Linux's")

TRY = """
import errno, os
def attempt(fn):
    try:
        value = fn()
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)
    return value if isinstance(value, (str, int, type(None))) else 'allowed'
"""


def run(sb, code):
    r = sb.exec(code)
    assert r.ok, r.error and r.error.traceback
    return r.json


def host_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(params=["openat2", "walk"])
def resolver(request):
    """Each lookup test runs twice: with openat2 (if this kernel has it) and with the walk."""
    if request.param == "openat2" and not paths._openat2_usable():
        pytest.skip("this kernel (or its seccomp filter) has no openat2; the walk is what runs")
    paths.use_openat2(None if request.param == "openat2" else False)
    yield request.param
    paths.use_openat2(None)


# -- only regular files and folders open ---------------------------------------------------


def _fifo(path):
    os.mkfifo(path)


def _socket(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    return s  # kept bound (and listening) for the test


def _device(path):
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # like /dev/null
    except PermissionError:
        pytest.skip("mknod of a character device is not permitted here (not root, or no CAP_MKNOD)")


@pytest.mark.timeout(120)  # a regression blocks the host: it must fail, not hang
@pytest.mark.parametrize("make", [_fifo, _socket, _device], ids=["fifo", "unix-socket", "char-device"])
def test_special_files_are_refused_at_once(tmp_path, make, resolver):
    (tmp_path / "ok.txt").write_text("fine")
    keep = make(tmp_path / "special")
    fs = FileSystem()
    fs.mount_host("/data", tmp_path, writable=True)
    try:
        with Sandbox(fs=fs, limits=Limits(timeout=3, grace=0.3)) as sb:
            out = run(sb, TRY + "from throwaway import call\n[\n"
                      " attempt(lambda: open('/data/special').read()),\n"
                      " attempt(lambda: open('/data/special', 'rb').read(1)),\n"
                      " attempt(lambda: open('/data/special', 'w').write('x')),\n"
                      " attempt(lambda: open('/data/special', 'a').write('x')),\n"
                      " attempt(lambda: os.truncate('/data/special', 0)),\n"
                      # Straight to the host, past the guest's own checks: create on it must not open it.
                      " attempt(lambda: call('fs', {'op': 'create', 'm': 0, 'p': '/special'})),\n"
                      " attempt(lambda: call('fs', {'op': 'open', 'm': 0, 'p': '/special', 'mode': 'rw'})),\n"
                      " open('/data/ok.txt').read(),\n"
                      " sorted(os.listdir('/data')),\n"
                      "]")
            assert out[:5] == ["ENXIO"] * 5, out
            assert out[5] == "EEXIST" and out[6] == "ENXIO", out
            assert out[7:] == ["fine", ["ok.txt", "special"]]
            # The cell's deadline was never needed, and the sandbox is the same one.
            assert run(sb, "1 + 1") == 2
    finally:
        if keep is not None:
            keep.close()


@pytest.mark.timeout(120)
def test_refused_opens_do_not_use_up_the_guests_descriptors(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "ok.txt").write_text("fine")
    fs = FileSystem()
    fs.mount_host("/data", tmp_path)
    with Sandbox(fs=fs, limits=Limits(timeout=60)) as sb:
        # More refusals than the guest has descriptors (4,096): each must give its own back.
        out = run(sb, TRY + "errs = {attempt(lambda: open('/data/pipe')) for _ in range(5000)}\n"
                  "[sorted(errs), open('/data/ok.txt').read()]")
    assert out == [["ENXIO"], "fine"]


# -- lookups stay inside, even while links change under them ----------------------------------


@pytest.mark.timeout(240)
@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
def test_a_link_swapped_during_reads_never_leads_out(tmp_path, resolver, absolute):
    data, secret = tmp_path / "data", tmp_path / "secret"
    (data / "inner").mkdir(parents=True)
    secret.mkdir()
    (data / "inner" / "f.txt").write_text("inside")
    (secret / "f.txt").write_text("SECRET")
    inside_target = str(data / "inner") if absolute else "inner"
    targets = [inside_target, str(secret), "/etc", "../secret"]
    os.symlink(inside_target, data / "flip")
    os.symlink(str(data / "inner" / "f.txt") if absolute else "inner/f.txt", data / "flipf")
    # A real folder that is now and then moved aside for a link to the secret
    # one: a check of the path followed by an open of it would be caught here.
    (data / "swap").mkdir()
    (data / "swap" / "f.txt").write_text("inside")
    os.symlink(str(secret) if absolute else "../secret", data / ".swaplink")
    stop = threading.Event()
    flips = {"n": 0}

    def flipper():
        # Atomic swaps (rename over the link) between a folder inside and places outside.
        i = 0
        while not stop.is_set():
            i += 1
            t = targets[i % len(targets)]
            tmp = data / f".flip{i % 2}"
            os.symlink(t, tmp)
            os.replace(tmp, data / "flip")
            tmp = data / f".flipf{i % 2}"
            os.symlink(os.path.join(t, "f.txt"), tmp)
            os.replace(tmp, data / "flipf")
            flips["n"] = i

    def swapper():
        while not stop.is_set():
            os.rename(data / "swap", data / ".swapdir")
            os.rename(data / ".swaplink", data / "swap")
            os.rename(data / "swap", data / ".swaplink")
            os.rename(data / ".swapdir", data / "swap")
            flips["swaps"] = flips.get("swaps", 0) + 1

    fs = FileSystem()
    fs.mount_host("/data", data)
    with Sandbox(fs=fs, limits=Limits(timeout=120)) as sb:
        threads = [threading.Thread(target=flipper, daemon=True), threading.Thread(target=swapper, daemon=True)]
        for thread in threads:
            thread.start()
        try:
            seen = run(sb, TRY + "from throwaway import call\nseen = {}\n"
                       "def note(v):\n    seen[str(v)] = seen.get(str(v), 0) + 1\n"
                       "for i in range(500):\n"
                       "    note(attempt(lambda: open('/data/flip/f.txt').read()))\n"
                       "    note(attempt(lambda: open('/data/flipf').read()))\n"
                       "    note(attempt(lambda: call('fs', {'op': 'open', 'm': 0, 'p': '/flip/f.txt', 'mode': 'r'})[1]"
                       ".decode()))\n"
                       "    note(attempt(lambda: call('fs', {'op': 'list', 'm': 0, 'p': '/flip'})[0]['names'][0]))\n"
                       "    for _ in range(3):\n"
                       "        note(attempt(lambda: open('/data/swap/f.txt').read()))\n"
                       "        note(attempt(lambda: call('fs', {'op': 'open', 'm': 0, 'p': '/swap/f.txt', 'mode': 'r'})[1]"
                       ".decode()))\n"
                       "    note(attempt(lambda: call('fs', {'op': 'open', 'm': 0, 'p': '/swap/f.txt', 'mode': 'r'})[1]"
                       ".decode()))\n"
                       "    note(attempt(lambda: call('fs', {'op': 'stat', 'm': 0, 'p': '/swap/f.txt'})[0]['size']))\n"
                       "seen")
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert flips["n"] > 100 and flips["swaps"] > 100, flips  # the links really changed while the guest read
    assert not any("SECRET" in k or k in ("passwd", "hosts", "os-release") for k in seen), seen
    assert seen.get("inside", 0) > 0, seen  # and reads through the link inside still worked
    # What the guest got otherwise: refusals, or a lookup that lost the race.
    assert set(seen) <= {"inside", "f.txt", "6", "EACCES", "ENOENT", "ELOOP", "ENOTDIR", "ENXIO"}, seen


def test_entry_operations_act_on_the_link_not_its_target(tmp_path, resolver):
    data, secret = tmp_path / "data", tmp_path / "secret"
    data.mkdir()
    secret.mkdir()
    (secret / "key.txt").write_text("top secret")
    (data / "inner").mkdir()
    (data / "inner" / "a.txt").write_text("a")
    os.symlink(secret / "key.txt", data / "out-file")
    os.symlink(secret, data / "out-dir")
    os.symlink("inner", data / "in-dir")
    fs = FileSystem()
    fs.mount_host("/work", data, writable=True)
    with Sandbox(fs=fs) as sb:
        out = run(sb, TRY + "from throwaway import call\nfs = lambda **a: call('fs', {'m': 0, **a})\n[\n"
                  " attempt(lambda: fs(op='rmdir', p='/out-dir')),\n"  # rmdir never follows: ENOTDIR
                  " attempt(lambda: fs(op='mkdir', p='/out-dir/new')),\n"
                  " attempt(lambda: fs(op='create', p='/out-dir/new.txt')),\n"
                  " attempt(lambda: fs(op='unlink', p='/out-dir/key.txt')),\n"
                  " attempt(lambda: fs(op='rename', p='/out-dir/key.txt', to='/stolen.txt')),\n"
                  " attempt(lambda: fs(op='truncate', p='/out-file', size=0)),\n"
                  " attempt(lambda: fs(op='utime', p='/out-file', mtime=0)),\n"
                  " attempt(lambda: fs(op='rename', p='/out-file', to='/moved-link')),\n"  # moves the link itself
                  " attempt(lambda: fs(op='unlink', p='/moved-link')),\n"  # removes the link itself
                  " attempt(lambda: fs(op='unlink', p='/out-dir')),\n"
                  " attempt(lambda: open('/work/in-dir/a.txt').read()),\n"  # a link inside is followed
                  " attempt(lambda: fs(op='unlink', p='/in-dir')),\n"
                  "]")
    assert out == ["ENOTDIR", "EACCES", "EACCES", "EACCES", "EACCES", "EACCES", "EACCES", "allowed", "allowed",
                   "allowed", "a", "allowed"], out
    assert sorted(p.name for p in data.iterdir()) == ["inner"]
    assert sorted(p.name for p in secret.iterdir()) == ["key.txt"]
    assert (secret / "key.txt").read_text() == "top secret"
    assert (data / "inner" / "a.txt").read_text() == "a"


def test_links_that_loop_or_climb_are_refused(tmp_path, resolver):
    (tmp_path / "d").mkdir()
    os.symlink("loop-b", tmp_path / "loop-a")
    os.symlink("loop-a", tmp_path / "loop-b")
    os.symlink("../..", tmp_path / "d" / "up")
    os.symlink("d/../d/../d", tmp_path / "zigzag")
    (tmp_path / "d" / "x.txt").write_text("x")
    fs = FileSystem()
    fs.mount_host("/data", tmp_path)
    with Sandbox(fs=fs) as sb:
        out = run(sb, TRY + "from throwaway import call\n[\n"
                  " attempt(lambda: open('/data/loop-a').read()),\n"
                  " attempt(lambda: os.listdir('/data/d/up')),\n"
                  " attempt(lambda: call('fs', {'op': 'stat', 'm': 0, 'p': '/d/up/etc/passwd'})),\n"
                  " attempt(lambda: open('/data/zigzag/x.txt').read()),\n"
                  " sorted(os.listdir('/data')),\n"
                  "]")
    assert out == ["ELOOP", "EACCES", "EACCES", "x", ["d", "zigzag"]], out


# -- caps ------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_handle_flood_gets_emfile_and_the_host_holds_few_descriptors(tmp_path, capsys):
    fs = FileSystem()
    fs.mount_host("/work", tmp_path, writable=True)
    with Sandbox(fs=fs, limits=Limits(timeout=120)) as sb:
        before = host_fds()
        out = run(sb, TRY + "held, err = [], None\n"
                  "for i in range(5000):\n"
                  "    try:\n        held.append(open(f'/work/f{i}', 'w'))\n"
                  "    except OSError as e:\n        err = errno.errorcode[e.errno]\n        break\n"
                  "[len(held), err]")
        during = host_fds()
        # Reads of small files keep no handle: they still work while the cap is reached.
        assert run(sb, "open('/work/f0').read()") == ""
        run(sb, "for f in held: f.close()\nheld.clear()")
        after = host_fds()
        assert run(sb, "f = open('/work/again', 'w'); f.write('ok'); f.close(); open('/work/again').read()") == "ok"
    assert out == [256, "EMFILE"], out
    assert during - before <= 256 + 16, (before, during)
    assert after - before <= 16, (before, after)
    with capsys.disabled():
        print(f"\n[handle flood] host fds: {before} before, {during} with the guest holding {out[0]} files "
              f"(5,000 tried), {after} after closing")


def test_the_handle_cap_is_configurable(tmp_path):
    fs = FileSystem(max_open_files=10)
    fs.mount_host("/work", tmp_path, writable=True)
    assert fs.copy().max_open_files == 10
    with Sandbox(fs=fs) as sb:
        out = run(sb, TRY + "held = []\nerr = None\nfor i in range(50):\n"
                  "    r = attempt(lambda: held.append(open(f'/work/f{i}', 'w')))\n"
                  "    if r != 'allowed' and r is not None:\n        err = r\n        break\n[len(held), err]")
    assert out == [10, "EMFILE"]


def test_created_entries_are_capped_per_mount(tmp_path):
    fs = FileSystem()
    fs.mount_host("/work", tmp_path, writable=True, max_entries=50)
    with Sandbox(fs=fs) as sb:
        r = sb.exec(TRY + "made, err = 0, None\nfor i in range(1000):\n"
                    "    e = attempt(lambda: open(f'/work/f{i}', 'w').close())\n"
                    "    if e is not None:\n        err = e\n        break\n    made += 1\n[made, err]")
        assert r.json == [50, "EDQUOT"], r
        assert r.limit == "disk"  # the guest caught the error, the result still says why
        assert sb.exec(TRY + "attempt(lambda: os.mkdir('/work/d'))").json == "EDQUOT"
        # Removing what it made gives room back; creating again counts again.
        run(sb, "for i in range(10): os.unlink(f'/work/f{i}')")
        r = sb.exec(TRY + "[attempt(lambda: os.mkdir(f'/work/d{i}')) for i in range(11)]")
        assert r.json == [None] * 10 + ["EDQUOT"] and r.limit == "disk", r
    assert len(os.listdir(tmp_path)) == 50


QUOTA = 10_000_000


@pytest.fixture
def quota_box(tmp_path):
    fs = FileSystem()
    fs.mount_host("/work", tmp_path, writable=True, quota_bytes=QUOTA)
    with Sandbox(fs=fs) as sb:
        yield sb, tmp_path


@pytest.mark.parametrize("code", [
    "f = open('/work/sparse', 'wb')\nf.seek(8 << 30)\nf.write(b'x')\nf.close()",
    "f = open('/work/sparse', 'wb')\nf.close()\nos.truncate('/work/sparse', 8 << 30)",
    "fd = os.open('/work/sparse', os.O_CREAT | os.O_WRONLY)\nos.pwrite(fd, b'x', 8 << 30)\nos.close(fd)",
    "f = open('/work/sparse', 'wb')\nf.truncate(8 << 30)\nf.close()",
], ids=["seek-write", "truncate", "pwrite", "ftruncate"])
def test_a_far_write_or_truncate_counts_its_end_against_the_quota(quota_box, code):
    sb, root = quota_box
    r = sb.exec("import os\n" + code)
    assert r.limit == "disk", r
    assert r.error is not None and r.error.type == "OSError" and "No space left" in r.error.message, r.error
    st = os.stat(root / "sparse")
    assert st.st_size == 0 and st.st_blocks == 0, (st.st_size, st.st_blocks)


def test_the_quota_counts_growth_not_bytes_written(quota_box):
    sb, root = quota_box
    six = 6_000_000
    # Rewriting the same bytes again and again grows nothing.
    for _ in range(3):
        run(sb, f"open('/work/a', 'wb').write(b'a' * {six})")
    assert (root / "a").stat().st_size == six
    # A write inside the quota far out is allowed (and counted by its end).
    run(sb, "f = open('/work/b', 'wb'); f.seek(3_000_000); f.write(b'b'); f.close()")
    r = sb.exec("f = open('/work/c', 'wb'); f.seek(2_000_000); f.write(b'c'); f.close()")
    assert r.limit == "disk" and not r.ok
    # Renaming a file onto itself frees nothing...
    run(sb, "from throwaway import call\ncall('fs', {'op': 'rename', 'm': 0, 'p': '/a', 'to': '/a'})")
    assert sb.exec(f"open('/work/d', 'wb').write(b'd' * {six})").limit == "disk"
    # ...deleting does.
    run(sb, "import os; os.unlink('/work/a')")
    assert sb.exec(f"f = open('/work/d', 'wb'); f.write(b'd' * {six}); f.close()").limit is None
    assert (root / "d").stat().st_size == six


def test_forged_offsets_are_refused(quota_box):
    sb, _ = quota_box
    out = run(sb, TRY + "from throwaway import call\n"
              "f = open('/work/h', 'w'); f.write('x'); f.flush()\n"
              "h = call('fs', {'op': 'open', 'm': 0, 'p': '/h', 'mode': 'rw'})[0]['h']\n"
              "out = [attempt(lambda: call('fs', {'op': 'write', 'h': h, 'pos': p}, b'x')) for p in "
              "[2**60, -1, 1e300, float('nan'), float('inf'), True, '0', None]]\n"
              "out.append(attempt(lambda: call('fs', {'op': 'read', 'h': h, 'pos': 2**70, 'len': 10})))\n"
              "out.append(attempt(lambda: call('fs', {'op': 'truncate', 'm': 0, 'p': '/h', 'size': 2**64})))\n"
              "f.close(); call('fs', {'op': 'close', 'h': h}); out")
    assert out == ["EINVAL"] * 10, out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.timeout(120)
def test_a_resource_write_far_out_is_refused_without_allocating(capsys):
    fs = FileSystem()
    got = []

    @fs.file("/net/send", write=True)
    def send(data):
        got.append(data)

    with Sandbox(fs=fs, limits=Limits(timeout=60)) as sb:
        peak = _peak_rss_mb()
        r = sb.exec(TRY + "f = open('/net/send', 'wb')\nf.seek(4 << 30)\nf.write(b'x')\nattempt(f.close)")
        grew = _peak_rss_mb() - peak
        assert r.json == "EFBIG", r
        assert got == []  # a file with a refused write is not handed over cut short
        # The cap is on the end offset: 16 MiB is fine, one byte more is not.
        # (Written a MiB at a time, as a program writing a large file would.)
        fill = "f = open('/net/send', 'wb')\nfor _ in range(16): f.write(b'y' * (1 << 20))\n"
        assert run(sb, TRY + fill + "attempt(f.close)") is None
        assert len(got) == 1 and len(got[0]) == 16 << 20
        assert run(sb, TRY + fill + "f.write(b'!')\nattempt(f.close)") == "EFBIG"
        assert len(got) == 1
        # All of one sandbox's open resource files together: 64 MiB.
        out = run(sb, TRY + "fs = [open('/net/send', 'wb') for _ in range(5)]\n"
                  "def fifteen(f):\n    for _ in range(15): f.write(b'z' * (1 << 20))\n    os.fsync(f.fileno())\n"
                  "[attempt(lambda: fifteen(f)) for f in fs]")
        assert out == [None] * 4 + ["ENOBUFS"], out
        run(sb, TRY + "[attempt(f.close) for f in fs]")
        assert len(got) == 5
    assert grew < 200, grew
    with capsys.disabled():
        print(f"\n[resource write at 4 GiB] host peak RSS grew by {grew:.0f} MB")


def test_the_errnos_exist_in_the_guest():
    with Sandbox() as sb:
        assert run(sb, "import errno; [hasattr(errno, n) for n in "
                       "('ENXIO', 'EMFILE', 'EDQUOT', 'ENOSPC', 'EFBIG', 'ENOBUFS', 'ELOOP')]") == [True] * 7
