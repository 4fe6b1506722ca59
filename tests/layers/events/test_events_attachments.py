"""Attachments: the content decides the type; size limit; safe names."""

from __future__ import annotations

import hashlib

import pytest

from cim.errors import InputDataError
from layers.events import attachments
from layers.events.attachments import MAX_BYTES, check, sniff

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def test_sniffing() -> None:
    assert sniff(JPEG) == "image/jpeg" and sniff(PNG) == "image/png"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(b"\x00\x00\x00\x18ftypmp42") == "video/mp4"
    assert sniff(b"%PDF-1.7\n") == "application/pdf"
    assert sniff(b"<html><script>") is None


def test_check_accepts_by_content_and_names_by_digest() -> None:
    got = check(PNG, 'pho/to"\x00.jpg')
    assert got.media_type == "image/png" and got.size == len(PNG)
    assert got.sha256 == hashlib.sha256(PNG).hexdigest()
    assert got.storage_key == got.sha256 + ".png"  # the content's type, not the name's
    assert got.name == "pho_to_.jpg"
    assert check(JPEG, "").name == "attachment.jpg"


def test_check_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputDataError, match="empty"):
        check(b"", "a.jpg")
    with pytest.raises(InputDataError, match="its content decides"):
        check(b"<svg onload=alert(1)>", "a.jpg")
    monkeypatch.setattr(attachments, "MAX_BYTES", 50)
    with pytest.raises(InputDataError, match="more than"):
        check(JPEG, "a.jpg")
    assert MAX_BYTES == 20 * 1024 * 1024
