"""Case attachments (photos, short videos, documents): what is accepted and how it is named.

The type of a file is decided from its first bytes, never from the name or the
``Content-Type`` the client sent, so an HTML or script file renamed ``photo.jpg`` is
refused; only the types below are kept, up to :data:`MAX_BYTES`. The stored name is
the content's SHA-256 (no client-chosen path ever reaches the disk); the original name
is kept as metadata only, for the ``Content-Disposition`` header.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import NamedTuple

from cim.errors import DatasetIOError, InputDataError

#: the largest attachment kept (bytes)
MAX_BYTES = 20 * 1024 * 1024

#: accepted media types and the extension a stored file gets
MEDIA_TYPES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "application/pdf": ".pdf",
}


def sniff(head: bytes) -> str | None:
    """The media type of a file from its first bytes (at least 12), or None when unknown."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


class Checked(NamedTuple):
    """An accepted attachment: its media type, size, digest and storage key."""

    media_type: str
    size: int
    sha256: str
    storage_key: str
    name: str


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\\"]+")


def check(data: bytes, name: str) -> Checked:
    """Accept or refuse an uploaded file.

    Parameters
    ----------
    data : bytes
        The whole file.
    name : str
        The client's file name (kept, cleaned, for display only).

    Raises
    ------
    InputDataError
        Empty, larger than :data:`MAX_BYTES`, or not one of :data:`MEDIA_TYPES`.
    """
    if not data:
        raise InputDataError("the attachment is empty")
    if len(data) > MAX_BYTES:
        raise InputDataError(
            f"the attachment is {len(data)} bytes, more than the {MAX_BYTES // 1024 // 1024} MiB "
            "allowed"
        )
    media_type = sniff(data[:16])
    if media_type is None:
        raise InputDataError(
            "the attachment is not a JPEG, PNG or WebP image, an MP4 video or a PDF "
            "(its content decides, not its name)"
        )
    digest = hashlib.sha256(data).hexdigest()
    clean = _UNSAFE.sub("_", name).strip()[:200] or f"attachment{MEDIA_TYPES[media_type]}"
    return Checked(media_type, len(data), digest, digest + MEDIA_TYPES[media_type], clean)


#: what a storage key looks like: the SHA-256 and one of the extensions above
_KEY = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp|mp4|pdf)$")


def stored_path(folder: Path, storage_key: str) -> Path:
    """Where the attachment ``storage_key`` lies in ``folder``.

    The key must be one :func:`check` makes (a digest and an extension), so no stored
    or client value can name a path outside ``folder``.

    Raises
    ------
    InputDataError
        A malformed key.
    """
    if not _KEY.match(storage_key):
        raise InputDataError(f"not an attachment storage key: {storage_key[:80]!r}")
    return folder / storage_key[:2] / storage_key


def save(folder: Path, data: bytes, checked: Checked) -> Path:
    """Write an accepted attachment into ``folder`` by its digest; its path.

    The bytes go to a temporary file that is synced, then renamed into place, so a
    crash never leaves a partial file under the digest's name; identical content is
    stored once.

    Raises
    ------
    DatasetIOError
        The folder cannot be written.
    """
    path = stored_path(folder, checked.storage_key)
    if path.is_file() and path.stat().st_size == checked.size:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise DatasetIOError(f"cannot store the attachment ({exc.strerror})", path=folder) from exc
    return path
