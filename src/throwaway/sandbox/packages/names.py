"""Package names and requirement strings: PEP 503 names, and what the guest may ask pip for."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import PackageError

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


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def strings(values: Iterable[str]) -> list[str]:
    """The values as a list; a lone string is one value (allow="numpy" is not n, u, m, p, y)."""
    return [values] if isinstance(values, str) else list(values)


def parse_requirement(text: str) -> tuple[str, str]:
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
    name = normalize(match["name"])
    return name, name + re.sub(r"\s+", "", match["rest"]).lower()


def wheel_name_version(file_name: str) -> tuple[str, str]:
    """(normalized name, version) from a wheel's file name."""
    name, version = file_name.removesuffix(".whl").split("-")[:2]
    return normalize(name), version
