"""`--mount HOST:GUEST[:rw]`, as every command that takes it reads it."""

from __future__ import annotations

from collections.abc import Iterable

import click

from throwaway.fs import FileSystem, MountSpec


def parse_mounts(texts: Iterable[str], param_hint: str = "--mount") -> list[MountSpec]:
    """The mounts as specs; a bad one is a usage error that says the form."""
    try:
        return [MountSpec.parse(text) for text in texts]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=param_hint) from None


def mounted_file_system(texts: Iterable[str]) -> FileSystem:
    """A default file system with these host folders mounted."""
    fs = FileSystem()
    for m in parse_mounts(texts):
        fs.mount_host(m.guest, m.host, writable=m.writable)
    return fs
