"""The sandbox sessions an MCP server keeps: named, concurrent, closed when idle.

Each session is an `AsyncSandbox` of its own, taken warm from a pool. Calls
to one session run one after another, in the order they came (a FIFO lock
per session); calls to different sessions run at the same time, on one
event loop that no cell ever blocks: a cell past its deadline is stopped by
its own sandbox (interrupted, then its runtime replaced) while the others
answer.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from throwaway.sandbox import AsyncSandbox
from throwaway.sandbox.pool import AsyncSandboxPool

T = TypeVar("T")

BOOT_TIMEOUT = 180.0  # seconds a new session may take to boot


class SessionError(Exception):
    """A call names a session that is not there, or no session can be made; the message says what to do."""


@dataclass
class Session:
    """One sandbox, with its globals and files, and who is using it."""

    id: str
    sandbox: AsyncSandbox
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    cells: int = 0
    waiting: int = 0  # calls running or queued on it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False

    def info(self) -> dict[str, Any]:
        return {"session": self.id, "cells": self.cells, "busy": self.waiting > 0,
                "idle_seconds": round(time.monotonic() - self.last_used, 1)}


class Sessions:
    """Named sandbox sessions: `async with Sessions(...) as sessions`.

    `pool` sandboxes are kept booted so a new session starts at once;
    `idle_seconds` closes a session nobody used for that long;
    `max_sessions` caps how many are open (each holds a runtime, about 200
    MB). `sandbox_options` are `AsyncSandbox`'s (limits, fs, extensions...).
    """

    def __init__(self, *, pool: int = 2, idle_seconds: float = 600.0, max_sessions: int = 8,
                 **sandbox_options: Any) -> None:
        self.pool_size = pool
        self.idle_seconds = idle_seconds
        self.max_sessions = max_sessions
        self.sandbox_options = sandbox_options
        self._sessions: dict[str, Session] = {}
        self._pool: AsyncSandboxPool | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._creating = 0

    async def __aenter__(self) -> Self:
        if self.pool_size > 0:
            self._pool = AsyncSandboxPool(self.pool_size, **self.sandbox_options)
        self._reaper = asyncio.create_task(self._reap())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for session in list(self._sessions.values()):
            await self.close(session.id)
        if self._pool is not None:
            await self._pool.close()

    # -- sessions ---------------------------------------------------------------

    async def new(self) -> Session:
        """A new session (a warm sandbox from the pool when there is one)."""
        if len(self._sessions) + self._creating >= self.max_sessions:
            raise SessionError(f"{len(self._sessions)} sessions are open, the most this server keeps; "
                               "close one with close_session, or name an open one (list_sessions)")
        self._creating += 1
        try:
            if self._pool is not None:
                sandbox = await asyncio.wait_for(self._pool.acquire(), BOOT_TIMEOUT)
            else:
                sandbox = await asyncio.wait_for(AsyncSandbox(**self.sandbox_options).start(), BOOT_TIMEOUT)
        except TimeoutError:
            raise SessionError(f"a new sandbox did not boot within {BOOT_TIMEOUT:g} s") from None
        finally:
            self._creating -= 1
        session = Session(secrets.token_hex(4), sandbox)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionError(f"no session {session_id!r}: it was closed, or closed after "
                               f"{self.idle_seconds:g} s idle; call run_python without a session to start a "
                               "new one (list_sessions shows the open ones)")
        return session

    async def use(self, session_id: str | None, work: Callable[[Session], Awaitable[T]]) -> tuple[Session, T]:
        """Run `work(session)` on the named session (a new one when None), after
        the calls to it that came first."""
        session = await self.new() if session_id is None else self.get(session_id)
        session.waiting += 1
        try:
            async with session.lock:
                if session.closed:
                    raise SessionError(f"the session {session.id!r} was closed while this call waited for it")
                try:
                    return session, await work(session)
                finally:
                    session.last_used = time.monotonic()
        finally:
            session.waiting -= 1

    def list(self) -> list[dict[str, Any]]:
        return [s.info() for s in self._sessions.values()]

    async def close(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            self.get(session_id)  # raises the SessionError that says so
            return
        session.closed = True
        await session.sandbox.close()

    async def _reap(self) -> None:
        """Close sessions idle past `idle_seconds` (never one with a call running or queued)."""
        while True:
            await asyncio.sleep(max(0.5, min(30.0, self.idle_seconds / 4)))
            now = time.monotonic()
            for session in list(self._sessions.values()):
                if session.waiting == 0 and now - session.last_used > self.idle_seconds:
                    await self.close(session.id)
