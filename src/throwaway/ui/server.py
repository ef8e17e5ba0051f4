"""Serving the web view with uvicorn: loopback by default, a token for any other address."""

from __future__ import annotations

import os
import threading
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path

from throwaway.durable import backend
from throwaway.fs import MountSpec

from .security import is_loopback, new_token


def address(host: str, port: int, token: str | None = None) -> str:
    """The URL to open, with the token when there is one."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(*, host: str = "127.0.0.1", port: int = 8321, data_dir: str | os.PathLike[str] | None = None,
          database_url: str | None = None, mounts: Sequence[MountSpec | str] = (),
          output_dir: str | Path = "output", open_browser: bool = False,
          echo: Callable[[str], None] = print) -> None:
    """Serve the web view until interrupted.

    Any `host` but a loopback address gets a fresh token, printed in the URL:
    the server answers no request without it. Tasks started or resumed from
    the page run in this process; stopping the server leaves them
    interrupted, to resume later.
    """
    import uvicorn

    from .app import create_app

    backend.launch(data_dir, database_url)
    token = None if is_loopback(host) else new_token()
    app = create_app(mounts=mounts, output_dir=output_dir, token=token)
    url = address(host, port, token)
    echo(f"throwaway ui: {url}")
    if token:
        echo("Anyone who can reach this address needs the token above; keep it to yourself.")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")
