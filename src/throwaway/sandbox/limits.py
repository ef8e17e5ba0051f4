"""The limits that stop a cell, each named in the result when it does."""

from __future__ import annotations

from dataclasses import dataclass

MIN_FRAME_BYTES = 8 << 20


@dataclass(frozen=True)
class Limits:
    """Per-sandbox limits.

    timeout: seconds of wall clock per exec before a KeyboardInterrupt;
    grace: seconds after that before the worker is killed and replaced;
    memory_mb: the guest's WebAssembly memory (MemoryError past it);
    output_bytes: stdout + stderr per exec (the cell is stopped past it);
    frame_bytes: the largest message the host takes from the runtime (a host
    call's arguments and data, a result). Past it the cell ends with
    `limit == "frame"` and the runtime is replaced. Guest code's own
    `throwaway.call` and the host's file transfers send large data in parts,
    so only a message forced past the runtime's own checks hits it.
    """

    timeout: float = 30.0
    grace: float = 2.0
    memory_mb: int = 1024
    output_bytes: int = 1_000_000
    frame_bytes: int = 16 << 20

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.grace < 0:
            raise ValueError("timeout must be > 0 and grace >= 0")
        if self.memory_mb < 64:
            raise ValueError("memory_mb must be at least 64 (Pyodide itself needs about 40 MB)")
        if self.output_bytes < 0:
            raise ValueError("output_bytes must be >= 0")
        if self.frame_bytes < MIN_FRAME_BYTES:
            raise ValueError(f"frame_bytes must be at least {MIN_FRAME_BYTES} (host calls send data in parts of 4 MiB)")
