"""What a running task reports as it goes, and who is listening.

A task emits plain dict events (``{"type": "model", ...}``); whoever started
or resumed it in this process subscribes by task id. Events are a live view
only: the durable record is the checkpoints, which `throwaway show` reads.

Event types and their keys:

- ``task``: task_id, prompt, model, resumed (bool)
- ``thinking``: step (the model is being asked; its ``model`` event follows)
- ``model``: step, stop_reason, text, tool_calls ([{tool, args, call_id}]), replayed, usage
  ({input_tokens, output_tokens}), seconds, text_calls (what was parsed from its text, or None)
- ``correction``: step, problem, message (the reply was no answer; the model is asked again)
- ``output``: step, stream, text (live output of a running cell, e.g. package loading)
- ``tool``: step, tool, args, call_id, ok, content, replayed, restored
- ``checkpoint``: step, task_id, snapshot, database
- ``done``: task_id, status (done, max_steps, failed), answer, steps, artifacts, output_dir, reason
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Event = dict[str, Any]
Listener = Callable[[Event], None]

_lock = threading.Lock()
_listeners: dict[str, list[Listener]] = {}


@contextmanager
def listen(task_id: str, listener: Listener) -> Iterator[None]:
    """Call `listener` with each event task `task_id` emits in this process, inside the block."""
    with _lock:
        _listeners.setdefault(task_id, []).append(listener)
    try:
        yield
    finally:
        with _lock:
            found = _listeners.get(task_id, [])
            if listener in found:
                found.remove(listener)
            if not found:
                _listeners.pop(task_id, None)


def emit(task_id: str, event: Event) -> None:
    """Hand `event` to the task's listeners; a failing listener never fails the task."""
    with _lock:
        listeners = list(_listeners.get(task_id, ()))
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # noqa: BLE001, S110 - printing must not break a durable task
            pass
