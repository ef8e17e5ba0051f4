"""``PackageGateway``: the face of the package gateway.

It applies the allow and deny lists, walks the lock's dependencies, and sends
each request to the source that serves it: ``PyodideSource`` for the lock's
packages, ``PyPISource`` for the rest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .cache import Wheel, is_cached
from .errors import PackageError
from .names import normalize, parse_requirement, strings
from .pyodide import PyodideSource
from .pypi import PyPISource


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
        self._pyodide = PyodideSource(lock, base_url, cache_dir=self.cache_dir, offline=offline)
        self._allow = None if allow is None else {normalize(name) for name in strings(allow)}
        self._deny = {normalize(name) for name in strings(deny)}
        self._pypi = (
            PyPISource(
                self.cache_dir,
                self._pyodide,
                offline=offline,
                check_allowed=self._check_allowed,
                fetch_pyodide=self.fetch_pyodide,
            )
            if pypi
            else None
        )

    @property
    def base_url(self) -> str | None:
        """Where the lock's files are fetched from (None: unknown, pass base_url=)."""
        return self._pyodide.base_url

    @property
    def offline(self) -> bool:
        """True when this gateway never touches the network."""
        return self._pyodide._offline

    @property
    def pypi_enabled(self) -> bool:
        return self._pypi is not None

    def lock_names(self) -> list[str]:
        """The lock's packages this gateway's lists allow, sorted."""
        return sorted(n for n in self._pyodide.packages
                      if n not in self._deny and (self._allow is None or n in self._allow))

    def is_cached(self, name: str) -> bool:
        """Whether a lock package's file is in the cache already (so it loads with no network)."""
        entry = self._pyodide.packages.get(normalize(name))
        return bool(entry) and is_cached(self._pyodide.cache_path(normalize(name)), entry["sha256"].lower())

    def lock_entry(self, name: str) -> dict[str, Any]:
        """The lock's entry for a package (a copy): version, file_name, sha256, imports, depends, ..."""
        return dict(self._pyodide.entry(normalize(name)))

    def packages_for_imports(self, import_names: Iterable[str]) -> list[str]:
        """The lock packages that provide these top-level imports, in order, without repeats.

        Imports no lock package provides are ignored: they may be the standard
        library, or already installed.
        """
        found: dict[str, None] = {}
        for imported in strings(import_names):
            name = self._pyodide.provider(imported.partition(".")[0])
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
            entry = self._pyodide.entry(name, needed_by)
            self._check_allowed(name, needed_by)
            visiting.add(name)
            for dependency in entry.get("depends", ()):
                visit(normalize(dependency), name)
            order[name] = None

        for name in strings(names):
            visit(normalize(name), None)
        return list(order)

    def fetch_pyodide(self, names: Iterable[str]) -> list[Wheel]:
        """Put these lock packages and their dependencies in the cache; dependencies first.

        Every file is checked against the lock's sha256; a file that does not
        match is deleted and never served.
        """
        return [self._pyodide.fetch(name) for name in self.resolve(names)]

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
        if self._pypi is None:
            raise PackageError(
                "PyPI packages are turned off for this sandbox (pypi=False); "
                "use packages from the Pyodide lock, or pass pypi=True"
            )
        parsed = [parse_requirement(text) for text in strings(requirements)]
        for name, _ in parsed:
            self._check_allowed(name)
        from_lock = [name for name, canonical in parsed if canonical == name and name in self._pyodide]
        for_pip = sorted({canonical for _, canonical in parsed if canonical not in from_lock})
        wheels = self.fetch_pyodide(from_lock)
        if for_pip:
            wheels += self._pypi.fetch(for_pip)
        return list({wheel.name: wheel for wheel in wheels}.values())

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
