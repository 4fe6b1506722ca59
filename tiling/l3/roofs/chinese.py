"""Profiles of the Chinese forms: the 举架 (jǔjià) method, 推山, 收山 and 卷棚.

举架: the run from the eave purlin (at the wall line) to the ridge purlin is divided into
steps (步架, about 1.4 m); each step rises by its run times a factor growing from 0.5
(五举) at the eaves to 0.9 (九举) at the ridge, which makes the concave profile. The
overhang (出檐) continues below the eave purlin at a flatter 0.35. A given roof height
scales the rises and keeps the shape. Profiles follow :mod:`western`'s convention.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .forms import RoofForm

Profile = tuple[np.ndarray, np.ndarray]

#: 举 factors: first and last step (五举 → 九举)
JU_EAVE, JU_RIDGE = 0.5, 0.9
#: slope of the overhang (檐椽/飞椽) below the eave purlin
JU_OVERHANG = 0.35
#: typical 步架 (step) length, metres
STEP = 1.4


@lru_cache(maxsize=64)
def jujia(run: float, ov: float) -> Profile:
    """The 举架 profile from the drip (x = -ov, z = 0) to the ridge (x = run).

    Returns (x, z) with z relative to the drip, strictly increasing; read-only arrays
    (cached: a building asks for the same profile for its height and for its rings).
    """
    x, z = _jujia(run, ov)
    x.flags.writeable = False
    z.flags.writeable = False
    return x, z


def _jujia(run: float, ov: float) -> Profile:
    n = min(max(round(run / STEP), 2), 7)
    ju = JU_EAVE + (JU_RIDGE - JU_EAVE) * np.arange(n) / (n - 1)
    step = run / n
    x = np.concatenate([[-ov, 0.0], step * np.arange(1, n + 1)])
    rises = np.concatenate([[ov * JU_OVERHANG], step * ju])
    z = np.concatenate([[0.0], np.cumsum(rises)])
    if ov <= 0:
        x, z = x[1:], z[1:] - z[1]
    return x, z


def natural_rise(run: float, ov: float) -> float:
    """Height of the 举架 profile from the drip to the ridge (when no height is given)."""
    return float(jujia(run, ov)[1][-1])


def _scaled(p: Profile, z0: float, z1: float) -> Profile:
    x, z = p
    return x, z0 + z * ((z1 - z0) / z[-1])


def _rounded_top(p: Profile, k: int = 4) -> Profile:
    """卷棚: replace the last step by a quarter arc, level at the ridge (no ridge line)."""
    x, z = p
    xa, za = x[-2], z[-2]
    th = np.linspace(0.0, np.pi / 2, k + 1)[1:]
    xs = xa + (x[-1] - xa) * np.sin(th)
    zs = za + (z[-1] - za) * (1.0 - (1.0 - np.sin(th)) ** 2) ** 0.5
    zs = np.maximum.accumulate(np.maximum(zs, za + 1e-4 * np.arange(1, k + 1)))
    return np.concatenate([x[:-1], xs]), np.concatenate([z[:-1], zs])


def chinese_profiles(
    form: RoofForm, half_w: float, half_l: float, ov_s: float, ov_e: float, z0: float, z1: float
) -> dict[str, Profile]:
    """Class profiles ('side', 'end') of a single-eave Chinese form on a rectangle.

    Parameters as :func:`western.western_profiles`; ``z1`` is the ridge height.
    """
    f = RoofForm
    side = _scaled(jujia(half_w, ov_s), z0, z1)
    if form in (f.YINGSHAN, f.XUANSHAN):
        return {"side": side, "end": (np.array([-ov_e, -ov_e]), np.array([z0, z1]))}
    if form is f.JUANPENG:
        return {"side": _rounded_top(side), "end": (np.array([-ov_e, -ov_e]), np.array([z0, z1]))}
    if form is f.WUDIAN:
        # 推山: the end slopes steepen towards the top, so the ridge grows longer and the
        # hips bend outwards; the push is a share of the width, kept below the half length.
        push = min(0.12 * half_w, 0.9 * (half_l - half_w) + 0.1 * half_w)
        frac = (side[1] - z0) / (z1 - z0)
        x_end = side[0] - push * frac**2
        x_end[0] = -ov_e
        return {"side": side, "end": (np.maximum.accumulate(x_end), side[1])}
    if form is f.XIESHAN:
        # the lower third is hipped all round; above it the ends stand as gables (山花)
        # set in from the end walls (收山)
        xs, zs = side
        xg = 0.35 * half_w
        zg = float(np.interp(xg, xs, zs))
        below = zs < zg - 1e-6
        x_end = np.concatenate([xs[below], [xg, xg]])
        z_end = np.concatenate([zs[below], [zg, z1]])
        x_end[0] = -ov_e
        return {"side": side, "end": (x_end, z_end)}
    if form in (f.CUANJIAN, f.CUANJIAN_4, f.CUANJIAN_6, f.CUANJIAN_8, f.CUANJIAN_ROUND):
        end = _scaled(jujia(half_l, ov_e), z0, z1)
        return {"side": side, "end": end}
    raise ValueError(f"no Chinese profile for {form}")
