"""Profiles of the western forms: per edge class, inset ``x`` (m, from the wall line,
negative over the overhang) as a function of height ``z`` from the drip to the top.

A profile is a pair of arrays (x, z) with z strictly increasing; a constant x is a
vertical part (a gable). Classes: ``"side"`` (edges along the ridge), ``"end"`` (edges
across it), ``"low"``/``"high"`` (the two sides of a shed).
"""

from __future__ import annotations

import numpy as np

from .forms import RoofForm

Profile = tuple[np.ndarray, np.ndarray]

#: default pitch (degrees) of the western forms when no roof height is given
PITCH = {
    RoofForm.SHED: 15.0,
    RoofForm.SAWTOOTH: 15.0,
    RoofForm.GABLED: 30.0,
    RoofForm.HIPPED: 30.0,
    RoofForm.HALF_HIPPED: 35.0,
    RoofForm.PYRAMIDAL: 30.0,
    RoofForm.MANSARD: 60.0,
    RoofForm.GAMBREL: 50.0,
    RoofForm.DOME: 45.0,
    RoofForm.CONE: 45.0,
    RoofForm.ROUND: 30.0,
}


def _line(x0: float, x1: float, z0: float, z1: float) -> Profile:
    return np.array([x0, x1]), np.array([z0, z1])


def _vertical(x0: float, z0: float, z1: float) -> Profile:
    return np.array([x0, x0]), np.array([z0, z1])


def _arc(x0: float, x1: float, z0: float, z1: float, k: int = 6) -> Profile:
    """Quarter ellipse: steep at the drip, level at the top (a dome or barrel profile)."""
    th = np.linspace(0.0, np.pi / 2, k + 1)
    return x0 + (x1 - x0) * (1.0 - np.cos(th)), z0 + (z1 - z0) * np.sin(th)


def _two_slope(x0: float, x1: float, z0: float, z1: float, lower: float = 0.6) -> Profile:
    """Mansard/gambrel: a steep lower part (``lower`` of the rise on 25 % of the run)."""
    xm = x0 + 0.25 * (x1 - x0)
    zm = z0 + lower * (z1 - z0)
    return np.array([x0, xm, x1]), np.array([z0, zm, z1])


def western_profiles(
    form: RoofForm, half_w: float, half_l: float, ov_s: float, ov_e: float, z0: float, z1: float
) -> dict[str, Profile]:
    """Class profiles of a western form on a rectangle.

    Parameters
    ----------
    form : RoofForm
    half_w, half_l : float
        Half the width (across the ridge) and half the length (along it) at the wall line.
    ov_s, ov_e : float
        Overhang at the sides and at the ends.
    z0, z1 : float
        Drip (lowest roof edge) and top heights.
    """
    f = RoofForm
    side_end = half_w  # inset at which the sides meet (the ridge line)
    if form in (f.SHED, f.SAWTOOTH):
        return {
            "low": _line(-ov_s, 2 * half_w + ov_s, z0, z1),
            "high": _vertical(-ov_s, z0, z1),
            "end": _vertical(-ov_e, z0, z1),
        }
    if form is f.GABLED:
        return {"side": _line(-ov_s, side_end, z0, z1), "end": _vertical(-ov_e, z0, z1)}
    if form is f.HIPPED:
        return {"side": _line(-ov_s, side_end, z0, z1), "end": _line(-ov_e, side_end, z0, z1)}
    if form is f.HALF_HIPPED:
        zh = z0 + 0.65 * (z1 - z0)
        xh = -ov_s + 0.35 * (side_end + ov_s)  # the hip keeps the side slope
        end = np.array([-ov_e, -ov_e, -ov_e + xh + ov_s]), np.array([z0, zh, z1])
        return {"side": _line(-ov_s, side_end, z0, z1), "end": end}
    if form in (f.PYRAMIDAL, f.CONE):
        return {"side": _line(-ov_s, half_w, z0, z1), "end": _line(-ov_e, half_l, z0, z1)}
    if form is f.DOME:
        return {"side": _arc(-ov_s, half_w, z0, z1), "end": _arc(-ov_e, half_l, z0, z1)}
    if form is f.ROUND:
        return {"side": _arc(-ov_s, side_end, z0, z1), "end": _vertical(-ov_e, z0, z1)}
    if form is f.MANSARD:
        side = _two_slope(-ov_s, side_end, z0, z1)
        run_end = side_end + ov_e
        end = np.array([-ov_e, -ov_e + 0.25 * run_end, side_end]), side[1]
        return {"side": side, "end": end}
    if form is f.GAMBREL:
        return {"side": _two_slope(-ov_s, side_end, z0, z1), "end": _vertical(-ov_e, z0, z1)}
    raise ValueError(f"no western profile for {form}")
