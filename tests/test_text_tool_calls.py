"""Tool calls written as text, no false "done", and the bounds on every model call.

The scripted turns below are the forms small local models were seen to write
(a 1.5B coder model behind llama.cpp): each is parsed into a real tool call
and run in the real sandbox.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click
import pytest
from pydantic_ai import models as pydantic_ai_models
from pydantic_ai.messages import ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import FunctionModel

from throwaway import Agent
from throwaway.agent import textcalls
from throwaway.agent.loop import CORRECTION, CUT_OFF_CORRECTION, unusable_reply
from throwaway.agent.tools import TOOL_NAMES
from throwaway.cli.display import Printer
from throwaway.durable import backend, checkpoints, get_task
from throwaway.durable import resume as resume_task
from throwaway.durable.tasks import replay
from throwaway.testing import ScriptedModel

# Scripted models only: a real provider call from this module is a bug.
pytestmark = pytest.mark.usefixtures("no_real_models")

CODE = "import csv\ntotal = sum(int(r['amount']) for r in csv.DictReader(open('/data/sales.csv')))\n" \
       "open('/output/total.txt', 'w').write(str(total))\nprint('total', total)\n"

# Each form as a model wrote it: the reply's text, and the form it is read as.
FORMS = {
    "fenced-json": (
        "I will add up the sales.\n```json\n"
        + json.dumps({"name": "execute_python", "arguments": {"code": CODE}}) + "\n```",
        "fenced-json",
    ),
    "fenced-json-triple-quoted-indented": (
        '    ```json\n    {\n      "name": "execute_python",\n      "arguments": {\n        "code": """\n'
        + "".join(f"        {line}\n" for line in CODE.splitlines())
        + '        """\n      }\n    }\n    ```',
        "fenced-json",
    ),
    "tools-wrapper": (
        "<tools>\n" + json.dumps({"name": "execute_python", "arguments": {"code": CODE}}) + "\n</tools>",
        "tagged",
    ),
    "tool_call-wrapper": (
        "<tool_call>\n" + json.dumps({"name": "execute_python", "arguments": {"code": CODE}}) + "\n</tool_call>",
        "tagged",
    ),
    "tool-named-tag": ('<execute_python>{"code": """\n' + CODE + '"""}</execute_python>', "tagged"),
    "fenced-python": ("Let me compute it.\n\n```python\n" + CODE + "```\n\nThis prints the total.", "fenced-python"),
    "bare-json": (json.dumps({"name": "execute_python", "arguments": json.dumps({"code": CODE})}), "json"),
}


@pytest.fixture
def sales(tmp_path):
    folder = tmp_path / "sales"
    folder.mkdir()
    (folder / "sales.csv").write_text("region,amount\nnorth,10\nsouth,25\nnorth,7\n")
    return f"{folder}:/data"


# --- the parser alone ------------------------------------------------------------


@pytest.mark.parametrize("name", FORMS)
def test_each_form_is_read(name):
    text, form = FORMS[name]
    calls, rest = textcalls.parse(text, TOOL_NAMES)
    assert [(c.tool, c.form) for c in calls] == [("execute_python", form)]
    assert calls[0].args["code"].strip() == CODE.strip()
    compile(calls[0].args["code"], "<cell>", "exec")
    assert "execute_python" not in rest and "```" not in rest


def test_several_calls_in_one_wrapper_and_repeats_dropped():
    one = {"name": "help", "arguments": {"query": "bar charts"}}
    two = {"name": "describe", "arguments": {"path": "/output/a.png", "question": "Is it a bar chart?"}}
    text = "<tool_call>\n" + "\n".join(json.dumps(c) for c in (one, two, one, one)) + "\n</tool_call>"
    calls, _ = textcalls.parse(text, TOOL_NAMES)
    assert [(c.tool, c.args) for c in calls] == [("help", one["arguments"]), ("describe", two["arguments"])]


def test_a_docstring_inside_triple_quoted_code_stays_in_it():
    code = 'def f():\n    """Say hi."""\n    return "hi"\n\nprint(f())\n'
    text = '```json\n{"name": "execute_python", "arguments": {"code": """\n' + code + '"""}}\n```'
    calls, _ = textcalls.parse(text, TOOL_NAMES)
    assert [c.args for c in calls] == [{"code": code}]


def test_the_tool_schema_copied_back_is_not_a_call():
    schema = {"type": "function", "function": {"name": "execute_python", "description": "Run Python code.",
              "parameters": {"type": "object", "properties": {"code": {"type": "string"}}}}}
    text = "<tools>\n" + json.dumps(schema) + "\n</tools>"
    assert textcalls.parse(text, TOOL_NAMES)[0] == []
    assert "tool call" in unusable_reply(text, "end_turn")


def test_a_reply_cut_off_at_max_tokens_is_asked_again_to_be_shorter(data, tmp_path):
    seen = []

    def answer(messages, info):
        seen.append(messages[-1].parts[0].content)
        return "42"

    cut = ModelResponse(parts=[TextPart("import csv\nfor row in")], finish_reason="length")
    result = Agent("cut-off", model=ScriptedModel([cut, answer])).run("6 * 7?", output_dir=tmp_path / "out")
    assert result.status == "done" and result.answer == "42"
    assert seen == [CUT_OFF_CORRECTION] and "shorter code" in CUT_OFF_CORRECTION


def test_plain_answers_are_not_calls():
    for text in ("The total is 42.", "Two blocks:\n```python\n1\n```\n```python\n2\n```", '{"total": 42}',
                 "```json\n{\"region\": \"north\", \"total\": 17}\n```"):
        assert textcalls.parse(text, TOOL_NAMES)[0] == [], text


def test_unusable_replies():
    assert unusable_reply("", "end_turn") == "the model gave an empty reply"
    assert "cut off" in unusable_reply("import csv\nfor", "max_tokens")
    broken = '```json\n{"name": "execute_python", "arguments": {"code": "print(1)"\n```'
    assert textcalls.parse(broken, TOOL_NAMES)[0] == []
    assert "tool call" in unusable_reply(broken, "end_turn")
    assert unusable_reply("The total is 42.", "end_turn") is None
    # A code block shown to the user is an answer when text calls are off.
    assert unusable_reply("Here is how:\n```python\nprint(1)\n```", "end_turn") is None


# --- end to end, through the real sandbox ----------------------------------------


@pytest.mark.parametrize("name", ["fenced-json", "fenced-json-triple-quoted-indented", "tools-wrapper",
                                  "tool-named-tag", "fenced-python"])
def test_text_calls_run_in_the_sandbox(data, tmp_path, sales, name):
    text, form = FORMS[name]
    seen = []

    def answer(messages, info):
        seen.append(messages[-1].parts[0].content)
        return "The total is 42."

    printed: list[str] = []
    agent = Agent(f"text-{name}", model=ScriptedModel([text, answer]), text_tool_calls=True)
    result = agent.run("What is the total?", mounts=[sales], output_dir=tmp_path / "out",
                       on_event=Printer(echo=lambda s="", **_: printed.append(click.unstyle(s)), live=False))

    assert result.status == "done" and result.steps == 2 and result.answer == "The total is 42."
    assert (tmp_path / "out" / "total.txt").read_text() == "42"
    assert seen[0]["success"] and seen[0]["stdout"] == "total 42\n"
    model_steps = [c["output"] for c in checkpoints(result.task_id) if c["name"] == "throwaway.model"]
    assert model_steps[0]["text_calls"]["form"] == form and model_steps[0]["text_calls"]["text"] == text
    assert model_steps[0]["stop_reason"] == "tool_use" and "text_calls" not in model_steps[1]
    call = model_steps[0]["response"]["parts"][-1]
    assert call["part_kind"] == "tool-call" and call["tool_call_id"] == "text_1_1"
    out = "\n".join(printed)
    assert f"Tool call parsed from text ({form})" in out and "Tool call: execute_python" in out
    assert "Answer:\nThe total is 42." in out and "Ended: done" in out
    # `throwaway show` reads the same back from the checkpoints.
    shown = [e for e in replay(get_task(result.task_id)) if e["type"] == "model"]
    assert shown[0]["text_calls"]["form"] == form and shown[0]["tool_calls"][0]["tool"] == "execute_python"


def test_text_calls_are_off_by_default_for_other_models(data, tmp_path):
    shown = "You can run this yourself:\n```python\nprint(6 * 7)\n```"
    result = Agent("text-off", model=ScriptedModel([shown])).run("How?", output_dir=tmp_path / "out")
    assert result.status == "done" and result.answer == shown.strip()
    agent = Agent("text-auto")
    assert agent.reads_text_tool_calls("openai-compatible:qwen@http://127.0.0.1:1/v1")
    assert not agent.reads_text_tool_calls("anthropic:claude-sonnet-5-5")
    assert not agent.reads_text_tool_calls("openai-compatible:qwen", override=False)


# --- no false "done" ---------------------------------------------------------------


def test_a_corrective_message_then_the_answer(data, tmp_path):
    seen = []
    broken = '<tool_call>\n{"name": "execute_python", "arguments": {"code": "print(1)"\n</tool_call>'

    def after(reply):
        def turn(messages, info):
            seen.append(messages[-1].parts[0].content)
            return reply
        return turn

    printed: list[str] = []
    agent = Agent("correct-me", model=ScriptedModel(["", after(broken), after("The answer is 42.")]),
                  text_tool_calls=True)
    result = agent.run("6 * 7?", output_dir=tmp_path / "out",
                       on_event=Printer(echo=lambda s="", **_: printed.append(click.unstyle(s)), live=False))
    assert result.status == "done" and result.answer == "The answer is 42." and result.steps == 3
    assert seen == [CORRECTION, CORRECTION]
    assert "call the tool" in CORRECTION.lower() and "plain words" in CORRECTION
    out = "\n".join(printed)
    assert "No usable reply (the model gave an empty reply)" in out
    assert "No usable reply (the reply looks like a tool call" in out
    assert sum(e["type"] == "correction" for e in replay(get_task(result.task_id))) == 2


def test_replies_that_stay_unusable_end_as_failed(data, tmp_path, monkeypatch):
    printed: list[str] = []
    agent = Agent("never-answers", model=ScriptedModel(["", "  ", ""]))
    result = agent.run("6 * 7?", output_dir=tmp_path / "out",
                       on_event=Printer(echo=lambda s="", **_: printed.append(click.unstyle(s)), live=False))
    assert result.status == "failed" and result.steps == 3
    assert result.reason == "the model gave an empty reply (3 times in a row)"
    task = get_task(result.task_id)
    assert task.status == "failed" and task.output["reason"] == result.reason and task.error is None
    assert "Ended: failed: the model gave an empty reply" in "\n".join(printed)
    # It ran to its end: resuming returns it as it is rather than asking again.
    assert resume_task(result.task_id).status == "failed"

    from click.testing import CliRunner

    from throwaway.cli import main

    monkeypatch.setenv("THROWAWAY_DATA", str(data.data_dir))
    runner = CliRunner()
    listing = runner.invoke(main, ["tasks"], catch_exceptions=False).output
    assert any(line.split()[:3] == [result.task_id, "failed", "3"] for line in listing.splitlines())
    shown = runner.invoke(main, ["show", result.task_id], catch_exceptions=False).output
    assert "Status: failed" in shown and "Reason: the model gave an empty reply (3 times in a row)" in shown
    assert "Carry on with" not in shown
    assert "already finished" in runner.invoke(main, ["resume", result.task_id], catch_exceptions=False).output


# --- bounds ----------------------------------------------------------------------------


def test_max_tokens_and_timeout_are_sent(data, tmp_path):
    settings = []

    def script(messages, info):
        settings.append(dict(info.model_settings or {}))
        return "ok"

    Agent("bounded", model=ScriptedModel(script)).run("hi", output_dir=tmp_path / "out")
    agent = Agent("bounded-less", model=ScriptedModel(script), max_tokens=256, model_timeout=20)
    agent.run("hi", output_dir=tmp_path / "out")
    agent.run("hi", output_dir=tmp_path / "out", max_tokens=100)
    assert [s["max_tokens"] for s in settings] == [4096, 256, 100]
    assert settings[0]["request_timeout"] == 300 and settings[1]["request_timeout"] == 20


class _OpenAICompatible(BaseHTTPRequestHandler):
    """A loopback Chat Completions server whose model writes its tool call as text, then answers."""

    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        first = len([m for m in body["messages"] if m["role"] == "assistant"]) == 0
        text = FORMS["fenced-json-triple-quoted-indented"][0] if first else "The total is 42."
        reply = {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 321, "completion_tokens": 54, "total_tokens": 375},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_an_openai_compatible_server_gets_max_tokens_and_its_text_calls_run(data, tmp_path, sales, monkeypatch):
    monkeypatch.setattr(pydantic_ai_models, "ALLOW_MODEL_REQUESTS", True)  # to our own loopback server only
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAICompatible)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _OpenAICompatible.requests = []
    try:
        model = f"openai-compatible:tiny-coder@http://127.0.0.1:{server.server_port}/v1"
        result = Agent("loopback", max_tokens=512).run("What is the total?", model=model, mounts=[sales],
                                                       output_dir=tmp_path / "out")
    finally:
        server.shutdown()
    assert result.status == "done" and result.answer == "The total is 42."
    assert (tmp_path / "out" / "total.txt").read_text() == "42"
    sent = _OpenAICompatible.requests
    assert len(sent) == 2 and all(r.get("max_tokens", r.get("max_completion_tokens")) == 512 for r in sent)
    # The parsed call went back to the server as a real tool call, with its result.
    assert sent[1]["messages"][-2]["tool_calls"][0]["function"]["name"] == "execute_python"
    assert sent[1]["messages"][-1]["role"] == "tool" and "total 42" in sent[1]["messages"][-1]["content"]
    usage = [c["output"]["usage"] for c in checkpoints(result.task_id) if c["name"] == "throwaway.model"]
    assert usage[0] == {"input_tokens": 321, "output_tokens": 54}


def test_a_runaway_call_fails_the_step_and_the_task_resumes(data, tmp_path):
    async def runaway(messages, info):
        await asyncio.sleep(30)
        return ModelResponse(parts=[TextPart("too late")])

    agent = Agent("runaway", model=FunctionModel(runaway, model_name="slow"), model_timeout=1)
    with pytest.raises(Exception, match="no complete reply within 1 s"):
        agent.run("hi", task_id="runaway-1", output_dir=tmp_path / "out")
    task = get_task("runaway-1")
    assert task.status == "failed" and "ModelTookTooLong" in task.error and "resume" in task.error

    # The same agent, now with a model that answers: the task carries on from the failed step.
    def script(messages, info):
        assert isinstance(messages[0].parts[0], UserPromptPart)
        return "hello"

    Agent("runaway", model=ScriptedModel(script), model_timeout=1)
    result = resume_task("runaway-1")
    assert result.status == "done" and result.answer == "hello"


# --- the command line ------------------------------------------------------------------

APP = '''
from throwaway import Agent
from throwaway.testing import ScriptedModel

agent = Agent("cli-bounds", model=ScriptedModel(["<tools>{broken</tools>", "", "<execute_python>"]))
'''


def test_run_takes_the_bounds_and_text_call_flags_and_says_how_it_ended(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from throwaway.cli import main

    (tmp_path / "bounds_app.py").write_text(APP)
    monkeypatch.setenv("THROWAWAY_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    try:
        result = runner.invoke(main, ["run", "--app", "bounds_app.py:agent", "--id", "bounds-1", "--max-tokens", "77",
                                      "--model-timeout", "9", "--no-text-tool-calls", "hi"], catch_exceptions=False)
        assert result.exit_code == 3, result.output
        assert result.output.count("No usable reply") == 2
        assert "Ended: failed: the reply looks like a tool call written as text that could not be read" in result.output
        shown = json.loads(runner.invoke(main, ["show", "--json", "bounds-1"], catch_exceptions=False).output)
    finally:
        backend.shutdown()
    assert shown["status"] == "failed" and shown["result"]["reason"].endswith("(3 times in a row)")
    spec = shown["spec"]
    assert (spec["max_tokens"], spec["model_timeout"], spec["text_tool_calls"]) == (77, 9, False)


def test_a_live_line_counts_the_seconds_while_the_model_thinks(capsys):
    import time

    printed: list[str] = []
    printer = Printer(echo=lambda s="", **_: printed.append(s), live=True)
    printer({"type": "thinking", "step": 3})
    seen = ""
    deadline = time.monotonic() + 10
    while "thinking… 1 s" not in seen and time.monotonic() < deadline:
        time.sleep(0.2)
        seen += capsys.readouterr().err
    printer({"type": "model", "step": 3, "stop_reason": "end_turn", "text": "hi", "tool_calls": [],
             "seconds": 1.2, "usage": {"input_tokens": 1200, "output_tokens": 34}})
    seen += capsys.readouterr().err
    assert "\rStep 3: the model is thinking… 1 s" in seen and seen.endswith("\r\033[K")  # wiped when it answered
    assert click.unstyle(printed[2]) == "Stop reason: end_turn · 1.2 s · 1,200 in / 34 out tokens"
