"""The provider adapters against recorded exchanges (tests/cassettes/test_agent_providers/).

No provider is reachable from CI, so the cassettes were written by hand in each
API's wire format: Anthropic's streamed Messages API, OpenAI's Responses API,
and the Chat Completions API that Ollama, vLLM and llama.cpp serve. Each test
checks both directions: what we sent (tools, system prompt, tool results,
image parts in the provider's own shape) and what we made of the answer.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib

import pytest
from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from throwaway.agent.models import ModelNotConfigured, resolve_model
from throwaway.agent.tools import describe_file
from throwaway.agent.steps import call_model, load_response

SENT: list = []


def _capture(request):
    # vcrpy hands every outgoing request to this hook before matching it.
    SENT.append(request)
    return request


@pytest.fixture(scope="module")
def vcr_config():
    return {
        "match_on": ["method", "scheme", "host", "port", "path"],
        "record_mode": "none",
        "filter_headers": ["authorization", "x-api-key"],
        "before_record_request": _capture,
    }


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    SENT.clear()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("THROWAWAY_MODEL", raising=False)


def sent_body() -> dict:
    assert SENT, "no request was sent"
    return json.loads(SENT[-1].body)


def first_request(prompt="Figure out the current ip address and make me a picture of it.") -> list:
    return [ModelRequest(parts=[UserPromptPart(prompt)], instructions="You solve the user's task.")]


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# --- Anthropic ------------------------------------------------------------------


@pytest.mark.vcr
def test_anthropic_tool_call():
    out = call_model(resolve_model("anthropic:claude-sonnet-5-5"), first_request())

    assert out["stop_reason"] == "tool_use"
    response = load_response(json.loads(json.dumps(out["response"])))  # survives a JSON checkpoint
    text, call = response.parts
    assert isinstance(text, TextPart) and text.content.startswith("I'll start by reading")
    assert isinstance(call, ToolCallPart)
    assert call.tool_name == "execute_python"
    assert call.tool_call_id == "toolu_01A09q90qw90lq917835lq9F"
    assert call.args_as_dict()["code"].startswith("with open('/network/current-ip') as f:\n")

    body = sent_body()
    assert body["model"] == "claude-sonnet-5-5"
    assert body["system"] == [{"type": "text", "text": "You solve the user's task."}]
    tools = {t["name"]: t for t in body["tools"]}
    assert set(tools) == {"execute_python", "describe", "help"}
    assert tools["describe"]["input_schema"]["required"] == ["path", "question"]
    assert SENT[-1].headers.get("x-api-key") in (None, "sk-ant-test")


@pytest.mark.vcr
def test_anthropic_tool_result():
    call = ToolCallPart("execute_python", {"code": "print(1)"}, tool_call_id="toolu_01A09q90qw90lq917835lq9F")
    result = {"success": True, "stdout": "Current IP Address: 255.255.255.255\n", "stderr": "",
              "files_written": ["/output/ip_address.png"]}
    messages = first_request() + [
        ModelResponse(parts=[call]),
        ModelRequest(parts=[ToolReturnPart("execute_python", result, tool_call_id=call.tool_call_id)]),
    ]
    out = call_model(resolve_model("anthropic:claude-sonnet-5-5"), messages)

    assert out["stop_reason"] == "end_turn"
    assert load_response(out["response"]).parts == [
        TextPart("Your public IP address is 255.255.255.255, and the picture is in /output/ip_address.png.")
    ]
    user_turn = sent_body()["messages"][-1]
    assert user_turn["role"] == "user"
    block = user_turn["content"][0]
    assert block["type"] == "tool_result" and block["tool_use_id"] == "toolu_01A09q90qw90lq917835lq9F"
    sent_text = json.dumps(block["content"])
    assert "Current IP Address: 255.255.255.255" in sent_text and "/output/ip_address.png" in sent_text


@pytest.mark.vcr
def test_anthropic_describe_image():
    png = tiny_png()
    answer = describe_file(resolve_model("anthropic:claude-sonnet-5-5"), "What does it show?", png, "image/png")

    assert answer == "A small solid red square; there is no text in the image."
    body = sent_body()
    assert "tools" not in body or not body["tools"]
    question, image = body["messages"][0]["content"]
    assert question == {"type": "text", "text": "What does it show?"}
    assert image["type"] == "image"
    assert image["source"]["media_type"] == "image/png"
    assert base64.b64decode(image["source"]["data"]) == png


# --- OpenAI -------------------------------------------------------------------------


@pytest.mark.vcr
def test_openai_tool_call():
    out = call_model(resolve_model("openai:gpt-5"), first_request())

    assert out["stop_reason"] == "tool_use"
    calls = [p for p in load_response(out["response"]).parts if isinstance(p, ToolCallPart)]
    assert [(c.tool_name, c.tool_call_id) for c in calls] == [("execute_python", "call_Qm3xY7bN1kV9sT2rP4wZ6cD8")]
    assert "ip_address = f.read().strip()" in calls[0].args_as_dict()["code"]

    body = sent_body()
    assert SENT[-1].uri == "https://api.openai.com/v1/responses"
    assert body["instructions"] == "You solve the user's task."
    tools = {t["name"]: t for t in body["tools"]}
    assert tools["execute_python"]["type"] == "function"
    assert tools["execute_python"]["parameters"]["required"] == ["code"]


@pytest.mark.vcr
def test_openai_describe_image():
    png = tiny_png()
    answer = describe_file(resolve_model("openai:gpt-5"), "What does it show?", png, "image/png")

    assert answer == "A small solid red square; there is no text in the image."
    content = sent_body()["input"][0]["content"]
    assert content[0] == {"type": "input_text", "text": "What does it show?"}
    assert content[1]["type"] == "input_image"
    assert content[1]["image_url"] == "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.mark.vcr
def test_openai_compatible_tool_call(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")  # a local server needs no key
    out = call_model(resolve_model("openai-compatible:llama3.1:8b@http://localhost:11434/v1"), first_request())

    assert out["stop_reason"] == "tool_use"
    (call,) = [p for p in load_response(out["response"]).parts if isinstance(p, ToolCallPart)]
    assert call.tool_name == "execute_python" and call.tool_call_id == "call_k2j4h6g8"
    assert call.args_as_dict() == {"code": "print(open('/network/current-ip').read())"}

    body = sent_body()
    assert SENT[-1].uri == "http://localhost:11434/v1/chat/completions"
    assert body["model"] == "llama3.1:8b"
    assert body["messages"][0] == {"role": "system", "content": "You solve the user's task."}
    assert {t["function"]["name"] for t in body["tools"]} == {"execute_python", "describe", "help"}


@pytest.mark.vcr("test_openai_compatible_tool_call.yaml")
def test_openai_compatible_base_url_from_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    out = call_model(resolve_model("openai-compatible:llama3.1:8b"), first_request())

    assert out["stop_reason"] == "tool_use"
    assert SENT[-1].uri == "http://localhost:11434/v1/chat/completions"


# --- configuration ----------------------------------------------------------------------


def test_no_model_says_how_to_configure_one(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ModelNotConfigured) as info:
        resolve_model(None)
    message = str(info.value)
    for needle in ("--model", "THROWAWAY_MODEL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY",
                   "openai-compatible:", "OPENAI_BASE_URL"):
        assert needle in message


def test_missing_key_is_named(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ModelNotConfigured, match="needs ANTHROPIC_API_KEY"):
        resolve_model("anthropic:claude-sonnet-5-5")


def test_compatible_server_needs_a_url():
    with pytest.raises(ModelNotConfigured, match="OPENAI_BASE_URL"):
        resolve_model("openai-compatible:llama3.1")


def test_model_from_environment_and_defaults(monkeypatch):
    monkeypatch.setenv("THROWAWAY_MODEL", "openai:gpt-5-mini")
    assert resolve_model().model_name == "gpt-5-mini"
    monkeypatch.delenv("THROWAWAY_MODEL")
    monkeypatch.delenv("OPENAI_API_KEY")
    model = resolve_model()  # only ANTHROPIC_API_KEY is set
    assert model.system == "anthropic"


# --- a whole task on a real adapter -------------------------------------------------------


@pytest.mark.vcr
def test_anthropic_drives_the_loop(tmp_path):
    from throwaway import Agent
    from throwaway.durable import backend

    agent = Agent("anthropic-loop", model="anthropic:claude-sonnet-5-5")

    @agent.fs.file("/network/current-ip", description="this machine's public IP")
    def current_ip() -> str:
        return "255.255.255.255\n"

    backend.launch(tmp_path / "data")
    try:
        result = agent.run("Figure out the current ip address and make me a picture of it.",
                           output_dir=tmp_path / "out")
    finally:
        backend.shutdown()

    assert result.status == "done" and result.steps == 2
    assert result.answer.startswith("Your public IP address is 255.255.255.255")
    first, second = (json.loads(r.body) for r in _distinct(SENT))
    assert first["max_tokens"] == second["max_tokens"] == 4096  # every model call is bounded
    assert first["system"][0]["text"].startswith("You solve the user's task by writing throwaway Python.")
    system = first["system"][0]["text"]
    assert "- /network (" in system and "current-ip: this machine's public IP" in system
    assistant, user = second["messages"][-2:]
    assert assistant["content"][-1]["type"] == "tool_use"
    assert assistant["content"][-1]["id"] == "toolu_01A09q90qw90lq917835lq9F"
    (tool_result,) = user["content"]
    assert tool_result["type"] == "tool_result" and tool_result["tool_use_id"] == "toolu_01A09q90qw90lq917835lq9F"
    assert "Current IP Address: 255.255.255.255" in json.dumps(tool_result["content"])


def _distinct(requests: list) -> list:
    # vcrpy may hand the same request to the hook more than once while matching it.
    seen, out = set(), []
    for r in requests:
        if id(r) not in seen and r.body not in {o.body for o in out}:
            seen.add(id(r))
            out.append(r)
    return out
