"""The sandbox: Pyodide in a locked-down Deno worker, driven from Python."""

from ..wire.calls import HostCalls, Reply
from .limits import Limits
from .pool import AsyncSandboxPool, SandboxPool
from .result import ExecResult, GuestError
from .sandbox import AsyncSandbox, Sandbox
from .session import SandboxError

__all__ = ["AsyncSandbox", "AsyncSandboxPool", "SandboxPool", "ExecResult", "GuestError", "HostCalls", "Limits", "Reply", "Sandbox", "SandboxError"]
