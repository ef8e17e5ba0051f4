"""Warm pools: sandboxes booted ahead of time, so a user never waits for a boot.

A sandbox handed out is never handed out again (its globals and files are its
user's); when it is given back it is closed and a fresh one boots in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from .runtime import deno_bin
from .sandbox import AsyncSandbox, Sandbox


class SandboxPool:
    """Keeps `size` booted `Sandbox`es ready.

    >>> with SandboxPool(size=2) as pool, pool.sandbox() as sb:
    ...     sb.exec("1 + 1").json
    2
    """

    def __init__(self, size: int = 4, **sandbox_options: Any) -> None:
        if size < 1:
            raise ValueError("a pool needs a size of at least 1")
        self.size = size
        self._options = sandbox_options
        self._ready: queue.Queue[Sandbox | Exception] = queue.Queue()
        self._closed = False
        deno_bin()  # resolve once, before the boot threads
        for _ in range(size):
            self._refill()

    def _refill(self) -> None:
        def boot() -> None:
            try:
                sb = Sandbox(**self._options).start()
            except Exception as e:  # handed to whoever acquires next
                self._ready.put(e)
                return
            if self._closed:
                sb.close()
            else:
                self._ready.put(sb)

        threading.Thread(target=boot, name="throwaway-pool-boot", daemon=True).start()

    def acquire(self, timeout: float | None = None) -> Sandbox:
        """A booted sandbox of your own; give it back with `release`."""
        if self._closed:
            raise RuntimeError("the pool is closed")
        sb = self._ready.get(timeout=timeout)
        self._refill()
        if isinstance(sb, Exception):
            raise sb
        return sb

    def release(self, sb: Sandbox) -> None:
        """Close a sandbox taken from the pool."""
        sb.close()

    @contextmanager
    def sandbox(self) -> Iterator[Sandbox]:
        sb = self.acquire()
        try:
            yield sb
        finally:
            self.release(sb)

    def close(self) -> None:
        self._closed = True
        while not self._ready.empty():
            sb = self._ready.get_nowait()
            if isinstance(sb, Sandbox):
                sb.close()

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
        self._ready: asyncio.Queue[AsyncSandbox | Exception] = asyncio.Queue()
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        for _ in range(size):
            self._refill()

    def _refill(self) -> None:
        async def boot() -> None:
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
            else:
                self._ready.put_nowait(sb)

        task = asyncio.get_running_loop().create_task(boot())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def acquire(self) -> AsyncSandbox:
        if self._closed:
            raise RuntimeError("the pool is closed")
        sb = await self._ready.get()
        self._refill()
        if isinstance(sb, Exception):
            raise sb
        return sb

    async def release(self, sb: AsyncSandbox) -> None:
        await sb.close()

    @asynccontextmanager
    async def sandbox(self) -> AsyncIterator[AsyncSandbox]:
        sb = await self.acquire()
        try:
            yield sb
        finally:
            await self.release(sb)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
        while not self._ready.empty():
            sb = self._ready.get_nowait()
            if isinstance(sb, AsyncSandbox):
                await sb.close()

    async def __aenter__(self) -> AsyncSandboxPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
