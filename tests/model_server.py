"""A scripted OpenAI-compatible model server on loopback, for tests that go through the real CLI.

It answers ``POST /v1/chat/completions`` the way a model that knows the seed's
task would: a conversation whose last message is not a tool result gets an
``execute_python`` call (by default: read /network/current-ip and draw it as
a PNG with zlib and struct), one that ends in a tool result gets the final
answer. So any number of tasks, resumed or not, can run against one server.
``GET /ip`` answers like an IP echo service (point ``THROWAWAY_IP_SERVICE``
at it). Set `status` to make it answer every model call with that HTTP error.
Every request is kept in `requests` (path, headers, JSON body).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

IP = "203.0.113.7"

# Guest code (runs in Pyodide): no Pillow there, so the PNG is built by hand.
PICTURE_CODE = '''\
import struct, zlib
ip = open('/network/current-ip').read().strip()
FONT = {'0': '111101101101111', '1': '010110010010111', '2': '111001111100111', '3': '111001111001111',
        '4': '101101111001001', '5': '111100111001111', '6': '111100111101111', '7': '111001001001001',
        '8': '111101111101111', '9': '111101111001111', '.': '000000000000010', ':': '000010000010000'}
S = 8
glyphs = [FONT.get(c, '0' * 15) for c in ip]
w, h = (4 * len(glyphs) + 1) * S, 7 * S
def lit(x, y):
    g, col, row = x // S // 4, x // S % 4, y // S - 1
    return 0 <= row < 5 and col < 3 and g < len(glyphs) and glyphs[g][row * 3 + col] == '1'
rows = b''.join(b'\\0' + bytes(0 if lit(x, y) else 255 for x in range(w)) for y in range(h))
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
png = (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
       + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))
open('/output/ip.png', 'wb').write(png)
print('Current IP Address:', ip)
'''

ANSWER = f"Your IP address is {IP}; I drew it in /output/ip.png."


class ModelServer:
    """The server, running in a thread until `close()` (or the end of a ``with``)."""

    def __init__(self, code: str = PICTURE_CODE, answer: str = ANSWER, port: int = 0) -> None:
        self.code = code
        self.answer = answer
        self.status: int | None = None  # answer model calls with this HTTP error instead
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": None})
                self._send(200, (IP + "\n").encode(), "text/plain")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if server.status:
                    error = {"error": {"message": "the scripted server is set to fail", "type": "server_error"}}
                    self._send(server.status, json.dumps(error).encode())
                    return
                self._send(200, json.dumps(server.reply(body)).encode())

            def _send(self, status: int, data: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def model(self, name: str = "scripted") -> str:
        """The model name that points throwaway at this server."""
        return f"openai-compatible:{name}@{self.url}"

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The next turn for a conversation: a tool call, or the answer once a tool has answered."""
        messages = body.get("messages") or [{}]
        if messages[-1].get("role") == "tool":
            message: dict[str, Any] = {"role": "assistant", "content": self.answer}
            finish = "stop"
        else:
            call = {"id": f"call_{len(self.requests)}", "type": "function",
                    "function": {"name": "execute_python", "arguments": json.dumps({"code": self.code})}}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 0,
                "model": body.get("model", "scripted"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}

    def model_calls(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
