"""`throwaway eval`: the built-in tasks run against scripted models, as real tool calls and as text.

The scripted turns are data (tests/cassettes/eval/turns.json). For the text
forms each tool call is written out the way small local models write it, so
every task passes only if the text is read back into the right call.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from throwaway.cli import main
from throwaway.evals import TASKS, format_table, run_eval
from throwaway.testing import ScriptedModel, register_model, tool_call

# Scripted models only: a real provider call from this module is a bug.
pytestmark = pytest.mark.usefixtures("no_real_models")

TURNS = json.loads((Path(__file__).parent / "cassettes" / "eval" / "turns.json").read_text())["turns"]


def _fenced_json(tool, args):
    return "I'll do that.\n```json\n" + json.dumps({"name": tool, "arguments": args}, indent=2) + "\n```"


def _triple_quoted(tool, args):
    # The code as a Python triple-quoted string inside the "JSON", the whole block indented.
    code = "".join(f"        {line}\n" for line in args["code"].splitlines())
    body = f'{{\n  "name": "{tool}",\n  "arguments": {{\n    "code": """\n{code}    """\n  }}\n}}'
    return "```json\n" + "".join(f"    {line}\n" for line in body.splitlines()) + "```"


def _tools_wrapper(tool, args):
    return "<tools>\n" + json.dumps({"name": tool, "arguments": args}) + "\n</tools>"


def _tool_tag(tool, args):
    return f'<{tool}>{{"code": """\n{args["code"]}"""}}</{tool}>'


def _fenced_python(tool, args):
    return "Let me run this.\n\n```python\n" + args["code"] + "```\n"


FORMS = {"fenced-json": _fenced_json, "triple-quoted": _triple_quoted, "tools-wrapper": _tools_wrapper,
         "tool-tag": _tool_tag, "fenced-python": _fenced_python}


def scripted(form: str | None):
    """A function of the task's name giving a model that plays its turns, as tool calls or text in `form`."""
    def model_for(task: str) -> ScriptedModel:
        script = []
        for turn in TURNS[task]:
            if "text" in turn:
                script.append(turn["text"])
            elif form is None:
                script.append(tool_call(turn["tool"], **turn["args"]))
            else:
                script.append(FORMS[form](turn["tool"], turn["args"]))
        return ScriptedModel(script, name=f"scripted-{form or 'tools'}")
    return model_for


def test_the_suite_has_the_tasks_the_issue_asks_for():
    assert [t.name for t in TASKS] == ["ip-picture", "csv-chart", "zip-inspect", "json-api", "skill", "big-file",
                                       "retry", "no-code"]
    assert set(TURNS) == {t.name for t in TASKS}


def test_every_task_passes_with_real_tool_calls(data, capsys):
    results = run_eval(scripted(None))
    table = format_table(results)
    with capsys.disabled():
        print("\n" + table)
    assert [r.task for r in results if not r.ok] == [], table
    assert all(r.status == "done" for r in results)
    by_task = {r.task: r for r in results}
    assert by_task["no-code"].steps == 1 and by_task["retry"].steps == 3
    assert all(r.input_tokens > 0 and r.output_tokens > 0 for r in results)
    assert table.splitlines()[0].split()[:4] == ["TASK", "OK", "STATUS", "STEPS"]
    assert table.splitlines()[-1].startswith("8/8 passed")


@pytest.mark.slow
@pytest.mark.parametrize("form", list(FORMS))
def test_every_task_passes_with_calls_written_as_text(data, form, capsys):
    results = run_eval(scripted(form), text_tool_calls=True)
    table = format_table(results)
    with capsys.disabled():
        print(f"\n[{form}]\n" + table)
    assert [r.task for r in results if not r.ok] == [], table


def test_a_wrong_answer_fails_its_check_and_text_left_unread_fails_the_task(data):
    def wrong(task):
        return ScriptedModel(["The capital of France is Lyon."])

    (result,) = run_eval(wrong, tasks=["no-code"])
    assert not result.ok and result.status == "done" and result.why == "the answer does not say Paris"

    # Text tool calls off: a call written out is no answer; a model that only writes those fails the
    # task rather than passing it as done.
    code = TURNS["retry"][1]["args"]["code"]

    def writes_calls_only(task):
        return ScriptedModel(lambda messages, info: _tools_wrapper("execute_python", {"code": code}))

    (result,) = run_eval(writes_calls_only, tasks=["retry"], text_tool_calls=False)
    assert not result.ok and result.status == "failed" and "tool call written as text" in result.why
    assert result.steps == 3  # the reply, then two corrective messages


def test_the_eval_command(data, tmp_path, monkeypatch):
    register_model("scripted:eval-no-code", scripted(None)("no-code"))
    monkeypatch.setenv("THROWAWAY_DATA", str(data.data_dir))
    runner = CliRunner()
    result = runner.invoke(main, ["eval", "--model", "scripted:eval-no-code", "--task", "no-code"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "no-code" in result.output and "1/1 passed" in result.output
    bad = runner.invoke(main, ["eval", "--model", "scripted:eval-no-code", "--task", "nope"])
    assert bad.exit_code != 0 and "no eval task 'nope'" in bad.output
