"""What one `exec` gives back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# "frame": the runtime sent the host a message over Limits.frame_bytes.
Limit = Literal["timeout", "memory", "output", "disk", "interrupt", "crash", "frame"]


@dataclass(frozen=True)
class GuestError:
    """An exception raised by guest code, as data."""

    type: str
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass
class ExecResult:
    """The outcome of one cell: its output, its last value, its error, its limit.

    `value` is the repr of the cell's last expression (None if it had none);
    `json` is that value as plain JSON data where it has one. `limit` names the
    limit that stopped the cell, if any; `restarted` says the worker had to be
    replaced, so the cell's globals are gone. `files` are the paths under
    /output that the cell created or changed.
    """

    stdout: str = ""
    stderr: str = ""
    value: str | None = None
    json: Any = None
    error: GuestError | None = None
    limit: Limit | None = None
    restarted: bool = False
    duration: float = 0.0
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.limit is None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (for checkpoints, tool results, the wire)."""
        return asdict(self)


def clean_text(text: str) -> str:
    """`text` with lone surrogates (which JSON can carry but UTF-8 cannot)
    replaced by U+FFFD, so that it can be printed, stored and sent on."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


# A cell's value as JSON data is given only up to this depth (its repr always):
# deeper data would break the host's own recursive code (asdict, json.dumps).
MAX_JSON_DEPTH = 100


def _clean_json(value: Any) -> Any:
    """`value` (parsed JSON) with every string cleaned; ValueError if it is
    nested deeper than MAX_JSON_DEPTH. Iterative: depth costs no stack."""
    root = [value]
    todo: list[tuple[Any, Any, int]] = [(root, 0, 0)]
    while todo:
        parent, key, depth = todo.pop()
        item = parent[key]
        if isinstance(item, str):
            parent[key] = clean_text(item)
        elif isinstance(item, (list, dict)) and depth >= MAX_JSON_DEPTH:
            raise ValueError("nested too deeply")
        elif isinstance(item, list):
            todo.extend((item, i, depth + 1) for i in range(len(item)))
        elif isinstance(item, dict):
            for k in list(item):
                v = item.pop(k)
                k = clean_text(k)
                item[k] = v
                todo.append((item, k, depth + 1))
    return root[0]


def _str(d: dict, key: str, default: str = "") -> str:
    v = d.get(key, default)
    return clean_text(v) if isinstance(v, str) else default


def _loads(text: str) -> Any:
    """json.loads that raises only ValueError (too deep a value is one too)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def parse_guest_result(text: str | None) -> tuple[str | None, Any, GuestError | None, list[str]]:
    """Read the guest runner's JSON (untrusted) into (value, json, error, files).

    Never raises: whatever the guest sent (deep nesting, lone surrogates,
    wrong types) becomes a value, or a ProtocolError as the cell's error.
    """
    if text is None:
        return None, None, None, []
    try:
        data = _loads(text)
    except ValueError:
        return None, None, GuestError("ProtocolError", "the guest sent an unreadable result"), []
    if not isinstance(data, dict):
        return None, None, GuestError("ProtocolError", "the guest sent a malformed result"), []
    files = data.get("files")
    files = [clean_text(f) for f in files if isinstance(f, str)] if isinstance(files, list) else []
    err = data.get("error")
    error = None
    if isinstance(err, dict):
        error = GuestError(_str(err, "type", "Error") or "Error", _str(err, "message"), _str(err, "traceback"))
    value = clean_text(data["value"]) if isinstance(data.get("value"), str) else None
    js = None
    if isinstance(data.get("json"), str):
        try:
            js = _clean_json(_loads(data["json"]))
        except ValueError:
            js = None
    return value, js, error, files
