"""One sandbox's logic, written once for both the sync and the async face.

The flows here are generators that yield operations (`Spawn`, `Send`, `Recv`,
`Call`) and receive their results; `Sandbox` and `AsyncSandbox` drive them
with blocking or asyncio I/O. So the protocol, the limits and the error
handling exist in one place only, as in a sans-IO library.
"""

from __future__ import annotations

import codecs
import errno
import os
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..wire import frames
from ..wire.calls import HostCalls, reply_frame
from .limits import Limits
from .process import RuntimeDied
from .result import ExecResult, GuestError, parse_guest_result
from .runtime import GUEST_FILE, JS_DIR, Runtime, boot_config, deno_command, deno_env, process_limits

OutputCallback = Callable[[str, str], None]
BOOT_TIMEOUT = 180.0  # a first boot also makes the memory snapshot
BACKSTOP = 15.0  # past deadline + grace, the host stops waiting for the runtime
BOOT_FRAME_BYTES = 1 << 30  # while booting (no guest code yet), for the boot snapshot
BOOT_TRIES = 3  # runtimes started in a row (each dying on the way) before the sandbox gives up
REDO_TRIES = 3  # times the host's own work is tried, each on a new runtime, before it gives up


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the guest code); the message says why."""


class RuntimeLost(RuntimeDied):
    """The runtime died (or dropped its worker) under the host's own work.

    Raised by host-internal cells instead of handling it themselves: whoever
    runs the work (`Session.boot`, `Session.redo`) starts a new runtime and
    does the work again. `replaced`: a new runtime (or worker) is already
    up, with its files laid out again.
    """

    def __init__(self, reason: str, replaced: bool = False) -> None:
        super().__init__(reason)
        self.replaced = replaced


@dataclass
class Spawn:
    cmd: list[str]
    env: dict[str, str]
    limits: dict[int, int] = field(default_factory=dict)  # resource.RLIMIT_* -> value
    key: bytes = b""  # the key every frame of this runtime carries (see `wire.frames`)


@dataclass
class Send:
    frame: bytes


@dataclass
class Recv:
    deadline: float | None
    max_bytes: int  # the largest frame taken (FrameTooLarge past it)


@dataclass
class Call:
    """Run a host handler; the driver sends back a `Reply`-able result or raises.

    At `deadline` (the cell's, by `time.monotonic()`) the driver gives the
    handler up and raises `CallTimedOut` (see `handlers`). A driver may
    instead send the reply itself, from the handler's own thread, as soon as
    the handler returns (`reply` makes the frame), and give back `REPLIED`:
    the runtime gets its answer without waiting for the driver's thread to
    wake. Exactly one reply goes out either way."""

    calls: HostCalls
    name: str
    args: str
    data: bytes
    deadline: float | None = None
    call_id: int = 0

    def reply(self, result: Any = None, error: BaseException | None = None) -> bytes:
        """The reply frame for this call's outcome."""
        return reply_frame(self.call_id, result, error)


REPLIED = object()  # a driver's answer to `Call` when it has sent the reply itself


class Pending:
    """A driver's answer to `Call` when the handler still runs, in a thread of
    its own, and will send its reply itself: the flow reads the runtime's
    next frame meanwhile (the driver's thread is not woken by the handler's
    end, only by the runtime's next frame). At `deadline` the flow answers
    the call itself if it can still `claim` it; the handler's thread claims
    it before it sends. Whoever claims first answers; the other does not."""

    def __init__(self, deadline: float | None, call_id: int | None, name: str) -> None:
        self.deadline = deadline
        self.call_id = call_id
        self.name = name
        self._claim = threading.Lock()

    def claim(self) -> bool:
        """True for the first caller only."""
        return self._claim.acquire(blocking=False)


class CallTimedOut(Exception):
    """A host handler was still running at the cell's deadline: it was
    abandoned (a thread) or cancelled (a coroutine)."""


Flow = Generator[Any, Any, Any]


class Session:
    """The state of one sandbox: its runtime, limits, handlers and cell count."""

    def __init__(self, runtime: Runtime, limits: Limits, calls: HostCalls, preload: tuple[str, ...] = (),
                 readable: tuple[Path, ...] = ()) -> None:
        self.runtime = runtime
        self.readable = readable
        self.limits = limits
        self.calls = calls
        self.preload = preload
        self.cell = 0  # numbers the user's cells
        self.seq = 0  # numbers every exec, the host's own included
        self.boots = 0
        self.key = b""  # the current runtime's frame key (see `wire.frames`)
        self.parts: list[bytes] = []  # a guest call's data sent ahead in parts ("wire.more")
        self.warnings: list[str] = []
        self.after_boot: list[Callable[[], Flow]] = []  # e.g. mount the file system again
        self.fs_server: Any = None  # the FsServer, for the write quota
        self.call_cut = False  # a host call of this cell ran into its deadline
        self.pending: Pending | None = None  # a call whose handler's thread will send its reply

    def boot(self) -> Flow:
        """Start a runtime process, wait until Pyodide is ready and run the
        `after_boot` hooks (mounts, the last snapshot's files).

        A runtime that dies on the way (killed, crashed, its pipes closed) is
        replaced, up to BOOT_TRIES runtimes in a row; then SandboxError says
        that no runtime could be started, and why the last one failed.
        """
        reason = ""
        for _ in range(BOOT_TRIES):
            try:
                return (yield from self._boot_once())
            except RuntimeDied as died:  # a RuntimeLost from a hook's cell too
                reason = str(died) or type(died).__name__
        raise SandboxError(f"could not start the sandbox runtime after {BOOT_TRIES} tries: {reason}")

    def redo(self, make: Callable[[], Flow]) -> Flow:
        """Run the flow `make()`; when the runtime dies under it (`RuntimeLost`),
        start a new one (restored to the last snapshot by the hooks) and run
        the flow again from the start, up to REDO_TRIES times.

        For the host's own work (file transfers, snapshots, walks), which is
        safe to redo; a guest cell handles a dead runtime itself (see `exec`).
        """
        reason = ""
        for attempt in range(REDO_TRIES):
            try:
                return (yield from make())
            except RuntimeLost as lost:
                reason = str(lost)
                if attempt + 1 < REDO_TRIES and not lost.replaced:
                    yield from self.boot()
        raise SandboxError(f"the sandbox runtime died {REDO_TRIES} times in a row under the host's work: {reason}")

    def _boot_once(self) -> Flow:
        snap = self.runtime.snapshot_path(self.preload)
        snap.parent.mkdir(parents=True, exist_ok=True)
        self.runtime.packages_dir.mkdir(parents=True, exist_ok=True)
        self.key = frames.new_key()
        # The configuration goes over stdin as the first frame, not argv
        # (which every user of the machine can read in /proc).
        config = boot_config(self.runtime, key=self.key, frame_bytes=self.limits.frame_bytes, snapshot=snap,
                             preload=self.preload, read=self._readable())
        cmd = deno_command(self.runtime, memory_mb=self.limits.memory_mb, readable=self.readable)
        try:
            yield Spawn(cmd, deno_env(self.runtime), process_limits(self.limits.memory_mb), self.key)
        except OSError as e:  # e.g. out of processes or memory for now
            raise RuntimeDied(f"could not start {cmd[0]}: {e}") from None
        yield Send(frames.encode(config))
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            try:
                # No guest code runs before "ready": the boot snapshot (about
                # 31 MB) may come in one frame.
                msg = yield from self._recv(deadline, BOOT_FRAME_BYTES)
            except frames.ProtocolError as e:
                raise SandboxError(f"the runtime broke the protocol while starting: {e}") from None
            if msg is None:
                raise SandboxError(f"the runtime did not start within {BOOT_TIMEOUT:.0f} s")
            if msg.type == "snapshot" and self.boots == 0:
                _write_atomic(snap, msg.payload)
            elif msg.type == "ready":
                self.boots += 1
                for hook in self.after_boot:
                    yield from hook()
                return
            elif msg.type == "fatal":
                raise SandboxError(f"the runtime failed to start: {msg.get('message', str, '')}")

    def _recv(self, deadline: float | None, max_bytes: int | None = None) -> Flow:
        """The runtime's next frame (None at the deadline).

        The frames travel on pipes only the runtime's main thread can open
        (see `runtime.with_pipes`); should anything else ever write there,
        every frame starts with the runtime's key, which the host drew and
        handed over in the first frame; the driver checks it and the frame's
        size (at most `max_bytes`, else Limits.frame_bytes) from the prefix,
        before it reads the frame: ProtocolError for a forged frame,
        FrameTooLarge for a huge one.
        """
        return (yield Recv(deadline, self.limits.frame_bytes if max_bytes is None else max_bytes))

    def _readable(self) -> list[Path]:
        """What the worker may read: Pyodide's assets, our JS, the package caches."""
        return [self.runtime.pyodide_dir, JS_DIR, GUEST_FILE, self.runtime.packages_dir, *self.readable]

    def exec(self, code: str, timeout: float | None, on_output: OutputCallback | None, internal: bool = False) -> Flow:
        """Run one cell; returns its ExecResult. Never raises for guest faults."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        timeout = self.limits.timeout if timeout is None else timeout
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.seq += 1
        cell = self.seq
        if not internal:
            self.cell += 1
        started = time.monotonic()
        out = _Output(on_output)
        if self.fs_server is not None:
            self.fs_server.quota_hit = False
        self.call_cut = False
        self.pending = None
        self.parts = []
        header = {
            "t": "exec", "id": cell, "cell": None if internal else self.cell, "code": code, "timeout": timeout,
            "grace": self.limits.grace, "outputLimit": self.limits.output_bytes,
        }
        backstop = started + timeout + self.limits.grace + BACKSTOP
        fresh = False  # the cell runs on a runtime started for it
        try:
            try:
                yield Send(frames.encode(header))
            except RuntimeDied:
                if internal:
                    raise
                # The runtime died between cells, so this cell never reached
                # it: run it on a new one (globals are gone: say so).
                yield from self._replace()
                fresh = True
                self.seq += 1
                cell = header["id"] = self.seq
                yield Send(frames.encode(header))
            while True:
                pending = self.pending
                wait = backstop if pending is None or pending.deadline is None else min(backstop, pending.deadline)
                msg = yield from self._recv(wait)
                if pending is not None and (msg is None or msg.type in ("call", "result")):
                    # The runtime asks again only once it has had the reply; at
                    # a result, or at the deadline, a handler still running is
                    # given up (its thread sends nothing after that).
                    self.pending = None
                    if pending.claim() and msg is None:
                        yield from self._cut(pending.call_id, pending.name)
                    if msg is None:
                        continue
                if msg is None:
                    # The runtime itself stopped answering: replace it.
                    yield from self._replace()
                    return out.result(started, limit="timeout", restarted=True,
                                      error=GuestError("TimeoutError", f"the runtime did not answer within {timeout} s"))
                if msg.type == "out" and msg.header.get("id") == cell:
                    out.add(msg.get("s", str), msg.payload)
                elif msg.type == "call":
                    yield from self._serve_call(msg, started + timeout)
                elif msg.type == "result" and msg.header.get("id") == cell:
                    result = self._result(msg, out, started, timeout)
                    if msg.get("exit", bool, False):
                        # The runtime had to drop its worker and ends itself
                        # (see `retire` in main.js): start a new one.
                        yield from self._replace()
                    elif result.restarted:
                        # The runtime replaced its worker: lay out its files again.
                        for hook in self.after_boot:
                            yield from hook()
                    result.restarted = result.restarted or fresh
                    return result
                elif msg.type == "warn":
                    if len(self.warnings) < 100:  # a runtime's own notes; never a flood
                        self.warnings.append(msg.get("message", str, "")[:1000])
                elif msg.type == "fatal":
                    raise RuntimeDied(msg.get("message", str, "the runtime failed"))
        except RuntimeDied as died:
            if internal:
                # The host's own work: whoever runs it starts a new runtime
                # and does it again (see `redo` and `boot`).
                raise died if isinstance(died, RuntimeLost) else RuntimeLost(str(died)) from None
            yield from self._replace()
            limit = "memory" if "memory" in str(died).lower() else "crash"
            return out.result(started, limit=limit, restarted=True,
                              error=GuestError("SandboxCrashed", f"the runtime died and was replaced ({died})"))
        except frames.FrameTooLarge as big:
            # The runtime's own frame, but past the limit: it is not read, so
            # the stream cannot go on; a new runtime takes over.
            if internal:
                raise RuntimeLost(str(big)) from None
            yield from self._replace()
            return out.result(started, limit="frame", restarted=True,
                              error=GuestError("FrameTooLarge", f"{big}; the runtime was replaced and the cell's "
                                                                "globals are gone"))
        except frames.ProtocolError as bad:
            # A forged or broken frame (guest code writing to the runtime's
            # stdout): nothing more from this runtime can be trusted.
            if internal:
                raise RuntimeLost(f"the runtime sent a bad frame: {bad}") from None
            yield from self._replace()
            return out.result(started, limit="crash", restarted=True,
                              error=GuestError("SandboxCrashed", f"the runtime was replaced: {bad}"))
        finally:
            if self.pending is not None:
                self.pending.claim()  # the cell is over: a handler still running sends nothing now
                self.pending = None

    def _serve_call(self, msg: frames.Message, deadline: float | None = None) -> Flow:
        call_id = msg.get("id", int)
        name = msg.get("name", str, "")
        data: bytes | None = msg.payload
        try:
            if name == "wire.more" or self.parts:
                data = self._gather(name, data)
            if data is None:  # a part: kept until the call it belongs to
                frame = reply_frame(call_id, None)
            else:
                result = yield Call(self.calls, name, msg.get("args", str, ""), data, deadline, call_id)
                if isinstance(result, Pending):
                    self.pending = result
                    return
                if result is REPLIED:
                    return
                frame = reply_frame(call_id, result)
        except CallTimedOut:
            return (yield from self._cut(call_id, name))
        except Exception as e:
            frame = reply_frame(call_id, error=e)
        yield from self._reply(frame)

    def _cut(self, call_id: int | None, name: str) -> Flow:
        """Answer a call still running at the cell's deadline: the guest gets a
        TimeoutError, and the runtime's own deadline (interrupt, then the
        worker replaced) takes it from there."""
        self.call_cut = True
        cut = TimeoutError(errno.ETIMEDOUT, f"the host function {name!r} was still running at the cell's "
                                            "deadline and was abandoned")
        # The runtime holds its interrupt until the guest has this error.
        yield from self._reply(reply_frame(call_id, error=cut, cut=True))

    def _reply(self, frame: bytes) -> Flow:
        try:
            yield Send(frame)
        except RuntimeDied:
            # The runtime ended itself while the call ran (the cell's deadline
            # passed: see `retire` in main.js); its last frames are still to read.
            pass

    def _gather(self, name: str, data: bytes) -> bytes | None:
        """Host-call data sent in parts (the guest's `call` splits what is too
        large for one frame): a "wire.more" call's data is kept (None), and the
        next call gets it all. Bounded by the guest's own memory."""
        size = sum(map(len, self.parts)) + len(data)
        if size > self.limits.memory_mb << 20:
            self.parts = []
            raise ValueError(f"host call data over {self.limits.memory_mb} MB")
        if name == "wire.more":
            self.parts.append(data)
            return None
        data, self.parts = b"".join([*self.parts, data]), []
        return data

    def _result(self, msg: frames.Message, out: _Output, started: float, timeout: float) -> ExecResult:
        value, js, error, files = parse_guest_result(msg.get("r", str))
        limit = msg.get("limit", str)
        if limit not in (None, "timeout", "output", "interrupt"):
            limit = None
        restarted = msg.get("restarted", bool, False)
        killed = msg.get("killed", str)
        if killed == "crash":
            limit = "crash"
        if self.call_cut and limit is None:
            limit = "timeout"  # even if the guest caught the call's TimeoutError
        if error is not None and error.type == "MemoryError":
            limit = "memory"
        if restarted and error is None:
            why = {"timeout": f"the cell ran past its {timeout} s deadline and did not stop when interrupted",
                   "output": "the cell went on writing past the output limit",
                   "crash": f"the worker died: {msg.get('message', str, '')}"}.get(limit or "", "the worker was replaced")
            error = GuestError("TimeoutError" if limit == "timeout" else "SandboxRestarted",
                               why + "; the worker was replaced and the cell's globals are gone")
        elif limit == "timeout" and error is not None and error.type == "KeyboardInterrupt":
            error = _because(error, "TimeoutError", f"the cell ran past its {timeout} s deadline and was interrupted")
        elif self.fs_server is not None and self.fs_server.quota_hit:
            limit = "disk"  # even if the guest swallowed the error: its write was lost
        elif limit == "output" and error is not None and error.type == "KeyboardInterrupt":
            error = _because(error, "OutputLimitExceeded",
                             f"the cell wrote more than {self.limits.output_bytes} bytes and was stopped")
        return out.result(started, value=value, json=js, error=error, limit=limit, restarted=restarted, files=files)

    def _replace(self) -> Flow:
        yield from self.boot()  # Spawn kills the old process first


class _Output:
    """Collects a cell's stdout/stderr, decoding UTF-8 across chunk borders."""

    def __init__(self, callback: OutputCallback | None) -> None:
        self.callback = callback
        self.parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in self.parts}

    def add(self, stream: str | None, data: bytes) -> None:
        if stream not in self.parts:
            return
        text = self.decoders[stream].decode(data)
        if text:
            self.parts[stream].append(text)
            if self.callback is not None:
                self.callback(stream, text)

    def result(self, started: float, **fields: Any) -> ExecResult:
        for s, d in self.decoders.items():
            if tail := d.decode(b"", final=True):
                self.parts[s].append(tail)
        return ExecResult(
            stdout="".join(self.parts["stdout"]), stderr="".join(self.parts["stderr"]),
            duration=time.monotonic() - started, **fields,
        )


def _because(interrupt: GuestError, kind: str, message: str) -> GuestError:
    """The error for a cell a limit interrupted: the guest's KeyboardInterrupt
    traceback shows where it was, and a last line says why."""
    return GuestError(kind, message, f"{interrupt.traceback.rstrip()}\n\n{kind}: {message}\n")


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".snap-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
