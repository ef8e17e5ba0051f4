"""Tool calls written as text, as small local models write them, turned into real ones.

Models behind OpenAI-compatible servers (Ollama, llama.cpp, vLLM without a
tool parser) often answer with the call in their text instead of as a tool
call. These forms are recognised, in this order:

- ``tagged``: ``<tool_call>`` / ``<tools>`` / ``<function_call>`` wrappers
  holding one or more JSON calls (``{"name": ..., "arguments": {...}}``), or a
  tag named after a tool holding its arguments
  (``<execute_python>{"code": "..."}</execute_python>``; for
  ``execute_python``, bare code works too);
- ``fenced-json``: a fenced block (```` ```json ````, ```` ```tool_call ````
  or no language) holding such a call, or a list of them;
- ``json``: the whole reply being such a call;
- ``fenced-python``: exactly one fenced ```` ```python ```` block, run as
  ``execute_python``, prose around it kept as text.

The "JSON" may hold Python triple-quoted strings (``"code": \"\"\"...\"\"\"``,
taken verbatim, as code), raw newlines inside strings, single quotes, and be
indented as a whole. `parse` finds the calls; `convert_response` rewrites a
response so its calls are real `ToolCallPart`s with deterministic ids (a
resumed task must see the conversation it had); `looks_like_call` says
whether a reply that was not turned into calls still looks like one, so the
loop can ask again rather than take it as the answer.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

WRAPPERS = ("tool_call", "tool_calls", "tools", "function_call", "functioncall")
_FENCE = re.compile(r"(?P<indent>^[ \t]*)```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^[ \t]*```[ \t]*$",
                    re.DOTALL | re.MULTILINE)
# A triple-quoted value ends at the quotes that close the value (a comma or bracket follows), so
# docstrings inside the code stay in it.
_TRIPLE = re.compile(r'("""|\'\'\')(.*?)\1(?=\s*[,}\]])', re.DOTALL)
_CALL_HINT = re.compile(r'["\']name["\']\s*:\s*["\'](?P<name>[\w.]+)["\']')


@dataclass
class TextCall:
    """One call found in a reply's text: the tool, its arguments, and the form it was written in."""

    tool: str
    args: dict[str, Any]
    form: str


def parse(text: str, tool_names: Sequence[str]) -> tuple[list[TextCall], str]:
    """The tool calls written in `text`, and the prose left around them.

    Returns ``([], text)`` when `text` holds no call in a recognised form.
    """
    for finder in (_tagged, _fenced_json, _whole_json, _fenced_python):
        calls, rest = finder(text, tool_names)
        if calls:
            return _dedupe(calls), rest.strip()
    return [], text


def convert_response(response: ModelResponse, tool_names: Sequence[str], step: int) -> tuple[ModelResponse, dict[str, Any] | None]:
    """`response` with the calls its text holds as real tool calls, and a record of what was parsed.

    A response that already has a tool call, or whose text holds none, comes
    back as it is with None. The record (``form``, ``calls``, ``text``: the
    original reply) goes into the model step's checkpoint.
    """
    if any(isinstance(p, ToolCallPart) for p in response.parts):
        return response, None
    text = "".join(p.content for p in response.parts if isinstance(p, TextPart))
    calls, rest = parse(text, tool_names)
    if not calls:
        return response, None
    parts: list[Any] = [p for p in response.parts if not isinstance(p, TextPart)]
    if rest:
        parts.append(TextPart(rest))
    parts += [ToolCallPart(c.tool, c.args, tool_call_id=f"text_{step}_{i}") for i, c in enumerate(calls, 1)]
    converted = ModelResponse(
        parts=parts,
        usage=response.usage,
        model_name=response.model_name,
        timestamp=response.timestamp,
        provider_name=response.provider_name,
        provider_response_id=response.provider_response_id,
        finish_reason="tool_call",
    )
    record = {"form": calls[0].form, "calls": len(calls), "text": text}
    return converted, record


def looks_like_call(text: str, tool_names: Sequence[str]) -> bool:
    """Whether `text` looks like a tool call written out rather than made (so it is no answer)."""
    names = "|".join(re.escape(n) for n in tool_names)
    if re.search(rf"<\s*/?\s*(?:{'|'.join(WRAPPERS)}|{names})\s*>", text):
        return True
    hint = _CALL_HINT.search(text)
    if hint and hint.group("name").split(".")[-1] in tool_names:
        return True
    return bool(re.search(r'["\'](?:arguments|parameters)["\']\s*:\s*[{"\']', text))


# --- the forms ------------------------------------------------------------------


def _tagged(text: str, tool_names: Sequence[str]) -> tuple[list[TextCall], str]:
    names = [*WRAPPERS, *tool_names]
    pattern = re.compile(rf"<\s*({'|'.join(re.escape(n) for n in names)})\s*>(.*?)(?:<\s*/\s*\1\s*>|\Z)", re.DOTALL)
    calls: list[TextCall] = []
    rest = text
    for match in pattern.finditer(text):
        tag, body = match.group(1), _unfence(match.group(2))
        if tag in tool_names:
            found = _tool_args(tag, body)
            if found is None:
                continue
            calls.append(TextCall(tag, found, "tagged"))
        else:
            found_calls = [TextCall(t, a, "tagged") for t, a in _calls_in(body)]
            if not found_calls:
                continue
            calls += found_calls
        rest = rest.replace(match.group(0), "", 1)
    return calls, rest


def _fenced_json(text: str, tool_names: Sequence[str]) -> tuple[list[TextCall], str]:
    calls: list[TextCall] = []
    rest = text
    for match in _FENCE.finditer(text):
        if match.group("lang").lower() not in ("", "json", "json5", "tool_call", "tool_code", "javascript", "js"):
            continue
        found = [TextCall(t, a, "fenced-json") for t, a in _calls_in(match.group("body"))]
        if found:
            calls += found
            rest = rest.replace(match.group(0), "", 1)
    return calls, rest


def _whole_json(text: str, tool_names: Sequence[str]) -> tuple[list[TextCall], str]:
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return [], text
    return [TextCall(t, a, "json") for t, a in _calls_in(stripped)], ""


def _fenced_python(text: str, tool_names: Sequence[str]) -> tuple[list[TextCall], str]:
    if "execute_python" not in tool_names:
        return [], text
    blocks = [m for m in _FENCE.finditer(text) if m.group("lang").lower() in ("python", "py", "python3")]
    if len(blocks) != 1:
        return [], text
    code = textwrap.dedent(blocks[0].group("body")).strip("\n")
    if not code.strip():
        return [], text
    return [TextCall("execute_python", {"code": code + "\n"}, "fenced-python")], text.replace(blocks[0].group(0), "")


# --- reading "JSON" as models write it ------------------------------------------------


def _calls_in(body: str) -> list[tuple[str, dict[str, Any]]]:
    """The calls (objects with a name and arguments) in `body`: one object, a list, or several in a row."""
    out = []
    for value in _values(body):
        for item in value if isinstance(value, list) else [value]:
            call = _as_call(item)
            if call:
                out.append(call)
    return out


def _as_call(item: Any) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):  # {"type": "function", "function": {...}}
        item = item["function"]
    name = item.get("name") or item.get("tool") or item.get("tool_name")
    if not isinstance(name, str) or not name:
        return None
    args = next((item[k] for k in ("arguments", "parameters", "args", "input") if k in item), None)
    if isinstance(args, str):  # OpenAI's own shape: the arguments as a JSON string
        parsed = _values(args)
        args = parsed[0] if len(parsed) == 1 else None
    if not isinstance(args, dict) or (args.get("type") == "object" and "properties" in args):
        return None  # no arguments, or the tool's schema copied back from the prompt
    return name.split(".")[-1], args  # "functions.execute_python" -> "execute_python"


def _tool_args(tool: str, body: str) -> dict[str, Any] | None:
    """The arguments inside a tag named after `tool`: an object, or for execute_python bare code."""
    values = _values(body)
    if len(values) == 1 and isinstance(values[0], dict):
        call = _as_call(values[0])
        return call[1] if call and call[0] == tool else values[0]
    if tool == "execute_python" and body.strip():
        return {"code": textwrap.dedent(body).strip("\n") + "\n"}
    return None


def _values(body: str) -> list[Any]:
    """The JSON-ish values in `body`, one after another; [] if it is not such."""
    body = textwrap.dedent(body).strip()
    if not body:
        return []
    values = _decode_all(body)
    if not values and _TRIPLE.search(body):
        values = _decode_all(_TRIPLE.sub(lambda m: json.dumps(_triple_content(m.group(2))), body))
    if values:
        return values
    try:  # single quotes, True/None: a Python literal
        return [ast.literal_eval(body)]
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return []


def _decode_all(text: str) -> list[Any]:
    decoder = json.JSONDecoder(strict=False)  # strict=False: raw newlines and tabs inside strings
    values, at = [], 0
    while at < len(text):
        while at < len(text) and text[at] in " \t\r\n,;":
            at += 1
        if at >= len(text):
            break
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return []
        values.append(value)
    return values


def _triple_content(content: str) -> str:
    """A triple-quoted string's text as code: verbatim, its common indentation and edge blank lines gone.

    When the text starts on the quotes' own line, the lines after it may
    carry the indentation of the block around them: the first reading that
    compiles as Python wins, else the plain one (it may not be code at all).
    """
    if "\n" not in content:
        return content
    plain = textwrap.dedent(content.strip("\n")).rstrip() + "\n"
    first, _, after = content.strip("\n").partition("\n")
    for candidate in (plain, first.strip() + "\n" + textwrap.dedent(after).rstrip() + "\n"):
        if _compiles(candidate):
            return candidate
    return plain


def _compiles(code: str) -> bool:
    try:
        compile(code, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def _unfence(body: str) -> str:
    match = _FENCE.search(body)
    return match.group("body") if match and not body[: match.start()].strip() else body


def _dedupe(calls: list[TextCall]) -> list[TextCall]:
    """Drop repeats: a model that loops writes the same call again and again."""
    seen, out = set(), []
    for call in calls:
        key = (call.tool, json.dumps(call.args, sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            out.append(call)
    return out
