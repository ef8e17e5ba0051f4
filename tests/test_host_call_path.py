"""The host-call path: a plain handler's thread sends its reply itself, one
reply goes out per call (the handler's or the deadline's), replies are framed
with their value encoded once, and the runtime reads frames of any size."""

import asyncio
import math
import threading
import time

import pytest

from throwaway.sandbox import AsyncSandbox, HostCalls, Reply, Sandbox
from throwaway.sandbox.handlers import HandlerLoop, call_async, call_blocking
from throwaway.sandbox.session import REPLIED, Call, CallTimedOut, Pending
from throwaway.wire import frames
from throwaway.wire.calls import reply_frame


def decode_down(frame: bytes) -> frames.Message:
    """A host-to-runtime frame, decoded (what main.js reads)."""
    hlen, plen = frames.PREFIX.unpack(frame[:8])
    assert len(frame) == 8 + hlen + plen
    return frames.decode(frame[8 : 8 + hlen], frame[8 + hlen :])


class Sent:
    """A `send` that records its frames and the threads that sent them."""

    def __init__(self, result=None):
        self.frames: list[bytes] = []
        self.threads: list[threading.Thread] = []
        self.result = result
        self.done = threading.Event()

    def __call__(self, frame: bytes):
        self.frames.append(frame)
        self.threads.append(threading.current_thread())
        self.done.set()
        return self.result


def one_call(fn, deadline_in=30.0, name="f", call_id=7):
    calls = HostCalls()
    calls.add(name, fn)
    return Call(calls, name, "null", b"data", time.monotonic() + deadline_in, call_id)


# -- reply frames ------------------------------------------------------------------------------------


def test_reply_frame_carries_values_bytes_and_errors():
    msg = decode_down(reply_frame(3, {"a": [1, "é"]}))
    assert msg.header == {"t": "reply", "id": 3, "ok": True, "value": {"a": [1, "é"]}} and msg.payload == b""
    msg = decode_down(reply_frame(4, b"\x00\xff"))
    assert msg.header["value"] is None and msg.payload == b"\x00\xff"
    msg = decode_down(reply_frame(5, Reply({"n": 1}, b"xy")))
    assert msg.header["value"] == {"n": 1} and msg.payload == b"xy"
    msg = decode_down(reply_frame(6, error=FileNotFoundError(2, "No such file or directory", "/x")))
    assert msg.header["ok"] is False and msg.header["error"]["errno"] == "ENOENT" and "cut" not in msg.header
    msg = decode_down(reply_frame(7, error=TimeoutError("late"), cut=True))
    assert msg.header["cut"] is True and msg.header["error"]["type"] == "TimeoutError"


@pytest.mark.parametrize("value", [math.nan, math.inf, object(), {1j: 1}])
def test_a_value_that_is_not_json_is_the_calls_type_error(value):
    # NaN and infinities too: Python writes them, but JSON.parse in the runtime refuses them.
    msg = decode_down(reply_frame(1, value))
    assert msg.header["ok"] is False and msg.header["error"]["type"] == "TypeError"


def test_a_value_nested_too_deep_is_the_calls_type_error():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    msg = decode_down(reply_frame(1, deep))
    assert msg.header["ok"] is False and msg.header["error"]["type"] == "TypeError"


# -- the blocking driver -----------------------------------------------------------------------------


def test_a_plain_handlers_thread_sends_its_own_reply():
    sent = Sent()
    op = one_call(lambda args, data: {"got": data.decode()})
    pending = call_blocking(op, HandlerLoop(), sent)  # back at once: the driver reads the runtime meanwhile
    assert isinstance(pending, Pending) and pending.call_id == 7 and pending.deadline == op.deadline
    assert sent.done.wait(10)
    assert len(sent.frames) == 1 and sent.threads[0] is not threading.current_thread()
    assert not pending.claim()  # the handler's thread claimed the call before it sent
    msg = decode_down(sent.frames[0])
    assert msg.header == {"t": "reply", "id": 7, "ok": True, "value": {"got": "data"}}


def test_a_plain_handlers_error_is_sent_from_its_thread_too():
    def fails(args, data):
        raise PermissionError(13, "Permission denied")

    sent = Sent()
    assert isinstance(call_blocking(one_call(fails), HandlerLoop(), sent), Pending)
    assert sent.done.wait(10)
    assert decode_down(sent.frames[0]).header["error"]["errno"] == "EACCES"


def test_once_the_flow_claims_the_call_the_late_handler_sends_nothing():
    release = threading.Event()
    finished = threading.Event()

    def stuck(args, data):
        release.wait(10)
        finished.set()
        return "too late"

    sent = Sent()
    pending = call_blocking(one_call(stuck, deadline_in=0.2), HandlerLoop(), sent)
    assert pending.claim()  # what the flow does at the deadline (it then sends the TimeoutError)
    release.set()
    assert finished.wait(10)
    time.sleep(0.1)  # the handler's thread has returned; give it time to (wrongly) send
    assert sent.frames == []


def test_a_handler_that_returns_an_awaitable_has_it_awaited_and_sent_from_its_thread():
    async def later():
        return "awaited"

    sent = Sent()
    loop = HandlerLoop()
    try:
        assert isinstance(call_blocking(one_call(lambda args, data: later()), loop, sent), Pending)
        assert sent.done.wait(10)
    finally:
        loop.close()
    assert decode_down(sent.frames[0]).header["value"] == "awaited"


def test_an_awaitable_past_the_deadline_is_cancelled_and_not_answered_by_its_thread():
    async def never():
        await asyncio.sleep(3600)

    sent = Sent()
    loop = HandlerLoop()
    try:
        pending = call_blocking(one_call(lambda args, data: never(), deadline_in=0.2), loop, sent)
        time.sleep(0.6)
        assert sent.frames == [] and pending.claim()  # the flow answers it
    finally:
        loop.close()


def test_without_send_the_value_goes_back_to_the_flow():
    assert call_blocking(one_call(lambda args, data: 42), HandlerLoop()) == 42


# -- the asyncio driver ------------------------------------------------------------------------------


def test_async_driver_handler_thread_sends_when_it_can():
    sent = Sent(result=True)
    assert asyncio.run(call_async(one_call(lambda args, data: "v"), sent)) is REPLIED
    assert decode_down(sent.frames[0]).header["value"] == "v"


def test_async_driver_sends_on_its_loop_when_the_thread_could_not():
    sent = Sent(result=False)  # e.g. the pipe is full: nothing was written
    assert asyncio.run(call_async(one_call(lambda args, data: "v"), sent)) == "v"


def test_async_driver_deadline_claims_the_call():
    release = threading.Event()
    sent = Sent(result=True)

    def stuck(args, data):
        release.wait(10)
        return "too late"

    with pytest.raises(CallTimedOut):
        asyncio.run(call_async(one_call(stuck, deadline_in=0.2), sent))
    release.set()
    time.sleep(0.2)
    assert sent.frames == []


# -- through the runtime -----------------------------------------------------------------------------


def make_calls():
    calls = HostCalls()
    calls.add("nan", lambda args, data: math.nan)
    calls.add("big", lambda args, data: Reply({"n": args}, bytes(range(256)) * (args // 256)))
    calls.add("echo", lambda args, data: Reply(args, data))
    calls.add("wide", lambda args, data: "w" * args)
    calls.add("fails", lambda args, data: (_ for _ in ()).throw(KeyError("k")))
    return calls


CODE = """
from throwaway import call
import hashlib
out = []
try:
    call('nan')
except TypeError as e:
    out.append('not JSON' in str(e))
# A reply far larger than the runtime's 1 MiB read buffer, then small ones.
v, data = call('big', 5 << 20)
out.append((v['n'], len(data), hashlib.sha256(data).hexdigest() == hashlib.sha256(bytes(range(256)) * (5 << 12)).hexdigest()))
out.append([call('echo', i, bytes([i]))[1] == bytes([i]) for i in range(50)].count(True))
# A reply header of 2 MB (larger than that buffer), arguments of 900 kB and data of 3 MB.
out.append(len(call('wide', 2 << 20)[0]))
v, data = call('echo', 'a' * 900_000, b'z' * (3 << 20))
out.append((len(v), len(data)))
try:
    call('fails')
except KeyError:
    out.append('KeyError')
out
"""
EXPECTED = [True, [5 << 20, 5 << 20, True], 50, 2 << 20, [900_000, 3 << 20], "KeyError"]


def test_replies_of_every_size_cross_the_runtime():
    with Sandbox(calls=make_calls(), timeout=60) as sb:
        r = sb.exec(CODE)
        assert r.error is None and r.limit is None, r.error
        assert r.json == EXPECTED
        big = "x = " + repr("y" * (3 << 20)) + "\nlen(x)"  # an exec frame larger than the read buffer
        assert sb.exec(big).json == 3 << 20
        assert sb.exec("1 + 1").json == 2


def test_replies_of_every_size_cross_the_runtime_async():
    async def main():
        async with AsyncSandbox(calls=make_calls(), timeout=60) as sb:
            r = await sb.exec(CODE)
            return r.error, r.limit, r.json

    error, limit, value = asyncio.run(main())
    assert error is None and limit is None, error
    assert value == EXPECTED


# -- quick calls: reads of host folders on the blocking driver's own thread --------------------------


def test_a_quick_call_runs_on_the_drivers_thread_and_others_do_not():
    seen = []

    class Handler:
        def __init__(self, quick):
            self._quick = quick

        def quick(self, args):
            return self._quick

        def __call__(self, args, data):
            seen.append(threading.current_thread())
            return "ok"

    sent = Sent()
    assert call_blocking(one_call(Handler(True)), HandlerLoop(), sent) == "ok"  # the flow sends it
    assert seen[-1] is threading.current_thread() and sent.frames == []
    assert isinstance(call_blocking(one_call(Handler(False)), HandlerLoop(), sent), Pending)
    assert sent.done.wait(10) and seen[-1] is not threading.current_thread()
    # Anything but True (a mock's attribute, a truthy value) is not a yes.
    sent = Sent()
    assert isinstance(call_blocking(one_call(Handler("yes")), HandlerLoop(), sent), Pending)
    assert sent.done.wait(10) and seen[-1] is not threading.current_thread()


def test_the_fs_server_calls_only_reads_of_host_folders_quick(tmp_path):
    from throwaway.fs import FileSystem
    from throwaway.fs.server import FsServer

    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "big.bin").write_bytes(b"x" * (5 << 20))  # larger than WHOLE: read through a handle
    fs = FileSystem()
    fs.mount_host("/data", tmp_path, writable=True)

    @fs.file("/virtual/v.txt", write=True)
    def v(content=None):
        return "computed"

    server = FsServer(fs)
    ids = {p["path"]: p["id"] for p in server.plan()}
    host, res = ids["/data"], ids["/virtual"]
    assert server.quick({"op": "stat", "m": host, "p": "/a.txt"})
    assert server.quick({"op": "list", "m": host, "p": "/"})
    assert server.quick({"op": "open", "m": host, "p": "/a.txt", "mode": "r"})
    for op in ({"op": "open", "m": host, "p": "/a.txt", "mode": "w"}, {"op": "open", "m": host, "p": "/a.txt", "mode": "rw"},
               {"op": "create", "m": host, "p": "/b"}, {"op": "unlink", "m": host, "p": "/a.txt"},
               {"op": "rename", "m": host, "p": "/a.txt", "to": "/c"}, {"op": "truncate", "m": host, "p": "/a", "size": 0},
               {"op": "stat", "m": res, "p": "/v.txt"}, {"op": "open", "m": res, "p": "/v.txt", "mode": "r"},
               {"op": "stat", "m": 99, "p": "/"}, {"op": "stat", "m": True, "p": "/"}, {"op": "stat", "m": "0", "p": "/"},
               {"op": "read", "h": 12345, "pos": 0, "len": 1}, "stat", None, [host]):
        assert not server.quick(op), op
    handle = server({"op": "open", "m": host, "p": "/big.bin", "mode": "r"}, b"")["h"]
    assert server.quick({"op": "read", "h": handle, "pos": 0, "len": 10})
    assert server.quick({"op": "close", "h": handle})
    writing = server({"op": "open", "m": res, "p": "/v.txt", "mode": "w"}, b"")["h"]
    assert not server.quick({"op": "write", "h": writing, "pos": 0})
    assert not server.quick({"op": "close", "h": writing})  # hands the bytes to the resource's function


def test_quick_host_folder_reads_still_check_every_path(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "ok.txt").write_text("fine")
    (tmp_path / "secret.txt").write_text("outside the mount")
    (tmp_path / "inside" / "link").symlink_to(tmp_path / "secret.txt")
    from throwaway.fs import FileSystem

    fs = FileSystem()
    fs.mount_host("/data", tmp_path / "inside")
    with Sandbox(fs=fs) as sb:
        r = sb.exec("out = [open('/data/ok.txt').read()]\n"
                    "for p in ('/data/../secret.txt', '/data/link'):\n"
                    "    try:\n        out.append(open(p).read())\n"
                    "    except OSError as e:\n        out.append(type(e).__name__)\nout")
        assert r.json[0] == "fine" and "outside the mount" not in r.json


def test_a_handler_that_ends_after_its_cell_does_not_answer_the_next_cells_call():
    release = threading.Event()
    calls = HostCalls()

    def slow(args, data):
        release.wait(30)
        return "stale"

    calls.add("slow", slow)
    calls.add("fresh", lambda args, data: "fresh")
    calls.add("release", lambda args, data: release.set())
    with Sandbox(calls=calls) as sb:
        r = sb.exec("from throwaway import call\ncall('slow')", timeout=0.5)
        assert r.limit == "timeout" and r.error.type == "TimeoutError"
        # The slow handler ends during the next cell, between its calls:
        # its reply goes nowhere, the new call gets its own.
        code = "import time\nfrom throwaway import call\ncall('release')\nout = []\nfor _ in range(20):\n" \
               "    out.append(call('fresh')[0])\n    time.sleep(0.01)\nout"
        r = sb.exec(code, timeout=30)
        assert r.error is None and r.json == ["fresh"] * 20
