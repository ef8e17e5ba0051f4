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
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin, urlparse

__all__ = ["PackageError", "PackageGateway", "Wheel"]

# Seconds a download may sit without receiving data before it is abandoned.
DOWNLOAD_TIMEOUT = 30
# pip's own defaults (5 retries with back-off, or a user's long timeout) make a
# dead network look like a hang; the guest is blocked while we wait.
PIP_RETRIES = 1
PIP_NETWORK_TIMEOUT = 30
# Upper bound for one whole `pip download` run, big wheels included.
PIP_DEADLINE = 600

_CDN_URL = "https://cdn.jsdelivr.net/pyodide/v{version}/full/"
_SETUP_HINT = "run `throwaway setup --package {name}` while online"

_REQUIREMENT = re.compile(
    r"""
    (?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)
    (?P<rest>
        \s*(?:\[\s*[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*\s*\])?      # extras
        \s*(?:(?:~=|===?|!=|<=?|>=?)\s*[A-Za-z0-9.*+!_-]+                 # specifiers
           (?:\s*,\s*(?:~=|===?|!=|<=?|>=?)\s*[A-Za-z0-9.*+!_-]+)*)?
        \s*
    )
    """,
    re.VERBOSE,
)


class PackageError(Exception):
    """A package cannot be had; the message names it and says what to do."""


@dataclass(frozen=True)
class Wheel:
    """A package file in the cache folder, ready for the guest to install.

    Files from the Pyodide side may also be ``.zip`` archives (shared
    libraries, unvendored tests); ``PackageGateway.lock_entry`` tells how
    to install them (``install_dir``, ``package_type``).
    """

    name: str  # normalized project name (PEP 503)
    version: str
    path: Path  # the file inside the cache folder
    sha256: str
    source: str  # "pyodide" (from the lock and base URL) or "pypi"


class PackageGateway:
    """Fetches Pyodide and PyPI packages into a cache folder for the guest.

    ``lock`` is Pyodide's ``pyodide-lock.json`` (a path, or the parsed JSON).
    ``base_url`` is where the lock's files live: an http(s) URL, or a local
    mirror folder (a path or a ``file://`` URL). Left out, it is the official
    Pyodide CDN folder of the lock's Pyodide version. A mirror folder holding
    its own ``pyodide-lock.json`` adds to (and overrides) the given lock.

    ``allow`` (``None``: everything) and ``deny`` are package names; they apply
    to every package, dependencies included, and deny wins. ``pypi=False``
    turns PyPI off. ``offline=True`` never touches the network: only the cache
    and a local mirror folder serve.

    The cache is safe to share between gateways and processes: files are
    written to a temporary name and renamed into place.
    """

    def __init__(
        self,
        *,
        cache_dir: str | os.PathLike[str],
        lock: str | os.PathLike[str] | dict[str, Any],
        base_url: str | os.PathLike[str] | None = None,
        allow: Iterable[str] | None = None,
        deny: Iterable[str] = (),
        pypi: bool = True,
        offline: bool = False,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        packages, info, lock_path = _load_lock(lock)
        if base_url is None:
            self._base_url = _default_base_url(info, lock_path)
        elif os.fspath(base_url).startswith(("http://", "https://")):
            self._base_url = os.fspath(base_url).rstrip("/") + "/"
        else:
            mirror = _mirror_folder(base_url)
            self._base_url = mirror.as_uri() + "/"
            if (mirror / "pyodide-lock.json").is_file():
                mirror_packages, mirror_info, _ = _load_lock(mirror / "pyodide-lock.json")
                packages.update(mirror_packages)
                info = {**mirror_info, **info}  # the given lock describes the runtime
        self._packages = packages
        self._providers = {
            imported: name for name, entry in packages.items() for imported in entry.get("imports", ())
        }
        self._info = info
        self._allow = None if allow is None else {_normalize(name) for name in _strings(allow)}
        self._deny = {_normalize(name) for name in _strings(deny)}
        self._pypi = pypi
        self._offline = offline
        self._resolutions = _Resolutions(self.cache_dir / "pypi" / "resolutions.json")

    @property
    def base_url(self) -> str | None:
        """Where the lock's files are fetched from (None: unknown, pass base_url=)."""
        return self._base_url

    def lock_entry(self, name: str) -> dict[str, Any]:
        """The lock's entry for a package (a copy): version, file_name, sha256, imports, depends, ..."""
        return dict(self._entry(_normalize(name)))

    def packages_for_imports(self, import_names: Iterable[str]) -> list[str]:
        """The lock packages that provide these top-level imports, in order, without repeats.

        Imports no lock package provides are ignored: they may be the standard
        library, or already installed.
        """
        found: dict[str, None] = {}
        for imported in _strings(import_names):
            name = self._providers.get(imported.partition(".")[0])
            if name is not None:
                found[name] = None
        return list(found)

    def resolve(self, names: Iterable[str]) -> list[str]:
        """These lock packages and everything they depend on, dependencies first."""
        order: dict[str, None] = {}
        visiting: set[str] = set()

        def visit(name: str, needed_by: str | None) -> None:
            if name in order or name in visiting:  # done, or a dependency cycle
                return
            entry = self._entry(name, needed_by)
            self._check_allowed(name, needed_by)
            visiting.add(name)
            for dependency in entry.get("depends", ()):
                visit(_normalize(dependency), name)
            order[name] = None

        for name in _strings(names):
            visit(_normalize(name), None)
        return list(order)

    def fetch_pyodide(self, names: Iterable[str]) -> list[Wheel]:
        """Put these lock packages and their dependencies in the cache; dependencies first.

        Every file is checked against the lock's sha256; a file that does not
        match is deleted and never served.
        """
        return [self._fetch_lock_package(name) for name in self.resolve(names)]

    def fetch_pypi(self, requirements: Iterable[str]) -> list[Wheel]:
        """Put PyPI wheels for the guest's platform, with their dependencies, in the cache.

        Requirements are names with optional extras and version specifiers
        (``"six"``, ``"attrs>=23"``); URLs, paths and pip options are refused.
        A bare name the Pyodide lock has is served from the Pyodide side, and
        so is any dependency the lock has. Pyodide wheels come first in the
        result; the PyPI wheels are in no particular order, so install them
        together.

        A set of requirements fetched once is answered from the cache after
        that, with no network (and never changes version until the cache is
        cleared).
        """
        if not self._pypi:
            raise PackageError(
                "PyPI packages are turned off for this sandbox (pypi=False); "
                "use packages from the Pyodide lock, or pass pypi=True"
            )
        parsed = [_parse_requirement(text) for text in _strings(requirements)]
        for name, _ in parsed:
            self._check_allowed(name)
        from_lock = [name for name, canonical in parsed if canonical == name and name in self._packages]
        for_pip = sorted({canonical for _, canonical in parsed if canonical not in from_lock})
        wheels = self.fetch_pyodide(from_lock)
        if for_pip:
            wheels += self._pypi_wheels(for_pip)
        return list({wheel.name: wheel for wheel in wheels}.values())

    # -- the Pyodide side ---------------------------------------------------

    def _entry(self, name: str, needed_by: str | None = None) -> dict[str, Any]:
        try:
            return self._packages[name]
        except KeyError:
            if needed_by is not None:
                raise PackageError(
                    f"'{name}', a dependency of '{needed_by}', is not in the Pyodide lock; "
                    "the lock is inconsistent: use the lock that came with this Pyodide version"
                ) from None
            raise PackageError(
                f"no package '{name}' in the Pyodide lock; for PyPI use install('{name}')"
            ) from None

    def _check_allowed(self, name: str, needed_by: object = None) -> None:
        why = f" (needed by {needed_by})" if needed_by else ""
        if name in self._deny:
            raise PackageError(
                f"package '{name}'{why} is in deny= ({', '.join(sorted(self._deny))}); "
                "remove it from deny= to use it"
            )
        if self._allow is not None and name not in self._allow:
            raise PackageError(
                f"package '{name}'{why} is not in allow= ({', '.join(sorted(self._allow))}); "
                "add it to allow= to use it"
            )

    def _fetch_lock_package(self, name: str) -> Wheel:
        entry = self._packages[name]
        sha256 = entry["sha256"].lower()
        path = self.cache_dir / "pyodide" / _cache_file_name(name, entry["file_name"])
        if not _is_cached(path, sha256):
            url = self._lock_file_url(name, entry["file_name"])
            path.parent.mkdir(parents=True, exist_ok=True)
            _download(url, path, sha256, name)
        return Wheel(name, entry["version"], path, sha256, "pyodide")

    def _source_url(self, file_name: str) -> str | None:
        """Where a lock file lives (None: unknown, the lock has no version and no base_url was given)."""
        if urlparse(file_name).scheme:  # the lock may name a file by its full URL
            return file_name
        if self._base_url is None:
            return None
        return urljoin(self._base_url, quote(file_name))

    def _lock_file_url(self, name: str, file_name: str) -> str:
        url = self._source_url(file_name)
        if url is None:
            raise PackageError(
                f"cannot tell where to download '{name}' from: the lock does not say its Pyodide "
                "version; pass base_url= (the Pyodide CDN folder, or base_url=/path/to/mirror)"
            )
        if self._offline and urlparse(url).scheme in ("http", "https"):
            raise PackageError(
                f"offline, and '{name}' is not in the package cache {self.cache_dir}; "
                f"{_SETUP_HINT.format(name=name)}, or pass base_url=/path/to/mirror"
            )
        return url

    # -- the PyPI side ------------------------------------------------------

    def _pypi_wheels(self, requirements: list[str]) -> list[Wheel]:
        guest = self._guest()
        record = self._resolutions.get(guest.tag, requirements)
        if record is not None:
            wheels = self._wheels_from_record(record, requirements)
            if wheels is not None:
                return wheels
        if self._offline:
            raise PackageError(
                f"offline, and {' '.join(requirements)} was never fetched into the package "
                f"cache {self.cache_dir}; {_SETUP_HINT.format(name=' '.join(requirements))}"
            )
        return self._download_with_pip(requirements, guest)

    def _wheels_from_record(self, record: dict[str, Any], requirements: list[str]) -> list[Wheel] | None:
        """The recorded wheels, or None if a file has gone missing or changed."""
        for name in [*record["pyodide"], *(item["name"] for item in record["pypi"])]:
            self._check_allowed(name, " ".join(requirements))
        pypi = []
        for item in record["pypi"]:
            path = self.cache_dir / "pypi" / item["file"]
            if not _is_cached(path, item["sha256"]):
                return None
            pypi.append(Wheel(item["name"], item["version"], path, item["sha256"], "pypi"))
        return self.fetch_pyodide(record["pyodide"]) + pypi

    def _download_with_pip(self, requirements: list[str], guest: _Guest) -> list[Wheel]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".pip-") as tmp:
            work = Path(tmp)
            self._write_lock_links(work / "pyodide-links.html", work / "pyodide-pins.txt")
            _run_pip(requirements, guest, work)
            files = sorted((work / "wheels").glob("*.whl"))
            names = [_wheel_name_version(file.name) for file in files]
            for name, _ in names:
                self._check_allowed(name, " ".join(requirements))
            from_lock, pypi = [], []
            for file, (name, version) in zip(files, names, strict=True):
                if name in self._packages:
                    self._adopt_lock_wheel(name, file)
                    from_lock.append(name)
                else:
                    pypi.append(_move_into_cache(file, self.cache_dir / "pypi", name, version))
            wheels = self.fetch_pyodide(from_lock) + pypi
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
        for name, entry in self._packages.items():
            if entry.get("package_type", "package") != "package" or not entry["file_name"].endswith(".whl"):
                continue
            pinned.append(f"{name}=={entry['version']}\n")
            sha256 = entry["sha256"].lower()
            cached = self.cache_dir / "pyodide" / _cache_file_name(name, entry["file_name"])
            href = (
                cached.absolute().as_uri()
                if _is_cached(cached, sha256)
                else self._source_url(entry["file_name"])
            )
            if href is not None:
                anchors.append(
                    f'<a href="{html.escape(href)}#sha256={sha256}">{html.escape(entry["file_name"])}</a>\n'
                )
        links.write_text("<html><body>\n" + "".join(anchors) + "</body></html>\n")
        pins.write_text("".join(pinned))

    def _adopt_lock_wheel(self, name: str, file: Path) -> None:
        """Keep a lock wheel pip just downloaded, if it is the lock's very file."""
        entry = self._packages[name]
        sha256 = entry["sha256"].lower()
        if _cache_file_name(name, entry["file_name"]) != file.name or _hash_file(file) != sha256:
            return  # e.g. PyPI's own build of a pure-Python lock package: fetch_pyodide gets the lock's
        target = self.cache_dir / "pyodide" / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(file, target)
        _remember(target, sha256)

    def _guest(self) -> _Guest:
        """The guest as pip must see it, from the lock's info (python, abi_version, arch, platform)."""
        info = self._info
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


@dataclass(frozen=True)
class _Guest:
    tag: str  # the wheel platform tag, e.g. pyemscripten_2026_0_wasm32
    python_version: str  # "3.14"
    abi: str  # "cp314"
    markers: dict[str, str]  # the environment markers of Requires-Dist lines


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
            f"check your network and pip's index settings, or {_SETUP_HINT.format(name=requirements[0])}"
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
            f"and base_url= (a mirror folder works offline), or {_SETUP_HINT.format(name=requirements[0])}"
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


# -- files and downloads --------------------------------------------------------

# path -> (size, mtime_ns, sha256) of cache files hashed by this process, so a
# file is hashed at most once per process unless it changes.
_VERIFIED: dict[Path, tuple[int, int, str]] = {}


def _sha256_of(path: Path) -> str | None:
    """The sha256 of a file (None if it is missing), hashed at most once per process."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    known = _VERIFIED.get(path.absolute())
    if known is not None and known[:2] == (stat.st_size, stat.st_mtime_ns):
        return known[2]
    digest = _hash_file(path)
    _VERIFIED[path.absolute()] = (stat.st_size, stat.st_mtime_ns, digest)
    return digest


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _remember(path: Path, sha256: str) -> None:
    stat = path.stat()
    _VERIFIED[path.absolute()] = (stat.st_size, stat.st_mtime_ns, sha256)


def _is_cached(path: Path, sha256: str) -> bool:
    """Whether the cache holds the right file; a wrong one is deleted."""
    digest = _sha256_of(path)
    if digest is None:
        return False
    if digest != sha256:
        path.unlink(missing_ok=True)
        _VERIFIED.pop(path.absolute(), None)
        return False
    return True


def _download(url: str, dest: Path, sha256: str, name: str) -> None:
    """Copy package name's file from url (http, https or file) to dest atomically, if its sha256 matches."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _copy_url(url, out, name)
        if digest != sha256:
            raise PackageError(
                f"sha256 mismatch for '{name}' from {url}: the lock says {sha256}, the file has "
                f"{digest}; the file was deleted. The mirror is damaged or does not belong to "
                "this Pyodide version: refresh it, or use the lock that came with it"
            )
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    _remember(dest, sha256)


def _copy_url(url: str, out: BinaryIO, name: str) -> str:
    """Stream url into out; return the sha256 of what was copied."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as e:
        raise PackageError(
            f"{url} answered HTTP {e.code} {e.reason} for '{name}'; check base_url= "
            "(it must be the folder of this Pyodide version's files), or pass base_url=/path/to/mirror"
        ) from None
    except (urllib.error.URLError, OSError) as e:
        if url.startswith("file:"):
            raise PackageError(
                f"'{name}' is missing from the mirror folder ({url}): "
                "add the file to the mirror, or pass base_url= a complete mirror"
            ) from None
        reason = getattr(e, "reason", e)
        raise PackageError(
            f"cannot download '{name}': {url} is unreachable ({reason}); pass a mirror folder "
            f"(base_url=/path/to/mirror), or use a warm package cache ({_SETUP_HINT.format(name=name)})"
        ) from None
    return digest.hexdigest()


def _move_into_cache(file: Path, folder: Path, name: str, version: str) -> Wheel:
    folder.mkdir(parents=True, exist_ok=True)
    sha256 = _hash_file(file)
    target = folder / file.name
    os.replace(file, target)
    _remember(target, sha256)
    return Wheel(name, version, target, sha256, "pypi")


# -- names and locks ------------------------------------------------------------


def _normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _strings(values: Iterable[str]) -> list[str]:
    """The values as a list; a lone string is one value (allow="numpy" is not n, u, m, p, y)."""
    return [values] if isinstance(values, str) else list(values)


def _parse_requirement(text: str) -> tuple[str, str]:
    """(normalized name, canonical requirement) of a requirement string from the guest.

    Only names, extras and version specifiers pass: the string goes to pip,
    and a URL, a path or an option would let the guest steer the host.
    """
    match = _REQUIREMENT.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise PackageError(
            f"{text!r} is not a requirement the sandbox accepts: use a name with optional extras "
            "and version specifiers, e.g. 'six' or 'attrs>=23' (no URLs, paths or pip options)"
        )
    name = _normalize(match["name"])
    return name, name + re.sub(r"\s+", "", match["rest"]).lower()


def _wheel_name_version(file_name: str) -> tuple[str, str]:
    name, version = file_name.removesuffix(".whl").split("-")[:2]
    return _normalize(name), version


def _cache_file_name(name: str, file_name: str) -> str:
    """The name a lock file gets in the cache; refuses names that would leave the folder."""
    base = urlparse(file_name).path.rsplit("/", 1)[-1]
    if not base or base.startswith(".") or "\\" in base:
        raise PackageError(
            f"the lock's file_name for '{name}' ({file_name!r}) is not a usable file name; fix the lock"
        )
    return base


def _load_lock(lock: str | os.PathLike[str] | dict[str, Any]) -> tuple[dict[str, dict], dict, Path | None]:
    """(packages by normalized name, info, the lock's path if it came from a file)."""
    path = None
    if not isinstance(lock, dict):
        path = Path(lock)
        try:
            lock = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise PackageError(
                f"cannot read the Pyodide lock {path}: {e}; pass the pyodide-lock.json of the "
                "Pyodide package (it ships with the pyodide npm package)"
            ) from None
    packages = lock.get("packages") if isinstance(lock, dict) else None
    if not isinstance(packages, dict):
        raise PackageError(f"{path or 'the lock'} has no 'packages' table: pass a pyodide-lock.json")
    return {_normalize(key): entry for key, entry in packages.items()}, dict(lock.get("info", {})), path


def _default_base_url(info: dict[str, Any], lock_path: Path | None) -> str | None:
    """The official CDN folder of the lock's Pyodide version, if the version is known."""
    version = info.get("version")
    if version is None and lock_path is not None:
        # Recent locks omit the version; the npm package keeps its package.json beside the lock.
        try:
            version = json.loads((lock_path.parent / "package.json").read_text()).get("version")
        except (OSError, ValueError, AttributeError):
            version = None
    return _CDN_URL.format(version=version) if version else None


def _mirror_folder(base_url: str | os.PathLike[str]) -> Path:
    text = os.fspath(base_url)
    folder = (
        Path(urllib.request.url2pathname(urlparse(text).path)) if text.startswith("file:") else Path(text)
    )
    if not folder.is_dir():
        raise PackageError(
            f"the mirror folder {folder} does not exist; pass base_url= an existing folder with "
            "the Pyodide wheels, or an http(s) URL"
        )
    return folder.resolve()
