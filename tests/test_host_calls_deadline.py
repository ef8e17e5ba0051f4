"""Host calls obey the cell's deadline.

A handler still running at the deadline is abandoned (a plain one: its
thread finishes on its own) or cancelled (an async one); the guest gets a
TimeoutError, the cell ends with `limit == "timeout"`, and the sandbox stays
usable. A stuck handler in one sandbox never delays another: AsyncSandbox
runs plain handlers (and pip) in threads, never on its event loop, and each
blocking Sandbox has an event loop of its own for async handlers.

Every stuck handler here waits forever (`threading.Event().wait()`); the
pytest-timeout bound is what stops a regression from hanging the run.
"""

import asyncio
import threading

import pytest

from throwaway.fs import FileSystem
from throwaway.sandbox import AsyncSandbox, HostCalls, Sandbox
from throwaway.sandbox.packages import PackageGateway
from throwaway.sandbox.runtime import ensure_runtime

pytestmark = pytest.mark.timeout(120)

STUCK = "from throwaway import call\ncall('stuck')"
# The stuck sandbox's deadline when another runs beside it: long enough that
# the other's first cell is done well before it even on a loaded machine
# (a loop frozen by the stuck handler would hold that cell past it).
SHARED_DEADLINE = 5
WORK = """
from throwaway import call
total = 0
for i in range(20):
    total += call('add', {'a': i, 'b': 1})[0] + call('add_async', {'a': i, 'b': 1})[0]
total
"""  # 2 * (0+1 + ... + 19+1) = 420


def forever():
    threading.Event().wait()


# Lets the stubborn handler go at the end of a test (asyncio.run, closing its
# loop, waits for every task, ignoring cancels or not).
released = threading.Event()


def stuck_calls(kind, entered=None, cancelled=None):
    """Calls with a 'stuck' handler of one kind: 'plain' (blocks its thread),
    'async' (awaits forever), 'async-stubborn' (awaits forever and ignores
    its cancel) or 'async-blocking' (blocks its event loop's thread, a sync
    wait inside an async handler)."""
    calls = ordinary_calls()
    entered = entered or threading.Event()

    if kind == "plain":
        def stuck(args, data):
            entered.set()
            forever()
    elif kind == "async":
        async def stuck(args, data):
            entered.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if cancelled is not None:
                    cancelled.set()
                raise
    elif kind == "async-stubborn":
        async def stuck(args, data):
            entered.set()
            while True:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    if released.is_set():
                        raise
                    continue  # ignores its cancel: the cell must not wait for it
    else:
        async def stuck(args, data):
            entered.set()
            forever()

    calls.add("stuck", stuck)
    return calls


def ordinary_calls():
    calls = HostCalls()
    calls.add("add", lambda args, data: args["a"] + args["b"])

    async def add_async(args, data):
        await asyncio.sleep(0)
        return args["a"] + args["b"]

    calls.add("add_async", add_async)
    return calls


def assert_cut(r):
    """The cell ended at its deadline, and the guest saw the host call's TimeoutError."""
    assert r.limit == "timeout", r
    assert r.error is not None and r.error.type == "TimeoutError", r.error
    assert "was abandoned" in r.error.message + r.error.traceback, r.error


@pytest.mark.parametrize("kind", ["plain", "async", "async-stubborn", "async-blocking"])
def test_stuck_handler_ends_the_cell_at_its_deadline(kind):
    cancelled = threading.Event()
    with Sandbox(calls=stuck_calls(kind, cancelled=cancelled), timeout=2) as sb:
        assert_cut(sb.exec(STUCK))
        if kind == "async":
            assert cancelled.wait(10), "the async handler was not cancelled"
        # The sandbox stays usable, host calls included (after 'async-blocking',
        # async handlers run on a new loop: the old one is still blocked).
        r = sb.exec(WORK)
        assert r.ok and r.json == 420, r
        assert_cut(sb.exec(STUCK))  # and a second stuck call ends the same way
        assert sb.exec(WORK).json == 420


@pytest.mark.parametrize("kind", ["plain", "async", "async-stubborn"])
def test_stuck_handler_ends_the_cell_at_its_deadline_async(kind):
    cancelled = threading.Event()

    async def main():
        async with AsyncSandbox(calls=stuck_calls(kind, cancelled=cancelled), timeout=2) as sb:
            assert_cut(await sb.exec(STUCK))
            if kind == "async":
                assert cancelled.is_set(), "the async handler was not cancelled"
            r = await sb.exec(WORK)
            assert r.ok and r.json == 420, r
            released.set()

    released.clear()
    asyncio.run(main())


def test_guest_that_catches_the_timeout_still_ends_with_the_limit():
    calls = stuck_calls("plain")
    late = []
    calls.add("late", lambda args, data: late.append(args))
    code = """
from throwaway import call
try:
    call('stuck')
except TimeoutError:
    try:
        call('late', 1)  # past the deadline: refused at once, never started
    except TimeoutError:
        outcome = 'refused'
outcome
"""
    with Sandbox(calls=calls, timeout=2) as sb:
        r = sb.exec(code)
        assert r.limit == "timeout", r
        assert r.json == "refused", r  # the interrupt waits half the grace period
        assert late == []
        assert sb.exec("1 + 1").value == "2"


def test_a_handlers_own_timeout_error_is_its_error_not_a_limit():
    calls = HostCalls()

    @calls.handler("upstream")
    def upstream(args, data):
        raise TimeoutError("the upstream API did not answer")

    with Sandbox(calls=calls, timeout=5) as sb:
        r = sb.exec("from throwaway import call\ncall('upstream')")
        assert r.error.type == "TimeoutError" and "upstream API" in r.error.message
        assert r.limit is None


@pytest.mark.parametrize("kind", ["plain", "async"])
def test_stuck_resource_file_is_bounded_the_same_way(kind):
    fs = FileSystem()
    cancelled = threading.Event()

    if kind == "plain":
        @fs.file("/network/slow")
        def slow():
            forever()
    else:
        @fs.file("/network/slow")
        async def slow():
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

    @fs.file("/network/fast")
    def fast():
        return "fast"

    with Sandbox(fs=fs, timeout=2) as sb:
        r = sb.exec("open('/network/slow').read()")
        assert r.limit == "timeout", r
        # A file system error: OSError(ETIMEDOUT), which Python makes a TimeoutError.
        assert r.error.type == "TimeoutError", r.error
        if kind == "async":
            assert cancelled.wait(10)
        assert sb.exec("open('/network/fast').read()").json == "fast"


def test_async_sandbox_runs_plain_handlers_and_pip_off_its_loop(tmp_path):
    ticked = threading.Event()
    seen = {}

    class SlowGateway(PackageGateway):
        def fetch_pypi(self, requirements):
            # On the event loop, this wait would freeze the ticker below and fail.
            seen["pip"] = threading.get_ident()
            if not ticked.wait(30):
                raise RuntimeError("the event loop was frozen while pip ran")
            return []

    calls = HostCalls()

    @calls.handler("where")
    def where(args, data):
        seen["plain"] = threading.get_ident()
        if not ticked.wait(30):
            raise RuntimeError("the event loop was frozen while a plain handler ran")
        return "ok"

    gateway = SlowGateway(cache_dir=tmp_path / "cache", lock=ensure_runtime().lock_path)

    async def ticker():
        while True:
            await asyncio.sleep(0.01)
            ticked.set()

    async def main():
        async with AsyncSandbox(calls=calls, packages=gateway, timeout=60) as sb:
            for code in ("from throwaway import call\ncall('where')[0]",
                         "from throwaway import install\ninstall('six')\n'ok'"):
                ticked.clear()
                tick = asyncio.create_task(ticker())
                try:
                    r = await sb.exec(code)
                finally:
                    tick.cancel()
                assert r.ok and r.json == "ok", r

    asyncio.run(main())
    assert seen["plain"] != threading.get_ident() and seen["pip"] != threading.get_ident()


@pytest.mark.parametrize("kind", ["plain", "async"])
def test_stuck_handler_in_one_async_sandbox_does_not_delay_another(kind):
    entered = threading.Event()

    async def main():
        async with AsyncSandbox(calls=stuck_calls(kind, entered), timeout=SHARED_DEADLINE) as stuck, \
                AsyncSandbox(calls=ordinary_calls(), timeout=30) as other:
            held = asyncio.create_task(stuck.exec(STUCK))
            while not entered.is_set():
                await asyncio.sleep(0.01)
            for i in range(5):
                r = await other.exec(WORK)
                assert r.ok and r.json == 420, r
                if i == 0:
                    assert not held.done(), "the other sandbox waited for the stuck one"
            assert_cut(await held)
            assert (await stuck.exec(WORK)).json == 420

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["plain", "async", "async-blocking"])
def test_stuck_handler_in_one_sandbox_does_not_delay_another(kind):
    entered = threading.Event()
    results = {}
    with Sandbox(calls=stuck_calls(kind, entered), timeout=SHARED_DEADLINE) as stuck, \
            Sandbox(calls=ordinary_calls(), timeout=30) as other:

        def run_stuck():
            results["stuck"] = stuck.exec(STUCK)

        def run_other():
            assert entered.wait(30)
            results["other"] = [other.exec(WORK)]
            results["stuck_done_first"] = "stuck" in results
            results["other"] += [other.exec(WORK) for _ in range(4)]

        threads = [threading.Thread(target=run_stuck), threading.Thread(target=run_other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [r.json for r in results["other"]] == [420] * 5, results["other"]
        assert not results["stuck_done_first"], "the other sandbox waited for the stuck one"
        assert_cut(results["stuck"])
        assert stuck.exec(WORK).json == 420
