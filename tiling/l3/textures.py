"""Textures of the L3 models: procedural facades and roof materials, orthophoto atlases.

Facades are drawn once per kind (one storey and one bay, repeated by the texture
coordinates: :mod:`tiling.l3.mesh`), so a tile carries a handful of small images
whatever its number of buildings:

- ``house``: grey brick, a lattice window per bay (courtyard houses, 1–2 storeys);
- ``shop``: a timber shop front with a door per bay;
- ``temple``: red timber columns (柱) at the bay edges, lattice doors (隔扇) between,
  one storey to the eave;
- ``modern``: a rendered wall with a window per bay and storey;
- ``glass``: curtain wall bands (10 storeys and more).

Roof materials are tile rolls (``tile``: grey tiles 青瓦, ``glazed``: glazed tiles
琉璃瓦, tinted by the roof colour through the vertex colour) and ``concrete``;
roofs without a material are cut from the orthophoto (:class:`Atlas`). ``stone`` is
the podium (台基).

Images are encoded in the tileset's format (``[l3] texture_format``): WebP
(``EXT_texture_webp``), JPEG or PNG, all read by CesiumJS; the choice and the sizes
measured are in docs/l3.md (``bench/bench_l3.py --formats`` prints them).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

#: Facade kinds and the size (metres) one texture repeat covers: (bay width, storey)
#: — the storey height of ``temple`` is the eave height (one tall storey).
FACADES = ("house", "shop", "temple", "modern", "glass")
BAY_M = {"house": 3.3, "shop": 3.6, "temple": 4.0, "modern": 3.6, "glass": 3.0, "stone": 2.0}
ROOF_MATERIALS = ("tile", "glazed", "concrete")
#: Metres one repeat of a roof material texture covers (one course of tile rolls).
ROOF_REPEAT_M = {"tile": 1.6, "glazed": 1.6, "concrete": 4.0}
MIME = {"webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png"}
#: Largest side (px) of one roof cut from the orthophoto, and the atlas' largest side.
MAX_ROOF_PX = 96
MAX_ATLAS_PX = 2048

#: Roof colours by name (Chinese and English) → sRGB 0–255.
COLOURS: dict[str, tuple[int, int, int]] = {
    "yellow": (222, 168, 48),
    "黄": (222, 168, 48),
    "黄色": (222, 168, 48),
    "金黄": (232, 176, 40),
    "green": (70, 140, 90),
    "绿": (70, 140, 90),
    "绿色": (70, 140, 90),
    "blue": (60, 100, 160),
    "蓝": (60, 100, 160),
    "蓝色": (60, 100, 160),
    "grey": (110, 112, 116),
    "gray": (110, 112, 116),
    "灰": (110, 112, 116),
    "灰色": (110, 112, 116),
    "red": (160, 60, 45),
    "红": (160, 60, 45),
    "红色": (160, 60, 45),
    "black": (60, 60, 64),
    "黑": (60, 60, 64),
    "white": (235, 235, 230),
    "白": (235, 235, 230),
    "brown": (120, 80, 50),
    "棕": (120, 80, 50),
}
WHITE = (255, 255, 255)


def parse_colour(text: str) -> tuple[int, int, int] | None:
    """``"#RRGGBB"``, ``"RRGGBB"`` or a colour name → sRGB; None when not a colour."""
    t = text.strip().lower()
    if not t:
        return None
    if t in COLOURS:
        return COLOURS[t]
    h = t.removeprefix("#")
    if len(h) == 6 and all(c in "0123456789abcdef" for c in h):
        return int(h[:2], 16), int(h[2:4], 16), int(h[4:], 16)
    return None


def roof_material(text: str) -> str | None:
    """A ``roof_material`` value → ``tile`` / ``glazed`` / ``concrete``; None: unknown."""
    t = text.strip().lower().replace(" ", "_").replace("-", "_")
    if not t:
        return None
    if "glaz" in t or "琉璃" in t:
        return "glazed"
    if "tile" in t or "瓦" in t:
        return "tile"
    if t in ("concrete", "flat", "asphalt", "metal", "混凝土", "水泥", "沥青") or "concrete" in t:
        return "concrete"
    return None


# --- procedural images -----------------------------------------------------------------


@cache
def facade_image(kind: str) -> Image.Image:
    """One bay × one storey of facade ``kind`` (64 × 64 px, deterministic)."""
    draw_fn = {
        "house": _house,
        "shop": _shop,
        "temple": _temple,
        "modern": _modern,
        "glass": _glass,
        "stone": _stone,
    }[kind]
    img = Image.new("RGB", (64, 64))
    draw_fn(ImageDraw.Draw(img))
    return img


def _house(d: ImageDraw.ImageDraw) -> None:
    d.rectangle((0, 0, 63, 63), fill=(128, 128, 126))
    for y in range(0, 64, 4):  # brick courses
        d.line((0, y, 63, y), fill=(112, 112, 110))
    d.rectangle((0, 56, 63, 63), fill=(96, 94, 92))  # plinth
    d.rectangle((18, 16, 46, 40), fill=(92, 52, 36))  # window frame
    for x in range(22, 44, 6):
        d.line((x, 18, x, 38), fill=(200, 190, 160))
    for y in range(20, 38, 6):
        d.line((20, y, 44, y), fill=(200, 190, 160))


def _shop(d: ImageDraw.ImageDraw) -> None:
    d.rectangle((0, 0, 63, 63), fill=(118, 72, 44))
    d.rectangle((0, 0, 63, 10), fill=(70, 40, 28))  # signboard band
    d.rectangle((8, 16, 30, 63), fill=(48, 30, 22))  # door
    d.rectangle((36, 16, 58, 44), fill=(180, 170, 140))  # shop window
    for x in range(40, 58, 6):
        d.line((x, 16, x, 44), fill=(90, 56, 36))
    d.line((0, 0, 0, 63), fill=(60, 36, 24), width=2)


def _temple(d: ImageDraw.ImageDraw) -> None:
    d.rectangle((0, 0, 63, 63), fill=(150, 44, 34))
    d.rectangle((0, 0, 63, 8), fill=(40, 80, 90))  # painted beam (额枋)
    d.rectangle((0, 0, 5, 63), fill=(122, 30, 24))  # columns
    d.rectangle((58, 0, 63, 63), fill=(122, 30, 24))
    for x0 in (9, 33):  # lattice doors
        d.rectangle((x0, 14, x0 + 21, 60), fill=(130, 36, 28))
        for x in range(x0 + 3, x0 + 21, 4):
            d.line((x, 16, x, 40), fill=(200, 150, 80))
        for y in range(18, 40, 4):
            d.line((x0 + 2, y, x0 + 19, y), fill=(200, 150, 80))


def _modern(d: ImageDraw.ImageDraw) -> None:
    d.rectangle((0, 0, 63, 63), fill=(206, 200, 188))
    d.rectangle((14, 14, 50, 44), fill=(70, 90, 110))
    d.line((32, 14, 32, 44), fill=(220, 220, 220))
    d.rectangle((10, 44, 54, 47), fill=(180, 176, 168))  # sill


def _glass(d: ImageDraw.ImageDraw) -> None:
    d.rectangle((0, 0, 63, 63), fill=(84, 116, 140))
    d.rectangle((0, 50, 63, 63), fill=(150, 156, 160))  # spandrel
    d.line((0, 0, 0, 63), fill=(170, 176, 180), width=3)
    d.line((32, 0, 32, 50), fill=(120, 140, 156))


def _stone(d: ImageDraw.ImageDraw) -> None:
    d.rectangle((0, 0, 63, 63), fill=(168, 164, 152))
    for y in (0, 32):
        d.line((0, y, 63, y), fill=(132, 128, 120), width=2)
    for x, y in ((0, 0), (32, 32)):
        d.line((x, y, x, y + 31), fill=(132, 128, 120), width=2)


@cache
def roof_image(material: str) -> Image.Image:
    """One repeat of a roof material (64 × 64 px), light so the vertex colour tints it."""
    img = Image.new("RGB", (64, 64), (200, 200, 200))
    d = ImageDraw.Draw(img)
    if material == "concrete":
        rng = np.random.default_rng(7)
        noise = rng.integers(185, 215, size=(64, 64), dtype=np.uint8)
        return Image.fromarray(np.dstack([noise, noise, noise - 4]))
    shade = 150 if material == "tile" else 190
    for x in range(0, 64, 8):  # tile rolls running down the slope
        d.rectangle((x, 0, x + 2, 63), fill=(shade - 40,) * 3)
        light = shade + 40 if material == "glazed" else shade
        d.rectangle((x + 3, 0, x + 6, 63), fill=(light,) * 3)
    for y in range(0, 64, 16):  # courses
        d.line((0, y, 63, y), fill=(shade - 60,) * 3)
    return img


def encode_image(img: Image.Image, fmt: str, quality: int = 80) -> bytes:
    """Encode ``img`` as WebP, JPEG or PNG (deterministic bytes)."""
    buf = io.BytesIO()
    if fmt == "webp":
        img.save(buf, "WEBP", quality=quality, method=4)
    elif fmt == "jpeg":
        img.convert("RGB").save(buf, "JPEG", quality=quality, optimize=True)
    elif fmt == "png":
        img.save(buf, "PNG", optimize=True)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


# --- orthophoto roof atlas -------------------------------------------------------------


@dataclass
class Atlas:
    """Roof images cut from the orthophoto, packed on shelves into one image.

    ``add`` returns the pixel rectangle of each piece; :meth:`image` draws the atlas
    and :meth:`uv` maps a piece's own pixel coordinates to atlas texture coordinates.
    """

    pieces: list[np.ndarray] = field(default_factory=list)
    places: list[tuple[int, int]] = field(default_factory=list)
    width: int = 0
    height: int = 0
    _shelf_x: int = 0
    _shelf_y: int = 0
    _shelf_h: int = 0
    max_width: int = 1024

    def add(self, rgb: np.ndarray) -> int:
        """Place an (h, w, 3) uint8 piece; returns its index."""
        h, w = rgb.shape[:2]
        if self._shelf_x + w > self.max_width:
            self._shelf_y += self._shelf_h
            self._shelf_x, self._shelf_h = 0, 0
        self.places.append((self._shelf_x, self._shelf_y))
        self.pieces.append(rgb)
        self._shelf_x += w
        self._shelf_h = max(self._shelf_h, h)
        self.width = max(self.width, self._shelf_x)
        self.height = self._shelf_y + self._shelf_h
        return len(self.pieces) - 1

    def image(self) -> Image.Image:
        """The atlas (width and height rounded up to multiples of 4)."""
        w, h = -(-self.width // 4) * 4, -(-self.height // 4) * 4
        canvas = np.zeros((max(h, 4), max(w, 4), 3), dtype=np.uint8)
        for (x, y), piece in zip(self.places, self.pieces, strict=True):
            canvas[y : y + piece.shape[0], x : x + piece.shape[1]] = piece
        return Image.fromarray(canvas)

    def uv(self, index: int, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Texture coordinates of points at pixel (px, py) of piece ``index``."""
        x0, y0 = self.places[index]
        h, w = self.pieces[index].shape[:2]
        # half a pixel inside the piece: linear filtering never reads a neighbour
        px = np.clip(px, 0.5, w - 0.5) + x0
        py = np.clip(py, 0.5, h - 0.5) + y0
        aw, ah = max(-(-self.width // 4) * 4, 4), max(-(-self.height // 4) * 4, 4)
        return np.column_stack([px / aw, py / ah]).astype(np.float32)


def piece_size(width_m: float, height_m: float, native_m: float) -> tuple[int, int]:
    """Pixel size of a roof cut covering ``width_m`` × ``height_m`` metres."""
    pixel = max(native_m, max(width_m, height_m) / MAX_ROOF_PX)
    return max(int(np.ceil(width_m / pixel)), 2), max(int(np.ceil(height_m / pixel)), 2)
