"""Printing a task's events the way the seed's example does.

    Step 1:
    Stop reason: tool_use
    Tool call: execute_python
        with open('/network/current-ip') as f: ...
    Tool result: ok
        stdout | Current IP Address: 255.255.255.255
    Checkpoint: step 1 saved in .throwaway/tasks.sqlite (task 5f2c9a1b3d4e, files 9a8b7c6d5e4f)
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import click

from throwaway.agent.events import Event

from .terminal import plain

MAX_LINES = 40
_PROGRESS = re.compile(r"^(Loading|Loaded|Installing|Installed|Downloading|Fetching) ")


class Printer:
    """An event listener that prints a task's progress to the terminal.

    With `live` (default: when printing to a terminal), a line on stderr
    counts the seconds while the model thinks, and is wiped when it answers.
    """

    def __init__(self, echo: Callable[..., None] = click.echo, color: bool | None = None,
                 live: bool | None = None) -> None:
        self._echo = echo
        self.color = color
        self._partial: dict[str, str] = {}
        self._live = live if live is not None else (echo is click.echo and sys.stderr.isatty())
        self._ticker: _Ticker | None = None
        self._tokens = [0, 0]  # input, output: the whole task's
        self._model_seconds = 0.0

    def __call__(self, event: Event) -> None:
        if self._ticker:
            self._ticker.stop()
            self._ticker = None
        handler = getattr(self, "on_" + event.get("type", ""), None)
        if handler:
            if event.get("type") != "output":
                self._partial.clear()
            handler(event)

    def line(self, text: str = "", **style: Any) -> None:
        """Print one line; what it holds came from the guest or the model, so its control sequences go first."""
        text = plain(text)
        self._echo(click.style(text, **style) if style else text, color=self.color)

    # --- handlers ------------------------------------------------------------

    def on_task(self, e: Event) -> None:
        resumed = " (resumed)" if e.get("resumed") else ""
        self.line(f"Task {e['task_id']}{resumed} · model {e.get('model')}", dim=True)
        self.line(f"Prompt: {e['prompt']}", bold=True)

    def on_thinking(self, e: Event) -> None:
        if self._live:
            self._ticker = _Ticker(f"Step {e['step']}: the model is thinking")

    def on_model(self, e: Event) -> None:
        self.line()
        note = " (from checkpoint)" if e.get("replayed") else ""
        self.line(f"Step {e['step']}:{note}", bold=True)
        self.line(f"Stop reason: {e['stop_reason']}{self._cost(e)}")
        parsed = e.get("text_calls")
        if parsed:
            self.line(f"Tool call parsed from text ({parsed.get('form')}): the model wrote it in its reply", dim=True)
        if e.get("text"):
            if e.get("tool_calls"):
                self._block(e["text"], dim=True)
            else:
                self._block(e["text"], indent="")
        for call in e.get("tool_calls", []):
            self.on_tool_call(call)

    def on_tool_call(self, call: dict[str, Any]) -> None:
        args = dict(call.get("args") or {})
        code = args.pop("code", None)
        rest = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
        self.line(f"Tool call: {call['tool']} {rest}".rstrip(), fg="cyan")
        if code is not None:
            self._block(code.strip("\n"), fg="cyan")

    def on_output(self, e: Event) -> None:
        # Live progress while a cell runs: package loading (which the sandbox
        # reports on stderr) and any stream other than stdout/stderr. The
        # cell's ordinary output comes with its result.
        stream, text = e.get("stream", ""), e.get("text", "")
        self._partial[stream] = self._partial.get(stream, "") + text
        *lines, self._partial[stream] = self._partial[stream].split("\n")
        for line in lines:
            if stream not in ("stdout", "stderr") or (stream == "stderr" and _PROGRESS.match(line)):
                self.line(f"    … {line.rstrip()}", dim=True)

    def on_tool(self, e: Event) -> None:
        content = e.get("content")
        restored = " (sandbox restored from checkpoint)" if e.get("restored") else ""
        if isinstance(content, dict):
            ok = content.get("success", e.get("ok"))
            summary = "ok" if ok else "failed"
            if content.get("limit"):
                summary += f" (limit: {content['limit']})"
            error = content.get("error")
            if error:
                summary += f" ({error.get('type')}: {error.get('message')})"
            self.line(f"Tool result: {summary}{restored}", fg=None if ok else "red")
            for key in ("stdout", "stderr", "value"):
                if content.get(key):
                    self._block(str(content[key]).rstrip("\n"), label=key)
            if error and error.get("traceback"):
                self._block(error["traceback"].rstrip("\n"), label="error", fg="red")
            for path in content.get("files_written", []):
                self.line(f"    wrote  | {path}", fg="green")
            for call in e.get("mcp_calls") or []:
                self.line(f"    mcp    | {_mcp_call(call)}", fg="red" if call.get("error") else "magenta")
            if e.get("mcp_calls_omitted"):
                self.line(f"    mcp    | ... and {e['mcp_calls_omitted']} more calls", dim=True)
            if content.get("note"):
                self.line(f"    note   | {content['note']}", dim=True)
        else:
            status = "ok" if e.get("ok") else "failed"
            self.line(f"Tool result: {status}{restored}", fg=None if e.get("ok") else "red")
            self._block(str(content).rstrip("\n"))

    def on_correction(self, e: Event) -> None:
        problem = e.get("problem") or "the reply was no usable answer"
        self.line(f"No usable reply ({problem}): asking the model again to call a tool or answer in words.",
                  fg="yellow")

    def on_checkpoint(self, e: Event) -> None:
        files = f", files {e['snapshot'][:12]}" if e.get("snapshot") else ""
        self.line(f"Checkpoint: step {e['step']} saved in {_short(e.get('database', ''))} "
                  f"(task {e['task_id']}{files})", dim=True)

    def on_done(self, e: Event) -> None:
        self.line()
        steps, status = e.get("steps", 0), e.get("status")
        if e.get("answer"):
            self.line("Answer:" if status == "done" else "Last words of the model:", bold=True)
            for text in e["answer"].splitlines():
                self.line(text)
            self.line()
        tokens = f" · {self._tokens[0]:,} tokens in, {self._tokens[1]:,} out" if any(self._tokens) else ""
        model_time = f" · {self._model_seconds:.1f} s waiting for the model" if self._model_seconds else ""
        self.line(f"Total steps: {steps}{tokens}{model_time}")
        if status == "max_steps":
            self.line(f"Ended: stopped after {steps} steps (the limit) without a final answer.", fg="yellow")
        elif status == "failed":
            self.line(f"Ended: failed: {e.get('reason') or 'no usable reply'}", fg="red")
        else:
            self.line("Ended: done", fg="green")
        artifacts = e.get("artifacts") or []
        if artifacts:
            folder = _short(e.get("output_dir", ""))
            self.line(f"Making {len(artifacts)} file(s) available in {folder}:")
            for path in artifacts:
                self.line(f"✓ {os.path.relpath(path, e.get('output_dir') or '.')}", fg="green")

    def on_error(self, e: Event) -> None:
        if not e.get("step_name"):
            return  # the task's own failure: the command that ran it says so, in one line
        self.line()
        self.line(f"Step failed ({e.get('step_name')}): {e.get('error')}", fg="red")

    # --- helpers ---------------------------------------------------------------

    def _cost(self, e: Event) -> str:
        """`` · 12.3 s · 1,234 in / 56 out tokens`` for a model step that ran now, and add it to the totals."""
        bits = []
        if e.get("seconds") is not None:
            bits.append(f"{e['seconds']:.1f} s")
            self._model_seconds += e["seconds"]
        usage = e.get("usage") or {}
        if usage.get("input_tokens") or usage.get("output_tokens"):
            self._tokens[0] += usage.get("input_tokens") or 0
            self._tokens[1] += usage.get("output_tokens") or 0
            bits.append(f"{usage.get('input_tokens') or 0:,} in / {usage.get('output_tokens') or 0:,} out tokens")
        return "".join(f" · {b}" for b in bits)

    def _block(self, text: str, label: str | None = None, indent: str = "    ", **style: Any) -> None:
        lines = text.splitlines() or [""]
        if len(lines) > MAX_LINES:
            lines = lines[: MAX_LINES - 5] + [f"... ({len(lines) - MAX_LINES + 1} more lines)"] + lines[-4:]
        prefix = f"{indent}{label:<6} | " if label else indent
        for line in lines:
            self.line(f"{prefix}{line}", **style)


class _Ticker:
    """A line on stderr that counts seconds until stopped, then wipes itself."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            sys.stderr.write(f"\r{self.label}… {time.monotonic() - self.started:.0f} s\033[K")
            sys.stderr.flush()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def _mcp_call(call: dict[str, Any]) -> str:
    """One MCP call of a step: server.tool(arguments) -> size, time (or its error)."""
    args = call.get("arguments")
    if isinstance(args, dict):
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
    args = str(args) if len(str(args)) <= 200 else str(args)[:197] + "..."
    outcome = call.get("error") or f"{call.get('result_bytes', 0)} bytes"
    return f"{call.get('server')}.{call.get('tool')}({args}) -> {outcome}, {call.get('seconds', 0):.2f} s"


def _short(path: str) -> str:
    """A path relative to the current folder when that is shorter."""
    if not path or "://" in path:
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    rel = rel if len(rel) < len(path) else path
    return rel if rel.startswith((".", "/")) else "./" + rel
