"""What the guest can import right now, found by asking the package gateway, for the system prompt.

A prompt that promises numpy when no package source is reachable sends a
model into a wall of ImportErrors. `probe` looks at where packages come from
(the cache, a mirror folder, the Pyodide CDN, PyPI), with a short timeout
for the network, and `PackageReport.prompt` says what that means for the
code the model writes. The probe runs once every five minutes at most per process; the
prompt it feeds is checkpointed with the task, so a resumed task keeps it.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

PROBE_TIMEOUT = 2.0  # seconds for each network check
PROBE_TTL = 300.0  # seconds a probe's answer is reused
PYPI_URL = "https://pypi.org/simple/micropip/"

# Packages a task is likely to want, named in the prompt when they can be had (lock names).
WELL_KNOWN = ["numpy", "pandas", "matplotlib", "pillow", "scipy", "scikit-learn", "sympy", "networkx",
              "beautifulsoup4", "lxml", "pyyaml", "openpyxl", "regex", "shapely"]

STDLIB_NOTE = (
    "The standard library is always there and is enough for most jobs: csv and json for data, statistics "
    "and math for sums, zipfile/tarfile/gzip for archives, and zlib + struct to write a PNG by hand "
    "(an 8-bit RGB image: signature, IHDR, one zlib-compressed IDAT of rows each starting with a 0 byte, IEND)."
)


@dataclass
class PackageReport:
    """Where the guest's packages can come from right now."""

    cached: list[str] = field(default_factory=list)  # lock packages already in the cache
    lock_names: list[str] = field(default_factory=list)  # every package of the Pyodide lock
    lock_source: str | None = None  # "mirror" or "cdn" when every lock package can be fetched
    pypi: bool = False  # PyPI reachable: pure-Python wheels can be installed

    def importable(self, name: str) -> bool:
        return self.lock_source is not None or name in self.cached

    def prompt(self) -> str:
        """The prompt's paragraph on packages: what to import, and what not to try."""
        lines = ["Packages: there is no network inside the sandbox, so `requests`, `urllib` and sockets "
                 "cannot reach anything; read the files listed here with open()."]
        if self.lock_source:
            known = [n for n in WELL_KNOWN if n in self.lock_names]
            where = "a local mirror" if self.lock_source == "mirror" else "the Pyodide CDN (the first import downloads)"
            lines.append(f"Pyodide's packages load on import from {where}: {', '.join(known)} and "
                         f"{max(0, len(self.lock_names) - len(known))} more.")
        elif self.cached:
            shown = self.cached[:30]
            more = f" and {len(self.cached) - len(shown)} more" if len(self.cached) > len(shown) else ""
            lines.append(f"Only these packages can be imported besides the standard library (they are in the "
                         f"package cache): {', '.join(shown)}{more}. Others, numpy, pandas and matplotlib "
                         f"included unless listed, cannot be had: do not import them.")
        else:
            lines.append("Pyodide's packages (numpy, pandas, matplotlib, Pillow, ...) cannot be had right now: "
                         "none is in the package cache and neither a mirror nor the CDN is reachable. "
                         "Do not import them.")
        if self.pypi:
            lines.append("Pure-Python packages from PyPI install with `from throwaway import install; "
                         "install('name')`.")
        lines.append(STDLIB_NOTE)
        return "\n".join(lines)


_lock = threading.Lock()
_last: tuple[float, PackageReport] | None = None


def probe(gateway: Any = None, *, timeout: float = PROBE_TIMEOUT, fresh: bool = False) -> PackageReport:
    """What the guest can import now: the cache, a mirror folder, the CDN and PyPI, asked at once.

    `gateway` is a `throwaway.sandbox.packages.PackageGateway` (default: the
    one a new `Sandbox` would use). Never raises: a source that cannot be
    checked counts as unavailable.
    """
    global _last
    with _lock:
        if not fresh and gateway is None and _last and time.monotonic() - _last[0] < PROBE_TTL:
            return _last[1]
    report = _probe(gateway, timeout)
    with _lock:
        if gateway is None:
            _last = (time.monotonic(), report)
    return report


def _probe(gateway: Any, timeout: float) -> PackageReport:
    try:
        gateway = gateway or _default_gateway()
    except Exception:  # noqa: BLE001 - no gateway: nothing but the standard library
        return PackageReport()
    names = gateway.lock_names()
    report = PackageReport(cached=[n for n in names if gateway.is_cached(n)], lock_names=names)
    base = gateway.base_url or ""
    checks: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        if base.startswith(("http://", "https://")) and not gateway.offline:
            checks["cdn"] = pool.submit(_reachable, base + "pyodide-lock.json", timeout)
        if gateway.pypi_enabled and not gateway.offline:
            checks["pypi"] = pool.submit(_reachable, os.environ.get("THROWAWAY_PYPI_PROBE_URL", PYPI_URL), timeout)
    if base.startswith("file:"):
        report.lock_source = "mirror"
    elif "cdn" in checks and checks["cdn"].result():
        report.lock_source = "cdn"
    report.pypi = bool("pypi" in checks and checks["pypi"].result())
    return report


def _default_gateway() -> Any:
    from throwaway.sandbox.packages import PackageGateway
    from throwaway.sandbox.runtime import ensure_runtime

    runtime = ensure_runtime()
    return PackageGateway(cache_dir=runtime.packages_dir, lock=runtime.lock_path,
                          base_url=os.environ.get("THROWAWAY_PACKAGE_URL") or None)


def _reachable(url: str, timeout: float) -> bool:
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            return response.status < 400
    except Exception:  # noqa: BLE001 - unreachable, for whatever reason
        return False
