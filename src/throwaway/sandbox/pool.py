"""Warm pools: sandboxes booted ahead of time, so a user never waits for a boot.

A sandbox handed out is never handed out again (its globals and files are its
user's); when it is given back it is closed and a fresh one boots in its place.

Booted is not yet warm. The first cells a new runtime runs after a rest of
half a second or more cost its worker 4-7 ms of CPU each instead of ~0.7 ms,
touching 85-1000 pages anew each time (V8's own work in the worker's
thread; V8 flags for the GC, the memory reducer, lazy wasm compilation or
tier-up leave it; only --liftoff-only, wasm never optimized, removes it),
three times, and V8's compiler threads then spend a few ms at the next one;
cells in quick succession settle none of it. So while a sandbox waits in the
pool it runs `WARM_CELLS` host-internal cells (`WARM_CODE`: out of the user's
cell numbering, no name left in the guest's globals, no file touched),
`WARM_GAP` seconds apart; its user's first cell then costs what any warm cell
does. It is in the pool, ready to hand out, from its boot on: whoever takes it
ends its warm-up (waiting at most for the one cell under way).

A hand-out starts the boot of a replacement `REFILL_DELAY` seconds later, so
that boot (about half a second of CPU on several threads) does not compete
with the user's first cell for the cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from . import files
from .runtime import deno_bin
from .sandbox import AsyncSandbox, Sandbox

WARM_CELLS = 5  # host-internal cells a waiting sandbox runs, each after WARM_GAP seconds of rest
WARM_GAP = 0.6  # seconds; rests under ~0.5 s do not settle the runtime (see the module's doc)
WARM_CODE = "1 + 1"
REFILL_DELAY = 0.1  # seconds between a hand-out and the start of its replacement's boot


class _Waiting:
    """A booted sandbox in the pool, with the lock its warm-up and its hand-out share."""

    def __init__(self, sb: Any, lock: Any, taken: Any) -> None:
        self.sb = sb
        self.lock = lock
        self.taken = taken  # set when handed out (or closed with the pool): no more warm-up cells


class SandboxPool:
    """Keeps `size` booted `Sandbox`es ready.

    >>> with SandboxPool(size=2) as pool, pool.sandbox() as sb:
    ...     sb.exec("1 + 1").json
    2

    `size` threads of its own each boot a sandbox, put it in the pool, warm it
    up until it is taken, and wait for the next boot to do. So a hand-out only
    drops a note for them: starting a thread would make the user wait until it
    runs (milliseconds on a loaded machine).
    """

    def __init__(self, size: int = 4, **sandbox_options: Any) -> None:
        if size < 1:
            raise ValueError("a pool needs a size of at least 1")
        self.size = size
        self._options = sandbox_options
        self._ready: queue.Queue[_Waiting | Exception] = queue.Queue()
        self._boots: queue.Queue[float | None] = queue.Queue()  # when to start each boot (monotonic); None: stop
        self._closing = threading.Event()
        self._putting = threading.Lock()  # a boot puts its sandbox in, or sees the pool closed: never both
        self._settling = threading.Condition()
        self._unsettled = 0  # boots asked for and warm-ups under way
        deno_bin()  # resolve once, before the boot threads
        for _ in range(size):
            self._refill(0.0)
            threading.Thread(target=self._keep, name="throwaway-pool-boot", daemon=True).start()

    @property
    def _closed(self) -> bool:
        return self._closing.is_set()

    def _refill(self, delay: float) -> None:
        with self._settling:
            self._unsettled += 1
        self._boots.put(time.monotonic() + delay)

    def _keep(self) -> None:
        while (start_at := self._boots.get()) is not None:
            try:
                if not self._closing.wait(max(0.0, start_at - time.monotonic())):
                    self._boot()
            except Exception as e:  # never a keeper less: whoever acquires next gets the error
                self._ready.put(e)
            finally:
                with self._settling:
                    self._unsettled -= 1
                    self._settling.notify_all()

    def _boot(self) -> None:
        try:
            sb = Sandbox(**self._options).start()
        except Exception as e:  # handed to whoever acquires next
            self._ready.put(e)
            return
        waiting = _Waiting(sb, threading.Lock(), threading.Event())
        with self._putting:
            closed = self._closed
            if not closed:
                self._ready.put(waiting)
        if closed:
            sb.close()
            return
        for _ in range(WARM_CELLS):
            if waiting.taken.wait(WARM_GAP):
                return
            with waiting.lock:
                if waiting.taken.is_set():
                    return
                try:
                    sb._run(lambda s: files.run(s, WARM_CODE))
                except Exception:  # the user's own first cell meets whatever is wrong
                    return

    def acquire(self, timeout: float | None = None) -> Sandbox:
        """A booted sandbox of your own; give it back with `release`."""
        if self._closed:
            raise RuntimeError("the pool is closed")
        waiting = self._ready.get(timeout=timeout)
        self._refill(REFILL_DELAY)
        if isinstance(waiting, Exception):
            raise waiting
        with waiting.lock:  # a warm-up cell under way ends first
            waiting.taken.set()
        return waiting.sb

    def release(self, sb: Sandbox) -> None:
        """Close a sandbox taken from the pool."""
        sb.close()

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Wait until every sandbox the pool is to boot or warm up is in the
        pool and warm (e.g. before taking traffic); False at the timeout."""
        with self._settling:
            return self._settling.wait_for(lambda: self._unsettled == 0, timeout)

    @contextmanager
    def sandbox(self) -> Iterator[Sandbox]:
        sb = self.acquire()
        try:
            yield sb
        finally:
            self.release(sb)

    def close(self) -> None:
        with self._putting:
            self._closing.set()
        for _ in range(self.size):
            self._boots.put(None)
        while not self._ready.empty():
            waiting = self._ready.get_nowait()
            if isinstance(waiting, _Waiting):
                with waiting.lock:
                    waiting.taken.set()
                waiting.sb.close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSandboxPool:
    """The asyncio twin of `SandboxPool` (create it inside a running loop)."""

    def __init__(self, size: int = 4, **sandbox_options: Any) -> None:
        if size < 1:
            raise ValueError("a pool needs a size of at least 1")
        self.size = size
        self._options = sandbox_options
        self._ready: asyncio.Queue[_Waiting | Exception] = asyncio.Queue()
        self._tasks: set[asyncio.Task] = set()
        self._closing = asyncio.Event()
        for _ in range(size):
            self._refill(0.0)

    @property
    def _closed(self) -> bool:
        return self._closing.is_set()

    def _refill(self, delay: float) -> None:
        task = asyncio.get_running_loop().create_task(self._boot(delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _boot(self, delay: float) -> None:
        if delay > 0 and await _set_within(self._closing, delay) or self._closed:
            return
        sb = AsyncSandbox(**self._options)
        try:
            await sb.start()
        except Exception as e:  # handed to whoever acquires next, as SandboxPool does
            with contextlib.suppress(Exception):
                await sb.close()  # a runtime that half started ends now, not at garbage collection
            self._ready.put_nowait(e)
            return
        if self._closed:
            await sb.close()
            return
        waiting = _Waiting(sb, asyncio.Lock(), asyncio.Event())
        self._ready.put_nowait(waiting)
        for _ in range(WARM_CELLS):
            if await _set_within(waiting.taken, WARM_GAP):
                return
            async with waiting.lock:
                if waiting.taken.is_set():
                    return
                try:
                    await sb._run(lambda s: files.run(s, WARM_CODE))
                except Exception:  # the user's own first cell meets whatever is wrong
                    return

    async def acquire(self) -> AsyncSandbox:
        if self._closed:
            raise RuntimeError("the pool is closed")
        waiting = await self._ready.get()
        self._refill(REFILL_DELAY)
        if isinstance(waiting, Exception):
            raise waiting
        async with waiting.lock:  # a warm-up cell under way ends first
            waiting.taken.set()
        return waiting.sb

    async def release(self, sb: AsyncSandbox) -> None:
        await sb.close()

    async def wait_warm(self) -> None:
        """Wait until every sandbox the pool is to boot or warm up is in the pool and warm."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    @asynccontextmanager
    async def sandbox(self) -> AsyncIterator[AsyncSandbox]:
        sb = await self.acquire()
        try:
            yield sb
        finally:
            await self.release(sb)

    async def close(self) -> None:
        self._closing.set()
        while not self._ready.empty():
            waiting = self._ready.get_nowait()
            if isinstance(waiting, _Waiting):
                waiting.taken.set()
                async with waiting.lock:  # a warm-up cell under way ends first
                    await waiting.sb.close()
        for task in list(self._tasks):  # a boot under way closes its sandbox when it sees the pool closed
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> AsyncSandboxPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `event`; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()
