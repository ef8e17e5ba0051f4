"""throwaway: agents that solve problems by writing throwaway Python in a sandbox.

The names a user touches first, importable from here:

>>> from throwaway import Sandbox, FileSystem, Agent
>>> with Sandbox() as sb:
...     sb.exec("6 * 7").json
42

Each is imported on first use, so ``import throwaway`` stays fast and a
program that only runs sandboxes never loads the agent's or the database's
libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_FACE = {
    "Sandbox": "throwaway.sandbox",
    "AsyncSandbox": "throwaway.sandbox",
    "SandboxPool": "throwaway.sandbox",
    "AsyncSandboxPool": "throwaway.sandbox",
    "Limits": "throwaway.sandbox",
    "ExecResult": "throwaway.sandbox",
    "SandboxError": "throwaway.sandbox",
    "PackageGateway": "throwaway.sandbox.packages",
    "FileSystem": "throwaway.fs",
    "Resource": "throwaway.fs",
    "MountSpec": "throwaway.fs",
    "BlobStore": "throwaway.store",
    "Agent": "throwaway.durable",
    "TaskResult": "throwaway.agent",
    "ModelNotConfigured": "throwaway.agent",
    "MCPServer": "throwaway.mcp",
    "Toolset": "throwaway.mcp",
    "Toolbox": "throwaway.mcp",
}

__all__ = sorted(_FACE)

if TYPE_CHECKING:
    from throwaway.agent import ModelNotConfigured, TaskResult
    from throwaway.durable import Agent
    from throwaway.fs import FileSystem, MountSpec, Resource
    from throwaway.mcp import MCPServer, Toolbox, Toolset
    from throwaway.sandbox import AsyncSandbox, AsyncSandboxPool, ExecResult, Limits, Sandbox, SandboxError, SandboxPool
    from throwaway.sandbox.packages import PackageGateway
    from throwaway.store import BlobStore


def __getattr__(name: str) -> Any:
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module 'throwaway' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACE])
