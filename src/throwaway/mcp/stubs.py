"""The guest's view of the tools: Python source generated from their JSON schemas.

`/servers/__init__.py` (the `RUNTIME` below) holds what every server package
shares: `ToolError`, `Image`, `Audio` and the call itself. Each server is a
package, `/servers/<name>/__init__.py` importing one module per tool,
`/servers/<name>/<tool>.py`, whose function has the tool's arguments as
parameters (types from the schema, required ones first) and its description
as docstring, so `help()` and reading the file both tell the model how to
call it. Names that are not Python identifiers are made into ones (the call
still sends the server's own names).
"""

from __future__ import annotations

import json
import keyword
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_DESCRIPTION = 4000  # characters of a tool's description kept in its docstring

RUNTIME = '''"""MCP servers and host toolsets, as Python packages.

One subpackage per server: `from servers.time import get_current_time`.
Each folder has a README.md listing its tools, one file per tool with its
arguments and description, and its resources (if any) under resources/.
A tool is a plain function: call it, it blocks until the host has the answer.
"""

import _throwaway

__all__ = ["ToolError", "Image", "Audio"]


class ToolError(Exception):
    """A tool answered with an error; the message is the server's."""


class Image(bytes):
    """Image content from a tool: the image's bytes, with its `mime_type`."""

    def __new__(cls, data=b"", mime_type="application/octet-stream"):
        self = super().__new__(cls, data)
        self.mime_type = mime_type
        return self

    def __repr__(self):
        return f"<{type(self).__name__} {self.mime_type}, {len(self)} bytes>"

    def save(self, path):
        """Write the bytes to `path`; returns the path."""
        with open(path, "wb") as f:
            f.write(self)
        return path


class Audio(Image):
    """Audio content from a tool: the bytes, with its `mime_type`."""


def _part(part, data):
    kind = part.get("kind")
    if kind == "text":
        return part["text"]
    if kind in ("image", "audio", "blob"):
        chunk = data[part["offset"]:part["offset"] + part["size"]]
        return {"image": Image, "audio": Audio}.get(kind, Image)(chunk, part.get("mime_type") or "application/octet-stream")
    if kind == "link":
        return part["uri"]
    return part


def _call(server, tool, arguments):
    value, data = _throwaway.call("servers.call", {"server": server, "tool": tool, "arguments": arguments})
    if "error" in value:
        raise ToolError(value["error"])
    if "structured" in value:
        return value["structured"]
    parts = [_part(p, data) for p in value.get("parts", [])]
    if all(isinstance(p, str) and not isinstance(p, bytes) for p in parts):
        return "\\n".join(parts)
    return parts[0] if len(parts) == 1 else parts
'''


@dataclass(frozen=True)
class ToolInfo:
    """What the guest needs to know of one tool."""

    name: str  # the server's name for it
    py_name: str  # its module and function name in the guest
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None

    @property
    def summary(self) -> str:
        """The first line of the description."""
        return _first_line(self.description)


def identifier(name: str) -> str:
    """A Python identifier for a server's name of a tool or an argument."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII) or "_"
    if ident[0].isdigit():
        ident = "_" + ident
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident):
        ident += "_"
    if ident.startswith("__"):
        ident = "tool" + ident
    return ident


def tool_infos(tools: Iterable[Any]) -> list[ToolInfo]:
    """`ToolInfo`s for MCP `Tool`s, with distinct Python names."""
    infos, taken = [], {"README", "resources"}
    for tool in tools:
        py = _distinct(identifier(tool.name), taken)
        infos.append(ToolInfo(tool.name, py, tool.description or "", tool.input_schema or {},
                              tool.output_schema))
    return infos


def package_source(server: str, description: str, tools: list[ToolInfo]) -> str:
    """`/servers/<server>/__init__.py`."""
    lines = [f'"""{_doc(description or server)}"""', ""]
    lines += [f"from .{t.py_name} import {t.py_name}" for t in tools]
    lines += ["", f"__all__ = {[t.py_name for t in tools]!r}", ""]
    return "\n".join(lines)


def tool_source(server: str, tool: ToolInfo) -> str:
    """`/servers/<server>/<tool>.py`: the function that calls the tool."""
    schema = tool.input_schema
    defs = schema.get("$defs") or schema.get("definitions") or {}
    props: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    taken = {tool.py_name, "_servers_call", "_arguments", "Any", "Literal"}
    params, doc_args, sends = [], [], []
    ordered = [n for n in props if n in required] + [n for n in props if n not in required]
    for name in ordered:
        prop = props[name] if isinstance(props[name], Mapping) else {}
        py = _distinct(identifier(name), taken)
        annotation = py_type(prop, defs)
        if name in required:
            params.append(f"{py}: {annotation}")
            sends.append(f"    _arguments[{name!r}] = {py}")
        elif "default" in prop and _literal(prop["default"]) is not None:
            params.append(f"{py}: {annotation} = {_literal(prop['default'])}")
            sends.append(f"    _arguments[{name!r}] = {py}")
        else:
            optional = annotation if annotation == "Any" or "None" in annotation.split(" | ") else f"{annotation} | None"
            params.append(f"{py}: {optional} = None")
            sends.append(f"    if {py} is not None:\n        _arguments[{name!r}] = {py}")
        text = _oneline(prop.get("description") or prop.get("title") or "")
        kind = _doc(annotation) + ("" if name in required else ", optional")
        doc_args.append(f"        {py} ({kind}): {text}".rstrip())
    returns, returns_doc = _returns(tool.output_schema)
    doc = [_doc(tool.description[:MAX_DESCRIPTION] or tool.name)]
    if doc_args:
        doc += ["", "    Args:", *doc_args]
    doc += ["", "    Returns:", f"        {_doc(returns_doc)}", "",
            "    Raises:", "        servers.ToolError: the tool answered with an error (its message)."]
    signature = ", ".join(params)
    body = ["    _arguments = {}", *sends,
            f"    return _servers_call({server!r}, {tool.name!r}, _arguments)"]
    return "\n".join([
        f'"""servers.{server}.{tool.py_name}: the MCP tool {tool.name!r} of the server {server!r}."""',
        "",
        "from typing import Any, Literal",
        "",
        "from servers import _call as _servers_call",
        "",
        "",
        f"def {tool.py_name}({signature}){returns}:",
        '    """' + "\n".join(doc) + '\n    """',
        *body,
        "",
    ])


def readme(server: str, description: str, tools: list[ToolInfo], resources: Iterable[str] = (),
           instructions: str = "") -> str:
    """`/servers/<server>/README.md`: one line per tool (and the server's instructions, if any)."""
    lines = [f"# servers.{server}", ""]
    if description:
        lines += [_first_line(description), ""]
    if tools:
        first = tools[0].py_name
        lines += [f"Import a tool and call it: `from servers.{server} import {first}`.",
                  (f"Each tool's arguments and full description are in its file ({first}.py); "
                   "an error result raises servers.ToolError."), "", "Tools:"]
        for t in tools:
            args = ", ".join(identifier(n) for n in (t.input_schema.get("properties") or {}))
            lines.append(f"- {t.py_name}({args}): {t.summary}".rstrip(": "))
    else:
        lines.append("No tools.")
    resources = list(resources)
    if resources:
        lines += ["", "Resources (read them as files):"] + [f"- resources/{r}" for r in resources]
    if instructions:
        lines += ["", "## The server's instructions", "", instructions]
    return "\n".join(lines) + "\n"


def py_type(schema: Any, defs: Mapping[str, Any], depth: int = 0) -> str:
    """A Python type annotation (as source) for a JSON schema."""
    if not isinstance(schema, Mapping) or depth > 4:
        return "Any"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        return py_type(target, defs, depth + 1) if target is not None else "Any"
    for key in ("enum", "const"):
        if key in schema:
            values = schema[key] if key == "enum" else [schema[key]]
            literals = [_literal(v) for v in values if isinstance(v, (str, int, float, bool)) or v is None]
            if literals and all(v is not None for v in literals):
                return f"Literal[{', '.join(literals)}]"
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return _union(py_type(s, defs, depth + 1) for s in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return _union(py_type({**schema, "type": k}, defs, depth + 1) for k in kind)
    if kind == "array":
        items = schema.get("items")
        return f"list[{py_type(items, defs, depth + 1)}]" if isinstance(items, Mapping) else "list"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and not schema.get("properties"):
            return f"dict[str, {py_type(extra, defs, depth + 1)}]"
        return "dict"
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}.get(kind, "Any")


def wrapped_result(output_schema: Mapping[str, Any] | None) -> bool:
    """Whether a structured result is `{"result": value}` only because the
    value is not an object (the SDK's servers wrap such returns so)."""
    if not isinstance(output_schema, Mapping):
        return False
    props = output_schema.get("properties")
    return (isinstance(props, Mapping) and list(props) == ["result"]
            and output_schema.get("required") == ["result"]
            and str(output_schema.get("title", "")).endswith("Output"))


def shape(schema: Any, defs: Mapping[str, Any], depth: int = 0) -> str:
    """A short picture of the data a schema describes, e.g. {"a": str, "b": list[int]}."""
    if isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and depth < 3:
        return shape(defs.get(schema["$ref"].rsplit("/", 1)[-1]), defs, depth + 1)
    if isinstance(schema, Mapping) and isinstance(schema.get("properties"), Mapping) and depth < 3:
        inner = ", ".join(f"{json.dumps(k)}: {shape(v, defs, depth + 1)}" for k, v in schema["properties"].items())
        return "{" + inner + "}"
    return py_type(schema, defs, depth)


def _returns(output_schema: Mapping[str, Any] | None) -> tuple[str, str]:
    if not isinstance(output_schema, Mapping):
        return "", ("the tool's text (str); image content as servers.Image (bytes with .mime_type); "
                    "several parts as a list of those.")
    defs = output_schema.get("$defs") or {}
    if wrapped_result(output_schema):
        inner = output_schema["properties"]["result"]
        return f" -> {py_type(inner, defs)}", f"{shape(inner, defs)}: the tool's structured result."
    return f" -> {py_type(output_schema, defs)}", f"{shape(output_schema, defs)}: the tool's structured result."


def _union(parts: Iterable[str]) -> str:
    seen: list[str] = []
    for p in parts:
        if p not in seen:
            seen.append(p)
    return "Any" if "Any" in seen else " | ".join(seen)


def _literal(value: Any) -> str | None:
    """Python source for a JSON value, or None when it has none we can write."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return repr(value)
    return None  # a list or dict default is left to the server (the parameter defaults to None)


def _distinct(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _doc(text: str) -> str:
    """Text that is safe inside a triple-quoted docstring."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n")).strip()
    # A quote is escaped where it is followed by another or ends the text:
    # then no three quotes in a row, and none against the closing ones.
    text = re.sub(r'"(?="|$)', r'\\"', text.replace("\\", "\\\\"))
    return "\n".join(("    " + line) if i and line else line for i, line in enumerate(text.split("\n")))


def _oneline(text: Any) -> str:
    return _doc(" ".join(str(text).split()))[:500]


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    return line[:200]
