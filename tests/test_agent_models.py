"""The scripted model and the tool plumbing that needs no sandbox."""

from __future__ import annotations

import pytest
from pydantic_ai.messages import (
    BinaryContent,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)

from throwaway.agent.models import register_model, resolve_model
from throwaway.agent.steps import call_model, load_response
from throwaway.agent.tools import ToolContext, media_type_of, run_tool
from throwaway.testing import ScriptedModel, ScriptExhausted, tool_call


def conversation(*responses: ModelResponse) -> list:
    out: list = [ModelRequest(parts=[UserPromptPart("go")])]
    for r in responses:
        out += [r, ModelRequest(parts=[UserPromptPart("next")])]
    return out


def test_turns_follow_the_conversation_not_a_counter():
    model = ScriptedModel([tool_call("execute_python", code="1"), tool_call("help", query="x"), "done"])
    first = load_response(call_model(model, conversation())["response"])
    assert isinstance(first.parts[0], ToolCallPart) and first.parts[0].tool_call_id == "call_1_1"
    # A fresh process that replayed two responses from checkpoints asks for turn 3.
    fresh = ScriptedModel([tool_call("execute_python", code="1"), tool_call("help", query="x"), "done"])
    out = call_model(fresh, conversation(first, first))
    assert out["stop_reason"] == "end_turn"
    assert load_response(out["response"]).parts == [TextPart("done")]


def test_running_out_of_script_fails_loudly():
    model = ScriptedModel(["only turn"])
    with pytest.raises(ScriptExhausted, match="has 1 turn"):
        call_model(model, conversation(ModelResponse(parts=[TextPart("x")])))


def test_a_function_script_sees_the_conversation():
    seen = []

    def script(messages, info):
        seen.append((len(messages), sorted(t.name for t in info.function_tools)))
        return ["thinking", tool_call("execute_python", code="2 + 2")]

    out = call_model(ScriptedModel(script), conversation())
    assert seen == [(1, ["describe", "execute_python", "help"])]
    parts = load_response(out["response"]).parts
    assert isinstance(parts[0], TextPart) and isinstance(parts[1], ToolCallPart)


def test_describe_requests_get_the_describe_answer():
    from throwaway.agent.tools import describe_file

    answers = []
    model = ScriptedModel([], describe=lambda q, f: answers.append((q, f.media_type)) or "a red square")
    assert describe_file(model, "what is it?", b"\x89PNG\r\n\x1a\n....", "image/png") == "a red square"
    assert answers == [("what is it?", "image/png")]
    with pytest.raises(ScriptExhausted, match="describe"):
        describe_file(ScriptedModel([]), "q", b"%PDF-1.7", "application/pdf")


def test_registered_models_resolve_by_name():
    model = ScriptedModel(["hi"], name="scripted:registry-test")
    register_model("scripted:registry-test", model)
    assert resolve_model("scripted:registry-test") is model


def test_media_types_for_describe():
    assert media_type_of("/output/x.bin", b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert media_type_of("/x", b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert media_type_of("/x", b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert media_type_of("/x", b"%PDF-1.7") == "application/pdf"
    assert media_type_of("/x.gif", b"GIF89a") == "image/gif"
    assert media_type_of("/notes.txt", b"hello") is None
    assert media_type_of("/drawing.svg", b"<svg/>") is None


def test_bad_tool_calls_come_back_as_errors_for_the_model():
    def no_sandbox():
        raise AssertionError("a bad call must not start the sandbox")

    ctx = ToolContext(sandbox=no_sandbox, model=ScriptedModel([]), library=None)
    unknown = run_tool("rm_rf", {}, ctx)
    assert not unknown.ok and "no tool 'rm_rf'" in unknown.content and "execute_python" in unknown.content
    missing = run_tool("execute_python", {"source": "1"}, ctx)
    assert not missing.ok and "needs code" in missing.content
    assert run_tool("help", {"query": "charts"}, ctx).content == "This task has no docs or skills to search."


def test_binary_content_round_trips_through_json_checkpoints():
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    messages = [ModelRequest(parts=[UserPromptPart(["look", BinaryContent(b"\x00\x01", media_type="image/png")])])]
    data = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    back = ModelMessagesTypeAdapter.validate_python(data)
    assert back[0].parts[0].content[1].data == b"\x00\x01"
