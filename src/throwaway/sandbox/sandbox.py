"""`Sandbox` and `AsyncSandbox`: one design, a blocking face and an asyncio face.

Both drive the same flows (see `session`); only the I/O differs.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any

from .bridge import HostCalls, is_pending
from .installs import package_calls
from .limits import Limits
from .packages import PackageGateway
from .process import AsyncProcess, Process
from .result import ExecResult
from .runtime import Runtime, ensure_runtime
from .session import Call, Flow, OutputCallback, Recv, Send, Session, Spawn


class _Base:
    def __init__(
        self,
        *,
        limits: Limits | None = None,
        timeout: float | None = None,
        calls: HostCalls | None = None,
        runtime: Runtime | None = None,
        preload: tuple[str, ...] = (),
        packages: PackageGateway | None = None,
    ) -> None:
        limits = limits or Limits()
        if timeout is not None:
            limits = Limits(timeout=timeout, grace=limits.grace, memory_mb=limits.memory_mb,
                            output_bytes=limits.output_bytes)
        self.calls = HostCalls()
        if calls is not None:
            self.calls.update(calls)
        self._runtime = runtime
        self._session: Session | None = None
        self._limits = limits
        self._preload = preload
        self.packages = packages

    @property
    def limits(self) -> Limits:
        return self._limits

    def _new_session(self) -> Session:
        runtime = self._runtime or ensure_runtime()
        if self.packages is None:
            self.packages = PackageGateway(cache_dir=runtime.packages_dir, lock=runtime.lock_path,
                                           base_url=os.environ.get("THROWAWAY_PACKAGE_URL") or None)
        for name, fn in package_calls(self.packages).items():
            self.calls.add(name, fn)
        return Session(runtime, self._limits, self.calls, self._preload, readable=(self.packages.cache_dir,))


class Sandbox(_Base):
    """A Python sandbox (Pyodide in a locked-down Deno worker), blocking API.

    >>> with Sandbox() as sb:
    ...     sb.exec("x = 6 * 7")
    ...     sb.exec("x").value
    '42'

    Globals persist across `exec` calls. Guest faults (exceptions, limits)
    come back in the result; only a broken sandbox raises `SandboxError`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._proc: Process | None = None
        self._lock = threading.Lock()

    def start(self) -> Sandbox:
        """Boot the runtime now (otherwise the first `exec` does)."""
        with self._lock:
            if self._session is None:
                session = self._new_session()
                self._drive(session.boot())
                self._session = session
        return self

    def exec(self, code: str, *, timeout: float | None = None, on_output: OutputCallback | None = None) -> ExecResult:
        """Run `code` as one cell and return its result.

        `timeout` overrides the sandbox's deadline for this cell;
        `on_output(stream, text)` gets stdout/stderr as they are written.
        """
        self.start()
        with self._lock:
            return self._drive(self._session.exec(code, timeout, on_output))

    def close(self) -> None:
        """Stop the runtime process. The sandbox can be started again."""
        with self._lock:
            if self._proc is not None:
                self._proc.kill()
                self._proc = None
            self._session = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.proc.poll() is None:
            proc.proc.kill()

    @property
    def pid(self) -> int | None:
        """The runtime process's id (None before start)."""
        return self._proc.pid if self._proc else None

    def _drive(self, flow: Flow) -> Any:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                if isinstance(op, Recv):
                    value = self._proc.recv(op.deadline)
                elif isinstance(op, Send):
                    self._proc.send(op.frame)
                elif isinstance(op, Call):
                    value = op.calls.start(op.name, op.args, op.data)
                    if is_pending(value):
                        value = _background_loop().run(value)
                elif isinstance(op, Spawn):
                    if self._proc is not None:
                        self._proc.kill()
                    self._proc = Process(op.cmd, op.env)
            except Exception as e:
                error = e


class AsyncSandbox(_Base):
    """The asyncio twin of `Sandbox`: the same sandbox, with `await`.

    >>> async with AsyncSandbox() as sb:
    ...     (await sb.exec("1 + 1")).value
    '2'
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._proc: AsyncProcess | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> AsyncSandbox:
        async with self._lock:
            if self._session is None:
                session = await asyncio.to_thread(self._new_session)
                await self._drive(session.boot())
                self._session = session
        return self

    async def exec(self, code: str, *, timeout: float | None = None,
                   on_output: OutputCallback | None = None) -> ExecResult:
        """Run `code` as one cell and return its result (see `Sandbox.exec`)."""
        await self.start()
        async with self._lock:
            return await self._drive(self._session.exec(code, timeout, on_output))

    async def close(self) -> None:
        async with self._lock:
            if self._proc is not None:
                await self._proc.kill()
                self._proc = None
            self._session = None

    async def __aenter__(self) -> AsyncSandbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def _drive(self, flow: Flow) -> Any:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                if isinstance(op, Recv):
                    value = await self._proc.recv(op.deadline)
                elif isinstance(op, Send):
                    await self._proc.send(op.frame)
                elif isinstance(op, Call):
                    value = op.calls.start(op.name, op.args, op.data)
                    if is_pending(value):
                        value = await value
                elif isinstance(op, Spawn):
                    if self._proc is not None:
                        await self._proc.kill()
                    self._proc = await AsyncProcess.start(op.cmd, op.env)
            except Exception as e:
                error = e


class _LoopThread:
    """One event loop in a daemon thread, where the blocking `Sandbox` runs
    async host functions (a fresh loop per call would cost far more)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="throwaway-host-loop", daemon=True).start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


_loop: _LoopThread | None = None
_loop_lock = threading.Lock()


def _background_loop() -> _LoopThread:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = _LoopThread()
        return _loop
