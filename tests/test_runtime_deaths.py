"""A dead runtime never fails a task: the sandbox replaces it and redoes its own work.

The runtime (the Deno process) is killed with SIGKILL at chosen points: while
it boots, while it lays out the mounts, before and in the middle of the
host's own cells (snapshot, restore, read_file, collect_output), and at
random moments of scripted agent tasks. Only when no runtime can be started
at all does the sandbox give up, with a SandboxError that says so.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from collections.abc import Callable

import pytest
from pydantic_ai import models as pydantic_ai_models

import throwaway.sandbox.sandbox as sandbox_module
from throwaway.fs import FileSystem
from throwaway.sandbox import AsyncSandbox, Sandbox
from throwaway.sandbox.process import AsyncProcess, Process
from throwaway.sandbox.session import BOOT_TRIES, SandboxError
from throwaway.store import BlobStore
from throwaway.testing import ScriptedModel, tool_call


def kill(pid: int) -> None:
    """SIGKILL the runtime (our child) and wait until all its threads are gone,
    its pipes closed (without reaping it: that is the sandbox's business)."""
    os.kill(pid, signal.SIGKILL)
    for _ in range(500):
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                return
        except ChildProcessError:  # reaped already
            return
        time.sleep(0.01)


class Doom:
    """Kills runtime processes at chosen frames.

    `when(direction, frame)` is asked about every frame a runtime sends
    ("recv", the parsed message) or is sent ("send", the raw bytes); on True
    the process is SIGKILLed at once, while the flow goes on as if nothing
    happened. At most `times` kills.
    """

    def __init__(self, when: Callable[[str, object], bool], times: int) -> None:
        self.when = when
        self.left = times
        self.kills = 0

    def strike(self, proc, direction: str, frame: object) -> None:
        if self.left > 0 and self.when(direction, frame):
            self.left -= 1
            self.kills += 1
            kill(proc.pid)


@pytest.fixture
def doom(monkeypatch):
    """Install a `Doom` on every runtime process started from now on (both
    faces), and on the live one of the sandbox `on`."""

    def install(when: Callable[[str, object], bool], times: int = 1, on=None) -> Doom:
        d = Doom(when, times)

        class DoomedProcess(Process):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                d.strike(self, "spawn", None)

            def send(self, data: bytes) -> None:
                d.strike(self, "send", data)
                super().send(data)

            def recv(self, *args, **kwargs):
                msg = super().recv(*args, **kwargs)
                if msg is not None:
                    d.strike(self, "recv", msg)
                return msg

        class DoomedAsyncProcess(AsyncProcess):
            @classmethod
            async def start(cls, *args, **kwargs):
                self = await super().start(*args, **kwargs)
                d.strike(self, "spawn", None)
                return self

            async def send(self, data: bytes) -> None:
                d.strike(self, "send", data)
                await super().send(data)

            async def recv(self, *args, **kwargs):
                msg = await super().recv(*args, **kwargs)
                if msg is not None:
                    d.strike(self, "recv", msg)
                return msg

        monkeypatch.setattr(sandbox_module, "Process", DoomedProcess)
        monkeypatch.setattr(sandbox_module, "AsyncProcess", DoomedAsyncProcess)
        if on is not None:
            on._proc.__class__ = DoomedAsyncProcess if isinstance(on, AsyncSandbox) else DoomedProcess
        return d

    return install


def spawned(direction: str, frame: object) -> bool:
    return direction == "spawn"


def ready(direction: str, frame: object) -> bool:
    return direction == "recv" and frame.type == "ready"


def internal_cell(name: str) -> Callable[[str, object], bool]:
    """The host's own cell calling `_throwaway.<name>`, as it is sent."""
    marker = f"_throwaway').{name}(".encode()
    return lambda direction, frame: direction == "send" and marker in frame


def host_call(prefix: str) -> Callable[[str, object], bool]:
    """A host call the runtime makes (e.g. a snapshot sending a file's bytes)."""
    return lambda direction, frame: (direction == "recv" and frame.type == "call"
                                      and frame.header.get("name", "").startswith(prefix))


def files_sandbox(tmp_path, **kwargs) -> Sandbox:
    """A sandbox with a host folder mounted writable at /shared (laid out again after each boot)."""
    fs = FileSystem()
    shared = tmp_path / "shared"
    shared.mkdir(exist_ok=True)
    (shared / "hello.txt").write_text("hello from the host")
    fs.mount_host("/shared", shared, writable=True)
    return Sandbox(fs=fs, **kwargs)


# --- start ---------------------------------------------------------------------------------------


def test_killed_while_booting_start_still_succeeds(doom, tmp_path):
    d = doom(spawned, times=BOOT_TRIES - 1)
    with files_sandbox(tmp_path) as sb:
        assert d.kills == BOOT_TRIES - 1
        r = sb.exec("open('/shared/hello.txt').read()")
        assert r.ok and r.json == "hello from the host"


def test_killed_while_laying_out_mounts_start_still_succeeds(doom, tmp_path):
    d = doom(ready, times=2)  # dies just after "ready", under the cell that mounts /shared
    with files_sandbox(tmp_path) as sb:
        assert d.kills == 2
        assert sb.exec("open('/shared/hello.txt').read()").json == "hello from the host"


def test_no_runtime_can_start_says_so(doom, tmp_path):
    doom(spawned, times=10**6)
    sb = Sandbox()
    with pytest.raises(SandboxError, match=f"could not start the sandbox runtime after {BOOT_TRIES} tries: "
                                           r"runtime exited \(code -9\)"):
        sb.start()
    sb.close()


def test_async_killed_while_booting_start_still_succeeds(doom):
    d = doom(spawned, times=2)

    async def main():
        async with AsyncSandbox() as sb:
            return (await sb.exec("6 * 7")).json

    assert asyncio.run(main()) == 42
    assert d.kills == 2


# --- the host's own work, with the runtime dead before it starts -----------------------------------


@pytest.fixture
def box(tmp_path):
    """A started sandbox holding /output/a.txt and /home/user/b.txt, snapshotted."""
    store = BlobStore(tmp_path / "blobs")
    sb = files_sandbox(tmp_path).start()
    sb.exec("open('/output/a.txt', 'w').write('a')\nopen('/home/user/b.txt', 'w').write('b')")
    digest = sb.snapshot(store)
    yield sb, store, digest
    sb.close()


def test_dead_before_snapshot(box):
    sb, store, digest = box
    kill(sb.pid)
    assert sb.snapshot(store) == digest  # the files of the last snapshot, brought back
    assert sb.restarts == 1


def test_dead_before_restore(box):
    sb, store, digest = box
    sb.exec("import os; os.remove('/output/a.txt')")
    kill(sb.pid)
    sb.restore(store, digest)
    assert sb.exec("open('/output/a.txt').read() + open('/home/user/b.txt').read()").json == "ab"


def test_dead_before_read_file(box):
    sb, _, _ = box
    kill(sb.pid)
    assert sb.read_file("/home/user/b.txt") == b"b"
    assert sb.read_file("/shared/hello.txt") == b"hello from the host"  # mounts laid out again


def test_dead_before_collect_output(box, tmp_path):
    sb, _, _ = box
    kill(sb.pid)
    written = sb.collect_output(tmp_path / "out")
    assert [p.name for p in written] == ["a.txt"] and (tmp_path / "out" / "a.txt").read_text() == "a"


def test_dead_between_cells_the_next_cell_runs_on_a_new_runtime(box):
    sb, _, _ = box
    sb.exec("x = 1")
    kill(sb.pid)
    r = sb.exec("open('/home/user/b.txt').read()")
    assert r.ok and r.json == "b" and r.restarted  # it ran; the note says globals are gone
    assert not sb.exec("'x' in globals()").json


def test_dead_during_a_cell_is_reported_not_raised(box):
    sb, _, _ = box
    threading.Timer(1.0, kill, (sb.pid,)).start()
    r = sb.exec("import time\nopen('/output/c.txt', 'w').write('c')\ntime.sleep(10)")
    assert not r.ok and r.restarted and r.error.type == "SandboxCrashed"
    assert sb.exec("import os; sorted(os.listdir('/output'))").json == ["a.txt"]


# --- the host's own work, with the runtime killed in its middle ------------------------------------


def test_killed_during_snapshot(doom, box):
    sb, store, digest = box
    sb.exec("open('/output/new.txt', 'w').write('new')")
    d = doom(internal_cell("snapshot_tree"), on=sb)
    assert sb.snapshot(store) == digest  # the cell's new file was lost with the runtime
    assert d.kills == 1


def test_killed_while_snapshot_sends_files(doom, box):
    sb, store, digest = box
    sb.exec("open('/output/a.txt', 'w').write('changed')")
    d = doom(host_call(""), on=sb)  # the snapshot's first host call: a blob on its way
    assert sb.snapshot(store) == digest
    assert d.kills == 1


def test_killed_during_restore(doom, box):
    sb, store, digest = box
    sb.exec("import os; os.remove('/output/a.txt'); os.remove('/home/user/b.txt')")
    d = doom(internal_cell("restore_tree"), times=2, on=sb)
    sb.restore(store, digest)
    assert d.kills == 2
    assert sb.exec("open('/output/a.txt').read() + open('/home/user/b.txt').read()").json == "ab"


def test_killed_during_read_file_and_collect_output(doom, box, tmp_path):
    sb, _, _ = box
    d = doom(internal_cell("send_file"), on=sb)
    assert sb.read_file("/output/a.txt") == b"a"
    assert d.kills == 1
    d = doom(internal_cell("walk"), on=sb)
    assert [p.name for p in sb.collect_output(tmp_path / "out")] == ["a.txt"]
    assert d.kills == 1


def test_killed_during_the_restore_after_a_restart(doom, box):
    # The guest cell dies; the replacement dies while the last snapshot is being restored into it.
    sb, store, digest = box
    d = doom(internal_cell("restore_tree"))
    kill(sb.pid)
    r = sb.exec("open('/output/a.txt').read()")
    assert r.json == "a" and d.kills == 1


def test_dies_every_time_under_the_same_work_gives_up_saying_so(doom, box):
    sb, store, _ = box
    doom(internal_cell("snapshot_tree"), times=10**6, on=sb)
    with pytest.raises(SandboxError, match="died 3 times in a row"):
        sb.snapshot(store)


def test_async_killed_during_snapshot_and_collect_output(doom, tmp_path):
    store = BlobStore(tmp_path / "blobs")

    async def main():
        async with AsyncSandbox() as sb:
            await sb.exec("open('/output/a.txt', 'w').write('a')")
            digest = await sb.snapshot(store)
            doom(internal_cell("snapshot_tree"), on=sb)
            assert await sb.snapshot(store) == digest
            doom(internal_cell("walk"), on=sb)
            return [p.name for p in await sb.collect_output(tmp_path / "out")]

    assert asyncio.run(main()) == ["a.txt"]


# --- scripted agent tasks, the runtime killed at random moments --------------------------------------

CELLS = 5


def cell(n: int) -> str:
    """Cell n writes /output/f{n}.txt from f{n-1}.txt (so each needs the files of the one before)."""
    before = f"open('/output/f{n - 1}.txt').read() + " if n > 1 else ""
    return (f"import time\ntime.sleep(0.2)\ntext = {before}'{n}'\n"
            f"open('/output/f{n}.txt', 'w').write(text)\ntext")


def expected(n: int) -> str:
    return "".join(str(i) for i in range(1, n + 1))


FAILED_CELLS: list[str] = []  # what the model was told about each cell that had to be asked again


def redo_until_done(messages, info):
    """Run cell 1..CELLS in turn; a cell whose result is not a success (the runtime
    died under it, or after it, taking its files along) is asked again."""
    done, failed = 0, []
    for message in messages:
        for part in getattr(message, "parts", []):
            content = getattr(part, "content", None)
            if getattr(part, "part_kind", "") == "tool-return" and isinstance(content, dict):
                if content.get("success"):
                    done += 1
                else:
                    failed.append(content.get("error", {}).get("message", str(content))[:60])
    if done < CELLS:
        return tool_call("execute_python", code=cell(done + 1))
    FAILED_CELLS.extend(failed)
    return "All files are in /output."


class Killer:
    """A thread that SIGKILLs the live runtime of the newest sandbox at random
    moments (seeded), until `total` kills.

    The sandbox absorbs up to two deaths in a row under one piece of work
    (BOOT_TRIES and REDO_TRIES are 3), so the killer kills at most twice
    between two cells that came back (`sandboxes.cells`): past that, giving
    up is the sandbox's documented answer (see the unit tests above).
    """

    def __init__(self, sandboxes: Sandboxes, rng: random.Random, total: int, delays: tuple[float, float]) -> None:
        self.sandboxes, self.rng, self.total, self.delays = sandboxes, rng, total, delays
        self.kills = 0
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        streak: list[int] = []  # `sandboxes.cells` at each kill since a cell came back
        while self.kills < self.total and not self.halt.wait(self.rng.uniform(*self.delays)):
            if len(streak) >= BOOT_TRIES - 1 and self.sandboxes.cells == streak[0]:
                continue
            proc = self.sandboxes[-1]._proc if self.sandboxes else None
            if proc is not None and proc.proc.poll() is None:
                proc.proc.send_signal(signal.SIGKILL)  # Popen's: never a reaped (reusable) pid
                self.kills += 1
                streak = [c for c in streak if c == self.sandboxes.cells] + [self.sandboxes.cells]

    def __enter__(self) -> Killer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.thread.join()


@pytest.fixture
def data(tmp_path, monkeypatch):
    from throwaway.durable import backend

    # Scripted models only: a real provider call from here is a bug.
    monkeypatch.setattr(pydantic_ai_models, "ALLOW_MODEL_REQUESTS", False)
    rt = backend.launch(tmp_path / "data")
    yield rt
    backend.shutdown()


class Sandboxes(list):
    """Sandboxes, and how many cells came back from them (`cells`)."""

    cells = 0


@pytest.fixture
def sandboxes(monkeypatch):
    """Every sandbox a task makes, newest last."""
    from throwaway.agent.task import Task

    made = Sandboxes()
    make = Task.sandbox

    def sandbox(self):
        sb = make(self)
        run = sb.exec

        def exec(*args, **kwargs):
            result = run(*args, **kwargs)
            made.cells += 1
            return result

        sb.exec = exec
        made.append(sb)
        return sb

    monkeypatch.setattr(Task, "sandbox", sandbox)
    return made


@pytest.mark.slow
def test_runtime_killed_at_random_moments_every_task_still_ends_done(data, sandboxes, tmp_path):
    from throwaway import Agent

    agent = Agent("runtime-deaths", model=ScriptedModel(redo_until_done), max_steps=60)
    # A first boot also makes the runtime's memory snapshot, which takes
    # longer than the gaps between kills: make it before the killing starts.
    Sandbox().start().close()
    results = []
    with Killer(sandboxes, random.Random(1234), total=15, delays=(0.3, 2.5)) as killer:
        # At least 4 tasks, and more while the kills are too few (a fast machine ends tasks sooner).
        while len(results) < 4 or (killer.kills < 10 and len(results) < 16):
            results.append(agent.run("write the files", output_dir=tmp_path / f"out{len(results)}"))
    assert killer.kills >= 10, f"only {killer.kills} kills: the tasks ended too soon to test anything"
    for i, result in enumerate(results):
        assert result.status == "done", result
        out = tmp_path / f"out{i}"
        assert sorted(p.name for p in out.iterdir()) == [f"f{n}.txt" for n in range(1, CELLS + 1)]
        for n in range(1, CELLS + 1):
            assert (out / f"f{n}.txt").read_text() == expected(n)
    print(f"{killer.kills} kills; steps per task {[r.steps for r in results]}; cells asked again: {FAILED_CELLS}")


def test_a_task_fails_only_when_no_runtime_starts_and_says_so(doom, data, tmp_path):
    from throwaway import Agent
    from throwaway.durable import get_task, list_tasks

    doom(spawned, times=10**6)
    agent = Agent("no-runtime", model=ScriptedModel([tool_call("execute_python", code="1"), "done"]))
    message = f"could not start the sandbox runtime after {BOOT_TRIES} tries: runtime exited"
    with pytest.raises(SandboxError, match=message):
        agent.run("go", output_dir=tmp_path / "out")
    [task] = list_tasks()
    assert get_task(task.task_id).status == "failed" and message in task.error
