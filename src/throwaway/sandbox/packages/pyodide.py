"""Pyodide's own packages: the lock, where its files live, and fetching them into the cache.

The lock is Pyodide's ``pyodide-lock.json``. Its files come from a base URL
(by default the official Pyodide CDN folder of the pinned version) or a local
mirror folder, and every file is checked against the lock's sha256.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlparse

from .cache import SETUP_HINT, Wheel, cache_file_name, download, hash_file, is_cached, remember
from .errors import PackageError
from .names import normalize

_CDN_URL = "https://cdn.jsdelivr.net/pyodide/v{version}/full/"


class PyodideSource:
    """The packages of a Pyodide lock, fetched into ``cache_dir / "pyodide"``.

    ``lock`` and ``base_url`` are as for ``PackageGateway``. This side knows
    nothing of allow and deny lists: the gateway applies them.
    """

    def __init__(
        self,
        lock: str | os.PathLike[str] | dict[str, Any],
        base_url: str | os.PathLike[str] | None,
        *,
        cache_dir: Path,
        offline: bool,
    ) -> None:
        self.cache_dir = cache_dir
        self._offline = offline
        packages, info, lock_path = _load_lock(lock)
        self.base_url: str | None
        if base_url is None:
            self.base_url = _default_base_url(info, lock_path)
        elif os.fspath(base_url).startswith(("http://", "https://")):
            self.base_url = os.fspath(base_url).rstrip("/") + "/"
        else:
            mirror = _mirror_folder(base_url)
            self.base_url = mirror.as_uri() + "/"
            if (mirror / "pyodide-lock.json").is_file():
                mirror_packages, mirror_info, _ = _load_lock(mirror / "pyodide-lock.json")
                packages.update(mirror_packages)
                info = {**mirror_info, **info}  # the given lock describes the runtime
        self.packages = packages  # the lock's entries by normalized name
        self._providers = {
            imported: name for name, entry in packages.items() for imported in entry.get("imports", ())
        }
        self.info = info  # the lock's info: the runtime's python, abi_version, arch, platform, ...

    def __contains__(self, name: object) -> bool:
        return name in self.packages

    def provider(self, imported: str) -> str | None:
        """The lock package that provides this top-level import, if any."""
        return self._providers.get(imported)

    def entry(self, name: str, needed_by: str | None = None) -> dict[str, Any]:
        """The lock's entry for a normalized name; a PackageError if the lock lacks it."""
        try:
            return self.packages[name]
        except KeyError:
            if needed_by is not None:
                raise PackageError(
                    f"'{name}', a dependency of '{needed_by}', is not in the Pyodide lock; "
                    "the lock is inconsistent: use the lock that came with this Pyodide version"
                ) from None
            raise PackageError(
                f"no package '{name}' in the Pyodide lock; for PyPI use install('{name}')"
            ) from None

    def cache_path(self, name: str) -> Path:
        """Where a lock package's file is kept in the cache."""
        return self.cache_dir / "pyodide" / cache_file_name(name, self.packages[name]["file_name"])

    def fetch(self, name: str) -> Wheel:
        """Put this one lock package's file in the cache (not its dependencies), checked against the lock."""
        entry = self.packages[name]
        sha256 = entry["sha256"].lower()
        path = self.cache_path(name)
        if not is_cached(path, sha256):
            url = self._file_url(name, entry["file_name"])
            path.parent.mkdir(parents=True, exist_ok=True)
            download(url, path, sha256, name)
        return Wheel(name, entry["version"], path, sha256, "pyodide")

    def source_url(self, file_name: str) -> str | None:
        """Where a lock file lives (None: unknown, the lock has no version and no base_url was given)."""
        if urlparse(file_name).scheme:  # the lock may name a file by its full URL
            return file_name
        if self.base_url is None:
            return None
        return urljoin(self.base_url, quote(file_name))

    def _file_url(self, name: str, file_name: str) -> str:
        url = self.source_url(file_name)
        if url is None:
            raise PackageError(
                f"cannot tell where to download '{name}' from: the lock does not say its Pyodide "
                "version; pass base_url= (the Pyodide CDN folder, or base_url=/path/to/mirror)"
            )
        if self._offline and urlparse(url).scheme in ("http", "https"):
            raise PackageError(
                f"offline, and '{name}' is not in the package cache {self.cache_dir}; "
                f"{SETUP_HINT.format(name=name)}, or pass base_url=/path/to/mirror"
            )
        return url

    def adopt(self, name: str, file: Path) -> None:
        """Keep a lock wheel pip just downloaded, if it is the lock's very file."""
        entry = self.packages[name]
        sha256 = entry["sha256"].lower()
        if cache_file_name(name, entry["file_name"]) != file.name or hash_file(file) != sha256:
            return  # e.g. PyPI's own build of a pure-Python lock package: fetch_pyodide gets the lock's
        target = self.cache_dir / "pyodide" / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(file, target)
        remember(target, sha256)


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
    return {normalize(key): entry for key, entry in packages.items()}, dict(lock.get("info", {})), path


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
