"""Host calls: named handlers on the host that guest code calls synchronously.

In the guest, `throwaway.call(name, args, data)` blocks until the host has
answered; on the host, a handler is a plain or async function
`handler(args, data)`. Its JSON-able return value goes back as the value;
bytes go back as raw payload (no base64); `Reply(value, data)` sends both. An
exception crosses as an exception of the same builtin type (with its errno
for OSErrors); the host's traceback stays on the host. A handler still
running at the cell's deadline is abandoned (plain) or cancelled (async), and
the guest gets a TimeoutError.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import frames

Handler = Callable[[Any, bytes], Any | Awaitable[Any]]


@dataclass(frozen=True)
class Reply:
    """A handler's answer with both a JSON value and raw bytes."""

    value: Any = None
    data: bytes = b""


class HostCalls:
    """A registry of named host functions that guest code may call.

    >>> calls = HostCalls()
    >>> @calls.handler("greet")
    ... def greet(args, data):
    ...     return f"hello {args['name']}"
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def handler(self, name: str) -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler of `name`."""

        def register(fn: Handler) -> Handler:
            self.add(name, fn)
            return fn

        return register

    def add(self, name: str, fn: Handler) -> None:
        if not name or len(name) > 200:
            raise ValueError("a handler name must have 1 to 200 characters")
        self._handlers[name] = fn

    def remove(self, name: str) -> None:
        self._handlers.pop(name, None)

    def update(self, other: HostCalls) -> None:
        self._handlers.update(other._handlers)

    def __contains__(self, name: str) -> bool:
        return name in self._handlers

    def items(self) -> list[tuple[str, Handler]]:
        return list(self._handlers.items())

    def resolve(self, name: str, args_json: str) -> tuple[Handler, Any]:
        """The handler of `name` and the call's decoded arguments, for the
        driver to run (see `throwaway.sandbox.handlers`); a LookupError or
        ValueError goes back to the guest as the call's error."""
        fn = self._handlers.get(name)
        if fn is None:
            raise LookupError(f"no host function named {name!r}")
        try:
            args = json.loads(args_json) if args_json else None
        except ValueError:
            raise ValueError("host call arguments are not valid JSON") from None
        return fn, args


def reply_frame(call_id: int, result: Any = None, error: BaseException | None = None, *, cut: bool = False) -> bytes:
    """The framed reply to the runtime for a finished call: a value, bytes, a
    `Reply` or an error. The value is JSON-encoded once, and a value that is
    not JSON becomes the call's TypeError. `cut`: the call was given up at
    the cell's deadline (the runtime holds its interrupt until the guest has
    this error)."""
    if error is None:
        if isinstance(result, Reply):
            value, data = result.value, result.data
        elif isinstance(result, (bytes, bytearray, memoryview)):
            value, data = None, bytes(result)
        else:
            value, data = result, b""
        try:
            text = _dumps(value)
        except (TypeError, ValueError, RecursionError) as e:
            return reply_frame(call_id, error=TypeError(f"host function returned a value that is not JSON: {e}"))
        # The header spliced around the value's JSON: no second encoding of the value.
        head = f'{{"t":"reply","id":{_dumps(call_id)},"ok":true,"value":{text}}}'.encode()
        return frames.PREFIX.pack(len(head), len(data)) + head + data
    info: dict[str, Any] = {"type": type(error).__name__, "message": _message(error)}
    if isinstance(error, OSError) and error.errno in errno.errorcode:
        # By name: the guest's errno numbers are Emscripten's, not the host's.
        info["errno"] = errno.errorcode[error.errno]
        if error.filename is not None:
            info["filename"] = str(error.filename)
    header: dict[str, Any] = {"t": "reply", "id": call_id, "ok": False, "error": info}
    if cut:
        header["cut"] = True
    return frames.encode(header)


_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode  # NaN is not JSON: JSON.parse refuses it


def _message(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error)
