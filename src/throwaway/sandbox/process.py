"""The runtime process and its stdio, in a blocking and an asyncio flavour.

Both read frames (see `wire`) with a deadline: `recv` returns None when the
deadline passes and raises `RuntimeDied` when the process is gone. A frame cut
by a deadline is kept and finished on the next call. Each frame's key and size
are checked from its prefix, before the frame is buffered: a wrong key raises
ProtocolError, a frame over `max_bytes` FrameTooLarge.

The process starts in an empty folder of its own (removed when it is killed),
not in the host's working folder, and where the kernel can forbid it (Linux's
Landlock) it may write no file at all (see `landlock`).

The frames travel on two pipes of their own, not on the process's stdin and
stdout (which are /dev/null): guest code can reach fds 0 and 1, and a read it
left running there would take the host's next frame (see `runtime.with_pipes`).
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import subprocess
import tempfile
import time
import weakref

from ..wire import frames
from . import landlock
from .runtime import with_pipes


class RuntimeDied(RuntimeError):
    """The runtime process exited (or its pipes closed)."""


READ = 1 << 20  # bytes read from the runtime's stdout at a time


class _Frames:
    """Incremental frame parsing over a byte buffer (shared by both flavours).

    The buffer never holds more than the frame under way plus one read: the
    prefix is checked (key, then size) as soon as its 24 bytes are in, so a
    forged or oversized frame is refused before its body is read.
    """

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.buf = bytearray()
        self.need: tuple[int, int] | None = None

    def next(self, max_bytes: int) -> frames.Message | None:
        size = frames.UP_PREFIX.size
        if self.need is None:
            if len(self.buf) < size:
                return None
            self.need = frames.parse_up_prefix(bytes(self.buf[:size]), self.key, max_bytes)
            del self.buf[:size]
        hlen, plen = self.need
        if len(self.buf) < hlen + plen:
            return None
        with memoryview(self.buf) as view:  # one copy of each part, no more
            head, payload = bytes(view[:hlen]), bytes(view[hlen : hlen + plen])
        del self.buf[: hlen + plen]
        self.need = None
        return frames.decode(head, payload)


def _workdir() -> str:
    """An empty folder for the runtime to start in (it writes nothing there)."""
    return tempfile.mkdtemp(prefix="throwaway-runtime-")


def _stderr_file():
    # Deno's own diagnostics go to a file, not a pipe nobody drains.
    return tempfile.TemporaryFile()


def _confine(pid: int, limits: dict[int, int] | None) -> None:
    """Apply kernel limits (`resource.RLIMIT_*` -> value) to a started process.

    Linux only (prlimit); a no-op elsewhere. Applied just after the start:
    the runtime runs no guest code before it has booted.
    """
    try:
        import resource

        prlimit = resource.prlimit
    except (ImportError, AttributeError):  # pragma: no cover - not Linux
        return
    for which, value in (limits or {}).items():
        try:
            hard = prlimit(pid, which)[1]
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            prlimit(pid, which, (value, hard))
        except (OSError, ValueError):  # it is gone already, or the limit is not ours to set
            pass


class _Pipes:
    """The protocol's two pipes: the host's ends, and the child's (passed to
    it by number, closed here once it has started)."""

    def __init__(self) -> None:
        self.child_in, self.down = os.pipe()  # host -> runtime
        try:
            self.up, self.child_out = os.pipe()  # runtime -> host
        except OSError:
            os.close(self.child_in)
            os.close(self.down)
            raise

    def command(self, cmd: list[str]) -> list[str]:
        return with_pipes(cmd, self.child_in, self.child_out)

    @property
    def child_fds(self) -> tuple[int, int]:
        return (self.child_in, self.child_out)

    def started(self) -> None:
        """The child has its ends: the host's copies go (else the host would
        never see the end of `up` when the runtime dies)."""
        for fd in self.child_fds:
            os.close(fd)

    def failed(self) -> None:
        for fd in (self.child_in, self.down, self.up, self.child_out):
            try:
                os.close(fd)
            except OSError:
                pass


def _preexec(confine: bool):
    """What the child runs before exec: with `confine`, no file writes for it
    (Landlock, where the kernel has it; see `landlock`)."""
    return landlock.forbid_writes if confine and landlock.prepare() else None


def stderr_tail(f, n: int = 4000) -> str:
    try:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - n))
        return f.read().decode(errors="replace").strip()
    except (OSError, ValueError):
        return ""


class Process:
    """A runtime process driven with blocking I/O; `key` is the key its frames carry."""

    def __init__(self, cmd: list[str], env: dict[str, str], limits: dict[int, int] | None = None, *,
                 key: bytes, confine: bool = True) -> None:
        self.stderr = _stderr_file()
        self.cwd = _workdir()
        self._rmdir = weakref.finalize(self, shutil.rmtree, self.cwd, True)
        pipes = _Pipes()
        try:
            self.proc = subprocess.Popen(pipes.command(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=self.stderr, env=env, cwd=self.cwd, pass_fds=pipes.child_fds,
                                         preexec_fn=_preexec(confine))
        except BaseException:
            pipes.failed()
            raise
        pipes.started()
        _confine(self.proc.pid, limits)
        # File objects only to close each end once (kill, or when this is dropped).
        self._up = open(pipes.up, "rb", buffering=0)  # noqa: SIM115 - closed by kill
        self._down = open(pipes.down, "wb", buffering=0)  # noqa: SIM115
        self._fd = pipes.up
        self._in = pipes.down
        self._frames = _Frames(key)

    def send(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._in, view) :]
        except (BrokenPipeError, ValueError, OSError):
            raise RuntimeDied(self.reason()) from None

    def recv(self, deadline: float | None, max_bytes: int) -> frames.Message | None:
        while True:
            msg = self._frames.next(max_bytes)
            if msg is not None:
                return msg
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._fd], [], [], wait)
            if not ready:
                return None
            chunk = os.read(self._fd, READ)
            if not chunk:
                raise RuntimeDied(self.reason())
            self._frames.buf += chunk

    def reason(self) -> str:
        try:
            code = self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        tail = stderr_tail(self.stderr)
        return f"runtime exited (code {code})" + (f": {tail}" if tail else "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self._down, self._up, self.stderr):
            try:
                f.close()
            except OSError:
                pass
        self._rmdir()

    @property
    def pid(self) -> int:
        return self.proc.pid


class AsyncProcess:
    """A runtime process driven with asyncio."""

    @classmethod
    async def start(cls, cmd: list[str], env: dict[str, str], limits: dict[int, int] | None = None, *,
                    key: bytes, confine: bool = True) -> AsyncProcess:
        self = cls()
        self.stderr = _stderr_file()
        self.cwd = _workdir()
        self._rmdir = weakref.finalize(self, shutil.rmtree, self.cwd, True)
        pipes = _Pipes()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *pipes.command(cmd), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=self.stderr, env=env, cwd=self.cwd, pass_fds=pipes.child_fds, preexec_fn=_preexec(confine),
            )
        except BaseException:
            pipes.failed()
            raise
        pipes.started()
        _confine(self.proc.pid, limits)
        loop = asyncio.get_running_loop()
        self.stdout = asyncio.StreamReader(limit=READ, loop=loop)
        # Wrapping an fd opens nothing (no blocking); the transports own them.
        up = open(pipes.up, "rb", buffering=0)  # noqa: SIM115, ASYNC230
        down = open(pipes.down, "wb", buffering=0)  # noqa: SIM115, ASYNC230
        try:
            self._up, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(self.stdout, loop=loop), up)
            transport, protocol = await loop.connect_write_pipe(
                lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), loop=loop), down)
        except BaseException:
            up.close()
            down.close()
            self.proc.kill()
            raise
        self.stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        self._frames = _Frames(key)
        return self

    async def send(self, data: bytes) -> None:
        try:
            self.stdin.write(data)
            await self.stdin.drain()
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            raise RuntimeDied(await self.reason()) from None

    def send_now(self, data: bytes) -> bool:
        """From any thread, while the driver waits on a host call (nothing else
        writes then): write `data` at once if it is small enough to go whole
        in one write (PIPE_BUF) and nothing is queued before it. False if not
        written: the caller sends it the usual way."""
        transport = self.stdin.transport
        if len(data) > select.PIPE_BUF or transport.is_closing() or transport.get_write_buffer_size():
            return False
        try:
            # The pipe is non-blocking (asyncio's): a write this small goes whole or not at all.
            return os.write(transport.get_extra_info("pipe").fileno(), data) == len(data)
        except OSError:
            return False  # full, or closed: the loop's send finds out which

    async def recv(self, deadline: float | None, max_bytes: int) -> frames.Message | None:
        while True:
            msg = self._frames.next(max_bytes)
            if msg is not None:
                return msg
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                chunk = await asyncio.wait_for(self.stdout.read(READ), wait)
            except TimeoutError:
                return None
            if not chunk:
                raise RuntimeDied(await self.reason())
            self._frames.buf += chunk

    async def reason(self) -> str:
        try:
            code = await asyncio.wait_for(self.proc.wait(), 1)
        except TimeoutError:
            code = None
        tail = stderr_tail(self.stderr)
        return f"runtime exited (code {code})" + (f": {tail}" if tail else "")

    async def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        await self.proc.wait()
        self.stdin.transport.close()
        self._up.close()
        self.stderr.close()
        self._rmdir()

    @property
    def pid(self) -> int:
        return self.proc.pid
