// @ts-check
// The tools' pure maths, on plain [x, y, z] Earth-centred (ECEF, WGS84) coordinates so
// it runs and is unit-tested without Cesium or WebGL: lengths, areas on a local
// east-north-up (ENU) plane, vertical differences, angles, clipping planes, the
// sampled-ray viewshed grid and the sun time of the 日照 tool.

/** @typedef {[number, number, number]} Vec3 */

export const WGS84_A = 6378137.0;
export const WGS84_F = 1 / 298.257223563;
const E2 = WGS84_F * (2 - WGS84_F);
const B = WGS84_A * (1 - WGS84_F);

const DEG = Math.PI / 180;

/** @param {Vec3} a @param {Vec3} b @returns {Vec3} */
export const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
/** @param {Vec3} a @param {Vec3} b */
export const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
/** @param {Vec3} a */
export const norm = (a) => Math.sqrt(dot(a, a));
/** @param {Vec3} a @param {Vec3} b @returns {Vec3} */
export const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
/** @param {Vec3} a @param {Vec3} b */
export const distance = (a, b) => norm(sub(a, b));

/**
 * ECEF of a geodetic position (degrees, metres above the WGS84 ellipsoid).
 * @param {number} lon
 * @param {number} lat
 * @param {number} [h]
 * @returns {Vec3}
 */
export function fromDegrees(lon, lat, h = 0) {
  const l = lon * DEG;
  const p = lat * DEG;
  const n = WGS84_A / Math.sqrt(1 - E2 * Math.sin(p) ** 2);
  return [(n + h) * Math.cos(p) * Math.cos(l), (n + h) * Math.cos(p) * Math.sin(l), (n * (1 - E2) + h) * Math.sin(p)];
}

/**
 * Geodetic [lon, lat (degrees), height (m)] of an ECEF point (Bowring, then iterated).
 * @param {Vec3} point
 * @returns {Vec3}
 */
export function toDegrees(point) {
  const [x, y, z] = point;
  const p = Math.hypot(x, y);
  const lon = Math.atan2(y, x);
  let lat = Math.atan2(z, p * (1 - E2));
  let h = 0;
  for (let i = 0; i < 6; i++) {
    const n = WGS84_A / Math.sqrt(1 - E2 * Math.sin(lat) ** 2);
    h = Math.abs(Math.cos(lat)) > 1e-9 ? p / Math.cos(lat) - n : Math.abs(z) - B;
    lat = Math.atan2(z, p * (1 - (E2 * n) / (n + h)));
  }
  return [lon / DEG, lat / DEG, h];
}

/**
 * The east, north and up unit vectors at a point (up: the ellipsoid normal).
 * @param {Vec3} origin
 * @returns {{east: Vec3, north: Vec3, up: Vec3}}
 */
export function enuBasis(origin) {
  const [lon, lat] = toDegrees(origin);
  const l = lon * DEG;
  const p = lat * DEG;
  /** @type {Vec3} */
  const east = [-Math.sin(l), Math.cos(l), 0];
  /** @type {Vec3} */
  const north = [-Math.sin(p) * Math.cos(l), -Math.sin(p) * Math.sin(l), Math.cos(p)];
  /** @type {Vec3} */
  const up = [Math.cos(p) * Math.cos(l), Math.cos(p) * Math.sin(l), Math.sin(p)];
  return { east, north, up };
}

/**
 * Points in the ENU frame at origin (metres east, north, up).
 * @param {Vec3[]} points
 * @param {Vec3} origin
 * @returns {Vec3[]}
 */
export function toLocal(points, origin) {
  const { east, north, up } = enuBasis(origin);
  return points.map((q) => {
    const d = sub(q, origin);
    return /** @type {Vec3} */ ([dot(d, east), dot(d, north), dot(d, up)]);
  });
}

/**
 * The mean of points.
 * @param {Vec3[]} points
 * @returns {Vec3}
 */
export function centroid(points) {
  const n = points.length || 1;
  const s = points.reduce((acc, q) => [acc[0] + q[0], acc[1] + q[1], acc[2] + q[2]], [0, 0, 0]);
  return [s[0] / n, s[1] / n, s[2] / n];
}

/**
 * Length of a polyline through the picked points (straight segments in space).
 * @param {Vec3[]} points
 */
export function polylineLength(points) {
  let total = 0;
  for (let i = 1; i < points.length; i++) total += distance(points[i - 1], points[i]);
  return total;
}

/**
 * Horizontal length of a polyline (each segment on the ENU plane at its start).
 * @param {Vec3[]} points
 */
export function horizontalLength(points) {
  let total = 0;
  for (let i = 1; i < points.length; i++) {
    const [e, n] = toLocal([points[i]], points[i - 1])[0];
    total += Math.hypot(e, n);
  }
  return total;
}

/**
 * Area (m²) of a polygon through the points, projected on the ellipsoid's tangent plane
 * at their centroid (a local ENU projection: for a city-sized polygon the difference
 * from the geodesic area is far below a square metre per hectare).
 * @param {Vec3[]} points the ring, not closed
 */
export function polygonArea(points) {
  if (points.length < 3) return 0;
  const local = toLocal(points, centroid(points));
  let twice = 0;
  for (let i = 0; i < local.length; i++) {
    const [x1, y1] = local[i];
    const [x2, y2] = local[(i + 1) % local.length];
    twice += x1 * y2 - x2 * y1;
  }
  return Math.abs(twice) / 2;
}

/**
 * Vertical difference between two picks: from a to b (metres above the ellipsoid),
 * with the horizontal and the straight-line distance between them.
 * @param {Vec3} a
 * @param {Vec3} b
 */
export function heightDifference(a, b) {
  const dh = toDegrees(b)[2] - toDegrees(a)[2];
  const slant = distance(a, b);
  return { vertical: dh, horizontal: Math.sqrt(Math.max(0, slant * slant - dh * dh)), slant };
}

/**
 * The angle (degrees, 0..180) at vertex v between the rays to a and to b.
 * @param {Vec3} a
 * @param {Vec3} v
 * @param {Vec3} b
 */
export function angleAt(a, v, b) {
  const u = sub(a, v);
  const w = sub(b, v);
  const d = norm(u) * norm(w);
  if (d === 0) return 0;
  return Math.acos(Math.min(1, Math.max(-1, dot(u, w) / d))) / DEG;
}

/**
 * A length as a number and a unit: metres below 1 km, kilometres from there.
 * @param {number} metres
 * @returns {{value: string, unit: 'm' | 'km'}}
 */
export function lengthParts(metres) {
  const m = Math.abs(metres) < 0.005 ? 0 : metres;
  if (Math.abs(m) >= 1000) return { value: (m / 1000).toFixed(3), unit: 'km' };
  return { value: m.toFixed(Math.abs(m) >= 100 ? 1 : 2), unit: 'm' };
}

/**
 * An area as a number and a unit: m² below 1 km², km² from there.
 * @param {number} m2
 * @returns {{value: string, unit: 'm2' | 'km2'}}
 */
export function areaParts(m2) {
  if (m2 >= 1e6) return { value: (m2 / 1e6).toFixed(3), unit: 'km2' };
  return { value: m2.toFixed(m2 >= 100 ? 0 : 1), unit: 'm2' };
}

/**
 * A vertical clipping plane through the local origin's frame, facing a heading (degrees
 * clockwise from north), moved by offset metres along it. What lies behind it (on the
 * side its normal points away from) is cut. Cesium keeps n·p + d > 0.
 * @param {number} heading
 * @param {number} offset
 * @returns {{normal: Vec3, distance: number}}
 */
export function verticalPlane(heading, offset) {
  const h = heading * DEG;
  return { normal: [Math.sin(h), Math.cos(h), 0], distance: -offset };
}

/**
 * A horizontal plane at height offset metres in the local frame; what is above is cut.
 * @param {number} offset
 * @returns {{normal: Vec3, distance: number}}
 */
export function horizontalPlane(offset) {
  return { normal: [0, 0, -1], distance: offset };
}

/**
 * The six planes of a box centred at the local origin (half sizes in metres). keepInside:
 * planes facing in, clipped where outside any (union); else facing out, clipped only
 * inside all of them (the box is cut out).
 * @param {Vec3} half
 * @param {boolean} keepInside
 * @returns {{planes: {normal: Vec3, distance: number}[], union: boolean}}
 */
export function boxPlanes(half, keepInside) {
  const s = keepInside ? -1 : 1;
  /** @type {{normal: Vec3, distance: number}[]} */
  const planes = [];
  for (let axis = 0; axis < 3; axis++) {
    for (const side of [1, -1]) {
      /** @type {Vec3} */
      const normal = [0, 0, 0];
      normal[axis] = s * side;
      planes.push({ normal, distance: -s * half[axis] });
    }
  }
  return { planes, union: keepInside };
}

/**
 * Whether a local point survives the clipping planes (the same rule as Cesium's).
 * @param {Vec3} p
 * @param {{normal: Vec3, distance: number}[]} planes
 * @param {boolean} union clipped when outside any plane (true) or all planes (false)
 */
export function keptBy(p, planes, union) {
  const outside = planes.map((pl) => dot(pl.normal, p) + pl.distance < 0);
  return union ? !outside.some(Boolean) : !outside.every(Boolean);
}

/**
 * Target points of a sampled-ray viewshed: `rays` directions around the observer, each
 * with `rings` points out to radius, as local [east, north] metres.
 * @param {number} radius
 * @param {number} rays
 * @param {number} rings
 * @returns {{ray: number, ring: number, east: number, north: number}[]}
 */
export function viewshedGrid(radius, rays, rings) {
  const out = [];
  for (let r = 0; r < rays; r++) {
    const a = (2 * Math.PI * r) / rays;
    for (let k = 1; k <= rings; k++) {
      const d = (radius * k) / rings;
      out.push({ ray: r, ring: k, east: d * Math.sin(a), north: d * Math.cos(a) });
    }
  }
  return out;
}

/**
 * Split a sight line at the first obstacle: the visible part from the observer to the
 * hit and the blocked part from the hit to the target. The hit counts as the target
 * itself when it is within tolerance of it (the ray ends on the target's surface).
 * @param {Vec3} observer
 * @param {Vec3} target
 * @param {Vec3 | null | undefined} hit the first surface the ray meets, if any
 * @param {number} [tolerance] metres
 * @returns {{visible: boolean, clear: Vec3[], blocked: Vec3[]}}
 */
export function sightSegments(observer, target, hit, tolerance = 1.5) {
  const length = distance(observer, target);
  if (!hit || distance(observer, hit) >= length - tolerance) {
    return { visible: true, clear: [observer, target], blocked: [] };
  }
  return { visible: false, clear: [observer, hit], blocked: [hit, target] };
}

/**
 * The UTC instant (ISO 8601) of a local clock time on a date in a time zone.
 * @param {string} date YYYY-MM-DD
 * @param {number} minutes minutes after local midnight
 * @param {number} utcOffsetHours e.g. 8 for China Standard Time
 */
export function localToUtcIso(date, minutes, utcOffsetHours) {
  const [y, m, d] = date.split('-').map(Number);
  const ms = Date.UTC(y, (m || 1) - 1, d || 1) + (minutes - utcOffsetHours * 60) * 60000;
  return new Date(ms).toISOString();
}

/**
 * hh:mm of minutes after midnight.
 * @param {number} minutes
 */
export function clockText(minutes) {
  const m = Math.max(0, Math.min(24 * 60 - 1, Math.round(minutes)));
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

/**
 * A copy of list with the item at index moved by delta places (clamped).
 * @template T
 * @param {T[]} list
 * @param {number} index
 * @param {number} delta
 * @returns {T[]}
 */
export function moveItem(list, index, delta) {
  const out = list.slice();
  const to = Math.max(0, Math.min(out.length - 1, index + delta));
  if (index < 0 || index >= out.length || to === index) return out;
  const [item] = out.splice(index, 1);
  out.splice(to, 0, item);
  return out;
}

/**
 * The sun's altitude and azimuth (degrees; azimuth clockwise from north) at an instant
 * over a place (NOAA's approximation: within a fraction of a degree, enough to say
 * whether and where the sun is up).
 * @param {string} isoUtc
 * @param {number} lon
 * @param {number} lat
 */
export function sunPosition(isoUtc, lon, lat) {
  const ms = Date.parse(isoUtc);
  const day = ms / 86400000 + 2440587.5 - 2451545.0; // days since J2000.0
  const g = (357.529 + 0.98560028 * day) * DEG; // mean anomaly
  const q = 280.459 + 0.98564736 * day; // mean longitude
  const L = (q + 1.915 * Math.sin(g) + 0.02 * Math.sin(2 * g)) * DEG; // ecliptic longitude
  const e = (23.439 - 0.00000036 * day) * DEG; // obliquity
  const ra = Math.atan2(Math.cos(e) * Math.sin(L), Math.cos(L));
  const dec = Math.asin(Math.sin(e) * Math.sin(L));
  const gmst = (18.697374558 + 24.06570982441908 * day) % 24;
  const hourAngle = ((gmst * 15 + lon) * DEG - ra) % (2 * Math.PI);
  const phi = lat * DEG;
  const alt = Math.asin(Math.sin(phi) * Math.sin(dec) + Math.cos(phi) * Math.cos(dec) * Math.cos(hourAngle));
  const az = Math.atan2(-Math.sin(hourAngle), Math.tan(dec) * Math.cos(phi) - Math.sin(phi) * Math.cos(hourAngle));
  return { altitude: alt / DEG, azimuth: ((az / DEG) % 360 + 360) % 360 };
}
