"""`Sandbox` and `AsyncSandbox`: one design, a blocking face and an asyncio face.

Both drive the same flows (see `session`); only the I/O differs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import posixpath
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..store import BlobStore
from ..fs.filesystem import HOME, OUTPUT, FileSystem
from ..fs.server import FsServer
from . import files
from ..wire.calls import HostCalls
from .handlers import HandlerLoop, call_async, call_blocking
from .limits import Limits
from .packages import PackageGateway
from .packages.calls import package_calls
from .process import AsyncProcess, Process
from .result import ExecResult
from .runtime import Runtime, ensure_runtime
from .session import Call, Flow, OutputCallback, Recv, Send, Session, Spawn


class _Base:
    """What both faces share: options, the file system, and the flows behind
    the file methods.

    Options (all keywords): `limits` (a `Limits`) or just `timeout` (seconds
    per cell); `fs`, the guest's `FileSystem` (default: /home/user, /tmp and
    /output in memory); `calls`, host functions for `throwaway.call` (more can
    be added to `.calls` at any time); `packages`, a `PackageGateway` (default:
    Pyodide's CDN, or $THROWAWAY_PACKAGE_URL, and PyPI through pip);
    `preload`, Pyodide packages baked into the boot snapshot; `runtime`, where
    Deno's Pyodide lives (default: fetched into the cache on first use);
    `extensions`, objects with an `attach(sandbox)` method, called once here
    (they may mount on `sandbox.fs`, a copy of `fs` of this sandbox's own, and
    add to `sandbox.calls`): what it returns may have `boot_code`, guest code
    run after every boot once the files are laid out, and `close()`, called
    when the sandbox closes (e.g. `throwaway.mcp.Toolbox`, MCP code mode).
    """

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        timeout: float | None = None,
        calls: HostCalls | None = None,
        runtime: Runtime | None = None,
        preload: tuple[str, ...] = (),
        packages: PackageGateway | None = None,
        fs: FileSystem | None = None,
        extensions: Sequence[Any] = (),
    ) -> None:
        limits = limits or Limits()
        if timeout is not None:
            limits = dataclasses.replace(limits, timeout=timeout)
        self.calls = HostCalls()
        if calls is not None:
            self.calls.update(calls)
        self._runtime = runtime
        self._session: Session | None = None
        self._limits = limits
        self._preload = preload
        self.packages = packages
        self.fs = fs if fs is not None else FileSystem()
        if extensions:
            self.fs = self.fs.copy()  # what extensions mount is this sandbox's own
        self._attached = [ext.attach(self) for ext in extensions]
        self._fs_server = FsServer(self.fs)
        self._last_snapshot: tuple[BlobStore, str] | None = None
        self._output_seen: dict[str, Any] = {}
        self._layouts = 0  # times the guest's files were laid out (see `restarts`)

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def restarts(self) -> int:
        """How many times the runtime (or its worker) was replaced since the
        first start. When it grows across a call, the guest's memory was lost
        during it: its files are those of the last snapshot taken or restored."""
        return max(0, self._layouts - 1)

    def _new_session(self) -> Session:
        runtime = self._runtime or ensure_runtime()
        if self.packages is None:
            self.packages = PackageGateway(cache_dir=runtime.packages_dir, lock=runtime.lock_path,
                                           base_url=os.environ.get("THROWAWAY_PACKAGE_URL") or None)
        for name, fn in package_calls(self.packages).items():
            self.calls.add(name, fn)
        self.calls.add("fs", self._fs_server)
        session = Session(runtime, self._limits, self.calls, self._preload, readable=(self.packages.cache_dir,))
        session.fs_server = self._fs_server
        session.after_boot.append(lambda: self._after_boot(session))
        return session

    def _after_boot(self, session: Session) -> Flow:
        """Mount the host-backed folders, and after a restart bring back the
        files of the last snapshot taken or restored."""
        self._layouts += 1
        self._fs_server.reset()
        yield from files.prepare(session, self.fs.memory_roots(), self._fs_server.plan(), HOME)
        if self._last_snapshot is not None:
            yield from files.restore(session, *self._last_snapshot, *self._roots())
        for attached in self._attached:
            if getattr(attached, "boot_code", None):
                yield from files.run(session, attached.boot_code)

    def _close_extensions(self) -> None:
        for attached in self._attached:
            if callable(getattr(attached, "close", None)):
                attached.close()

    def _roots(self) -> tuple[list[str], list[str]]:
        return self.fs.memory_roots(), [m.path for m in self.fs.host_backed()]

    # Flows behind the file methods of both faces.

    def _snapshot(self, session: Session, store: BlobStore) -> Flow:
        digest = yield from files.snapshot(session, store, *self._roots())
        self._last_snapshot = (store, digest)
        return digest

    def _restore(self, session: Session, store: BlobStore, digest: str) -> Flow:
        yield from files.restore(session, store, digest, *self._roots())
        self._last_snapshot = (store, digest)

    def _output_changes(self, session: Session) -> Flow:
        entries = yield from files.walk(session, [OUTPUT], [m.path for m in self.fs.host_backed()])
        self._output_seen, changed = files.changed(self._output_seen, entries)
        return changed

    def _collect_output(self, session: Session, dest: Path) -> Flow:
        entries = yield from files.walk(session, [OUTPUT], [m.path for m in self.fs.host_backed()])
        written = []
        dest = dest.resolve()
        for kind, path, mode, mtime_ns, _ in entries:
            if kind != "f":
                continue
            target = (dest / posixpath.relpath(path, OUTPUT)).resolve()
            if dest not in target.parents:
                continue  # never outside the destination folder
            data = yield from files.read_file(session, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.utime(target, ns=(mtime_ns, mtime_ns))
            written.append(target)
        return written


class Sandbox(_Base):
    """A Python sandbox (Pyodide in a locked-down Deno worker), blocking API.

    >>> with Sandbox() as sb:
    ...     sb.exec("x = 6 * 7")
    ...     sb.exec("x").value
    '42'

    Globals persist across `exec` calls. Guest faults (exceptions, limits)
    come back in the result; only a broken sandbox raises `SandboxError`.
    A runtime that dies is replaced (up to three in a row): the new one gets
    the mounts and the last snapshot's files, the sandbox's own work is done
    again, and a cell the death cut short comes back as `SandboxCrashed`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._proc: Process | None = None
        self._lock = threading.Lock()
        # This sandbox's own loop for async handlers: one stuck there holds no other sandbox's calls.
        self._handler_loop = HandlerLoop()
        weakref.finalize(self, self._handler_loop.close)

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
        return self._run(lambda s: s.exec(code, timeout, on_output))

    def _run(self, make: Callable[[Session], Flow]) -> Any:
        self.start()
        with self._lock:
            session = self._session
            return self._drive(session.redo(lambda: make(session)))

    def read_file(self, path: str) -> bytes:
        """The contents of a file in the guest's tree."""
        return self._run(lambda s: files.read_file(s, path))

    def write_file(self, path: str, data: bytes) -> None:
        """Write a file into the guest's tree (its folders are made as needed)."""
        self._run(lambda s: files.write_file(s, path, data))

    def output_changes(self) -> list[str]:
        """Files under /output created or changed since the previous call."""
        return self._run(self._output_changes)

    def collect_output(self, dest: str | os.PathLike[str]) -> list[Path]:
        """Copy the files under /output into the host folder `dest`; returns their paths."""
        return self._run(lambda s: self._collect_output(s, Path(dest)))

    def snapshot(self, store: BlobStore) -> str:
        """Capture the guest's in-memory tree into `store`; returns the snapshot's digest.

        After a hard restart, the sandbox brings back the last snapshot taken
        or restored."""
        return self._run(lambda s: self._snapshot(s, store))

    def restore(self, store: BlobStore, digest: str) -> None:
        """Make the guest's in-memory tree exactly the snapshot `digest`."""
        self._run(lambda s: self._restore(s, store, digest))

    def close(self) -> None:
        """Stop the runtime process. The sandbox can be started again."""
        with self._lock:
            if self._proc is not None:
                self._proc.kill()
                self._proc = None
            self._session = None
            self._handler_loop.close()
            self._close_extensions()

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
            done, op = _advance(flow, value, error)
            if done:
                return op
            value, error = None, None
            try:
                if isinstance(op, Recv):
                    value = self._proc.recv(op.deadline, op.max_bytes)
                elif isinstance(op, Send):
                    self._proc.send(op.frame)
                elif isinstance(op, Call):
                    value = call_blocking(op, self._handler_loop, self._proc.send)
                elif isinstance(op, Spawn):
                    if self._proc is not None:
                        self._proc.kill()
                    self._proc = Process(op.cmd, op.env, op.limits, key=op.key)
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
        return await self._run(lambda s: s.exec(code, timeout, on_output))

    async def _run(self, make: Callable[[Session], Flow]) -> Any:
        await self.start()
        async with self._lock:
            session = self._session
            return await self._drive(session.redo(lambda: make(session)))

    async def read_file(self, path: str) -> bytes:
        """See `Sandbox.read_file`."""
        return await self._run(lambda s: files.read_file(s, path))

    async def write_file(self, path: str, data: bytes) -> None:
        """See `Sandbox.write_file`."""
        await self._run(lambda s: files.write_file(s, path, data))

    async def output_changes(self) -> list[str]:
        """See `Sandbox.output_changes`."""
        return await self._run(self._output_changes)

    async def collect_output(self, dest: str | os.PathLike[str]) -> list[Path]:
        """See `Sandbox.collect_output`."""
        return await self._run(lambda s: self._collect_output(s, Path(dest)))

    async def snapshot(self, store: BlobStore) -> str:
        """See `Sandbox.snapshot`."""
        return await self._run(lambda s: self._snapshot(s, store))

    async def restore(self, store: BlobStore, digest: str) -> None:
        """See `Sandbox.restore`."""
        await self._run(lambda s: self._restore(s, store, digest))

    async def close(self) -> None:
        async with self._lock:
            if self._proc is not None:
                await self._proc.kill()
                self._proc = None
            self._session = None
            await asyncio.to_thread(self._close_extensions)

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
            done, op = _advance(flow, value, error)
            if done:
                return op
            value, error = None, None
            try:
                if isinstance(op, Recv):
                    value = await self._proc.recv(op.deadline, op.max_bytes)
                elif isinstance(op, Send):
                    await self._proc.send(op.frame)
                elif isinstance(op, Call):
                    value = await call_async(op, self._proc.send_now)
                elif isinstance(op, Spawn):
                    if self._proc is not None:
                        await self._proc.kill()
                    self._proc = await AsyncProcess.start(op.cmd, op.env, op.limits, key=op.key)
            except Exception as e:
                error = e


def _advance(flow: Flow, value: Any, error: BaseException | None) -> tuple[bool, Any]:
    """Give a flow the last operation's result (or error): (True, the flow's
    result) when it ends, else (False, its next operation)."""
    try:
        return False, (flow.throw(error) if error is not None else flow.send(value))
    except StopIteration as stop:
        return True, stop.value
