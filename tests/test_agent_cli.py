"""`throwaway run`, `tasks`, `show`, `resume` from the command line."""

from __future__ import annotations

import json
import re

import click
import pytest
from click.testing import CliRunner

from throwaway.cli import main
from throwaway.durable import backend

APP = '''
from throwaway import Agent
from throwaway.testing import ScriptedModel, tool_call

agent = Agent("cli-test", model=ScriptedModel([
    tool_call("execute_python", code="open('/output/hello.txt', 'w').write('hello')\\nprint('wrote it')"),
    "I wrote /output/hello.txt.",
]))
'''


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("THROWAWAY_DATA", str(tmp_path / "data"))
    for key in ("THROWAWAY_MODEL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    yield invoke
    backend.shutdown()  # the commands leave DBOS running for the process's exit to end


@pytest.fixture
def app(tmp_path):
    path = tmp_path / "cli_app.py"
    path.write_text(APP)
    return f"{path}:agent"


def test_run_prints_steps_answer_and_artifacts(cli, app, tmp_path):
    result = cli("run", "--app", app, "--id", "hello-1", "Say hello in a file")
    assert result.exit_code == 0, result.output
    # Each step's time and tokens vary from run to run.
    out = re.sub(r" · [\d.]+ s · [\d,]+ in / [\d,]+ out tokens", "", result.output)
    assert out.startswith("Task hello-1 · model scripted\nPrompt: Say hello in a file\n")
    for expected in (("Step 1:\nStop reason: tool_use\nTool call: execute_python\n"
                      "    open('/output/hello.txt', 'w').write('hello')\n    print('wrote it')\n"),
                     "Tool result: ok\n    stdout | wrote it\n    wrote  | /output/hello.txt\n",
                     "Checkpoint: step 1 saved in ./data/tasks.sqlite (task hello-1, files ",
                     "Step 2:\nStop reason: end_turn\nI wrote /output/hello.txt.\n",
                     "Answer:\nI wrote /output/hello.txt.\n\nTotal steps: 2 · ",
                     "Ended: done\nMaking 1 file(s) available in ./output:\n✓ hello.txt\n"):
        assert expected in out, expected
    assert (tmp_path / "output" / "hello.txt").read_text() == "hello"


def test_tasks_show_and_resume_a_finished_task(cli, app):
    assert "No tasks yet" in cli("tasks").output
    assert cli("run", "--app", app, "--id", "hello-2", "Say hello").exit_code == 0

    listing = cli("tasks").output.splitlines()
    assert listing[0].split() == ["ID", "STATUS", "STEPS", "CREATED", "PROMPT"]
    assert listing[1].split()[:3] == ["hello-2", "done", "2"] and listing[1].endswith("Say hello")

    shown = cli("show", "hello-2").output
    assert "Tool call: execute_python" in shown and "Total steps: 2" in shown and "Status: done" in shown
    data = json.loads(cli("show", "hello", "--json").output)  # a unique prefix will do
    assert data["task_id"] == "hello-2" and data["spec"]["app"] == app
    assert [c["name"] for c in data["checkpoints"]][:3] == ["throwaway.prepare", "throwaway.model", "throwaway.tool"]

    assert "already finished" in cli("resume", "hello-2").output


def test_run_without_a_model_says_how_to_configure_one(cli):
    result = cli("run", "What is 6 * 7?")
    assert result.exit_code == 1
    for needle in ("No model is configured", "--model", "THROWAWAY_MODEL", "export ANTHROPIC_API_KEY=",
                   "export OPENAI_API_KEY=", "openai-compatible:llama3.1@http://localhost:11434/v1"):
        assert needle in result.output
    assert "No tasks yet" in cli("tasks").output  # nothing was started


def test_run_with_a_named_model_but_no_key(cli):
    result = cli("run", "--model", "anthropic:claude-sonnet-5-5", "hi")
    assert result.exit_code == 1 and "needs ANTHROPIC_API_KEY" in result.output


def test_bad_arguments(cli):
    result = cli("run", "--mount", "no-colon", "hi")
    assert result.exit_code == 2 and "HOST:GUEST" in result.output
    assert "no task 'nope'" in cli("show", "nope").output
    assert "no task 'nope'" in cli("resume", "nope").output


def test_package_loading_shows_progress_while_the_cell_runs():
    from throwaway.cli.display import Printer

    lines: list[str] = []
    printer = Printer(echo=lambda text="", **_: lines.append(click.unstyle(text)))
    for stream, text in [("stderr", "Loading numpy, Pil"), ("stderr", "low\nDeprecationWarning: x\n"),
                         ("stdout", "Loaded in the cell\n"), ("stderr", "Loaded numpy, Pillow\n")]:
        printer({"type": "output", "step": 1, "stream": stream, "text": text})
    assert lines == ["    … Loading numpy, Pillow", "    … Loaded numpy, Pillow"]
