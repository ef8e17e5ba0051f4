"""Host-call handlers run under the cell's deadline, for both drivers.

A plain handler runs in a daemon thread, never on the driver's own thread or
event loop; an async one runs on an event loop (the `AsyncSandbox`'s own
loop; for a blocking `Sandbox`, a loop thread of that sandbox only, so a
stuck handler of one sandbox never holds another's calls). One exception: a
blocking driver runs a call on its own thread when the handler's
`quick(args)` says it is quick, as the file system's server does for reads
of host folders (local syscalls, bounded in size). A plain handler
that returns an awaitable (the file system's server does, for async
resource functions) has it awaited on that loop.

A plain handler's thread sends the reply itself (`call_blocking`'s and
`call_async`'s `send`): the runtime's answer does not wait for the driver's
thread to wake first, and the blocking driver's thread goes back to reading
the runtime's frames at once. A claim taken under a lock makes sure one reply
goes out: the handler's, or the deadline's TimeoutError.

At the cell's deadline (`Call.deadline`) a handler still running is given up:
a thread is abandoned (it finishes on its own; its result is dropped), a
coroutine is cancelled. The driver then raises `CallTimedOut` into the flow,
which answers the guest with a TimeoutError (see `Session._serve_call`); for
a call the blocking driver left `Pending`, the flow claims it at the
deadline itself (see `Session.exec`).

The threads are daemon threads of our own, not an executor's: an executor's
threads are joined when the interpreter exits (and `asyncio.run` joins the
default executor's), so a handler that never returns would hang the exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .process import RuntimeDied
from .session import REPLIED, Call, CallTimedOut, Pending

IDLE_SECONDS = 60.0  # an idle handler thread ends after this long


def call_blocking(op: Call, loop: HandlerLoop, send: Callable[[bytes], None] | None = None) -> Any:
    """Run `op`'s handler for the blocking driver; `loop` is the sandbox's
    own handler loop. With `send`, a plain handler's thread sends its reply
    frame itself, and this returns a `Pending` at once: the driver's thread
    goes back to reading the runtime's frames (see `Session.exec`)."""
    fn, args = op.calls.resolve(op.name, op.args)
    left = _remaining(op)
    if _is_async(fn) or _quick(fn, args):
        value = fn(args, op.data)
    elif send is not None:
        pending = Pending(op.deadline, op.call_id, op.name)
        THREADS.run(_answer_in_thread, (fn, args, op, loop, pending, send), _dropped)
        return pending
    else:
        answer = _Answer()
        THREADS.run(fn, (args, op.data), answer.give)
        if not answer.ready.acquire(timeout=-1 if left is None else left):
            raise CallTimedOut(op.name)  # the thread is left to finish; `answer` drops what it gives
        value = answer.take()
    if inspect.isawaitable(value):
        value = loop.run(value, op)
    return value


async def call_async(op: Call, send: Callable[[bytes], bool] | None = None) -> Any:
    """Run `op`'s handler for the asyncio driver (on the running loop). With
    `send` (from any thread: True if it wrote the frame, False if the loop
    must), a plain handler's thread sends its reply itself, and this returns
    `REPLIED`."""
    fn, args = op.calls.resolve(op.name, op.args)
    left = _remaining(op)
    if _is_async(fn):
        value = fn(args, op.data)
    else:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        claim = threading.Lock()  # taken by whoever answers the call: the handler's thread or the deadline

        def give(ok: bool, value: Any) -> None:  # in the handler's thread
            if not claim.acquire(blocking=False):
                return  # given up at the deadline: the outcome is dropped
            if send is not None and not (ok and inspect.isawaitable(value)) and _reply_from_thread(op, ok, value, send):
                ok, value = True, REPLIED
            try:
                loop.call_soon_threadsafe(_settle, future, ok, value)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        def cut() -> None:  # on the loop, at the deadline
            if claim.acquire(blocking=False):
                _settle(future, False, CallTimedOut(op.name))

        THREADS.run(fn, (args, op.data), give)
        timer = None if left is None else loop.call_later(left, cut)
        try:
            value = await future
        finally:
            if timer is not None:
                timer.cancel()
    if inspect.isawaitable(value):
        value = await _within(asyncio.ensure_future(value), op)
    return value


async def _within(future: asyncio.Future, op: Call) -> Any:
    """`future`'s result, or CallTimedOut at the deadline (the future is cancelled)."""
    try:
        done, _ = await asyncio.wait({future}, timeout=_left(op))
    except asyncio.CancelledError:
        future.cancel()  # the exec itself was cancelled: so is its call
        raise
    if not done:
        # Not awaited: a coroutine that ignores its cancel must not hold the cell.
        future.cancel()
        future.add_done_callback(_quiet)
        raise CallTimedOut(op.name)
    return future.result()


class HandlerLoop:
    """An event loop in a daemon thread, where one blocking `Sandbox` runs its
    async handlers (a fresh loop per call would cost far more). The thread
    starts on first use, and again after `close`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._probe: concurrent.futures.Future | None = None  # sent after a cut: does the loop still answer?

    def run(self, awaitable: Awaitable[Any], op: Call) -> Any:
        loop = self._running()
        future = asyncio.run_coroutine_threadsafe(_await(awaitable), loop)
        try:
            return future.result(_left(op))
        except TimeoutError:
            if future.done():
                return future.result()  # the handler's own TimeoutError
        future.cancel()  # cancels the task on the loop
        # If the handler blocks the loop's thread itself (a sync call inside
        # an async handler), this probe will not have run by the next call:
        # that call gets a new loop (see `_running`).
        with self._lock:
            if self._loop is loop:
                self._probe = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop)
        raise CallTimedOut(op.name)

    def close(self) -> None:
        """Cancel what still runs and end the loop's thread."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            self._stop(loop)

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._probe is not None and not self._probe.done() and self._loop is not None:
                self._probe.cancel()
                self._stop(self._loop)  # it stops once its handler lets go of the thread, if ever
                self._loop = None
            self._probe = None
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=_serve, args=(self._loop,), name="throwaway-host-loop", daemon=True).start()
            return self._loop

    @staticmethod
    def _stop(loop: asyncio.AbstractEventLoop) -> None:
        def stop() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)  # after the cancelled tasks have had their step

        try:
            loop.call_soon_threadsafe(stop)
        except RuntimeError:  # closed already
            pass


class _Threads:
    """Daemon threads for plain handlers. A new thread starts whenever none is
    idle, so a handler that never returns holds its own thread and nothing
    else; idle threads end after IDLE_SECONDS."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # waiting threads not yet promised a job

    def run(self, fn: Callable[..., Any], args: tuple, give: Callable[[bool, Any], None]) -> None:
        """Call `fn(*args)` in a thread, then `give(True, result)` or
        `give(False, exception)` there."""
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        self._jobs.put((fn, args, give))
        if start:
            threading.Thread(target=self._work, name="throwaway-host-call", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                fn, args, give = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no job is promised to the waiting threads beyond them
                        self._idle -= 1
                        return
                continue
            try:
                give(True, fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the caller, which re-raises it
                give(False, e)
            del fn, args, give  # an abandoned handler's result is not kept while idle
            with self._lock:
                self._idle += 1


class _Answer:
    """A plain handler's outcome, handed from its thread to a blocking driver."""

    def __init__(self) -> None:
        self.ready = threading.Lock()  # held until the outcome is in (cheaper than an Event)
        self.ready.acquire()
        self._outcome: tuple[bool, Any] = (False, None)

    def give(self, ok: bool, value: Any) -> None:
        self._outcome = (ok, value)
        self.ready.release()

    def take(self) -> Any:
        ok, value = self._outcome
        if not ok:
            raise value
        return value


THREADS = _Threads()


def _answer_in_thread(fn: Callable[..., Any], args: Any, op: Call, loop: HandlerLoop, pending: Pending,
                     send: Callable[[bytes], Any]) -> None:
    """In a handler's thread: run the handler (awaiting what it returns on
    the sandbox's loop) and send its reply, unless the flow has claimed the
    call first (the deadline passed, or the cell ended)."""
    try:
        value = fn(args, op.data)
        if inspect.isawaitable(value):
            value = loop.run(value, op)
        ok = True
    except CallTimedOut:
        return  # the deadline: the flow answers the call
    except BaseException as e:  # noqa: BLE001 - it goes to the guest as the call's error
        ok, value = False, e
    if pending.claim():
        _reply_from_thread(op, ok, value, send)


def _dropped(ok: bool, value: Any) -> None:
    """`_answer_in_thread` hands nothing back: its reply went to the runtime."""


def _reply_from_thread(op: Call, ok: bool, value: Any, send: Callable[[bytes], Any]) -> bool:
    """In the handler's thread: send the reply for its outcome; False if
    `send` could not (the driver then sends it)."""
    try:
        frame = op.reply(value) if ok else op.reply(error=value)
    except Exception as e:  # noqa: BLE001 - whatever the handler returned, the guest gets an answer
        frame = op.reply(error=TypeError(f"host function returned a value that cannot be sent: {e}"))
    try:
        return send(frame) is not False
    except RuntimeDied:
        return True  # the runtime ended itself while the call ran; the driver reads its last frames


def _is_async(fn: Any) -> bool:
    """An `async def` function, or an object whose `__call__` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _quick(fn: Any, args: Any) -> bool:
    """Whether a handler says this call is quick enough to run on a blocking
    driver's own thread (its `quick(args)`; the file system's server says so
    for reads of host folders: see `FsServer.quick`)."""
    quick = getattr(fn, "quick", None)
    return callable(quick) and quick(args) is True


def _remaining(op: Call) -> float | None:
    """Seconds left before the cell's deadline; CallTimedOut once it has passed
    (a call made after the deadline is not started at all)."""
    if op.deadline is None:
        return None
    left = op.deadline - time.monotonic()
    if left <= 0:
        raise CallTimedOut(op.name)
    return left


def _left(op: Call) -> float | None:
    """Seconds left before the cell's deadline, at least 0 (None: no deadline)."""
    return None if op.deadline is None else max(0.0, op.deadline - time.monotonic())


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _settle(future: asyncio.Future, ok: bool, value: Any) -> None:
    if future.done():
        return  # past the deadline, or the exec was cancelled: the outcome is dropped
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _quiet(future: asyncio.Future) -> None:
    """Retrieve an abandoned call's outcome, so asyncio logs no 'never retrieved'."""
    if not future.cancelled():
        future.exception()
