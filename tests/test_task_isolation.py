"""One task never sees another's folders: tasks of one Agent, in one process, one after another and at once."""

from __future__ import annotations

import json
import threading

import pytest
from pydantic_ai.messages import ModelRequest, ToolReturnPart

from throwaway import Agent
from throwaway.testing import ScriptedModel, tool_call

# Scripted models only: a real provider call from this module is a bug.
pytestmark = pytest.mark.usefixtures("no_real_models")

LOOK = """
import os, json
seen = {}
for path in ("/data", "/other"):
    try:
        seen[path] = sorted(os.listdir(path))
    except OSError as e:
        seen[path] = type(e).__name__
print(json.dumps(seen))
"""


def _echo_last_value(messages, info):
    """The final answer: the value the last cell returned, as the model would report it."""
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, ToolReturnPart):
                    return part.content["stdout"].strip() or json.dumps(part.content)
    return "{}"


@pytest.fixture
def folders(tmp_path):
    made = {}
    for name in ("alpha", "beta"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{name}-secret.txt").write_text(f"{name} only")
        made[name] = folder
    return made


def _agent(name: str) -> Agent:
    agent = Agent(name, model=ScriptedModel([tool_call("execute_python", code=LOOK), _echo_last_value]))

    @agent.fs.file("/network/current-ip")
    def current_ip() -> str:
        return "203.0.113.7\n"

    return agent


def _seen(result) -> dict:
    return json.loads(result.answer)


def test_tasks_one_after_another_see_only_their_own_mounts(data, folders, tmp_path):
    agent = _agent("isolation-sequential")
    first = agent.run("look", mounts=[f"{folders['alpha']}:/data"], output_dir=tmp_path / "o1")
    second = agent.run("look", output_dir=tmp_path / "o2")
    third = agent.run("look", mounts=[f"{folders['beta']}:/data"], output_dir=tmp_path / "o3")
    assert _seen(first) == {"/data": ["alpha-secret.txt"], "/other": "FileNotFoundError"}
    assert _seen(second) == {"/data": "FileNotFoundError", "/other": "FileNotFoundError"}
    assert _seen(third) == {"/data": ["beta-secret.txt"], "/other": "FileNotFoundError"}
    # The agent's own table is untouched; its resources are still there for every task.
    assert "/data" not in {m.path for m in agent.fs.mounts}
    assert "/network" in {m.path for m in agent.fs.mounts}


def test_tasks_at_once_see_only_their_own_mounts(data, folders, tmp_path):
    agent = _agent("isolation-concurrent")
    plans = {
        "a": [f"{folders['alpha']}:/data"],
        "b": [],
        "c": [f"{folders['beta']}:/data", f"{folders['alpha']}:/other"],
    }
    results, errors = {}, []

    def run(key: str) -> None:
        try:
            results[key] = agent.run("look", mounts=plans[key], output_dir=tmp_path / f"out-{key}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors, errors
    assert _seen(results["a"]) == {"/data": ["alpha-secret.txt"], "/other": "FileNotFoundError"}
    assert _seen(results["b"]) == {"/data": "FileNotFoundError", "/other": "FileNotFoundError"}
    assert _seen(results["c"]) == {"/data": ["beta-secret.txt"], "/other": ["alpha-secret.txt"]}


def test_a_resources_cached_contents_stay_in_their_sandbox():
    """Contents computed for one sandbox's stat never answer another sandbox's open."""
    from throwaway import FileSystem, Sandbox

    fs = FileSystem()
    calls = []

    @fs.file("/r/n")
    def counter() -> str:
        calls.append(1)
        return f"call {len(calls)}"

    with Sandbox(fs=fs) as a, Sandbox(fs=fs.copy()) as b:
        stat = "import os; os.stat('/r/n').st_size"
        assert a.exec(stat).json == len("call 1")  # a's stat computed "call 1" and keeps it briefly
        assert b.exec(stat).json == len("call 2")  # b's stat computed its own
        # a's open gets what a's stat computed (or a fresh value), never b's "call 2".
        assert a.exec("open('/r/n').read()").json in ("call 1", "call 3")
