"""PyPI packages: ``pip download`` for the guest's platform, and a record of what pip chose.

pip runs on the host, so the user's pip configuration (index, mirrors,
find-links, certificates) applies, but it resolves for the guest: its
platform tag, Python version and environment markers, with the Pyodide lock's
wheels offered and pinned. What pip chose for a set of requirements is
recorded in the cache, so the same requirements resolve again with no network.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import SETUP_HINT, Wheel, is_cached, move_into_cache
from .errors import PackageError
from .names import wheel_name_version
from .pyodide import PyodideSource

# pip's own defaults (5 retries with back-off, or a user's long timeout) make a
# dead network look like a hang; the guest is blocked while we wait.
PIP_RETRIES = 1
PIP_NETWORK_TIMEOUT = 30
# Upper bound for one whole `pip download` run, big wheels included.
PIP_DEADLINE = 600


class PyPISource:
    """PyPI wheels for the guest's platform, fetched into ``cache_dir / "pypi"``.

    ``pyodide`` is the lock side: pip resolves against its wheels, and a
    package pip chooses from the lock is served from there. The gateway's
    rules come in as two callables: ``check_allowed(name, needed_by)`` raises
    for a package allow/deny refuses, and ``fetch_pyodide(names)`` fetches lock
    packages with their dependencies under those rules.
    """

    def __init__(
        self,
        cache_dir: Path,
        pyodide: PyodideSource,
        *,
        offline: bool,
        check_allowed: Callable[[str, str], None],
        fetch_pyodide: Callable[[Iterable[str]], list[Wheel]],
    ) -> None:
        self.cache_dir = cache_dir
        self._pyodide = pyodide
        self._offline = offline
        self._check_allowed = check_allowed
        self._fetch_pyodide = fetch_pyodide
        self._resolutions = _Resolutions(cache_dir / "pypi" / "resolutions.json")

    def fetch(self, requirements: list[str]) -> list[Wheel]:
        """The wheels for these canonical requirements: from the record of an earlier run, or from pip."""
        guest = _guest(self._pyodide.info)
        record = self._resolutions.get(guest.tag, requirements)
        if record is not None:
            wheels = self._wheels_from_record(record, requirements)
            if wheels is not None:
                return wheels
        if self._offline:
            raise PackageError(
                f"offline, and {' '.join(requirements)} was never fetched into the package "
                f"cache {self.cache_dir}; {SETUP_HINT.format(name=' '.join(requirements))}"
            )
        return self._download_with_pip(requirements, guest)

    def _wheels_from_record(self, record: dict[str, Any], requirements: list[str]) -> list[Wheel] | None:
        """The recorded wheels, or None if a file has gone missing or changed."""
        for name in [*record["pyodide"], *(item["name"] for item in record["pypi"])]:
            self._check_allowed(name, " ".join(requirements))
        pypi = []
        for item in record["pypi"]:
            path = self.cache_dir / "pypi" / item["file"]
            if not is_cached(path, item["sha256"]):
                return None
            pypi.append(Wheel(item["name"], item["version"], path, item["sha256"], "pypi"))
        return self._fetch_pyodide(record["pyodide"]) + pypi

    def _download_with_pip(self, requirements: list[str], guest: _Guest) -> list[Wheel]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".pip-") as tmp:
            work = Path(tmp)
            self._write_lock_links(work / "pyodide-links.html", work / "pyodide-pins.txt")
            _run_pip(requirements, guest, work)
            files = sorted((work / "wheels").glob("*.whl"))
            names = [wheel_name_version(file.name) for file in files]
            for name, _ in names:
                self._check_allowed(name, " ".join(requirements))
            from_lock, pypi = [], []
            for file, (name, version) in zip(files, names, strict=True):
                if name in self._pyodide:
                    self._pyodide.adopt(name, file)
                    from_lock.append(name)
                else:
                    pypi.append(move_into_cache(file, self.cache_dir / "pypi", name, version))
            wheels = self._fetch_pyodide(from_lock) + pypi
        self._resolutions.add(guest.tag, requirements, from_lock, pypi)
        return wheels

    def _write_lock_links(self, links: Path, pins: Path) -> None:
        """Show pip the lock's wheels and pin their versions.

        pip then resolves against what the guest will really have: a PyPI
        package that needs numpy gets the lock's numpy (which PyPI has no
        wheel of for this platform) instead of failing. pip downloads a
        linked wheel only if it picks it, and checks it against the sha256
        in the link.
        """
        anchors, pinned = [], []
        for name, entry in self._pyodide.packages.items():
            if entry.get("package_type", "package") != "package" or not entry["file_name"].endswith(".whl"):
                continue
            pinned.append(f"{name}=={entry['version']}\n")
            sha256 = entry["sha256"].lower()
            cached = self._pyodide.cache_path(name)
            href = (
                cached.absolute().as_uri()
                if is_cached(cached, sha256)
                else self._pyodide.source_url(entry["file_name"])
            )
            if href is not None:
                anchors.append(
                    f'<a href="{html.escape(href)}#sha256={sha256}">{html.escape(entry["file_name"])}</a>\n'
                )
        links.write_text("<html><body>\n" + "".join(anchors) + "</body></html>\n")
        pins.write_text("".join(pinned))


@dataclass(frozen=True)
class _Guest:
    tag: str  # the wheel platform tag, e.g. pyemscripten_2026_0_wasm32
    python_version: str  # "3.14"
    abi: str  # "cp314"
    markers: dict[str, str]  # the environment markers of Requires-Dist lines


def _guest(info: dict[str, Any]) -> _Guest:
    """The guest as pip must see it, from the lock's info (python, abi_version, arch, platform)."""
    try:
        python = info["python"]
        major, minor = python.split(".")[:2]
        tag = f"pyemscripten_{info['abi_version']}_{info['arch']}"
    except (KeyError, ValueError, AttributeError):
        raise PackageError(
            "the Pyodide lock's info lacks python, abi_version or arch, so the guest's platform "
            "is unknown; use the pyodide-lock.json that came with this Pyodide version"
        ) from None
    markers = {  # what packaging's default_environment() answers inside Pyodide
        "implementation_name": "cpython",
        "implementation_version": python,
        "os_name": "posix",
        "platform_machine": info["arch"],
        "platform_python_implementation": "CPython",
        "platform_release": info.get("platform", "").removeprefix("emscripten_").replace("_", "."),
        "platform_system": "Emscripten",
        "platform_version": "#1",
        "python_full_version": python,
        "python_version": f"{major}.{minor}",
        "sys_platform": "emscripten",
    }
    return _Guest(tag, f"{major}.{minor}", f"cp{major}{minor}", markers)


class _Resolutions:
    """What pip chose for a set of requirements, in a JSON file in the cache.

    Concurrent writers may drop each other's entries; that only costs a
    later cache miss.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, platform: str, requirements: list[str]) -> dict[str, Any] | None:
        return self._load().get(self._key(platform, requirements))

    def add(self, platform: str, requirements: list[str], pyodide: list[str], pypi: list[Wheel]) -> None:
        resolutions = self._load()
        resolutions[self._key(platform, requirements)] = {
            "pyodide": pyodide,
            "pypi": [
                {"file": w.path.name, "name": w.name, "version": w.version, "sha256": w.sha256} for w in pypi
            ],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "resolutions": resolutions}, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    @staticmethod
    def _key(platform: str, requirements: list[str]) -> str:
        # Canonical requirements hold no whitespace, so spaces separate them.
        return " ".join([platform, *requirements])

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())["resolutions"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}  # no index yet, or a damaged one: it is only a cache


# -- pip ----------------------------------------------------------------------


# pip evaluates dependency markers (python_version, sys_platform, ...) for the
# host even with --platform and --python-version, so a Linux host on Python
# 3.11 would pull Linux-only or pre-3.12 dependencies and miss the guest's.
# This runs pip's own entry point with the markers describing the guest; a pip
# whose internals moved still runs, with host markers.
_PIP_FOR_GUEST = """
import json, sys
guest = json.loads(sys.argv.pop(1))
try:
    from pip._vendor.packaging import markers
    host = markers.default_environment
    markers.default_environment = lambda: {**host(), **guest}
except (ImportError, AttributeError):
    pass
from pip._internal.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _run_pip(requirements: list[str], guest: _Guest, work: Path) -> None:
    """`pip download` wheels for the guest into work/wheels; PackageError with pip's reason."""
    command = [
        sys.executable, "-c", _PIP_FOR_GUEST, json.dumps(guest.markers), "download",
        # Wheels only: the host cannot build for the guest. With --platform,
        # pip accepts exactly the tags for that platform plus the pure-Python
        # `py3-none-any` family, so manylinux and macOS wheels are refused.
        "--only-binary=:all:",
        "--platform", guest.tag,
        "--python-version", guest.python_version,
        "--implementation", "cp",
        "--abi", guest.abi,
        "--find-links", str(work / "pyodide-links.html"),
        "--constraint", str(work / "pyodide-pins.txt"),
        "--dest", str(work / "wheels"),
        "--retries", str(PIP_RETRIES),
        "--timeout", str(PIP_NETWORK_TIMEOUT),
        "--no-input",
        "--disable-pip-version-check",
        "--quiet",
        "--",
        *requirements,
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_DEADLINE, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise PackageError(
            f"pip took more than {PIP_DEADLINE} s to download {' '.join(requirements)}; "
            f"check your network and pip's index settings, or {SETUP_HINT.format(name=requirements[0])}"
        ) from None
    if result.returncode != 0:
        raise PackageError(_pip_failure(requirements, guest, result.stderr))


def _pip_failure(requirements: list[str], guest: _Guest, stderr: str) -> str:
    wanted = " ".join(requirements)
    if "No module named 'pip" in stderr:
        return (
            f"cannot fetch {wanted} from PyPI: pip is not installed in {sys.executable}; "
            "install it (python -m ensurepip) or use packages from the Pyodide lock"
        )
    if any(sign in stderr for sign in ("connection broken", "NewConnectionError", "Max retries exceeded")):
        advice = (
            "a server could not be reached (pip's package index, or the Pyodide base URL for a "
            "dependency from the lock): check your network, pip's index settings (`pip config list`) "
            f"and base_url= (a mirror folder works offline), or {SETUP_HINT.format(name=requirements[0])}"
        )
    else:
        advice = (
            "the guest can only use pure-Python wheels (py3-none-any) or wheels built for "
            f"{guest.tag} (Python {guest.python_version}); check the name and version, "
            "or use a package from the Pyodide lock"
        )
    return f"pip could not get {wanted} for the guest: {_pip_reason(stderr)}. {advice}"


def _pip_reason(stderr: str) -> str:
    """pip's own explanation: its ERROR lines (and conflict causes), or a crash's last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if "Traceback (most recent call last):" in stderr:
        return lines[-1][:500]
    reason = "; ".join(
        line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:") or " depends on " in line
    )
    return reason or (lines[-1][:500] if lines else "pip gave no reason")
