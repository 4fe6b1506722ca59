"""Roof form names: OSM ``roof:shape``, Chinese names and CityGML ``RoofTypeType`` codes.

One enum, :class:`RoofForm`, and one parser, :func:`parse_roof_form`, that accepts all
three name families (case, spaces, dashes and underscores do not matter).
"""

from __future__ import annotations

import enum
import re

from cim.errors import InputDataError


class UnknownRoofFormError(InputDataError):
    """A ``roof_type`` value names no known roof form."""

    def __init__(self, value: object) -> None:
        super().__init__(
            f"unknown roof form {value!r} (expected an OSM roof:shape such as 'gabled', "
            "a Chinese name such as '歇山', or a CityGML roof type code such as 1030)"
        )
        self.value = value


class RoofForm(enum.Enum):
    """A roof form. ``family`` is 'western' or 'chinese'; ``double_eave`` marks 重檐 forms."""

    FLAT = "flat"
    SHED = "shed"  # skillion, monopitch
    GABLED = "gabled"
    HIPPED = "hipped"
    HALF_HIPPED = "half-hipped"
    PYRAMIDAL = "pyramidal"
    MANSARD = "mansard"
    GAMBREL = "gambrel"
    DOME = "dome"
    CONE = "cone"
    ROUND = "round"  # barrel / arch
    SAWTOOTH = "sawtooth"
    YINGSHAN = "硬山"
    XUANSHAN = "悬山"
    XIESHAN = "歇山"
    WUDIAN = "庑殿"
    CUANJIAN = "攒尖"  # pyramid over the footprint itself
    CUANJIAN_4 = "四角攒尖"
    CUANJIAN_6 = "六角攒尖"
    CUANJIAN_8 = "八角攒尖"
    CUANJIAN_ROUND = "圆攒尖"
    JUANPENG = "卷棚"
    CHONGYAN_XIESHAN = "重檐歇山"
    CHONGYAN_WUDIAN = "重檐庑殿"
    CHONGYAN_CUANJIAN = "重檐攒尖"

    @property
    def family(self) -> str:
        """'chinese' for the Chinese forms, else 'western'."""
        return "chinese" if not self.value.isascii() else "western"

    @property
    def double_eave(self) -> bool:
        """True for the 重檐 (double-eave) forms."""
        return self.value.startswith("重檐")

    @property
    def single(self) -> RoofForm:
        """The single-eave form of a 重檐 form (itself otherwise)."""
        return RoofForm(self.value[2:]) if self.double_eave else self


_F = RoofForm

#: OSM roof:shape values and English synonyms (normalised: lower case, '-' separators)
_OSM = {
    "flat": _F.FLAT,
    "skillion": _F.SHED,
    "shed": _F.SHED,
    "lean-to": _F.SHED,
    "monopitch": _F.SHED,
    "mono-pitch": _F.SHED,
    "gabled": _F.GABLED,
    "gable": _F.GABLED,
    "saddle": _F.GABLED,
    "hipped": _F.HIPPED,
    "hip": _F.HIPPED,
    "half-hipped": _F.HALF_HIPPED,
    "halfhipped": _F.HALF_HIPPED,
    "jerkinhead": _F.HALF_HIPPED,
    "pyramidal": _F.PYRAMIDAL,
    "pyramid": _F.PYRAMIDAL,
    "pavilion": _F.PYRAMIDAL,
    "tented": _F.PYRAMIDAL,
    "mansard": _F.MANSARD,
    "gambrel": _F.GAMBREL,
    "dome": _F.DOME,
    "cupola": _F.DOME,
    "copula": _F.DOME,
    "onion": _F.DOME,
    "cone": _F.CONE,
    "conical": _F.CONE,
    "round": _F.ROUND,
    "barrel": _F.ROUND,
    "arch": _F.ROUND,
    "arched": _F.ROUND,
    "sawtooth": _F.SAWTOOTH,
    "hip-and-gable": _F.XIESHAN,
    # Pinyin names of the Chinese forms
    "yingshan": _F.YINGSHAN,
    "xuanshan": _F.XUANSHAN,
    "xieshan": _F.XIESHAN,
    "wudian": _F.WUDIAN,
    "cuanjian": _F.CUANJIAN,
    "juanpeng": _F.JUANPENG,
    "chongyan-xieshan": _F.CHONGYAN_XIESHAN,
    "chongyan-wudian": _F.CHONGYAN_WUDIAN,
}

#: Chinese names and their common variants
_ZH = {
    "平顶": _F.FLAT,
    "平屋顶": _F.FLAT,
    "单坡": _F.SHED,
    "单坡顶": _F.SHED,
    "双坡": _F.GABLED,
    "双坡顶": _F.GABLED,
    "四坡": _F.HIPPED,
    "四坡顶": _F.HIPPED,
    "孟莎": _F.MANSARD,
    "穹顶": _F.DOME,
    "圆顶": _F.DOME,
    "拱顶": _F.ROUND,
    "锯齿": _F.SAWTOOTH,
    "硬山": _F.YINGSHAN,
    "悬山": _F.XUANSHAN,
    "挑山": _F.XUANSHAN,
    "歇山": _F.XIESHAN,
    "九脊": _F.XIESHAN,
    "庑殿": _F.WUDIAN,
    "四阿": _F.WUDIAN,
    "五脊": _F.WUDIAN,
    "攒尖": _F.CUANJIAN,
    "四角攒尖": _F.CUANJIAN_4,
    "方攒尖": _F.CUANJIAN_4,
    "六角攒尖": _F.CUANJIAN_6,
    "八角攒尖": _F.CUANJIAN_8,
    "圆攒尖": _F.CUANJIAN_ROUND,
    "卷棚": _F.JUANPENG,
    "卷棚硬山": _F.JUANPENG,
    "卷棚悬山": _F.JUANPENG,
    "重檐歇山": _F.CHONGYAN_XIESHAN,
    "重檐庑殿": _F.CHONGYAN_WUDIAN,
    "重檐攒尖": _F.CHONGYAN_CUANJIAN,
}

#: CityGML 2.0 / 3.0 RoofTypeType codes (SIG3D code list)
_CITYGML = {
    1000: _F.FLAT,
    1010: _F.SHED,
    1020: _F.SHED,  # dual pent: two monopitch halves; built as one shed (see docs)
    1030: _F.GABLED,
    1040: _F.HIPPED,
    1050: _F.HALF_HIPPED,
    1060: _F.MANSARD,
    1070: _F.PYRAMIDAL,
    1080: _F.CONE,
    1090: _F.DOME,
    1100: _F.SAWTOOTH,
    1110: _F.ROUND,
    1120: _F.PYRAMIDAL,
    1130: _F.GAMBREL,  # combination of roof forms: nearest single form
}

_SEP = re.compile(r"[\s_]+")


def parse_roof_form(value: str | int | None) -> RoofForm | None:
    """Parse a roof form from an OSM value, a Chinese name or a CityGML code.

    Parameters
    ----------
    value : str, int or None
        e.g. ``"gabled"``, ``"Half Hipped"``, ``"歇山"``, ``"重檐庑殿顶"``, ``1030``, ``"1040"``.

    Returns
    -------
    RoofForm or None
        None for None, empty and NaN values (no roof form given).

    Raises
    ------
    UnknownRoofFormError
        (an :class:`~cim.errors.InputDataError`) when the value names no known form.
    """
    if value is None or isinstance(value, RoofForm):
        return value
    if isinstance(value, float):
        if value != value:  # NaN from a table
            return None
        if not value.is_integer():
            raise UnknownRoofFormError(value)
        value = int(value)
    if isinstance(value, int):
        form = _CITYGML.get(value)
        if form is None:
            raise UnknownRoofFormError(value)
        return form
    text = str(value).strip()
    if not text:
        return None
    if text.isdigit() and int(text) in _CITYGML:
        return _CITYGML[int(text)]
    key = _SEP.sub("-", text.lower())
    if key in _OSM:
        return _OSM[key]
    zh = text.replace(" ", "")
    for candidate in (zh, zh.removesuffix("顶"), zh.removesuffix("式"), zh.removesuffix("屋顶")):
        if candidate in _ZH:
            return _ZH[candidate]
    try:
        return RoofForm(zh)
    except ValueError:
        raise UnknownRoofFormError(value) from None
