"""What keeps the web view safe to open: who may connect, and what a page may run.

- Bound to loopback, the server answers only requests whose Host is a
  loopback name, so a web page elsewhere cannot reach it by rebinding its own
  DNS name to 127.0.0.1. Bound to any other address it needs its token, from
  ``?token=`` once (then a cookie) or the cookie.
- Every response carries a strict Content-Security-Policy (scripts only from
  this server's own static files, no inline script, images only from here or
  data: URLs), ``X-Content-Type-Options: nosniff``, no framing, no referrer.
- Every POST carries the server's CSRF token, which only its own pages hold.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_COOKIE = "throwaway_ui_token"

PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# For a file from the guest: nothing may run or load, even if a browser were to render it.
FILE_POLICY = "default-src 'none'; img-src 'self'; style-src 'none'; sandbox"

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server on this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def same(a: str | None, b: str) -> bool:
    """Constant-time comparison of a token someone sent with ours."""
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def _host_name(headers: dict[bytes, bytes]) -> str:
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware: checks the Host or the token, and sets the security headers on every response.

    `token` None means loopback-only: any request whose Host is not a
    loopback name is refused.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.token is None:
            if _host_name(headers) not in LOOPBACK_NAMES:
                await _refuse(send, 421, "This server answers only at 127.0.0.1 or localhost.")
                return
        else:
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            given = dict(query).get("token")
            if same(given, self.token):
                # Trade the token in the address for a cookie, and drop it from the address bar.
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
                cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                await _respond(send, 303, b"", [(b"location", location.encode()), (b"set-cookie", cookie.encode())])
                return
            jar = SimpleCookie()
            try:
                jar.load(headers.get(b"cookie", b"").decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header is simply no token
                jar = SimpleCookie()
            sent = jar[TOKEN_COOKIE].value if TOKEN_COOKIE in jar else None
            if not same(sent, self.token):
                await _refuse(send, 401, "This server needs its token: open the address it printed when it "
                                         "started (the one ending in ?token=...).")
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"no-referrer"),
                         (b"cross-origin-opener-policy", b"same-origin"),
                         (b"cross-origin-resource-policy", b"same-origin")]
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", PAGE_POLICY.encode()))
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-length", str(len(body)).encode()), (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", PAGE_POLICY.encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, status: int, text: str) -> None:
    await _respond(send, status, text.encode() + b"\n", [(b"content-type", b"text/plain; charset=utf-8")])
