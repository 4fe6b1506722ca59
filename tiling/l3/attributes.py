"""Building attributes → roof specs and looks for the L3 models.

The mapped attributes (``[buildings] roof_type``, ``roof_height``, ``podium_height``,
``roof_colour``, ``roof_material``, ``use``, ``floors``) decide each building's
:class:`tiling.l3.roofs.RoofSpec` and :class:`tiling.l3.mesh.Look`. Nothing is
chosen silently: a missing or unknown roof type, an unknown material or colour is a
report entry with what was used instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cim.errors import InputDataError
from cim.model import Buildings
from cim.report import StageReport
from tiling.l3.mesh import Look
from tiling.l3.roofs import RoofSpec, parse_roof_form
from tiling.l3.roofs.forms import RoofForm
from tiling.l3.textures import parse_colour, roof_material

TEMPLE_USES = {"寺庙", "宗教", "庙宇", "祠堂", "temple", "religious", "church", "shrine"}
SHOP_USES = {"商业", "商铺", "shop", "retail", "commercial"}
#: forms of halls (殿, 阁, 楼): their walls are timber columns and lattice doors
HALL_FORMS = {
    RoofForm.XIESHAN,
    RoofForm.WUDIAN,
    RoofForm.CHONGYAN_XIESHAN,
    RoofForm.CHONGYAN_WUDIAN,
    RoofForm.CHONGYAN_CUANJIAN,
    RoofForm.CUANJIAN,
    RoofForm.CUANJIAN_4,
    RoofForm.CUANJIAN_6,
    RoofForm.CUANJIAN_8,
    RoofForm.CUANJIAN_ROUND,
}
DEFAULT_TINT = {
    "tile": (120, 122, 126),  # 青瓦
    "glazed": (222, 168, 48),  # 黄琉璃
    "concrete": (255, 255, 255),
    "ortho": (255, 255, 255),
}


@dataclass(frozen=True)
class Dressing:
    """Per-building results: specs, looks and the form names for the metadata."""

    specs: list[RoofSpec]
    looks: list[Look]
    forms: np.ndarray  # object array of str: the RoofForm value used


def dress(
    b: Buildings,
    report: StageReport,
    *,
    floor_height: float = 3.0,
    ortho: bool = False,
    roof_texture: str = "auto",
) -> Dressing:
    """Roof specs and looks of every building of ``b`` (the district).

    Parameters
    ----------
    b : Buildings
    report : StageReport
        Receives ``roof-form-missing``, ``roof-form-unknown``, ``roof-material-unknown``
        and ``roof-colour-unknown`` repairs.
    floor_height : float
        Storey height when a building has no floor count.
    ortho : bool
        Whether an orthophoto is there to cut roofs from.
    roof_texture : {"auto", "ortho", "material"}
        ``auto``: the material when ``roof_material`` names one, else the orthophoto;
        ``ortho``: always the orthophoto; ``material``: never.
    """
    n = len(b)
    nan = np.full(n, np.nan)
    roof_h = b.l3.get("roof_height", nan)
    podium = b.l3.get("podium_height", nan)
    colour = b.l3.get("roof_colour", np.full(n, "", dtype=object))
    material = b.l3.get("roof_material", np.full(n, "", dtype=object))
    specs, looks, forms = [], [], np.empty(n, dtype=object)
    for i in range(n):
        bid = str(b.ids[i])
        form = _form(bid, b.roof_type[i], report)
        forms[i] = form.value
        rh = float(roof_h[i]) if np.isfinite(roof_h[i]) and roof_h[i] > 0 else None
        ph = float(podium[i]) if np.isfinite(podium[i]) and podium[i] > 0 else 0.0
        height = float(b.height[i])
        specs.append(
            RoofSpec(
                form,
                eave_height=height,
                roof_height=rh,
                double_eave=form.double_eave,
                podium_height=min(ph, 0.8 * height),
            )
        )
        looks.append(
            _look(
                bid,
                b,
                i,
                form,
                str(material[i]),
                str(colour[i]),
                report,
                floor_height=floor_height,
                ortho=ortho,
                roof_texture=roof_texture,
            )
        )
    return Dressing(specs, looks, forms)


def _form(bid: str, value: str, report: StageReport) -> RoofForm:
    try:
        form = parse_roof_form(value)
    except InputDataError:
        report.repair(bid, "roof-form-unknown", f"roof_type {value!r} is no known form: flat roof")
        return RoofForm.FLAT
    if form is None:
        report.repair(bid, "roof-form-missing", "no roof_type: flat roof")
        return RoofForm.FLAT
    return form


def _look(
    bid: str,
    b: Buildings,
    i: int,
    form: RoofForm,
    material_text: str,
    colour_text: str,
    report: StageReport,
    *,
    floor_height: float,
    ortho: bool,
    roof_texture: str,
) -> Look:
    use = str(b.use[i]).strip().lower()
    height = float(b.height[i])
    floors = float(b.floors[i])
    if not math.isfinite(floors) or floors <= 0:
        floors = max(round(height / floor_height), 1)
    if use in TEMPLE_USES or form in HALL_FORMS:
        facade, storey = "temple", max(height / max(floors, 1), 3.0)
    elif use in SHOP_USES and floors <= 3:
        facade, storey = "shop", height / floors
    elif floors >= 10:
        facade, storey = "glass", height / floors
    elif floors <= 2 and form.family == "chinese":
        facade, storey = "house", height / floors
    else:
        facade, storey = "modern", height / floors
    material = roof_material(material_text)
    if material_text.strip() and material is None:
        report.repair(bid, "roof-material-unknown", f"roof_material {material_text!r}: not used")
    if ortho and (roof_texture == "ortho" or (roof_texture == "auto" and material is None)):
        roof = "ortho"
    else:
        roof = material or ("concrete" if form is RoofForm.FLAT else "tile")
    tint = parse_colour(colour_text)
    if colour_text.strip() and tint is None:
        report.repair(bid, "roof-colour-unknown", f"roof_colour {colour_text!r}: not used")
    if roof == "ortho":
        tint = None  # the photograph has its own colours
    return Look(facade, float(min(max(storey, 2.4), 12.0)), roof, tint or DEFAULT_TINT[roof])
