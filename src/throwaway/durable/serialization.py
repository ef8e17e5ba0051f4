"""How checkpoints are written: plain JSON, readable by anyone with the database, and never unpickled.

A checkpoint is data a process reads back and acts on; whoever can write to
the database must not be able to run code in the process that resumes a task.
So workflow inputs, outputs and step outputs are JSON text, the errors DBOS
records for failed steps are JSON too (their type's name and a clipped
message), and a row in any other form, a pickled one above all, is refused
with an error that says so. DBOS's own pickle serializer, which it would use
for a row marked ``py_pickle`` whatever serializer it was given, is replaced
by one that refuses as well.
"""

from __future__ import annotations

import json
from typing import Any

from dbos import Serializer

from throwaway.agent.clipping import clip

# Reading back lives in `decoding` (no DBOS import: `throwaway tasks` reads the tables with it).
from .decoding import (
    ERROR_MARKER,
    SERIALIZER_NAME,
    CheckpointNotJson,
    RecordedError,
    decode,
    not_json,
)

__all__ = ["MAX_ERROR_CHARS", "CheckpointNotJson", "JsonSerializer", "RecordedError", "refuse_pickled_rows"]

# The longest error message a checkpoint keeps.
MAX_ERROR_CHARS = 10_000


class JsonSerializer(Serializer):
    """DBOS serializer that stores workflow inputs, outputs, step outputs and errors as JSON.

    Our steps return plain JSON data by contract, so their checkpoints are JSON
    text a person (or `throwaway show`) can read straight from the database.
    Making one also shuts DBOS's pickle serializer (see the module's docs).
    """

    def __init__(self) -> None:
        refuse_pickled_rows()

    def serialize(self, data: Any) -> str:
        if isinstance(data, BaseException):
            return ERROR_MARKER + json.dumps(_error_data(data), ensure_ascii=False)
        try:
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"a checkpoint must be plain JSON data; {type(data).__name__} is not ({e})") from None

    def deserialize(self, serialized_data: str) -> Any:
        return decode(serialized_data)

    def name(self) -> str:
        return SERIALIZER_NAME


class _RefusePickle(Serializer):
    """Stands in for DBOS's pickle serializer: rows it would unpickle are refused."""

    def serialize(self, data: Any) -> str:
        raise TypeError("throwaway writes JSON checkpoints only, never pickles")

    def deserialize(self, serialized_data: str) -> Any:
        raise CheckpointNotJson(not_json(serialized_data, pickled=True))

    def name(self) -> str:
        return "py_pickle"  # the name DBOS marks pickled rows with


def refuse_pickled_rows() -> None:
    """Make DBOS refuse rows marked as pickled instead of unpickling them (idempotent).

    DBOS picks the deserializer by the name stored in each row, and looks its
    pickle serializer up in its module at each call, so replacing it there
    covers every read of workflow inputs, outputs, step outputs and errors.
    """
    from dbos import _serialization

    if not isinstance(_serialization.DBOSDefaultSerializer, _RefusePickle):
        _serialization.DBOSDefaultSerializer = _RefusePickle()


def _error_data(error: BaseException) -> dict[str, str]:
    message = _message(error)
    # DBOS's "exceeded its maximum of 3 retries" says nothing of why: keep the last reason.
    errors = getattr(error, "errors", None)
    if isinstance(errors, list) and errors and isinstance(errors[-1], BaseException):
        message += f" (last: {type(errors[-1]).__name__}: {_message(errors[-1])})"
    return {"type": type(error).__qualname__, "module": type(error).__module__,
            "message": clip(message, MAX_ERROR_CHARS)}


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not stop the checkpoint
        return repr(type(error))
