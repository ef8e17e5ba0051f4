"""What one `exec` gives back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Limit = Literal["timeout", "memory", "output", "disk", "interrupt", "crash"]


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


def _str(d: dict, key: str, default: str = "") -> str:
    v = d.get(key, default)
    return v if isinstance(v, str) else default


def parse_guest_result(text: str | None) -> tuple[str | None, Any, GuestError | None, list[str]]:
    """Read the guest runner's JSON (untrusted) into (value, json, error, files)."""
    if text is None:
        return None, None, None, []
    try:
        data = json.loads(text)
    except ValueError:
        return None, None, GuestError("ProtocolError", "the guest sent an unreadable result"), []
    if not isinstance(data, dict):
        return None, None, GuestError("ProtocolError", "the guest sent a malformed result"), []
    files = data.get("files")
    files = [f for f in files if isinstance(f, str)] if isinstance(files, list) else []
    err = data.get("error")
    error = None
    if isinstance(err, dict):
        error = GuestError(_str(err, "type", "Error") or "Error", _str(err, "message"), _str(err, "traceback"))
    value = data.get("value") if isinstance(data.get("value"), str) else None
    js = None
    if isinstance(data.get("json"), str):
        try:
            js = json.loads(data["json"])
        except ValueError:
            js = None
    return value, js, error, files
