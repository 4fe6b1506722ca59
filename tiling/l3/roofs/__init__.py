"""Roof and building geometry of L3: roof forms (western and Chinese) on any footprint.

Public API::

    parse_roof_form(value) -> RoofForm | None
    RoofSpec(form, eave_height, roof_height=None, overhang=None, double_eave=False,
             podium_height=0.0, orientation=None)
    build_building(footprint, spec) -> BuildingMesh
    SURFACE_WALL, SURFACE_ROOF, SURFACE_EAVE_UNDERSIDE, SURFACE_PODIUM, SURFACE_GROUND,
    SURFACE_GABLE, SURFACE_FASCIA
"""

from .build import build_building
from .common import RoofSpec, default_overhang
from .forms import RoofForm, UnknownRoofFormError, parse_roof_form
from .mesh import (
    SURFACE_EAVE_UNDERSIDE,
    SURFACE_FASCIA,
    SURFACE_GABLE,
    SURFACE_GROUND,
    SURFACE_PODIUM,
    SURFACE_ROOF,
    SURFACE_WALL,
    BuildingMesh,
)

__all__ = [
    "SURFACE_EAVE_UNDERSIDE",
    "SURFACE_FASCIA",
    "SURFACE_GABLE",
    "SURFACE_GROUND",
    "SURFACE_PODIUM",
    "SURFACE_ROOF",
    "SURFACE_WALL",
    "BuildingMesh",
    "RoofForm",
    "RoofSpec",
    "UnknownRoofFormError",
    "build_building",
    "default_overhang",
    "parse_roof_form",
]
