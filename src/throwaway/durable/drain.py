"""Stopping a worker between steps: its tasks park at the next step boundary.

A worker told to stop lets every step in flight finish (its checkpoint is
written), then parks each task before its next step, so it can hand them back
to the queue and exit without losing or repeating a finished step.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_stopping = threading.Event()
_idle = threading.Condition()
_in_flight = 0


@contextmanager
def step() -> Iterator[None]:
    """Hold a step open; before it starts, park for good if the worker is stopping."""
    global _in_flight
    if _stopping.is_set():
        threading.Event().wait()  # parked: the process exits and another worker carries on
    with _idle:
        _in_flight += 1
    try:
        yield
    finally:
        with _idle:
            _in_flight -= 1
            _idle.notify_all()


def stop(timeout: float | None = None) -> bool:
    """Park every task at its next step; wait for the steps in flight. False if `timeout` passed first."""
    _stopping.set()
    with _idle:
        return _idle.wait_for(lambda: _in_flight == 0, timeout)


def stopping() -> bool:
    return _stopping.is_set()
