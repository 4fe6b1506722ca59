"""One terrain tile: DEM samples → crack-free TIN → quantized-mesh bytes.

How a tile is built
-------------------
1. The DEM is sampled on a regular lon/lat grid of ``n + 1`` points per side (plus a
   one-sample ring outside the tile for normals). Grid points are computed from
   *global* integer indices, so two neighbouring tiles sample their shared edge at
   bit-identical coordinates and get bit-identical heights. The terrain stage passes
   a :class:`tiling.terrain.extend.EdgeExtendedDem`, so outside the DEM the surface
   continues at its edge height and ramps to sea level further out; where a sampler
   returns NaN the surface is sea level (orthometric 0). The datum then makes
   heights WGS84 ellipsoidal.
2. Each edge's height profile is simplified with Douglas–Peucker (tolerance = the
   level's error budget). The profile is the same for both tiles sharing the edge,
   so both keep the same edge vertices; the edge samples are replaced by the
   simplified polyline before meshing.
3. The tile (or, at coarse levels, each of k × k blocks, so chords follow the
   ellipsoid's curvature) is meshed with pydelatin (Delatin: greedy insertion until
   the maximum vertical error is within the budget).
4. Edge vertices Delatin left out are inserted by splitting the boundary triangles.
   Every edge vertex lies on the simplified polyline, so neighbours' edges coincide
   exactly (up to height quantisation): no cracks.
5. Normals come from central differences of the full-resolution grid (including the
   outer ring), so they are equal on both sides of an edge: no lighting seams.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from pydelatin import Delatin

from cim.crs import WGS84_A, WGS84_E2
from tiling.terrain import qmesh
from tiling.terrain.scheme import tile_size_deg


@dataclass(frozen=True)
class TileParams:
    """Per-level settings (a function of the level only)."""

    level: int
    intervals: int
    blocks: int
    max_error: float
    use_dem: bool
    normals: bool = True


@dataclass
class TileMesh:
    """A tile's mesh in grid coordinates (before encoding)."""

    col: np.ndarray  # int, 0..n (west → east)
    row: np.ndarray  # int, 0..n (north → south)
    height: np.ndarray  # float64, WGS84 ellipsoidal
    triangles: np.ndarray  # (m, 3) counter-clockwise seen from above
    grid: np.ndarray  # (n+1, n+1) ellipsoidal heights used for meshing (edges simplified)
    dem_grid: np.ndarray  # (n+1, n+1) sampled heights, NaN where the DEM has none
    normals: np.ndarray | None
    lon: np.ndarray
    lat: np.ndarray


def _dp_keep(profile: np.ndarray, tol: float) -> np.ndarray:
    """Douglas–Peucker on a 1D profile sampled at unit spacing; kept indices (sorted)."""
    m = profile.size
    keep = np.zeros(m, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, m - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        idx = np.arange(a + 1, b)
        line = profile[a] + (profile[b] - profile[a]) * (idx - a) / (b - a)
        dev = np.abs(profile[a + 1 : b] - line)
        k = int(np.argmax(dev))
        if dev[k] > tol:
            mid = a + 1 + k
            keep[mid] = True
            stack.append((a, mid))
            stack.append((mid, b))
    return np.flatnonzero(keep)


def _simplify_line(profile: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Kept indices and the profile replaced by the polyline through them."""
    if float(profile.max() - profile.min()) <= tol:
        # every sample is within tol of the chord between the end points
        keep = np.array([0, profile.size - 1])
        return keep, np.linspace(profile[0], profile[-1], profile.size)
    keep = _dp_keep(profile, tol)
    return keep, np.interp(np.arange(profile.size), keep, profile[keep])


def _mesh_block(
    grid: np.ndarray, r0: int, c0: int, size: int, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Delatin on one block; vertex cols/rows (tile grid) and triangles."""
    sub = np.ascontiguousarray(grid[r0 : r0 + size + 1, c0 : c0 + size + 1], dtype=np.float32)
    if float(sub.max() - sub.min()) <= tol:
        # flat enough: two triangles
        cols = np.array([0, size, 0, size])
        rows = np.array([0, 0, size, size])
        tris = np.array([[0, 2, 1], [1, 2, 3]])
    else:
        tin = Delatin(sub, width=size + 1, height=size + 1, max_error=tol)
        v = np.rint(tin.vertices[:, :2]).astype(np.int64)
        cols, rows = v[:, 0], size - v[:, 1]  # Delatin's y axis points up (north)
        tris = tin.triangles.astype(np.int64)
    return cols + c0, rows + r0, tris


def _insert_edge_points(
    cols: np.ndarray,
    rows: np.ndarray,
    tris: np.ndarray,
    required: list[tuple[str, int, np.ndarray]],
    spacing: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Make every required boundary point a vertex by splitting boundary triangles.

    ``required`` holds (axis, fixed, positions): axis "c" means the points (column =
    fixed, row = positions), axis "r" means (row = fixed, column = positions). Lines
    lie at multiples of ``spacing`` (block size).
    """
    side = int(max(cols.max(), rows.max())) + 1
    for _, fixed, pos in required:
        side = max(side, fixed + 1, int(pos.max()) + 1 if pos.size else 0)
    occ = np.zeros(side * side, dtype=bool)
    occ[rows * side + cols] = True
    add = []
    for axis, fixed, pos in required:
        k = pos * side + fixed if axis == "c" else fixed * side + pos
        add.append(k[~occ[k]])
    new_keys = np.unique(np.concatenate(add)) if add else np.empty(0, dtype=np.int64)
    if new_keys.size == 0:
        return cols, rows, tris
    nc, nr = new_keys % side, new_keys // side
    first_new = cols.size
    cols = np.concatenate([cols, nc])
    rows = np.concatenate([rows, nr])
    # inserted points per line, sorted along the line
    lines: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    ids = np.arange(first_new, cols.size)
    for axis, fixed, _ in required:
        on = (nc == fixed) if axis == "c" else (nr == fixed)
        if on.any():
            coord = nr[on] if axis == "c" else nc[on]
            o = np.argsort(coord)
            lines[(axis, fixed)] = (coord[o], ids[on][o])
    for _ in range(3):
        a_, b_ = tris, np.roll(tris, -1, axis=1)
        same_c = (cols[a_] == cols[b_]) & (cols[a_] % spacing == 0)
        same_r = (rows[a_] == rows[b_]) & (rows[a_] % spacing == 0)
        cand = np.flatnonzero((same_c | same_r).any(axis=1))
        if cand.size == 0:
            break
        out: list[tuple[int, int, int]] = []
        drop: list[int] = []
        for t in cand.tolist():
            tri = tris[t].tolist()
            for e in range(3):
                a, b, c = tri[e], tri[(e + 1) % 3], tri[(e + 2) % 3]
                if cols[a] == cols[b]:
                    line = lines.get(("c", int(cols[a])))
                    sa, sb = int(rows[a]), int(rows[b])
                elif rows[a] == rows[b]:
                    line = lines.get(("r", int(rows[a])))
                    sa, sb = int(cols[a]), int(cols[b])
                else:
                    continue
                if line is None:
                    continue
                coord, pid = line
                lo, hi = (sa, sb) if sa < sb else (sb, sa)
                i0, i1 = np.searchsorted(coord, [lo + 1, hi])
                if i1 <= i0:
                    continue
                inner = pid[i0:i1].tolist()
                if sa > sb:
                    inner.reverse()
                chain = [a, *inner, b]
                out.extend((p, q, c) for p, q in itertools.pairwise(chain))
                drop.append(t)
                break
        if not drop:
            break
        keep = np.ones(len(tris), dtype=bool)
        keep[drop] = False
        tris = np.concatenate([tris[keep], np.array(out, dtype=np.int64)])
    return cols, rows, tris


def _grid_normals(
    hpad: np.ndarray,
    lat_pad: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    step_deg: float,
) -> np.ndarray:
    """ECEF unit normals at grid vertices from central differences of ``hpad``."""
    r = rows + 1
    c = cols + 1
    step = math.radians(step_deg)
    phi = np.radians(lat)
    lam = np.radians(lon)
    sinp, cosp = np.sin(phi), np.cos(phi)
    w = np.sqrt(1.0 - WGS84_E2 * sinp * sinp)
    n_rad = WGS84_A / w
    m_rad = WGS84_A * (1.0 - WGS84_E2) / w**3
    dx = np.maximum(2.0 * step * n_rad * cosp, 1e-3)
    dy = 2.0 * step * m_rad
    dhde = (hpad[r, c + 1] - hpad[r, c - 1]) / dx
    dhdn = (hpad[r - 1, c] - hpad[r + 1, c]) / dy
    e_ = np.stack([-np.sin(lam), np.cos(lam), np.zeros_like(lam)], axis=1)
    n_ = np.stack([-sinp * np.cos(lam), -sinp * np.sin(lam), cosp], axis=1)
    u_ = np.stack([cosp * np.cos(lam), cosp * np.sin(lam), sinp], axis=1)
    vec = -dhde[:, None] * e_ - dhdn[:, None] * n_ + u_
    return vec / np.linalg.norm(vec, axis=1, keepdims=True)


def build_mesh(x: int, y: int, params: TileParams, dem: object | None, datum: object) -> TileMesh:
    """Sample, simplify and mesh tile (params.level, x, y).

    Parameters
    ----------
    x, y : int
        Tile column and TMS row.
    params : TileParams
    dem : EdgeExtendedDem, DemMosaic or None
        Anything with ``sample(lon, lat)``; None (or ``params.use_dem`` False): a
        sea-level fill tile.
    datum : cim.datum.Datum
        Turns sampled heights into WGS84 ellipsoidal heights.
    """
    z = params.level
    n = params.intervals
    step = tile_size_deg(z) / n
    gx = x * n + np.arange(-1, n + 2)
    gy = y * n + np.arange(n + 1, -2, -1)  # north → south
    lon1 = -180.0 + gx * step
    lat1 = np.clip(-90.0 + gy * step, -90.0, 90.0)
    lon_pad, lat_pad = np.meshgrid(lon1, lat1)
    if dem is not None and params.use_dem:
        hraw = dem.sample(lon_pad, lat_pad)  # type: ignore[attr-defined]
    else:
        hraw = np.full(lon_pad.shape, np.nan)
    hpad = datum.to_ellipsoidal(  # type: ignore[attr-defined]
        np.where(np.isnan(hraw), 0.0, hraw), lon_pad, lat_pad
    )
    grid = hpad[1:-1, 1:-1].copy()
    tol = params.max_error

    # 2. shared-edge simplification on every block boundary (tile edges included)
    b = params.blocks
    bs = n // b
    required: list[tuple[str, int, np.ndarray]] = []
    for k in range(b + 1):
        for axis in ("c", "r"):  # the column, then the row, at this block boundary
            line_index = k * bs
            keep_all = []
            for j in range(b):
                seg = slice(j * bs, (j + 1) * bs + 1)
                where = (seg, line_index) if axis == "c" else (line_index, seg)
                keep, line = _simplify_line(grid[where], tol)
                grid[where] = line
                keep_all.append(keep + j * bs)
            required.append((axis, line_index, np.unique(np.concatenate(keep_all))))

    # 3. mesh each block
    all_c, all_r, all_t = [], [], []
    base = 0
    for bi in range(b):
        for bj in range(b):
            c, r, t = _mesh_block(grid, bi * bs, bj * bs, bs, tol)
            all_c.append(c)
            all_r.append(r)
            all_t.append(t + base)
            base += c.size
    cols = np.concatenate(all_c)
    rows = np.concatenate(all_r)
    tris = np.concatenate(all_t)
    if b > 1:  # merge duplicate vertices on block boundaries
        key = rows * (n + 1) + cols
        uniq, inv = np.unique(key, return_inverse=True)
        cols = uniq % (n + 1)
        rows = uniq // (n + 1)
        tris = inv[tris]

    # 4. required edge points become vertices
    cols, rows, tris = _insert_edge_points(cols, rows, tris, required, bs)

    # counter-clockwise seen from above (east = +col, north = -row)
    e0, e1, e2 = cols[tris[:, 0]], cols[tris[:, 1]], cols[tris[:, 2]]
    n0, n1, n2 = -rows[tris[:, 0]], -rows[tris[:, 1]], -rows[tris[:, 2]]
    area = (e1 - e0) * (n2 - n0) - (e2 - e0) * (n1 - n0)
    tris = tris[area != 0]
    flip = area[area != 0] < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]

    height = grid[rows, cols]
    lon = -180.0 + (x * n + cols) * step
    lat = -90.0 + (y * n + (n - rows)) * step
    normals = None
    if params.normals:
        normals = _grid_normals(hpad, lat_pad, lon, lat, rows, cols, step)
    dem_grid = np.where(np.isnan(hraw[1:-1, 1:-1]), np.nan, hpad[1:-1, 1:-1])
    return TileMesh(cols, rows, height, tris, grid, dem_grid, normals, lon, lat)


def encode_mesh(mesh: TileMesh, n: int) -> bytes:
    """quantized-mesh bytes (uncompressed) of a :class:`TileMesh` with ``n`` intervals."""
    u = np.rint(mesh.col * (qmesh.MAX_Q / n)).astype(np.int64)
    v = np.rint((n - mesh.row) * (qmesh.MAX_Q / n)).astype(np.int64)
    return qmesh.encode_tile(
        mesh.lon, mesh.lat, mesh.height, u, v, mesh.triangles, normals=mesh.normals
    )


def mesh_on_lattice(
    col: np.ndarray, row: np.ndarray, height: np.ndarray, tris: np.ndarray, n: float, m: int
) -> np.ndarray:
    """Evaluate a TIN (linear in grid space) at lattice points.

    Parameters
    ----------
    col, row : ndarray
        Vertex positions in grid units, 0..n (row 0 north).
    height : ndarray
        Vertex heights.
    tris : ndarray (t, 3)
    n : float
        Grid extent.
    m : int
        Lattice intervals per side: points at ``k * n / m``.

    Returns
    -------
    ndarray (m + 1, m + 1)
        Heights, row 0 north; NaN at points covered by no triangle.
    """
    s = m / n
    p = col.astype(np.float64) * s
    q = row.astype(np.float64) * s
    tp, tq = p[tris], q[tris]
    eps = 1e-9
    l0 = np.ceil(tq.min(axis=1) - eps).astype(np.int64)
    l1 = np.floor(tq.max(axis=1) + eps).astype(np.int64)
    nrow = np.maximum(l1 - l0 + 1, 0)
    tid = np.repeat(np.arange(len(tris)), nrow)
    ll = l0[tid] + (np.arange(nrow.sum()) - np.repeat(np.cumsum(nrow) - nrow, nrow))
    # x-range of each scanline inside its triangle
    xs = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        px, py = tp[tid, a], tq[tid, a]
        qx, qy = tp[tid, b], tq[tid, b]
        lo_y, hi_y = np.minimum(py, qy), np.maximum(py, qy)
        on = (ll >= lo_y - eps) & (ll <= hi_y + eps)
        flat = py == qy
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = px + (ll - py) * (qx - px) / (qy - py)
        xs.append(np.where(on & ~flat, cross, np.where(on & flat, px, np.nan)))
        xs.append(np.where(on & flat, qx, np.nan))
    allx = np.stack(xs, axis=1)
    ok = np.isfinite(allx).any(axis=1)
    allx = np.where(np.isfinite(allx), allx, 0.0)
    big = np.where(np.isfinite(np.stack(xs, axis=1)), 0.0, np.inf)
    x_lo = np.min(allx + big, axis=1)
    x_hi = np.max(allx - big, axis=1)
    k0 = np.where(ok, np.ceil(x_lo - eps), 0).astype(np.int64)
    k1 = np.where(ok, np.floor(x_hi + eps), -1).astype(np.int64)
    cnt = np.maximum(k1 - k0 + 1, 0)
    sid = np.repeat(np.arange(len(tid)), cnt)
    kk = k0[sid] + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    lk = ll[sid]
    t = tid[sid]
    ax, ay = tp[t, 0], tq[t, 0]
    bx, by = tp[t, 1], tq[t, 1]
    cx, cy = tp[t, 2], tq[t, 2]
    det = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
    good = det != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        w0 = ((by - cy) * (kk - cx) + (cx - bx) * (lk - cy)) / det
        w1 = ((cy - ay) * (kk - cx) + (ax - cx) * (lk - cy)) / det
    w2 = 1.0 - w0 - w1
    hv = height[tris]
    val = w0 * hv[t, 0] + w1 * hv[t, 1] + w2 * hv[t, 2]
    out = np.full((m + 1, m + 1), np.nan)
    inside = good & (kk >= 0) & (kk <= m) & (lk >= 0) & (lk <= m)
    out[lk[inside], kk[inside]] = val[inside]
    return out


def mesh_error(mesh: TileMesh, n: int) -> float:
    """Max |mesh − DEM| over the tile's grid points that the DEM covers (metres)."""
    if not np.isfinite(mesh.dem_grid).any():
        return 0.0
    approx = mesh_on_lattice(mesh.col, mesh.row, mesh.height, mesh.triangles, n, n)
    diff = np.abs(approx - mesh.dem_grid)
    return float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0
