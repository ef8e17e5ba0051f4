"""Whatever the guest produces comes back as a result, never as a host failure.

On the real Deno + Pyodide runtime, guest code floods the runtime's stdout
(/dev/null: the frames travel on pipes of their own), pushes a message past the frame limit, and hands
the host hostile results: deep JSON, lone surrogates, huge reprs, its own
`json` module or the runner's helpers replaced. Each `exec` must return an
ExecResult (with an error or a named limit), the host's memory must stay
flat, and the sandbox must work afterwards. Also: the runtime process gets
its configuration on stdin (not argv) and starts in an empty folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

from throwaway.sandbox import AsyncSandbox, ExecResult, Limits, Sandbox
from throwaway.sandbox.process import _Frames
from throwaway.wire import frames

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

MB = 1 << 20


def _status(field: str) -> int:
    """A field of /proc/self/status, in bytes."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


class PeakRss:
    """The growth of this process's peak RSS over a block (the kernel's
    high-water mark, reset at the start; sampled if it cannot be reset)."""

    def __enter__(self) -> PeakRss:
        self.before = _status("VmRSS")
        self.peak = self.before
        self._stop = threading.Event()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM
            self._sampler = None
        except OSError:
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _status("VmRSS"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._sampler is None:
            self.peak = _status("VmHWM")
        else:
            self._sampler.join()
        self.growth = self.peak - self.before


def survives(r: ExecResult) -> None:
    """The host-side invariants of any result: plain, printable, storable data."""
    assert isinstance(r, ExecResult)
    text = json.dumps(r.to_dict())  # no lone surrogates, no depth that breaks the host
    text.encode("utf-8")
    str(r.error).encode("utf-8")


@pytest.fixture(scope="module")
def box():
    with Sandbox(limits=Limits(timeout=10, grace=0.5, memory_mb=512)) as sb:
        yield sb


# --- the runtime's stdout -----------------------------------------------------------

# Guest code that writes to the runtime process's fd 1 (the host's channel):
# a fake prefix first, then 600 MB, 1 MiB at a time.
FLOOD = """
import js, struct
chunk = js.Uint8Array.new({size})
chunk.fill(65)
js.Deno.stdout.writeSync(js.Uint8Array.new(list({prefix!r})))
written = 0
try:
    for _ in range({count}):
        js.Deno.stdout.writeSync(chunk)
        written += 1
except Exception as e:
    pass
written
"""

PREFIXES = {
    # the old layout: header length, payload length (600 MB)
    "old-layout": struct.pack("<II", 20, 600 * MB),
    # the new one with a made-up key
    "guessed-key": os.urandom(16) + struct.pack("<II", 20, 600 * MB),
    "no-prefix": b"A" * 24,
}


@pytest.mark.parametrize("prefix", PREFIXES.values(), ids=PREFIXES.keys())
def test_stdout_flood_keeps_host_memory_flat(box, prefix):
    """600 MB of junk on the runtime's stdout: that is /dev/null, not the
    host's pipe (see runtime.with_pipes), so none of it reaches the host, and
    the runtime lives on. (Were it the host's pipe, the host would read one
    chunk, see a prefix without the runtime's key, and replace the runtime:
    test_prefix_is_checked_before_the_frame_is_read.)"""
    with PeakRss() as rss:
        r = box.exec(FLOOD.format(size=MB, prefix=prefix, count=600))
    survives(r)
    assert r.json == 600 and not r.restarted, r
    assert rss.growth < 200 * MB, f"the host grew by {rss.growth / MB:.0f} MB"
    assert box.exec("6 * 7").json == 42


def test_stdout_flood_through_node_fs(box):
    """The same through node:fs on fd 1, from a promise the cell leaves running."""
    code = ("import js, asyncio\n"
            "js.eval(\"import('node:fs').then(fs => { const c = new Uint8Array(1 << 20).fill(66);"
            " fs.writeSync(1, new Uint8Array(24)); for (let i = 0; i < 400; i++) fs.writeSync(1, c) })\")\n"
            "await asyncio.sleep(2)\n'done'")
    with PeakRss() as rss:
        r = box.exec(code)
        survives(r)
        r2 = box.exec("6 * 7")
    survives(r2)
    assert r.json == "done" and not r.restarted and not r2.restarted, (r, r2)
    assert rss.growth < 200 * MB, f"the host grew by {rss.growth / MB:.0f} MB"
    assert box.exec("6 * 7").json == 42


def test_async_sandbox_stdout_flood():
    async def main():
        async with AsyncSandbox(limits=Limits(timeout=10, grace=0.5)) as sb:
            with PeakRss() as rss:
                r = await sb.exec(FLOOD.format(size=MB, prefix=PREFIXES["old-layout"], count=600))
            survives(r)
            assert r.json == 600 and not r.restarted, r
            assert rss.growth < 200 * MB, f"the host grew by {rss.growth / MB:.0f} MB"
            assert (await sb.exec("6 * 7")).json == 42

    asyncio.run(main())


def test_prefix_is_checked_before_the_frame_is_read():
    """The parser refuses a forged or oversized frame from its 24-byte prefix."""
    key = frames.new_key()
    parser = _Frames(key)
    parser.buf += os.urandom(16) + struct.pack("<II", 10, 600 * MB)
    with pytest.raises(frames.ProtocolError, match="did not write"):
        parser.next(16 * MB)
    parser = _Frames(key)
    parser.buf += key + struct.pack("<II", 10, 600 * MB)
    with pytest.raises(frames.FrameTooLarge):
        parser.next(16 * MB)
    parser = _Frames(key)
    frame = frames.encode_up(key, {"t": "out", "s": "stdout"}, b"hello")
    parser.buf += frame[:30]
    assert parser.next(16 * MB) is None
    parser.buf += frame[30:]
    msg = parser.next(16 * MB)
    assert msg.type == "out" and msg.payload == b"hello" and not parser.buf


# --- the frame limit -------------------------------------------------------------------


def test_frame_over_the_limit_ends_the_cell(box):
    """A message the runtime writes but the host will not take (the raw
    bridge, past the guest's splitting): limit "frame", runtime replaced."""
    seen = []
    box.calls.add("hostile.echo", lambda args, data: seen.append(len(data)) or len(data))
    try:
        r = box.exec("import _throwaway_host\nx = 1\n_throwaway_host.call('hostile.echo', 'null', bytes(20 << 20))")
        survives(r)
        assert r.limit == "frame" and r.restarted and r.error.type == "FrameTooLarge", r
        assert "Limits.frame_bytes" in r.error.message
        assert seen == []
        assert box.exec("'x' in globals()").json is False
        assert box.exec("6 * 7").json == 42
    finally:
        box.calls.remove("hostile.echo")


def test_frame_limit_is_configurable(fresh):
    sb = fresh(limits=Limits(frame_bytes=8 * MB))
    sb.calls.add("hostile.len", lambda args, data: len(data))
    r = sb.exec("import _throwaway_host\n_throwaway_host.call('hostile.len', 'null', bytes(10 << 20))")
    assert r.limit == "frame" and r.restarted, r
    # The guest's own call sends large data in parts: it gets through whole.
    r = sb.exec("import throwaway\nthrowaway.call('hostile.len', None, bytes(30 << 20))[0]")
    assert r.json == 30 << 20, r
    with pytest.raises(ValueError, match="frame_bytes"):
        Limits(frame_bytes=1000)


def test_large_transfers_go_in_parts(box):
    """Files over the frame limit still cross both ways (in parts)."""
    data = os.urandom(40 * MB)
    box.write_file("/tmp/big.bin", data)
    assert box.exec("import os\nos.path.getsize('/tmp/big.bin')").json == len(data)
    assert box.read_file("/tmp/big.bin") == data
    box.exec("import os\nos.remove('/tmp/big.bin')")


def test_huge_output_chunk_is_split(fresh):
    """One write larger than a frame (output_bytes set above frame_bytes)."""
    sb = fresh(limits=Limits(output_bytes=40 * MB, frame_bytes=8 * MB))
    r = sb.exec("import sys\nsys.stdout.write('y' * (20 << 20))\nNone")
    assert r.ok and r.stdout == "y" * (20 << 20), (r.limit, r.error)


# --- hostile results ---------------------------------------------------------------------


HOSTILE = {
    # values
    "deep-list": "x = []\nfor _ in range(100_000):\n    x = [x]\nx",
    "deep-dict": "d = {}\nfor _ in range(100_000):\n    d = {'a': d}\nd",
    "repr-raises": "class R:\n    def __repr__(self):\n        raise RuntimeError('no')\nR()",
    "repr-not-str": "class R:\n    def __repr__(self):\n        return 12\nR()",
    "huge-repr": "class R:\n    def __repr__(self):\n        return 'r' * 50_000_000\nR()",
    "lone-surrogates": "'\\ud800' + chr(0xdfff)",
    "surrogate-json": "['\\ud800', {'\\udc00': 1}]",
    # errors
    "str-raises": "class E(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\nraise E()",
    "surrogate-error": "raise ValueError('bad \\ud800 text')",
    "huge-error": "raise ValueError('e' * 30_000_000)",
    "deep-recursion": "def f():\n    return f()\nf()",
    # output
    "invalid-utf8": "import sys, os\nsys.stdout.buffer.write(b'\\xff\\xfe\\xc3(')\nsys.stdout.flush()\n"
                    "os.write(2, b'\\x80\\x81')\nprint('\\ud800', file=sys.stderr)\n'ok'",
    # the guest's own json module
    "json-dumps-replaced": "import json\njson.dumps = lambda *a, **k: '[' * 100_000 + ']' * 100_000\n"
                           "json.loads = None\n{'ok': 1}",
    "json-module-gone": "import sys, json\njson.JSONEncoder.encode = None\njson.encoder.c_make_encoder = None\n"
                        "sys.modules['json'] = None\n[1, 2]",
    "json-dumps-recursive": "import json\n_d = json.dumps\njson.dumps = lambda *a, **k: json.dumps(*a, **k)\n"
                            "json.loads = json.dumps\n{'a': [1]}",
    # the runner's own helpers (the guest can reach anything in its interpreter)
    "runner-deep-json": "import _throwaway\n_throwaway._dumps = lambda o: '[' * 100_000 + ']' * 100_000\n1",
    "runner-deep-value-json": "import _throwaway\n"
                              "_throwaway._json_value = lambda v: '[' * 100_000 + ']' * 100_000\n1",
    "runner-bad-json": "import _throwaway\n_throwaway._dumps = lambda o: '{\"value\": \\'\\ud800'\n1",
    "runner-surrogates": "import _throwaway\n_throwaway._dumps = lambda o: '{\"value\": \"\\\\ud800\", "
                         "\"files\": [\"\\\\udfff\", 5, null], \"error\": {\"type\": 7, \"message\": [1]}}'\n1",
    "runner-not-text": "import _throwaway\n_throwaway._finish = lambda *a, **k: 12\n1",
    "runner-raises": "import _throwaway\n_throwaway._finish = None\n1",
    "runner-wrong-types": "import _throwaway\n_throwaway._dumps = lambda o: '[1, 2]'\n1",
}


@pytest.mark.parametrize("name", HOSTILE.keys())
def test_hostile_results_come_back_as_results(fresh, name):
    sb = fresh(limits=Limits(timeout=5, grace=0.5, memory_mb=512))
    r = sb.exec(HOSTILE[name])  # must not raise on the host
    survives(r)
    assert r.error is not None or r.limit is not None or r.value is not None, r
    assert len(r.value or "") <= 200_000
    if r.error is not None:
        assert len(r.error.message) + len(r.error.traceback) <= 1_000_000
    after = sb.exec("6 * 7")
    survives(after)
    if name.startswith("runner-"):
        # The guest broke its own runner: its later cells fail, as results.
        assert after.error is not None or after.value == "42", after
    else:
        # The sandbox goes on (a fresh interpreter if it had to be replaced).
        assert after.json == 42, after


def test_replaced_json_does_not_change_results(fresh):
    """The runner keeps its own JSON functions: the guest's replacements do not
    reach what the host gets."""
    sb = fresh()
    r = sb.exec("import json\njson.dumps = lambda *a, **k: 'forged'\njson.loads = None\n{'a': [1, 2]}")
    assert r.ok and r.json == {"a": [1, 2]}, r
    r = sb.exec("raise KeyError('k')")
    assert r.error.type == "KeyError"
    assert sb.exec("import throwaway\nthrowaway.call('no.such')").error.type == "LookupError"


def test_lone_surrogates_are_replaced(fresh):
    sb = fresh()
    r = sb.exec("raise ValueError('a\\ud800b')")
    assert r.error.message == "a\ufffdb"
    r = sb.exec("import _throwaway\n_throwaway._dumps = lambda o: '{\"value\": \"\\\\ud800x\", \"json\": \"[\\\\\"\\\\\\\\udc00\\\\\"]\"}'\n1")
    assert r.value == "\ufffdx" and r.json == ["\ufffd"], r


def test_deep_json_value_keeps_its_repr(fresh):
    sb = fresh()
    r = sb.exec("x = 0\nfor _ in range(150):\n    x = [x]\nx")
    assert r.ok and r.json is None and r.value.startswith("[[[")  # too deep for json: the repr only
    r = sb.exec("x = 0\nfor _ in range(50):\n    x = [x]\nx")
    assert r.ok and r.json is not None


# --- how the runtime starts -------------------------------------------------------------


def test_runtime_gets_no_configuration_in_argv(fresh, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "host-file.txt").write_text("the host's cwd")
    sb = fresh()
    pid = sb.pid
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    key = sb._session.key.hex().encode()
    assert len(key) == 32
    assert not any(key in arg for arg in argv)
    assert not any(b"{" in arg for arg in argv), argv  # no JSON at all
    assert not any(b"frameBytes" in arg or b"indexURL" in arg for arg in argv)
    cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    assert cwd != tmp_path and cwd.is_dir()
    assert list(cwd.iterdir()) == []
    assert sb.exec("import os\nos.getcwd()").ok
    assert list(cwd.iterdir()) == []
    sb.close()
    deadline = time.monotonic() + 5
    while cwd.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cwd.exists(), "the runtime's working folder is left behind"


def test_each_runtime_gets_its_own_key(fresh):
    sb = fresh(limits=Limits(timeout=5, grace=0.3))
    first = sb._session.key
    r = sb.exec("import js\njs.eval('for (;;) {}')", timeout=0.5)  # JS no interrupt stops: the runtime is replaced
    assert r.restarted, r
    assert sb._session.key != first and len(sb._session.key) == 16
    assert sb.exec("6 * 7").json == 42
