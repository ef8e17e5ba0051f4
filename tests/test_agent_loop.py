"""The agent loop end to end: a scripted model driving the real sandbox, as a durable task."""

from __future__ import annotations

import json
import sqlite3

import pytest

from throwaway import Agent
from throwaway.cli.display import Printer
from throwaway.durable import checkpoints, get_task, list_tasks
from throwaway.durable.tasks import replay
from throwaway.testing import ScriptedModel, ScriptExhausted, tool_call

from .pictures import MAKE_PICTURE, png_size

# Scripted models only: a real provider call from this module is a bug.
pytestmark = pytest.mark.usefixtures("no_real_models")


def test_seed_demo(data, tmp_path):
    looked_at = []

    def describe(question, file):
        looked_at.append((question, file.media_type, png_size(file.data)))
        return "Blue bars on white, one for each octet of 203.0.113.7."

    model = ScriptedModel([
        tool_call("execute_python", code=(
            "# Read the current IP address\n"
            "with open('/network/current-ip', 'r') as f:\n"
            "    ip_address = f.read().strip()\n"
            "print(f'Current IP Address: {ip_address}')\n")),
        tool_call("execute_python", code=MAKE_PICTURE),
        tool_call("describe", path="/output/ip_address.png", question="Does the picture show the IP address?"),
        "I made a picture of your IP address, 203.0.113.7: /output/ip_address.png",
    ], describe=describe)
    agent = Agent("seed-demo", model=model)

    @agent.fs.file("/network/current-ip", description="this machine's public IP")
    async def current_ip() -> str:
        return "203.0.113.7\n"

    printed: list[str] = []
    result = agent.run("Figure out the current ip address and make me a picture of it.",
                       output_dir=tmp_path / "output", on_event=Printer(echo=lambda s="", **_: printed.append(s)))

    assert result.status == "done" and result.steps == 4
    assert result.answer.endswith("/output/ip_address.png")
    assert [p.name for p in result.artifacts] == ["ip_address.png"]
    assert png_size((tmp_path / "output" / "ip_address.png").read_bytes()) == (64, 32)
    assert looked_at == [("Does the picture show the IP address?", "image/png", (64, 32))]

    text = "\n".join(printed)
    for expected in ("Prompt: Figure out the current ip address", "Step 1:", "Stop reason: tool_use",
                     "Tool call: execute_python", "    with open('/network/current-ip', 'r') as f:",
                     "Tool result: ok", "stdout | Current IP Address: 203.0.113.7",
                     "wrote  | /output/ip_address.png", "Checkpoint: step 2 saved in",
                     'Tool call: describe path="/output/ip_address.png"', "Step 4:", "Stop reason: end_turn",
                     "Total steps: 4", "Making 1 file(s) available in", "✓ ip_address.png"):
        assert expected in text, expected

    # Checkpoints hold JSON and snapshot hashes; the picture itself is in the blob store.
    db = sqlite3.connect(data.data_dir / "tasks.sqlite")
    rows = db.execute("SELECT function_name, output FROM operation_outputs WHERE workflow_uuid=? "
                      "ORDER BY function_id", (result.task_id,)).fetchall()
    db.close()
    assert [name for name, _ in rows] == ["throwaway.prepare"] + ["throwaway.model", "throwaway.tool"] * 3 + [
        "throwaway.model", "throwaway.finish"]
    outputs = [json.loads(output) for _, output in rows]
    tool_outputs = [o for (name, _), o in zip(rows, outputs) if name == "throwaway.tool"]
    assert tool_outputs[1]["files"] == ["/output/ip_address.png"]
    snapshot = tool_outputs[1]["snapshot"]
    assert len(snapshot) == 64 and data.blobs.has(snapshot)
    assert tool_outputs[2]["snapshot"] == snapshot  # describe changed no files
    assert all(len(output) < 20_000 for _, output in rows)


def test_tool_results_carry_output_value_error_and_files(data, tmp_path):
    seen = []

    def script(messages, info):
        if len(messages) > 1:
            seen.append(messages[-1].parts[0].content)
        turns = [
            tool_call("execute_python", code="import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7"),
            tool_call("execute_python", code="open('/output/a.txt', 'w').write('a')\n1 / 0"),
            tool_call("execute_python", code="x = 1"),
            "done",
        ]
        return turns[len(seen)]

    result = Agent("results", model=ScriptedModel(script)).run("go", output_dir=tmp_path / "out")

    assert result.status == "done"
    first, second, third = seen
    assert first == {"success": True, "stdout": "out\n", "stderr": "err\n", "value": "42"}
    assert second["success"] is False and second["files_written"] == ["/output/a.txt"]
    assert second["error"]["type"] == "ZeroDivisionError"
    assert "1 / 0" in second["error"]["traceback"] or "line 2" in second["error"]["traceback"]
    assert third == {"success": True, "stdout": "", "stderr": ""}
    assert (tmp_path / "out" / "a.txt").read_text() == "a"


def test_help_and_skills(data, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "charts.md").write_text("# Charts\n\n## Bar charts\n\nCall plt.bar, then plt.savefig('/output/x.png').\n")
    skills = tmp_path / "skills" / "invoice"
    skills.mkdir(parents=True)
    (skills / "SKILL.md").write_text("---\nname: invoice\ndescription: Make invoices as PDF\n---\nUse reportlab.\n")
    seen = []

    def script(messages, info):
        if len(messages) == 1:
            seen.append(messages[0].instructions)
            return tool_call("help", query="how do I make a bar chart")
        if len(messages) == 3:
            seen.append(messages[-1].parts[0].content)
            return tool_call("execute_python", code=(
                "print(open('/skills/invoice/SKILL.md').read())\n"
                "try:\n    open('/docs/new.md', 'w')\nexcept OSError as e:\n    print('read-only:', type(e).__name__)"))
        seen.append(messages[-1].parts[0].content)
        return "ok"

    result = Agent("helpful", model=ScriptedModel(script), docs=docs, skills=tmp_path / "skills").run(
        "chart please", output_dir=tmp_path / "out")

    assert result.status == "done"
    prompt, help_answer, cell = seen
    assert "- /docs/charts.md" in prompt and "- invoice: Make invoices as PDF (/skills/invoice/SKILL.md)" in prompt
    assert help_answer.startswith("From /docs/charts.md > Bar charts:") and "plt.bar" in help_answer
    assert "name: invoice" in cell["stdout"] and "read-only:" in cell["stdout"]


def test_host_mounts(data, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "numbers.csv").write_text("1\n2\n3\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    model = ScriptedModel([
        tool_call("execute_python", code=(
            "total = sum(int(line) for line in open('/data/numbers.csv'))\n"
            "open('/shared/total.txt', 'w').write(str(total))\n"
            "total")),
        "6",
    ])
    result = Agent("mounts", model=model).run(
        "add them up", mounts=[f"{inbox}:/data", f"{shared}:/shared:rw"], output_dir=tmp_path / "out")
    assert result.answer == "6"
    assert (shared / "total.txt").read_text() == "6"
    task = get_task(result.task_id)
    assert task.spec["mounts"] == [{"host": str(inbox), "guest": "/data", "writable": False},
                                   {"host": str(shared), "guest": "/shared", "writable": True}]


def test_max_steps(data, tmp_path):
    model = ScriptedModel(lambda messages, info: tool_call("execute_python", code="1"))
    result = Agent("endless", model=model).run("loop forever", max_steps=3, output_dir=tmp_path / "out")
    assert result.status == "max_steps" and result.steps == 3
    assert list_tasks()[0].status == "max_steps"


def test_a_script_that_runs_out_fails_the_task_loudly(data, tmp_path):
    agent = Agent("short", model=ScriptedModel([tool_call("execute_python", code="1")]))
    with pytest.raises(ScriptExhausted, match="asked for turn 2"):
        agent.run("go", task_id="short-1", output_dir=tmp_path / "out")
    task = get_task("short-1")
    assert task.status == "failed" and "ScriptExhausted" in task.error


def test_show_replays_the_live_events(data, tmp_path):
    live = []
    model = ScriptedModel([tool_call("execute_python", code="print('hi')"), "bye"])
    result = Agent("replayable", model=model).run("say hi", output_dir=tmp_path / "out", on_event=live.append)
    recorded = replay(get_task(result.task_id))

    def essentials(events):
        keep = ("type", "step", "stop_reason", "text", "tool_calls", "content", "snapshot")
        return [{k: e.get(k) for k in keep} for e in events if e["type"] in ("model", "tool", "checkpoint")]

    assert essentials(recorded) == essentials(live)
    assert [c["name"] for c in checkpoints(result.task_id)] == [
        "throwaway.prepare", "throwaway.model", "throwaway.tool", "throwaway.model", "throwaway.finish"]


def test_a_failed_task_resumes_as_a_fork_from_the_failed_step(data, tmp_path):
    from throwaway.durable import resume

    calls = []

    def flaky(messages, info):
        calls.append(len(messages))
        if len(calls) == 1:
            raise RuntimeError("the provider is down")
        return "recovered"

    model = ScriptedModel([tool_call("execute_python", code="open('/output/kept.txt', 'w').write('kept')"), flaky])
    agent = Agent("flaky", model=model)
    with pytest.raises(RuntimeError, match="provider is down"):
        agent.run("go", task_id="flaky-1", output_dir=tmp_path / "out")
    assert get_task("flaky-1").status == "failed"

    events = []
    result = resume("flaky-1", on_event=events.append)

    assert result.status == "done" and result.answer == "recovered"
    assert result.task_id != "flaky-1" and get_task(result.task_id).forked_from == "flaky-1"
    assert calls == [3, 3]  # the failed call again, with the same conversation; nothing before it
    models = [e for e in events if e["type"] == "model"]
    assert [(e["step"], e["replayed"]) for e in models] == [(1, True), (2, False)]
    assert (tmp_path / "out" / "kept.txt").read_text() == "kept"


def test_the_loop_runs_without_a_database(tmp_path):
    """The same loop, with LocalSteps: no DBOS, no checkpoints, the same answer and files."""
    import sys

    from throwaway import FileSystem
    from throwaway.agent import Task, run_local
    from throwaway.agent.library import Library
    from throwaway.durable import backend as durable_backend

    fs = FileSystem()

    @fs.file("/network/current-ip")
    def current_ip() -> str:
        return "203.0.113.7\n"

    model = ScriptedModel([tool_call("execute_python", code=MAKE_PICTURE), "Saved /output/ip_address.png."])
    task = Task(task_id="local-1", prompt="picture my IP", model=model, describe_model=model, fs=fs,
                library=Library(None, None), max_steps=5, cell_timeout=30, output_dir=str(tmp_path / "out"))
    seen = []
    from throwaway.agent import events

    with events.listen("local-1", seen.append):
        result = run_local(task)
    assert result["status"] == "done" and result["steps"] == 2
    assert result["answer"] == "Saved /output/ip_address.png."
    assert png_size((tmp_path / "out" / "ip_address.png").read_bytes()) == (64, 32)
    seen = [e for e in seen if e["type"] not in ("output", "thinking")]
    assert [e["type"] for e in seen] == ["task", "model", "tool", "checkpoint", "model", "done"]
    assert seen[3]["database"] == "memory" and result["snapshot"] is None
    assert durable_backend._current is None  # no database was started for it
    assert "dbos" in sys.modules  # (imported by this test module, but never launched)
