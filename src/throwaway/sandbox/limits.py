"""The limits that stop a cell, each named in the result when it does."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Per-sandbox limits.

    timeout: seconds of wall clock per exec before a KeyboardInterrupt;
    grace: seconds after that before the worker is killed and replaced;
    memory_mb: the guest's WebAssembly memory (MemoryError past it);
    output_bytes: stdout + stderr per exec (the cell is stopped past it).
    """

    timeout: float = 30.0
    grace: float = 2.0
    memory_mb: int = 1024
    output_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.grace < 0:
            raise ValueError("timeout must be > 0 and grace >= 0")
        if self.memory_mb < 64:
            raise ValueError("memory_mb must be at least 64 (Pyodide itself needs about 40 MB)")
        if self.output_bytes < 0:
            raise ValueError("output_bytes must be >= 0")
