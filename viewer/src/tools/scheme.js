// @ts-check
// A planned scheme for massing compare (体块比对): a GeoJSON FeatureCollection of
// footprints (Polygon / MultiPolygon, WGS84 lon/lat) with a height. Pure: parsed and
// summed here, drawn by massing.js.

import { fromDegrees, polygonArea } from './geo.js';

/** Storey height assumed when a footprint gives floors but no height. */
export const STOREY_M = 3;

/**
 * @typedef {object} Block
 * @property {number[][]} ring outer ring, [lon, lat] pairs, not closed
 * @property {number[][][]} holes inner rings
 * @property {number} height metres above the ground
 * @property {number | null} base ground height when the file gives one
 * @property {string} name
 */

/**
 * The height of a feature: `height` (or `h`, `building:height`), else floors × 3 m.
 * @param {Record<string, any>} props
 * @returns {number | null}
 */
export function featureHeight(props) {
  for (const key of ['height', 'h', 'building:height', 'HEIGHT']) {
    const v = Number.parseFloat(props?.[key]);
    if (Number.isFinite(v) && v > 0) return v;
  }
  for (const key of ['floors', 'building:levels', 'levels', 'FLOORS']) {
    const v = Number.parseFloat(props?.[key]);
    if (Number.isFinite(v) && v > 0) return v * STOREY_M;
  }
  return null;
}

/**
 * A ring without its closing point, as [lon, lat] pairs; null when unusable.
 * @param {unknown} ring
 */
function cleanRing(ring) {
  if (!Array.isArray(ring)) return null;
  const pts = ring
    .filter((p) => Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]))
    .map((p) => [Number(p[0]), Number(p[1])]);
  if (pts.length > 1) {
    const [a, b] = [pts[0], pts[pts.length - 1]];
    if (a[0] === b[0] && a[1] === b[1]) pts.pop();
  }
  const lonLat = pts.every(([x, y]) => Math.abs(x) <= 180 && Math.abs(y) <= 90);
  return pts.length >= 3 && lonLat ? pts : null;
}

/**
 * The blocks of a GeoJSON scheme, and how many features were skipped (no polygon, no
 * height, coordinates that are not lon/lat).
 * @param {any} geojson
 * @returns {{blocks: Block[], skipped: number}}
 */
export function parseScheme(geojson) {
  const features =
    geojson?.type === 'FeatureCollection' ? geojson.features : geojson?.type === 'Feature' ? [geojson] : null;
  if (!Array.isArray(features)) throw new TypeError('not a GeoJSON FeatureCollection');
  /** @type {Block[]} */
  const blocks = [];
  let skipped = 0;
  for (const f of features) {
    const g = f?.geometry;
    const props = f?.properties || {};
    const height = featureHeight(props);
    const polys = g?.type === 'Polygon' ? [g.coordinates] : g?.type === 'MultiPolygon' ? g.coordinates : [];
    const base = Number.parseFloat(props.base);
    let used = false;
    for (const poly of Array.isArray(polys) ? polys : []) {
      const ring = cleanRing(poly?.[0]);
      if (!ring || height === null) continue;
      const holes = (poly.slice(1) || []).map(cleanRing).filter(Boolean);
      blocks.push({
        ring,
        holes: /** @type {number[][][]} */ (holes),
        height,
        base: Number.isFinite(base) ? base : null,
        name: String(props.name ?? props.id ?? ''),
      });
      used = true;
    }
    if (!used) skipped += 1;
  }
  return { blocks, skipped };
}

/**
 * Footprint area of a block (m², holes removed).
 * @param {Block} block
 */
export function footprintArea(block) {
  const area = (/** @type {number[][]} */ ring) => polygonArea(ring.map(([lon, lat]) => fromDegrees(lon, lat, 0)));
  return Math.max(0, area(block.ring) - block.holes.reduce((s, h) => s + area(h), 0));
}

/**
 * Figures of a scheme: blocks, footprint (m²), gross floor area (m², footprint × storeys
 * of 3 m) and the tallest block (m).
 * @param {Block[]} blocks
 */
export function schemeStats(blocks) {
  let footprint = 0;
  let floorArea = 0;
  let tallest = 0;
  for (const b of blocks) {
    const a = footprintArea(b);
    footprint += a;
    floorArea += a * Math.max(1, Math.round(b.height / STOREY_M));
    tallest = Math.max(tallest, b.height);
  }
  return { count: blocks.length, footprint, floorArea, tallest };
}
