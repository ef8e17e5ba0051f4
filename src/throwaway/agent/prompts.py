"""The system prompt, built from what the task really has."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .library import DOCS_GUEST, SKILLS_GUEST, Library

INTRO = """\
You solve the user's task by writing throwaway Python. The code runs in a
sandbox: CPython compiled to WebAssembly (Pyodide), with no network and no
subprocesses. Its only door to the world is the file system below: read what
you need from it, and write what you make to /output.

Tools:
- execute_python(code): run code in a persistent interpreter, like a notebook
  cell: globals persist between calls, the last expression's value is
  returned, top-level `await` works. You see stdout, stderr, the value, the
  error if any, and the files the cell wrote to /output. Which packages
  there are is said below.
- describe(path, question): look at an image or PDF in the sandbox (for
  instance one your code made) and get an answer to the question about it.
  It cannot read text: read text files with open() in execute_python.
- help(query): search the docs and skills listed below.

Work in small steps and check results. If a cell fails, read the error and
fix the code. When you are done, reply with the answer in plain text (no tool
call) and name the files you left in /output."""


class MountInfo(Protocol):
    path: str
    kind: str
    description: str
    writable: bool


@dataclass(frozen=True)
class TaskLimits:
    """The limits a task runs under, as the prompt states them."""

    max_steps: int
    cell_timeout: float | None = None
    memory_mb: int | None = None


def system_prompt(
    mounts: Iterable[MountInfo],
    library: Library | None = None,
    limits: TaskLimits | None = None,
    host_modules: Sequence[tuple[str, str]] = (),
    extra: str | None = None,
    packages: str | None = None,
) -> str:
    """The system prompt for a task: what the sandbox has, what may be read and written, the limits.

    `host_modules` are ``(import name, one-line description)`` pairs for host
    functions the guest can import; `extra` is appended as the operator's own
    instructions; `packages` says what the guest can import (see
    `throwaway.agent.packages.probe`).
    """
    parts = [INTRO, _file_system(mounts)]
    if packages:
        parts.append(packages.strip())
    if library and library.docs:
        parts.append("Docs (read them with open(), or ask help(query)):\n" + "\n".join(f"- {p}" for p in library.docs))
    if library and library.skills:
        lines = [f"- {s.name}: {s.description or '(no description)'} ({s.path})" for s in library.skills]
        parts.append(
            f"Skills: folders under {SKILLS_GUEST}, each with a SKILL.md that says how to do one kind of job. "
            "Before you do such a job, read that skill's SKILL.md and follow it.\n" + "\n".join(lines)
        )
    if host_modules:
        parts.append("Host modules you can import (each call runs on the host):\n"
                     + "\n".join(f"- {name}: {doc}" for name, doc in host_modules))
    if limits:
        parts.append(_limits(limits))
    if extra:
        parts.append(extra.strip())
    return "\n\n".join(parts)


def _file_system(mounts: Iterable[MountInfo]) -> str:
    rows = []
    for mount in sorted(mounts, key=lambda m: m.path):
        access = "read-write" if getattr(mount, "writable", False) else "read-only"
        description = getattr(mount, "description", "") or _default_description(mount)
        rows.append(f"- {mount.path} ({getattr(mount, 'kind', 'mount')}, {access}): {description}")
    return "The file system (the current directory is /home/user):\n" + "\n".join(rows)


def _default_description(mount: Any) -> str:
    return {
        "/home/user": "scratch space, the working directory",
        "/tmp": "scratch space",
        "/output": "files you make for the user; they get every file here at the end",
        DOCS_GUEST: "help text",
        SKILLS_GUEST: "skills",
    }.get(mount.path, "")


def _limits(limits: TaskLimits) -> str:
    lines = [f"- at most {limits.max_steps} steps (model turns) for the whole task"]
    if limits.cell_timeout:
        lines.append(f"- each execute_python call may run for {limits.cell_timeout:g} s; past that it is interrupted")
    if limits.memory_mb:
        lines.append(f"- {limits.memory_mb} MB of memory for the interpreter")
    return "Limits:\n" + "\n".join(lines)
