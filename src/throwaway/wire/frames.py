"""The framed messages between the Python host and the Deno runtime.

A frame is an 8-byte prefix (header length, payload length; little-endian
u32 each), a JSON header, then raw payload bytes, so bytes cross without
base64. Both sides treat what they receive as untrusted: sizes are bounded
and headers are checked before anything acts on them.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

PREFIX = struct.Struct("<II")
MAX_HEADER = 64 * 1024 * 1024
MAX_PAYLOAD = 1024 * 1024 * 1024


class ProtocolError(RuntimeError):
    """The runtime sent something that is not a valid message."""


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


def parse_prefix(prefix: bytes) -> tuple[int, int]:
    hlen, plen = PREFIX.unpack(prefix)
    if hlen > MAX_HEADER or plen > MAX_PAYLOAD:
        raise ProtocolError(f"frame too large ({hlen} + {plen} bytes)")
    return hlen, plen


def decode(head: bytes, payload: bytes) -> Message:
    try:
        header = json.loads(head)
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"bad frame header: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("t"), str):
        raise ProtocolError("frame header has no type")
    return Message(header, payload)
