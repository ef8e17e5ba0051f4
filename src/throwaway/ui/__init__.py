"""The web view of tasks: what the agent thought, the code it ran, what came out, live.

``throwaway ui`` serves it; `create_app` is the ASGI app, for tests or to
mount elsewhere. It reads the same durable record as the command line (the
DBOS system database and the blob store of snapshots) and can start, resume,
cancel and fork tasks. See `throwaway.ui.security` for what keeps it safe to
open.
"""

from .app import create_app
from .server import serve

__all__ = ["create_app", "serve"]
