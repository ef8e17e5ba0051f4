"""Many tasks, many workers: a queue in the database, heartbeats, a reaper, hand-backs.

Workers are real processes (`throwaway worker`) running real sandboxes; the
model is scripted. Side effects are counted through a writable host folder,
so a step that ran twice shows up twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

APP = '''
import os
from pydantic_ai.messages import ModelRequest, ModelResponse, UserPromptPart
from throwaway import Agent
from throwaway.testing import ScriptedModel, tool_call

STEPS = int(os.environ.get("W_STEPS", "3"))
PAUSE = float(os.environ.get("W_PAUSE", "0.3"))


def turn(messages, info):
    prompt = next(p.content for m in messages if isinstance(m, ModelRequest) for p in m.parts
                  if isinstance(p, UserPromptPart))
    n = sum(isinstance(m, ModelResponse) for m in messages)
    if n < STEPS:
        return tool_call("execute_python", code=(
            f"import time\\n"
            f"open('/count/{prompt}.log', 'a').write('{n}\\\\n')\\n"
            f"open('/output/step{n}.txt', 'w').write('{prompt} step {n}')\\n"
            f"time.sleep({PAUSE})"))
    return f"{prompt} finished"


agent = Agent("workers-test", model=ScriptedModel(turn))
'''


class Fleet:
    """Workers and commands on one database, in a folder of the test's own."""

    def __init__(self, root: Path, database_url: str | None, **env: str) -> None:
        self.root = root
        (root / "count").mkdir()
        (root / "app.py").write_text(APP)
        self.env = {**os.environ, "THROWAWAY_DATA": str(root / "data"), "PYTHONUNBUFFERED": "1",
                    "THROWAWAY_LOG_LEVEL": "WARNING", **env}
        if database_url:
            self.env["THROWAWAY_DATABASE_URL"] = database_url
        self.workers: list[subprocess.Popen] = []

    def cli(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run([sys.executable, "-m", "throwaway.cli", *args], env=self.env, cwd=self.root,
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def submit(self, label: str) -> str:
        return self.cli("submit", "--app", "app.py:agent", "--id", label, "--mount", f"{self.root / 'count'}:/count:rw",
                        "-o", str(self.root / "out" / label), label).strip()

    def start_worker(self, *, concurrency: int = 2, lease: float = 5.0) -> subprocess.Popen:
        worker = subprocess.Popen(
            [sys.executable, "-m", "throwaway.cli", "worker", "--app", "app.py:agent", "-c", str(concurrency),
             "--lease", str(lease)],
            env=self.env, cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.workers.append(worker)
        lines: list[str] = []
        worker.lines = lines  # type: ignore[attr-defined]
        threading.Thread(target=lambda: lines.extend(worker.stdout), daemon=True).start()
        return worker

    def tasks(self) -> dict[str, dict]:
        return {t["task_id"]: t for t in json.loads(self.cli("tasks", "--json", "-n", "500"))}

    def wait_for(self, predicate, timeout: float, what: str) -> float:
        start = time.monotonic()
        while not predicate():
            assert time.monotonic() - start < timeout, f"timed out waiting for {what}: {self.tasks()}"
            time.sleep(0.5)
        return time.monotonic() - start

    def all_done(self, labels: list[str]) -> bool:
        found = self.tasks()
        bad = [found[label] for label in labels if found[label]["status"] in ("failed", "cancelled")]
        assert not bad, bad
        return all(found[label]["status"] == "done" for label in labels)

    def steps_ran(self, label: str) -> Counter:
        log = self.root / "count" / f"{label}.log"
        return Counter(log.read_text().split()) if log.exists() else Counter()

    def check_outputs(self, label: str, steps: int = 3) -> None:
        out = self.root / "out" / label
        assert sorted(p.name for p in out.iterdir()) == [f"step{n}.txt" for n in range(steps)]
        assert (out / "step0.txt").read_text() == f"{label} step 0"

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


@pytest.fixture
def fleet_on(tmp_path):
    made = []

    def make(database_url: str | None, **env: str) -> Fleet:
        fleet = Fleet(tmp_path, database_url, **env)
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.stop()


def test_submit_returns_at_once_and_a_worker_runs_it(fleet_on):
    fleet = fleet_on(None)  # SQLite: workers on one machine
    labels = [fleet.submit(f"t{i}") for i in range(3)]
    assert labels == ["t0", "t1", "t2"]
    listed = fleet.tasks()
    assert [listed[label]["status"] for label in labels] == ["queued"] * 3
    assert sorted(listed[label]["position"] for label in labels) == [1, 2, 3]
    assert "[#1 on throwaway-tasks]" in fleet.cli("tasks")
    fleet.cli("cancel", "t2")
    assert fleet.tasks()["t2"]["status"] == "cancelled"

    worker = fleet.start_worker()
    fleet.wait_for(lambda: fleet.tasks()["t0"]["status"] == "running", 120, "t0 to start")
    running = fleet.tasks()["t0"]
    assert running["worker"] and f"pid {worker.pid}" in running["worker"]
    fleet.wait_for(lambda: fleet.all_done(["t0", "t1"]), 180, "the tasks to finish")
    for label in ("t0", "t1"):
        fleet.check_outputs(label)
        assert fleet.steps_ran(label) == Counter({"0": 1, "1": 1, "2": 1})
    assert fleet.tasks()["t2"]["status"] == "cancelled" and not fleet.steps_ran("t2")
    assert any(line.startswith("finish t0") for line in worker.lines)


def test_the_python_api_submits_and_waits(tmp_path, monkeypatch):
    from throwaway import Agent
    from throwaway.durable import backend
    from throwaway.testing import ScriptedModel, tool_call

    monkeypatch.setenv("THROWAWAY_DATA", str(tmp_path / "data"))
    agent = Agent("submit-api", model=ScriptedModel([tool_call("execute_python", code="1"), "ok"]))
    handle = agent.submit("via python", output_dir=tmp_path / "out")
    assert handle.status() == "queued" and backend._current is None  # submitting started no executor
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.5)


@pytest.mark.slow
def test_a_dead_workers_tasks_finish_elsewhere_and_no_finished_step_runs_again(fleet_on, postgres):
    fleet = fleet_on(postgres.rsplit("/", 1)[0] + "/workers_kill", W_PAUSE="1.5")
    labels = [fleet.submit(f"k{i}") for i in range(6)]
    doomed = fleet.start_worker(concurrency=3)
    fleet.wait_for(lambda: sum(t["status"] == "running" for t in fleet.tasks().values()) >= 2
                   and any(fleet.steps_ran(label) for label in labels), 180, "the doomed worker to hold tasks")
    held = [label for label, t in fleet.tasks().items() if t["status"] == "running"]
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    killed_at = time.monotonic()
    fleet.start_worker(concurrency=3)
    fleet.wait_for(lambda: fleet.all_done(labels), 5 + 30 + 120, "every task to finish on the survivor")
    took = time.monotonic() - killed_at
    assert held
    for label in labels:
        fleet.check_outputs(label)
        ran = fleet.steps_ran(label)
        assert set(ran) == {"0", "1", "2"}
        # Only the step in flight when the worker died may have run twice.
        assert sum(ran.values()) - 3 <= 1, (label, ran)
    print(f"tasks of a killed worker finished elsewhere {took:.1f} s after the kill (lease 5 s)")


@pytest.mark.slow
def test_sigterm_hands_tasks_back_and_none_is_lost(fleet_on, postgres):
    fleet = fleet_on(postgres.rsplit("/", 1)[0] + "/workers_term", W_PAUSE="1.5")
    labels = [fleet.submit(f"s{i}") for i in range(4)]
    stopping = fleet.start_worker(concurrency=2)
    fleet.wait_for(lambda: any(fleet.steps_ran(label) for label in labels), 180, "a task to start")
    os.killpg(stopping.pid, signal.SIGTERM)
    assert stopping.wait(timeout=60) == 0
    assert any("handed back to the queue" in line for line in stopping.lines), stopping.lines
    assert not any(t["status"] == "running" for t in fleet.tasks().values())
    fleet.start_worker(concurrency=2)
    fleet.wait_for(lambda: fleet.all_done(labels), 240, "every task to finish")
    for label in labels:
        fleet.check_outputs(label)
        # A graceful stop lets the step in flight finish: nothing runs twice.
        assert fleet.steps_ran(label) == Counter({"0": 1, "1": 1, "2": 1}), label


@pytest.mark.slow
def test_many_tasks_through_three_workers_and_a_database_restart(fleet_on, pg_cluster):
    fleet = fleet_on(pg_cluster.url("workers_many"), W_PAUSE="0.1")
    labels = [fleet.submit(f"m{i:02d}") for i in range(30)]
    for _ in range(3):
        fleet.start_worker(concurrency=2)
    fleet.wait_for(lambda: sum(t["status"] == "done" for t in fleet.tasks().values()) >= 5, 240, "tasks to finish")
    pg_cluster.restart()  # the database goes away under running workers, and comes back
    fleet.wait_for(lambda: fleet.all_done(labels), 420, "all 30 tasks")
    for label in labels:
        fleet.check_outputs(label)
        assert set(fleet.steps_ran(label)) == {"0", "1", "2"}
    # Snapshots went to the database, where any worker finds them.
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_cluster.url("workers_many").replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM throwaway_blobs")).scalar() > 0
    engine.dispose()


def test_two_resumes_at_once_run_the_task_once(fleet_on):
    fleet = fleet_on(None, W_PAUSE="2")
    first = subprocess.Popen(
        [sys.executable, "-m", "throwaway.cli", "run", "--app", "app.py:agent", "--id", "r1", "--mount",
         f"{fleet.root / 'count'}:/count:rw", "-o", str(fleet.root / "out" / "r1"), "r1"],
        env=fleet.env, cwd=fleet.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    fleet.wait_for(lambda: fleet.steps_ran("r1")["1"] == 1, 180, "step 1 to start")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert fleet.tasks()["r1"]["status"] == "interrupted"
    resumes = [subprocess.Popen([sys.executable, "-m", "throwaway.cli", "resume", "r1"], env=fleet.env,
                                cwd=fleet.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [r.communicate(timeout=240)[0] for r in resumes]
    assert [r.returncode for r in resumes] == [0, 0], outputs
    assert fleet.tasks()["r1"]["status"] == "done"
    fleet.check_outputs("r1")
    # Step 0 finished before the kill and never ran again; step 1 (in flight) ran again once, not twice.
    assert fleet.steps_ran("r1") == Counter({"0": 1, "1": 2, "2": 1})


def test_a_blob_upload_killed_midway_leaves_no_blob(postgres, tmp_path):
    url = postgres.rsplit("/", 1)[0] + "/blobs_kill"
    code = (
        "import os, signal, sys\n"
        "import sqlalchemy as sa\n"
        "from throwaway.durable.backend import engine\n"
        "from throwaway.durable.queue import client\n"
        "from throwaway.store import SqlBlobStore\n"
        f"client({url!r})\n"  # makes the database
        f"store = SqlBlobStore(engine({url!r}))\n"
        "@sa.event.listens_for(store.engine, 'before_cursor_execute')\n"
        "def die(conn, cursor, statement, *args):\n"
        "    if statement.lstrip().upper().startswith('INSERT'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "store.put(b'x' * 5_000_000)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    from throwaway.durable.backend import engine
    from throwaway.store import SqlBlobStore

    store = SqlBlobStore(engine(url))
    digest = __import__("hashlib").sha256(b"x" * 5_000_000).hexdigest()
    assert not store.has(digest)
    assert store.put(b"x" * 5_000_000) == digest and store.get(digest) == b"x" * 5_000_000
    with pytest.raises(KeyError, match="no blob"):
        store.get("0" * 64)
    store.engine.dispose()


def test_prune_removes_old_snapshots_of_finished_tasks_only(tmp_path, monkeypatch):
    from throwaway import Agent
    from throwaway.durable import backend
    from throwaway.durable.prune import prune
    from throwaway.testing import ScriptedModel, tool_call

    monkeypatch.setenv("THROWAWAY_DATA", str(tmp_path / "data"))
    rt = backend.launch(tmp_path / "data")
    try:
        code = "open('/output/a.txt', 'w').write('{}')"
        agent = Agent("prune", model=ScriptedModel(lambda m, i: tool_call("execute_python", code=code.format(len(m)))
                                                   if len(m) < 3 else "done"))
        old = agent.run("old", task_id="old", output_dir=tmp_path / "o1")
        assert old.status == "done"
        before = sum(1 for _ in rt.blobs.root.glob("??/*"))
        assert before >= 2
        assert prune(3600)["blobs_removed"] == 0  # nothing is an hour old yet
        counts = prune(0)
        assert counts["tasks_pruned"] == 1 and counts["blobs_removed"] == before
    finally:
        backend.shutdown()
