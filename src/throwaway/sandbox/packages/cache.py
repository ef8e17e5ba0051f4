"""The package cache: the files both sources put there, and how they get there.

A file is downloaded to a temporary name and renamed into place only if its
sha256 is right, so the cache is safe to share between gateways and
processes. Each file is hashed at most once per process unless it changes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from .errors import PackageError

# Seconds a download may sit without receiving data before it is abandoned.
DOWNLOAD_TIMEOUT = 30

# How to warm the cache, for messages about a package the cache lacks.
SETUP_HINT = "run `throwaway setup --package {name}` while online"


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
    digest = hash_file(path)
    _VERIFIED[path.absolute()] = (stat.st_size, stat.st_mtime_ns, digest)
    return digest


def hash_file(path: Path) -> str:
    """The sha256 of a file, hashed now."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def remember(path: Path, sha256: str) -> None:
    """Note that the file at path, as it is now, has this sha256."""
    stat = path.stat()
    _VERIFIED[path.absolute()] = (stat.st_size, stat.st_mtime_ns, sha256)


def is_cached(path: Path, sha256: str) -> bool:
    """Whether the cache holds the right file; a wrong one is deleted."""
    digest = _sha256_of(path)
    if digest is None:
        return False
    if digest != sha256:
        path.unlink(missing_ok=True)
        _VERIFIED.pop(path.absolute(), None)
        return False
    return True


def download(url: str, dest: Path, sha256: str, name: str) -> None:
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
    remember(dest, sha256)


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
            f"(base_url=/path/to/mirror), or use a warm package cache ({SETUP_HINT.format(name=name)})"
        ) from None
    return digest.hexdigest()


def move_into_cache(file: Path, folder: Path, name: str, version: str) -> Wheel:
    """Move a PyPI wheel into the cache folder; the Wheel it now is."""
    folder.mkdir(parents=True, exist_ok=True)
    sha256 = hash_file(file)
    target = folder / file.name
    os.replace(file, target)
    remember(target, sha256)
    return Wheel(name, version, target, sha256, "pypi")


def cache_file_name(name: str, file_name: str) -> str:
    """The name a lock file gets in the cache; refuses names that would leave the folder."""
    base = urlparse(file_name).path.rsplit("/", 1)[-1]
    if not base or base.startswith(".") or "\\" in base:
        raise PackageError(
            f"the lock's file_name for '{name}' ({file_name!r}) is not a usable file name; fix the lock"
        )
    return base
