"""The package gateway: the host fetches packages for the guest.

The guest (Pyodide in a Deno worker) has no network. When its code imports a
Pyodide package or calls ``install("name")``, it asks the host, and the host
puts wheel files into a local cache folder the guest can read and install.

Two sources:

- Pyodide's own packages, listed in ``pyodide-lock.json``: downloaded from a
  base URL (by default the official Pyodide CDN folder of the pinned version)
  or copied from a local mirror folder, and checked against the lock's sha256.
- Anything else from PyPI: resolved and downloaded by ``pip download`` for the
  guest's platform, so the user's pip configuration (index, mirrors,
  find-links, certificates) applies. What pip chose is recorded in the cache,
  so the same requirements resolve again with no network.

Allow and deny lists apply to every package, dependencies included. Every
failure is a ``PackageError`` whose message says what to do.

The modules: ``gateway`` (``PackageGateway``, the face: allow and deny, and
which source serves what), ``pyodide`` (the lock's packages), ``pypi`` (pip
for the guest's platform), ``cache`` (``Wheel``, the cache's files, hashing and
downloads), ``names`` (package names and requirement strings), ``errors``
(``PackageError``) and ``calls`` (the host calls that serve the guest).
"""

from .cache import Wheel
from .errors import PackageError
from .gateway import PackageGateway

__all__ = ["PackageError", "PackageGateway", "Wheel"]
