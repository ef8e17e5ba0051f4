"""The host calls behind the guest's package loading.

`packages.imports` serves a cell's imports of Pyodide packages (numpy,
Pillow, ...) before it runs; `packages.install` serves `install(...)` and
`micropip.install(...)`. Both answer with wheel files in the cache folder,
which the worker may read; the guest installs them from there.
"""

from __future__ import annotations

from typing import Any

from ...wire.calls import HostCalls
from .cache import Wheel
from .errors import PackageError
from .gateway import PackageGateway


def package_calls(gateway: PackageGateway) -> HostCalls:
    """Host calls that fetch packages for the guest through `gateway`."""
    calls = HostCalls()

    @calls.handler("packages.imports")
    def imports(args: Any, data: bytes) -> dict:
        names = _strings(args, "imports")
        wanted = gateway.packages_for_imports(names)
        if not wanted:
            return {"wheels": []}
        return {"wheels": [_describe(w) for w in _fetch(lambda: gateway.fetch_pyodide(wanted), wanted)]}

    @calls.handler("packages.install")
    def install(args: Any, data: bytes) -> dict:
        requirements = _strings(args, "requirements")
        return {"wheels": [_describe(w) for w in _fetch(lambda: gateway.fetch_pypi(requirements), requirements)]}

    return calls


GUEST_ADVICE = ("Code in the sandbox cannot fix this: do the job without it. The standard library is always "
                "there: csv and json for data, statistics and math, zipfile, and zlib + struct to write PNG images.")


def _fetch(fetch, names: list[str]) -> list[Wheel]:
    try:
        return fetch()
    except PackageError as e:
        # The guest sees an ImportError that says what it can do; the host's own
        # remedy (a mirror, the cache) follows for whoever runs the sandbox.
        raise ImportError(f"{', '.join(names)} cannot be had in this sandbox. {GUEST_ADVICE} "
                          f"(For the host's operator: {e})") from None


def _strings(args: Any, key: str) -> list[str]:
    values = args.get(key) if isinstance(args, dict) else None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values) or len(values) > 1000:
        raise ValueError(f"{key} must be a list of strings")
    return values


def _describe(wheel: Wheel) -> dict:
    return {
        "name": wheel.name,
        "version": wheel.version,
        "path": str(wheel.path),
        "pure": wheel.path.name.endswith("-none-any.whl"),
    }
