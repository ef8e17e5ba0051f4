"""The model's tools: execute_python, describe, help.

Each tool takes the model's arguments and a `ToolContext` (the task's sandbox,
model and library) and returns a `ToolResult` whose `content` is what the model
sees: plain JSON data, so it can be checkpointed as it is.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_ai.messages import BinaryContent, ModelRequest, TextPart, UserPromptPart
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from .clipping import clip
from .library import Library

if TYPE_CHECKING:
    from throwaway.sandbox import Sandbox

# What the model sees of a cell's output: enough to debug, not enough to drown in.
MAX_STREAM_CHARS = 10_000
MAX_DESCRIBE_BYTES = 20_000_000

RESTORED_NOTE = ("The sandbox was started afresh from the task's last checkpoint: files are as they were, "
                 "but variables and imports from earlier cells are gone.")
RESTARTED_NOTE = ("The interpreter had to be restarted: variables and imports from earlier cells are gone; "
                  "files are as of the last checkpoint.")

DESCRIBE_INSTRUCTIONS = ("You are shown a file produced or found inside a sandbox. Answer the question about it "
                         "accurately and concisely; say so if something cannot be made out.")

TOOL_DEFINITIONS = [
    ToolDefinition(
        name="execute_python",
        description=(
            "Run Python code in the sandbox's persistent interpreter, like a notebook cell. Returns stdout, "
            "stderr, the value of the last expression, the error if any, and the files written to /output."
        ),
        parameters_json_schema={
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
            "additionalProperties": False,
        },
    ),
    ToolDefinition(
        name="describe",
        description=(
            "Look at a file in the sandbox (an image: PNG, JPEG, GIF, WebP; or a PDF) and answer a question "
            "about it. Use it to check pictures and documents your code made or found."
        ),
        parameters_json_schema={
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "The file's path in the sandbox, e.g. /output/chart.png."},
                "question": {"type": "string", "description": "What you want to know about the file."},
            },
            "required": ["path", "question"],
            "additionalProperties": False,
        },
    ),
    ToolDefinition(
        name="help",
        description="Search the task's docs and skills (under /docs and /skills) for how to do something.",
        parameters_json_schema={
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What you need help with."}},
            "required": ["query"],
            "additionalProperties": False,
        },
    ),
]
TOOL_NAMES = [t.name for t in TOOL_DEFINITIONS]


@dataclass
class ToolContext:
    """What a tool call may use.

    `sandbox()` returns the task's live sandbox and whether it was just
    restored from a checkpoint (so its globals are gone); `model` answers
    `describe`; `on_output(stream, text)` receives a cell's output live.
    """

    sandbox: Callable[[], tuple[Sandbox, bool]]
    model: Model
    library: Library
    on_output: Callable[[str, str], None] | None = None
    cell_timeout: float | None = None
    model_settings: ModelSettings | None = None  # bounds for `describe`'s model call


@dataclass
class ToolResult:
    """A tool's answer: `content` for the model; whether the files may have changed; files written."""

    content: Any
    ok: bool = True
    changed_files: bool = False
    files: list[str] = field(default_factory=list)


def run_tool(name: str, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    """Run tool `name` with the model's `args`; a bad call comes back as an error for the model.

    A text answer (an error above all) is clipped to `MAX_STREAM_CHARS`: it
    goes into the next prompt and into the step's checkpoint.
    """
    tool = _TOOLS.get(name)
    if tool is None:
        return ToolResult(clip(f"Error: there is no tool {name!r}; the tools are {', '.join(TOOL_NAMES)}."),
                          ok=False)
    params = _TOOL_PARAMS[name]
    if not isinstance(args, dict) or any(not isinstance(args.get(p), str) for p in params):
        got = sorted(args) if isinstance(args, dict) else type(args).__name__
        return ToolResult(clip(f"Error: {name} needs {', '.join(params)} (strings); got {got}."), ok=False)
    result = tool(ctx, *(args[p] for p in params))
    if isinstance(result.content, str):
        result.content = clip(result.content)
    return result


def execute_python(ctx: ToolContext, code: str) -> ToolResult:
    sandbox, restored = ctx.sandbox()
    result = sandbox.exec(code, timeout=ctx.cell_timeout, on_output=ctx.on_output)
    files = sorted(result.files)  # what the cell wrote under /output, found by the guest in the same round trip
    content: dict[str, Any] = {
        "success": result.ok,
        "stdout": _clip(result.stdout),
        "stderr": _clip(result.stderr),
    }
    if result.value is not None:
        content["value"] = _clip(result.value)
    if result.error is not None:
        content["error"] = {
            "type": _clip(result.error.type, 200),
            "message": _clip(result.error.message),
            "traceback": _clip(result.error.traceback),
        }
    if result.limit:
        content["limit"] = result.limit
    if files:
        content["files_written"] = files
    notes = ([RESTORED_NOTE] if restored else []) + ([RESTARTED_NOTE] if result.restarted else [])
    if notes:
        content["note"] = " ".join(notes)
    return ToolResult(content, ok=result.ok, changed_files=True, files=files)


def describe(ctx: ToolContext, path: str, question: str) -> ToolResult:
    sandbox, _ = ctx.sandbox()
    try:
        data = sandbox.read_file(path)
    except (OSError, KeyError, ValueError) as e:
        return ToolResult(f"Error: cannot read {path}: {e}", ok=False)
    if len(data) > MAX_DESCRIBE_BYTES:
        return ToolResult(f"Error: {path} is {len(data)} bytes; describe takes files up to "
                          f"{MAX_DESCRIBE_BYTES} bytes. Make a smaller version first.", ok=False)
    media_type = media_type_of(path, data)
    if media_type is None:
        return ToolResult(
            f"Error: describe looks at images (PNG, JPEG, GIF, WebP) and PDFs; {path} is neither. "
            f"To read it, call execute_python with print(open({path!r}).read()[:2000]) "
            f"(or open({path!r}, 'rb') for binary data); to check a chart, save it as PNG and describe that.",
            ok=False)
    return ToolResult(describe_file(ctx.model, question, data, media_type, ctx.model_settings))


def describe_file(model: Model, question: str, data: bytes, media_type: str,
                  settings: ModelSettings | None = None) -> str:
    """Show `model` a file (as an image or document part) with `question`; return its answer."""
    from pydantic_ai.direct import model_request_sync

    request = ModelRequest(
        parts=[UserPromptPart([question, BinaryContent(data, media_type=media_type)])],
        instructions=DESCRIBE_INSTRUCTIONS,
    )
    response = model_request_sync(model, [request], model_settings=settings,
                                  model_request_parameters=ModelRequestParameters())
    answer = "".join(p.content for p in response.parts if isinstance(p, TextPart)).strip()
    return answer or "(the model gave no answer)"


def help_(ctx: ToolContext, query: str) -> ToolResult:
    if not ctx.library:
        return ToolResult("This task has no docs or skills to search.", ok=True)
    return ToolResult(ctx.library.search(query))


_TOOLS: dict[str, Callable[..., ToolResult]] = {
    "execute_python": execute_python,
    "describe": describe,
    "help": help_,
}
_TOOL_PARAMS = {t.name: list(t.parameters_json_schema["required"]) for t in TOOL_DEFINITIONS}

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
]
_DESCRIBABLE = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"}


def media_type_of(path: str, data: bytes) -> str | None:
    """The media type `describe` sends `data` as (by its magic bytes, else its name), or None."""
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(path)
    return guessed if guessed in _DESCRIBABLE else None


def _clip(text: str, limit: int = MAX_STREAM_CHARS) -> str:
    return clip(text, limit)
