"""One error tree for the whole toolkit.

Every error the toolkit raises on purpose derives from :class:`CimError`; subclasses
also inherit the matching built-in so that callers who catch ``ValueError`` or
``OSError`` keep working. Offending values are kept as attributes so the CLI and the
server can report them without parsing messages.
"""

from __future__ import annotations

from pathlib import Path


class CimError(Exception):
    """Base of all toolkit errors.

    Parameters
    ----------
    message : str
        What went wrong, in one line.
    path : str or Path, optional
        The file concerned.
    feature : str, optional
        The feature (id) concerned.
    """

    #: process exit code used by the ``cim`` command line for this error class
    exit_code = 1

    def __init__(
        self, message: str, *, path: str | Path | None = None, feature: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.feature = feature

    def __str__(self) -> str:
        parts = []
        if self.path:
            parts.append(self.path)
        if self.feature is not None:
            parts.append(f"feature {self.feature}")
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(CimError, ValueError):
    """The city project file is missing, malformed or inconsistent."""

    exit_code = 2


class CRSError(CimError, ValueError):
    """A coordinate reference system is unknown, missing, or does not fit the data."""

    exit_code = 3


class InputDataError(CimError, ValueError):
    """Input data cannot be used (empty file, no usable feature, absurd values)."""

    exit_code = 4


class DatasetIOError(CimError, OSError):
    """A dataset cannot be read or written."""

    exit_code = 5


class NotFoundError(CimError, LookupError):
    """A requested item (file, layer, building, address) does not exist."""

    exit_code = 6
