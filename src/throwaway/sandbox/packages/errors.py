"""The one error of the package gateway."""


class PackageError(Exception):
    """A package cannot be had; the message names it and says what to do."""
