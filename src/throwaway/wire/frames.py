"""The framed messages between the Python host and the Deno runtime.

A frame is a prefix, a JSON header, then raw payload bytes, so bytes cross
without base64. Host to runtime (stdin), the prefix is 8 bytes: header length,
payload length (little-endian u32 each). Runtime to host (stdout), it is 24
bytes: the runtime's 16-byte key, then the two lengths.

The key is there because guest code can write to the runtime process's stdout
too (Deno.stdout, node:fs on fd 1): the host draws a random key for each
runtime, hands it over on stdin (never argv), and checks the key and the
frame's size from the prefix alone, before it buffers a byte of the frame.
So junk or a forged prefix on stdout costs the host at most one read, and a
frame the runtime did write is bounded by `Limits.frame_bytes`.
"""

from __future__ import annotations

import hmac
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

PREFIX = struct.Struct("<II")  # host -> runtime
KEY_BYTES = 16
UP_PREFIX = struct.Struct(f"<{KEY_BYTES}sII")  # runtime -> host: key, header length, payload length


class ProtocolError(RuntimeError):
    """The runtime sent something that is not a valid message."""


class FrameTooLarge(ProtocolError):
    """A frame with the runtime's key, but larger than the host accepts."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the runtime sent a frame of {size} bytes, over the limit of {limit} "
                         "(Limits.frame_bytes); send large data in parts")
        self.size = size
        self.limit = limit


def new_key() -> bytes:
    """A fresh random key for one runtime process."""
    return secrets.token_bytes(KEY_BYTES)


@dataclass
class Message:
    header: dict[str, Any]
    payload: bytes = field(default=b"", repr=False)

    @property
    def type(self) -> str:
        return self.header["t"]

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        """A header field checked for its type; ProtocolError if it has another."""
        value = self.header.get(key, default)
        if value is default:
            return value
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ProtocolError(f"field {key!r} of {self.type!r} has the wrong type")
        return value


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return PREFIX.pack(len(head), len(payload)) + head + payload


def encode_up(key: bytes, header: dict[str, Any], payload: bytes = b"") -> bytes:
    """A runtime-to-host frame (what main.js writes; for tests and fakes)."""
    head = json.dumps(header, separators=(",", ":")).encode()
    return UP_PREFIX.pack(key, len(head), len(payload)) + head + payload


def parse_up_prefix(prefix: bytes, key: bytes, max_bytes: int) -> tuple[int, int]:
    """Check a runtime-to-host prefix: its key first, then its size.

    ProtocolError if the key is not `key` (the bytes were not written by the
    runtime); FrameTooLarge if header + payload exceed `max_bytes`.
    """
    got, hlen, plen = UP_PREFIX.unpack(prefix)
    if not hmac.compare_digest(got, key):
        raise ProtocolError("a frame the runtime did not write (something but its main thread wrote to the host's pipe)")
    if hlen + plen > max_bytes:
        raise FrameTooLarge(hlen + plen, max_bytes)
    return hlen, plen


def decode(head: bytes, payload: bytes) -> Message:
    try:
        header = json.loads(head)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"bad frame header: {type(e).__name__}") from None
    if not isinstance(header, dict) or not isinstance(header.get("t"), str):
        raise ProtocolError("frame header has no type")
    return Message(header, payload)
