"""Reading tasks (`throwaway tasks`, `show`) stays a short process: it loads
neither pydantic-ai nor the agent loop, and reads a model's checkpointed
reply from its JSON exactly as the loop reads the pydantic-ai message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic_ai.messages import ModelResponse, TextPart, ThinkingPart, ToolCallPart

from throwaway.agent.steps import response_text, tool_calls
from throwaway.durable.tasks import reply


@pytest.mark.parametrize("parts", [
    [TextPart("  the answer  ")],
    [TextPart("two "), ThinkingPart("not shown"), TextPart("parts")],
    [ToolCallPart("execute_python", {"code": "1 + 1"}, tool_call_id="a")],
    [ToolCallPart("execute_python", '{"code": "print(2)"}', tool_call_id="b")],
    [ToolCallPart("execute_python", '{"code": ', tool_call_id="c")],  # cut-off JSON
    [ToolCallPart("execute_python", "[1, 2]", tool_call_id="d")],  # JSON, not an object
    [ToolCallPart("execute_python", "", tool_call_id="e"), ToolCallPart("other", None, tool_call_id="f")],
    [TextPart("text and a call"), ToolCallPart("execute_python", {"code": "x"}, tool_call_id="g")],
])
def test_reply_reads_the_checkpoint_as_the_loop_reads_the_message(parts):
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    response = ModelResponse(parts=parts)
    # What the model step checkpoints (see agent.steps), through JSON as the database holds it.
    data = json.loads(json.dumps(ModelMessagesTypeAdapter.dump_python([response], mode="json")[0]))
    assert reply(data) == (response_text(response), tool_calls(response))


def test_reply_of_a_malformed_checkpoint_is_empty_not_an_error():
    assert reply({}) == ("", [])
    assert reply({"parts": ["junk", {"part_kind": "unknown"}]}) == ("", [])


def test_listing_tasks_loads_no_pydantic_ai(tmp_path):
    code = ("import sys\nfrom throwaway.cli import main\n"
            "try:\n    main(['tasks'])\nexcept SystemExit:\n    pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('pydantic_ai', 'throwaway.agent.loop'))}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"THROWAWAY_DATA": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "No tasks yet" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"
