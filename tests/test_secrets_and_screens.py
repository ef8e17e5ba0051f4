"""Secrets and screens: a model's key goes only to its own provider; guest text cannot drive the terminal;
checkpoints are JSON and never unpickled; long errors are clipped before prompts and checkpoints."""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import sqlite3

import pytest
from click.testing import CliRunner
from dbos import DBOS
from pydantic_ai.direct import model_request_sync
from pydantic_ai.messages import ModelRequest, UserPromptPart

from throwaway.agent.clipping import clip
from throwaway.agent.library import Library
from throwaway.agent.models import COMPATIBLE_KEY, resolve_model
from throwaway.agent.tools import ToolContext, run_tool
from throwaway.cli import main
from throwaway.cli.terminal import plain
from throwaway.durable import backend
from throwaway.durable.serialization import (
    MAX_ERROR_CHARS,
    CheckpointNotJson,
    JsonSerializer,
    RecordedError,
)

from .model_server import ModelServer

CANARY = "sk-canary-for-openai-only"


def ask(model_name: str) -> None:
    model_request_sync(resolve_model(model_name), [ModelRequest(parts=[UserPromptPart("hi")])])


@pytest.fixture
def server():
    with ModelServer() as s:
        yield s


@pytest.fixture
def clean_env(monkeypatch):
    for key in ("THROWAWAY_MODEL", "OPENAI_BASE_URL", COMPATIBLE_KEY):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-canary")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-canary")


# --- a key goes only where it belongs ----------------------------------------------------------


def test_url_in_the_model_name_never_gets_openai_api_key(server, clean_env):
    ask(server.model())
    headers = {k.lower(): v for k, v in server.model_calls()[-1]["headers"].items()}
    assert headers["authorization"] == "Bearer not-needed"
    assert "openai-organization" not in headers and "openai-project" not in headers
    assert "canary" not in json.dumps(server.requests)


def test_the_compatible_key_variable_goes_to_any_compatible_server(server, clean_env, monkeypatch):
    monkeypatch.setenv(COMPATIBLE_KEY, "local-key")
    ask(server.model())
    assert server.model_calls()[-1]["headers"]["authorization"] == "Bearer local-key"
    assert CANARY not in json.dumps(server.requests)


def test_openai_api_key_goes_with_openai_base_url(server, clean_env, monkeypatch):
    # Set together, OPENAI_BASE_URL and OPENAI_API_KEY name one server: the key is for it.
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    ask("openai-compatible:scripted")
    assert server.model_calls()[-1]["headers"]["authorization"] == f"Bearer {CANARY}"


# --- guest text and the terminal ---------------------------------------------------------------

HOSTILE = "\x1b]0;title\x07\x1b[2J"
HOSTILE_CODE = (
    "print('\\x1b]0;title\\x07\\x1b[2Jcleared\\rTool result: ok (forged)\\x1b]52;c;ZXZpbA==\\x07')\n"
    "import sys; sys.stderr.write('\\x9b2J\\x9d0;c1\\x9c\\u202eevil\\x08\\x7f\\n')\n"
    "raise ValueError('\\x1b]0;title\\x07\\x1b[2Jboom')\n"
)


def only_styles(text: str) -> str:
    """`text` without the colour codes click.style adds (SGR); what remains must have no escape at all."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def assert_no_controls(text: str) -> None:
    bare = only_styles(text)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", bare), repr(bare[-2000:])


@pytest.mark.parametrize("text, shown", [
    (HOSTILE + "hello", "hello"),
    ("a\r\nb\rc", "a\nbc"),  # CRLF stays a line break; a bare CR cannot rewrite the line
    ("x\x1b]52;c;ZXZpbA==\x1b\\y", "xy"),  # OSC 52 (clipboard) with ST
    ("\x9b2Jz\x9d0;t\x9cw", "zw"),  # the 8-bit C1 forms
    ("\x1bP1$r\x1b\\after", "after"),  # DCS
    ("ok\u202eevil", "okevil"),  # right-to-left override
    ("bell\x07 bs\x08 del\x7f nul\x00", "bell bs del nul"),
    ("un \x1b]0;never ends\nnext line", "un \nnext line"),
    ("tabs\tand\nnewlines stay; ünïcødé ✓", "tabs\tand\nnewlines stay; ünïcødé ✓"),
])
def test_plain_takes_out_escape_sequences_and_controls(text, shown):
    assert plain(text) == shown


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("THROWAWAY_DATA", str(tmp_path / "data"))
    for key in ("THROWAWAY_MODEL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):
        # color=True: click keeps escape sequences, as it does on a real terminal.
        return runner.invoke(main, list(args), catch_exceptions=False, color=True)

    yield invoke
    backend.shutdown()


@pytest.mark.slow
def test_guest_escape_sequences_never_reach_run_or_show(cli):
    with ModelServer(code=HOSTILE_CODE, answer=f"All done{HOSTILE}, really.") as server:
        ran = cli("run", "--model", server.model(), "--id", "screen-1", "--app", "throwaway.demo:agent",
                  f"Print something{HOSTILE}")
    shown = cli("show", "screen-1")
    for result in (ran, shown):
        out = result.output
        assert "cleared" in out and "Tool result: ok (forged)" in out and "boom" in out  # the text stays
        assert "evil" in out and "All done, really." in out
        assert_no_controls(out)
    assert ran.exit_code == 0, ran.output
    listed = cli("tasks").output  # the prompt, as whoever submitted it wrote it
    assert "Print something" in listed
    assert_no_controls(listed)


def test_exec_output_has_no_escape_sequences(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The last value's repr, written by the guest: raw escapes, not the escaped ones a str's repr has.
    value = "class R:\n    def __repr__(self): return '\\x1b]0;value\\x07\\x1b[2Jthe value'\nR()\n"
    result = CliRunner().invoke(main, ["exec", HOSTILE_CODE.replace("raise ValueError", "ValueError") + value],
                                color=True)
    assert result.exit_code == 0, result.output
    assert "cleared" in result.output and "evil" in result.output and "the value" in result.output
    assert_no_controls(result.output)
    failed = CliRunner().invoke(main, ["exec", HOSTILE_CODE], color=True)
    assert failed.exit_code == 1 and "boom" in failed.output
    assert_no_controls(failed.output)


# --- checkpoints are JSON, never unpickled ---------------------------------------------------


class Boom:
    """Unpickling this makes a folder: the proof that a row was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def launched(tmp_path):
    rt = backend.launch(tmp_path / "data")
    yield rt
    backend.shutdown()


@DBOS.step(name="test.first_step")
def first_step() -> dict:
    return {"n": 1}


@DBOS.step(name="test.second_step")
def second_step(n: int) -> dict:
    return {"n": n + 1}


@DBOS.workflow(name="test.two_steps")
def two_steps() -> dict:
    return second_step(first_step()["n"])


@DBOS.step(name="test.failing_step")
def failing_step() -> None:
    raise RuntimeError("B" * 100_000)


@DBOS.workflow(name="test.failing")
def failing() -> None:
    failing_step()


def test_a_pickled_checkpoint_is_refused_never_unpickled(launched, tmp_path):
    from dbos import SetWorkflowID

    marker = tmp_path / "unpickled"
    with SetWorkflowID("pickled-1"):
        assert two_steps() == {"n": 2}
    db = sqlite3.connect(launched.data_dir / "tasks.sqlite")
    crafted = base64.b64encode(pickle.dumps(Boom(str(marker)))).decode()
    # As DBOS's own pickle serializer would have written it, and as our old serializer did.
    db.execute("UPDATE operation_outputs SET output=?, serialization='py_pickle' "
               "WHERE workflow_uuid='pickled-1' AND function_name='test.first_step'", (crafted,))
    db.commit()

    steps = DBOS.list_workflow_steps("pickled-1")  # what `throwaway show` reads
    assert steps[0]["output"] == crafted  # left as text, with a warning that says why
    assert not marker.exists()

    forked = DBOS.fork_workflow("pickled-1", 2)  # replays the first step from its checkpoint
    with pytest.raises(Exception, match="pickled.*never unpickles"):
        forked.get_result()
    assert not marker.exists()

    s = JsonSerializer()
    for row in ("!pickle:" + crafted, crafted):
        with pytest.raises(CheckpointNotJson, match="never unpickles"):
            s.deserialize(row)
    assert not marker.exists()
    db.close()


def test_a_pickled_task_spec_is_left_out(launched, tmp_path):
    from dbos import SetWorkflowID

    from throwaway.durable import get_task

    marker = tmp_path / "unpickled"
    with SetWorkflowID("pickled-2"):
        two_steps()
    db = sqlite3.connect(launched.data_dir / "tasks.sqlite")
    crafted = base64.b64encode(pickle.dumps({"args": [Boom(str(marker))], "kwargs": {}})).decode()
    db.execute("UPDATE workflow_status SET inputs=?, serialization='py_pickle', name='throwaway.task' "
               "WHERE workflow_uuid='pickled-2'", (crafted,))
    db.commit()
    db.close()
    task = get_task("pickled-2")
    assert task.spec == {} and task.prompt == ""
    assert not marker.exists()


def test_nothing_is_pickled_on_the_way_in():
    s = JsonSerializer()
    with pytest.raises(TypeError, match="plain JSON"):
        s.serialize({"when": object()})
    text = s.serialize(ValueError("boom"))
    assert text.startswith("!error:") and "pickle" not in text
    err = s.deserialize(text)
    assert isinstance(err, ValueError) and str(err) == "boom"
    custom = s.deserialize(s.serialize(KeyboardInterrupt()))  # not rebuilt: named like it, nothing imported
    assert isinstance(custom, RecordedError) and type(custom).__name__ == "KeyboardInterrupt"


# --- long errors are clipped -----------------------------------------------------------------


def test_clip_keeps_head_and_tail_around_a_marker():
    text = "H" * 30_000 + "T" * 20_000
    clipped = clip(text)
    assert len(clipped) < 10_000 + 40 and "[... 40,000 characters cut]" in clipped
    assert clipped.startswith("H" * 7_500) and clipped.endswith("T" * 2_500)
    assert clip("short") == "short"


def test_a_failed_steps_error_is_clipped_in_its_checkpoint(launched):
    from dbos import SetWorkflowID

    with SetWorkflowID("clip-1"), pytest.raises(RuntimeError):
        failing()
    (step,) = DBOS.list_workflow_steps("clip-1")
    message = str(step["error"])
    assert len(message) < MAX_ERROR_CHARS + 100 and "characters cut]" in message
    row = sqlite3.connect(launched.data_dir / "tasks.sqlite").execute(
        "SELECT error FROM operation_outputs WHERE workflow_uuid='clip-1'").fetchone()[0]
    assert len(row) < MAX_ERROR_CHARS + 300 and row.startswith("!error:")


def test_tool_results_clip_long_errors(fresh):
    sb = fresh()
    ctx = ToolContext(sandbox=lambda: (sb, False), model=None, library=Library())
    result = run_tool("execute_python", {"code": "raise ValueError('A' * 100_000)"}, ctx)
    error = result.content["error"]
    assert error["type"] == "ValueError"
    assert len(error["message"]) < 10_100 and "characters cut]" in error["message"]
    assert len(error["traceback"]) < 10_100
    assert len(json.dumps(result.content)) < 25_000

    forged = run_tool("execute_python", {"code": "class E(Exception): pass\nE.__name__ = 'X' * 50_000\nraise E()"}, ctx)
    assert len(forged.content["error"]["type"]) < 300

    unknown = run_tool("x" * 100_000, {}, ctx)
    assert not unknown.ok and len(unknown.content) < 10_100 and "characters cut]" in unknown.content
    bad_args = run_tool("execute_python", {"y" * 100_000: 1}, ctx)
    assert len(bad_args.content) < 10_100
