"""Clipping long text before it goes into a prompt or a checkpoint."""

from __future__ import annotations

# The longest text (a stream, an error message, a tool's answer) the model or
# a checkpoint gets in one piece.
MAX_CHARS = 10_000


def clip(text: str, limit: int = MAX_CHARS) -> str:
    """`text` if it has at most `limit` characters, else its head and tail around a ``[... N characters cut]`` line.

    The head keeps three quarters of the bound, the tail (where a traceback's
    error line is) the rest; the result is at most `limit` plus the marker.
    """
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 3 // 4], text[len(text) - limit // 4:]
    return f"{head}\n[... {len(text) - len(head) - len(tail):,} characters cut]\n{tail}"
