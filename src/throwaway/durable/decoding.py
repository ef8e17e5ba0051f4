"""Reading checkpoints back: JSON text to data, a recorded error to an exception, never unpickling.

The other half of `serialization` (which writes them), in a module of its own
that imports neither DBOS nor anything heavy: DBOS's serializer calls
`decode` when a task resumes, and `records` calls it when `throwaway tasks`,
`show` or the web view read the tables directly. One reading, whoever reads.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from typing import Any

# The name DBOS stores in each row written by our serializer (its `serialization` column).
SERIALIZER_NAME = "throwaway_json"

# A recorded exception: this marker, then a JSON object. No JSON document
# starts with "!", so it cannot be mistaken for a step's output.
ERROR_MARKER = "!error:"

# Our own exceptions that come back as themselves (the CLI tells them apart),
# by "module.qualname"; any other recorded exception comes back as a
# `RecordedError` of the same name. The module is imported only when such an
# error is read back.
_REBUILT = {"throwaway.agent.models.ModelFailed": ("throwaway.agent.models", "ModelFailed")}


class CheckpointNotJson(ValueError):
    """A checkpoint that is not JSON: refused, never unpickled."""


class RecordedError(Exception):
    """A failed step's exception as a checkpoint keeps it: its type's name and message.

    Read back, it is an instance of a subclass named like the original
    (``type(e).__name__`` is ``"DBOSMaxStepRetriesExceeded"``), with the
    original's module in `module`.
    """

    module = ""


def decode(text: str) -> Any:
    """A checkpoint's value from its text: JSON data, or the exception a failed step recorded.

    Raises `CheckpointNotJson` for anything else (a pickle above all), saying what it is.
    """
    if text.startswith(ERROR_MARKER):
        try:
            return _error_from(json.loads(text[len(ERROR_MARKER):]))
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointNotJson(f"a recorded error in the task database is damaged: {e}") from None
    try:
        return json.loads(text)
    except ValueError:
        raise CheckpointNotJson(not_json(text)) from None


def not_json(text: str, pickled: bool = False) -> str:
    """Why a checkpoint's text is refused (`pickled`: its row is marked as a pickle)."""
    what = "marked as pickled" if pickled else "pickled" if text.startswith(("gA", "!pickle:")) else "not JSON"
    return (f"a checkpoint in the task database is {what} ({text[:24]!r}...); throwaway reads JSON checkpoints "
            "only and never unpickles. The row was not written by this version of throwaway: remove the task "
            "or the database")


def _error_from(data: dict[str, Any]) -> BaseException:
    type_name, module, message = str(data["type"]), str(data.get("module", "")), str(data["message"])
    home = _REBUILT.get(f"{module}.{type_name}")
    if home is not None:
        import importlib

        return getattr(importlib.import_module(home[0]), home[1])(message)
    builtin = getattr(builtins, type_name, None) if module == "builtins" else None
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        with contextlib.suppress(Exception):  # a builtin that wants other arguments falls through
            return builtin(message)
    # A class named after the original, made here: nothing is imported or run.
    cls = type(type_name.rpartition(".")[2] or "RecordedError", (RecordedError,), {"module": module})
    return cls(message)
