"""Following a running task: server-sent events with its steps as they are checkpointed and its output as it prints."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from throwaway.agent import events
from throwaway.durable import checkpoints, get_task

from . import timeline
from .state import UI

POLL_SECONDS = 0.5


async def task_events(request: Request) -> Response:
    """Server-sent events for a task page: each step as it changes, a running cell's output, the status, the end.

    Steps come from the checkpoints, polled, so a task run by any process
    shows up; a cell's output as it is printed comes only from tasks this
    server's process runs (their events are in memory, not in the database).
    """
    ui: UI = request.app.state.ui
    task = await anyio.to_thread.run_sync(ui.task, request.path_params["task_id"])
    try:
        seen = int(request.query_params.get("seen", "0"))
    except ValueError:
        seen = 0
    status = request.query_params.get("status", "")

    async def stream() -> AsyncIterator[str]:
        nonlocal seen, status
        loop = asyncio.get_running_loop()
        printed: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

        def on_event(event: dict[str, Any]) -> None:
            if event.get("type") == "output":
                loop.call_soon_threadsafe(_offer, printed, event)

        last_sent = time.monotonic()
        deadline = time.monotonic() + 6 * 3600
        with events.listen(task.task_id, on_event):
            while time.monotonic() < deadline:
                current = await anyio.to_thread.run_sync(get_task, task.task_id)
                cps = await anyio.to_thread.run_sync(checkpoints, task.task_id)
                if len(cps) != seen:
                    line = timeline.build(cps)
                    first_new = cps[seen]["id"] if seen < len(cps) else 0
                    for step in line.steps:
                        if step.checkpoint_id >= first_new or step is line.steps[-1]:
                            html = await anyio.to_thread.run_sync(ui.step_html, current, step)
                            yield _event("step", {"number": step.number, "html": html})
                    seen = len(cps)
                    last_sent = time.monotonic()
                if current.status != status:
                    status = current.status
                    yield _event("status", {"status": status})
                    last_sent = time.monotonic()
                if not ui.live(current):
                    yield _event("end", {"status": status})
                    return
                if time.monotonic() - last_sent > 15:
                    yield ": keep-alive\n\n"
                    last_sent = time.monotonic()
                # Wait for the next poll, passing on what running cells print meanwhile.
                until = time.monotonic() + POLL_SECONDS
                while (left := until - time.monotonic()) > 0:
                    try:
                        event = await asyncio.wait_for(printed.get(), timeout=left)
                    except TimeoutError:
                        break
                    yield _event("output", {"step": event.get("step"), "stream": event.get("stream"),
                                            "text": str(event.get("text", ""))})
                    last_sent = time.monotonic()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


def _offer(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    # A page that cannot keep up loses live output, never the task's: the checkpoint has it all.
    if not queue.full():
        queue.put_nowait(event)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"
