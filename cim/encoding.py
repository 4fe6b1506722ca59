"""Text encodings of CSV files and shapefile ``.dbf`` tables: check or detect.

One detection rule for every text input (CSV, shapefile without ``.cpg``), in order:

1. UTF-8 (with or without a BOM) when the whole file decodes as UTF-8;
2. GB18030 (the superset of GBK and GB2312) when the whole file decodes as GB18030
   and its two-byte characters look like Chinese text (see below);
3. CP1252 (Windows Latin-1; ISO-8859-1 when CP1252 cannot decode a byte) when the
   bytes above 0x7F look like accented Latin letters;
4. otherwise the text is refused (:class:`~cim.errors.InputDataError`): set
   ``encoding`` in city.toml.

Why 2 and 3 can be told apart: Latin-1/CP1252 text such as ``Platière`` or
``Hämeentie`` also decodes as GB18030, because an accented letter (0x80-0xFF)
followed by an ASCII letter (0x40-0x7E) is a valid two-byte GBK character
(``Plati鑢e``). Those GBK characters, with a trail byte below 0x80, all lie in the
GBK/3-GBK/4 extension areas of rare characters; everyday Chinese text is nearly all
GB2312 (both bytes 0xA1-0xFE). So a GB18030 reading is accepted only when at most half
of its two-byte characters have an ASCII trail byte. Conversely, Chinese text read as
CP1252 shows long runs of bytes above 0x7F (two per character), while Latin text has
isolated accented letters: CP1252 is accepted only when at most half of those bytes
sit in runs of three or more.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cim.errors import ConfigError, InputDataError

log = logging.getLogger(__name__)

#: dBase language driver ids of Chinese code pages (GBK / CP936 and Big5 / CP950)
_DBF_LDID = {0x4D: "GB18030", 0x7A: "GB18030", 0x78: "CP950", 0x4E: "CP950"}
#: Candidate codecs, tried over the whole file in one pass.
_CODECS = ("utf-8", "gb18030", "cp1252")
#: A "word" is a maximal run of bytes 0x30-0xFF holding a byte above 0x7F. Bytes below
#: 0x30 (space, comma, quote, newline, parentheses) are never part of a GB18030 or UTF-8
#: character, so words never cut one. Words are found with numpy (:func:`_words`): a
#: regular expression costs a second on the 20 MB ``.dbf`` of 100,000 features.
_SPLIT = re.compile(rb"[\x00-\x2f]")
#: Bytes of distinct non-ASCII words kept for judging the encoding, and how many words
#: (distinct or not) are looked at before sampling stops.
SAMPLE_BYTES = 1 << 20
SAMPLE_WORDS = 200_000
_BLOCK = 1 << 24


@dataclass
class TextScan:
    """What one pass over a file's bytes found.

    Attributes
    ----------
    bom : bool
        The bytes start with a UTF-8 byte order mark.
    errors : dict of str to UnicodeDecodeError or None
        Per candidate codec, the first error decoding the whole text (None: it decodes).
    sample : bytes
        Distinct words that hold bytes above 0x7F (newline-separated, capped).
    """

    bom: bool
    errors: dict[str, UnicodeDecodeError | None]
    sample: bytes

    def decodes(self, codec: str) -> bool:
        """Whether the whole text decodes with ``codec`` (False when not tried)."""
        return codec in self.errors and self.errors[codec] is None


def scan_text(
    blocks: Iterable[bytes], codecs_: tuple[str, ...] = _CODECS, *, sample: bool = True
) -> TextScan:
    """Decode a byte stream with every candidate codec and sample its non-ASCII words.

    Parameters
    ----------
    blocks : iterable of bytes
        The text, in blocks of any size.
    codecs_ : tuple of str
        Python codec names to try.
    sample : bool
        Collect :attr:`TextScan.sample` (not needed to check one codec).

    Returns
    -------
    TextScan
    """
    decoders = {c: codecs.getincrementaldecoder(c)() for c in codecs_}
    errors: dict[str, UnicodeDecodeError | None] = dict.fromkeys(codecs_)
    words: dict[bytes, None] = {}
    size = seen = offset = 0
    carry = b""
    bom: bool | None = None
    for block in blocks:
        if bom is None:
            bom = block[:3] == codecs.BOM_UTF8
        for name, dec in decoders.items():
            if errors[name] is None:
                errors[name] = _feed(dec, block, offset)
        offset += len(block)
        if sample and size < SAMPLE_BYTES and seen < SAMPLE_WORDS:
            text = carry + block
            cut = _last_separator(text)
            carry = text[cut:]
            for word in _words(text, cut):
                seen += 1
                if word not in words:
                    words[word] = None
                    size += len(word) + 1
    for name, dec in decoders.items():
        if errors[name] is None:
            errors[name] = _feed(dec, b"", offset, final=True)
    if sample and size < SAMPLE_BYTES and seen < SAMPLE_WORDS:
        words.update(dict.fromkeys(_words(carry, len(carry))))
    return TextScan(bool(bom), errors, b"\n".join(words))


def _words(text: bytes, stop: int) -> list[bytes]:
    """The words of ``text[:stop]`` that hold a byte above 0x7F, in order (vectorised)."""
    if stop == 0:
        return []
    a = np.frombuffer(text, np.uint8, count=stop)
    inside = a >= 0x30
    edge = np.flatnonzero(inside[1:] != inside[:-1]) + 1
    rising = inside[edge]
    starts, ends = edge[rising], edge[~rising]
    if inside[0]:
        starts = np.concatenate([[0], starts])
    if inside[-1]:
        ends = np.concatenate([ends, [stop]])
    if len(starts) == 0:
        return []
    # the largest byte from a word's start to the next word's start: separators are < 0x30
    k = np.flatnonzero(np.maximum.reduceat(a, starts) >= 0x80)
    return [text[s:e] for s, e in zip(starts[k].tolist(), ends[k].tolist(), strict=True)]


def _last_separator(text: bytes) -> int:
    """Index after the last byte below 0x30 (a safe place to cut), 0 when none."""
    for k in range(len(text) - 1, max(-1, len(text) - 4096), -1):
        if _SPLIT.match(text, k):
            return k + 1
    return 0 if len(text) < 4096 else len(text)


def _feed(
    dec: codecs.IncrementalDecoder, block: bytes, offset: int, *, final: bool = False
) -> UnicodeDecodeError | None:
    """Decode one block; the error with its byte offset in the whole text, or None."""
    try:
        dec.decode(block, final=final)
    except UnicodeDecodeError as exc:
        reason = f"{exc.reason} at byte {offset + exc.start}"
        return UnicodeDecodeError(exc.encoding, exc.object, exc.start, exc.end, reason)
    return None


def looks_chinese(sample: bytes) -> bool:
    """Whether GB18030-decodable words read as Chinese rather than accented Latin.

    True when at most half of the two-byte characters have an ASCII trail byte
    (0x40-0x7E: the GBK extension areas, which Latin-1 ``é`` + letter falls into).
    """
    text = sample.decode("gb18030", errors="replace")
    points = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    counts = np.bincount(points[points > 0x7F])
    two_byte = ascii_trail = 0
    for point in np.flatnonzero(counts).tolist():
        count = int(counts[point])
        raw = chr(point).encode("gb18030", errors="ignore")
        if len(raw) == 2:
            two_byte += count
            ascii_trail += count if raw[1] < 0x80 else 0
    return ascii_trail * 2 <= two_byte


def looks_latin(sample: bytes) -> bool:
    """Whether the bytes above 0x7F look like isolated accented Latin letters.

    False when more than half of them sit in runs of three or more (the two bytes
    per character of Chinese text, or UTF-8 sequences).
    """
    high = np.concatenate([[False], np.frombuffer(sample, np.uint8) >= 0x80, [False]])
    edge = np.flatnonzero(high[1:] != high[:-1])
    runs = edge[1::2] - edge[::2]
    total = int(runs.sum())
    return total > 0 and int(runs[runs >= 3].sum()) * 2 <= total


def choose_encoding(scan: TextScan) -> str | None:
    """The encoding the module's rule picks for scanned text (None: none fits).

    Returns ``"UTF-8"``, ``"UTF-8-SIG"``, ``"GB18030"``, ``"CP1252"`` or ``"latin-1"``.
    """
    if scan.decodes("utf-8"):
        return "UTF-8-SIG" if scan.bom else "UTF-8"
    if scan.decodes("gb18030") and looks_chinese(scan.sample):
        return "GB18030"
    if looks_latin(scan.sample):
        return "CP1252" if scan.decodes("cp1252") else "latin-1"
    return None


def _file_blocks(path: Path, block: int = _BLOCK) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            yield chunk


def check_codec(encoding: str, path: Path) -> None:
    """Raise :class:`ConfigError` when Python knows no codec ``encoding``."""
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise ConfigError(
            f"unknown text encoding {encoding!r} (use e.g. 'UTF-8', 'GBK', 'GB18030')",
            path=path,
        ) from exc


def check_text_encoding(path: Path, encoding: str) -> str:
    """Check that a declared ``encoding`` decodes the whole text file.

    Raises
    ------
    ConfigError
        Unknown codec.
    InputDataError
        The file is not in that encoding (one line, with the byte offset).
    """
    check_codec(encoding, path)
    error = scan_text(_file_blocks(path), (encoding,), sample=False).errors[encoding]
    if error is not None:
        guess = detect_text_encoding(path, strict=False)
        hint = f"; it decodes as {guess}" if guess else ""
        raise InputDataError(
            f"encoding = {encoding!r} cannot decode the file ({error.reason}){hint}", path=path
        )
    return encoding


def detect_text_encoding(path: Path, *, strict: bool = True) -> str | None:
    """The encoding of a text file by the module's rule (UTF-8, GB18030, CP1252).

    Raises
    ------
    InputDataError
        When no candidate fits (``strict``); otherwise None is returned.
    """
    # UTF-8 first, alone: the common case costs one fast pass
    scan = scan_text(_file_blocks(path), ("utf-8",), sample=False)
    if not scan.decodes("utf-8"):
        utf8_error = scan.errors["utf-8"]
        scan = scan_text(_file_blocks(path), ("gb18030", "cp1252"))
        scan.errors["utf-8"] = utf8_error
    chosen = choose_encoding(scan)
    if chosen is None and strict:
        raise InputDataError(
            "text is neither UTF-8, GBK/GB18030 nor Latin-1/CP1252; set 'encoding' in "
            'city.toml (e.g. encoding = "Big5")',
            path=path,
        )
    if chosen not in (None, "UTF-8", "UTF-8-SIG"):
        log.info("%s: not UTF-8; the text reads as %s, reading it so", path, chosen)
    return chosen


def detect_shapefile_encoding(shp: Path) -> str | None:
    """Encoding of a shapefile's ``.dbf`` when it has no ``.cpg``.

    A ``.cpg`` naming a Chinese code page, or a Chinese dBase language driver id,
    wins; otherwise the records are judged by :func:`choose_encoding`. Returns None
    when a ``.cpg`` GDAL understands exists or the text is UTF-8/ASCII.

    Raises
    ------
    InputDataError
        No candidate fits and the ``.dbf`` names no code page (language driver id 0).
    """
    if shp.with_suffix(".cpg").exists() or shp.with_suffix(".CPG").exists():
        cpg = _read_cpg(shp)
        return _normalise_codepage(cpg) if cpg else None
    dbf = next((p for p in (shp.with_suffix(".dbf"), shp.with_suffix(".DBF")) if p.exists()), None)
    if dbf is None:
        return None
    raw = dbf.read_bytes()
    if len(raw) < 32:
        return None
    ldid = raw[29]
    if ldid in _DBF_LDID:
        return _DBF_LDID[ldid]
    chosen = choose_encoding(_scan_dbf(raw))
    if chosen is None and ldid == 0:
        # no code page anywhere: GDAL would hand over the raw bytes (byte soup, or a
        # failure deep in the reader)
        raise InputDataError(
            "the .dbf text is neither UTF-8, GBK/GB18030 nor Latin-1/CP1252 and no .cpg "
            "names its code page; set 'encoding' in city.toml (e.g. encoding = \"Big5\")",
            path=dbf,
        )
    if chosen in (None, "UTF-8", "UTF-8-SIG"):
        return None
    log.info("%s: no .cpg; the text reads as %s, reading it so", dbf, chosen)
    return chosen


def _scan_dbf(raw: bytes) -> TextScan:
    """Scan a ``.dbf``'s records (after its header) by the module's rule."""
    body = raw[int.from_bytes(raw[8:10], "little") :]
    # UTF-8 first, alone (as for text files): only other text needs the word sample
    scan = scan_text([body], ("utf-8",), sample=False)
    if not scan.decodes("utf-8"):
        utf8_error = scan.errors["utf-8"]
        scan = scan_text([body], ("gb18030", "cp1252"))
        scan.errors["utf-8"] = utf8_error
    return scan


def check_shapefile_encoding(shp: Path, encoding: str) -> str:
    """Check that a declared ``encoding`` decodes every record of a shapefile's ``.dbf``.

    Raises
    ------
    ConfigError
        Unknown codec.
    InputDataError
        The records are not in that encoding (one line, with the byte offset and the
        encoding the module's rule finds, when one fits).
    """
    check_codec(encoding, shp)
    dbf = next((p for p in (shp.with_suffix(".dbf"), shp.with_suffix(".DBF")) if p.exists()), None)
    if dbf is None:
        return encoding
    raw = dbf.read_bytes()
    body = raw[int.from_bytes(raw[8:10], "little") :] if len(raw) >= 32 else b""
    error = scan_text([body], (encoding,), sample=False).errors[encoding]
    if error is not None:
        guess = choose_encoding(_scan_dbf(raw))
        hint = f"; it decodes as {guess}" if guess else ""
        raise InputDataError(
            f"encoding = {encoding!r} cannot decode the .dbf ({error.reason}){hint}", path=dbf
        )
    return encoding


def _read_cpg(shp: Path) -> str | None:
    for cpg in (shp.with_suffix(".cpg"), shp.with_suffix(".CPG")):
        if cpg.exists():
            return cpg.read_text(encoding="ascii", errors="ignore").strip()
    return None


def _normalise_codepage(name: str) -> str | None:
    """Map .cpg spellings GDAL may not know to Python codec names."""
    key = name.strip().upper().replace("-", "").replace("_", "")
    if key in {"GBK", "CP936", "936", "GB2312", "GB18030", "ANSI936"}:
        return "GB18030"
    if key in {"BIG5", "CP950", "950"}:
        return "CP950"
    return None  # UTF-8, 1252 etc.: GDAL understands these itself
