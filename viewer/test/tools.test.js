// The map tools' pure maths and logic (viewer/src/tools/): lengths, areas, heights and
// angles; clipping planes; sight lines and the viewshed grid; the sun; routes; the
// registry; schemes for massing compare.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  angleAt,
  areaParts,
  boxPlanes,
  clockText,
  enuBasis,
  fromDegrees,
  heightDifference,
  horizontalLength,
  keptBy,
  lengthParts,
  localToUtcIso,
  moveItem,
  polygonArea,
  polylineLength,
  sightSegments,
  sunPosition,
  toDegrees,
  toLocal,
  verticalPlane,
  horizontalPlane,
  viewshedGrid,
} from '../src/tools/geo.js';
import { parseScheme, schemeStats, featureHeight } from '../src/tools/scheme.js';
import { RouteStore } from '../src/tools/routestore.js';
import { ToolRegistry } from '../src/tools/registry.js';
import { PanelManager } from '../src/core/panels.js';
import { Bus } from '../src/core/bus.js';
import { turn } from '../src/tools/compass.js';
import { splitFraction } from '../src/tools/swipe.js';
import { cityRadius } from '../src/tools/clip.js';
import { utcOffset } from '../src/tools/shadows.js';

const LON = 113.3;
const LAT = 40.08;
const H = 1020;

/** @typedef {import('../src/tools/geo.js').Vec3} Vec3 */

/**
 * A point east, north, up metres from (LON, LAT, H), through the local frame.
 * @returns {Vec3}
 */
function at(e, n, u = 0) {
  const o = fromDegrees(LON, LAT, H);
  const { east, north, up } = enuBasis(o);
  return /** @type {Vec3} */ ([0, 1, 2].map((i) => o[i] + e * east[i] + n * north[i] + u * up[i]));
}

const close = (a, b, tol, msg) => assert.ok(Math.abs(a - b) <= tol, `${msg ?? ''} ${a} vs ${b}`);

test('geodetic conversion round-trips', () => {
  const p = fromDegrees(LON, LAT, H);
  const [lon, lat, h] = toDegrees(p);
  close(lon, LON, 1e-9);
  close(lat, LAT, 1e-9);
  close(h, H, 1e-4);
  // the WGS84 equatorial radius and the pole
  close(fromDegrees(0, 0, 0)[0], 6378137, 1e-6);
  close(toDegrees([0, 0, 6356752.314245 + 10])[2], 10, 1e-3);
});

test('the local frame is east, north, up', () => {
  const [e, n, u] = toLocal([at(30, -40, 5)], fromDegrees(LON, LAT, H))[0];
  close(e, 30, 1e-6);
  close(n, -40, 1e-6);
  close(u, 5, 1e-6);
});

test('distance along a polyline, in space and on the ground', () => {
  const pts = [at(0, 0), at(300, 0), at(300, 400, 50)];
  close(polylineLength(pts), 300 + Math.hypot(400, 50), 1e-6);
  close(horizontalLength(pts), 700, 0.01);
});

test('area on the local plane: a square hectare, a triangle, a tilted polygon', () => {
  close(polygonArea([at(0, 0), at(100, 0), at(100, 100), at(0, 100)]), 10000, 0.01);
  close(polygonArea([at(0, 0), at(0, 100), at(100, 100), at(100, 0)]), 10000, 0.01, 'either winding');
  close(polygonArea([at(0, 0), at(80, 0), at(0, 60)]), 2400, 0.01);
  // a roof sloping up 30 m: its footprint, not its surface, is measured
  close(polygonArea([at(0, 0), at(100, 0, 30), at(100, 100, 30), at(0, 100)]), 10000, 0.5);
  assert.equal(polygonArea([at(0, 0), at(1, 1)]), 0);
  // a square kilometre a long way from the city: still right to a square metre
  const far = (e, n) => {
    const o = fromDegrees(-70, -33, 500);
    const b = enuBasis(o);
    return /** @type {Vec3} */ ([0, 1, 2].map((i) => o[i] + e * b.east[i] + n * b.north[i]));
  };
  close(polygonArea([far(0, 0), far(1000, 0), far(1000, 1000), far(0, 1000)]), 1e6, 1);
});

test('height difference between a roof and the ground', () => {
  const d = heightDifference(at(0, 0, 25), at(30, 40, 0));
  close(d.vertical, -25, 0.001);
  close(d.horizontal, 50, 0.001);
  close(d.slant, Math.hypot(50, 25), 1e-6);
});

test('angle at a vertex', () => {
  close(angleAt(at(10, 0), at(0, 0), at(0, 10)), 90, 1e-6);
  close(angleAt(at(10, 0), at(0, 0), at(10, 10)), 45, 1e-6);
  close(angleAt(at(10, 0), at(0, 0), at(-10, 0)), 180, 1e-6);
  assert.equal(angleAt(at(0, 0), at(0, 0), at(1, 0)), 0, 'a degenerate angle');
});

test('lengths and areas are given with a unit that suits them', () => {
  assert.deepEqual(lengthParts(12.345), { value: '12.35', unit: 'm' });
  assert.deepEqual(lengthParts(250.04), { value: '250.0', unit: 'm' });
  assert.deepEqual(lengthParts(1234.5), { value: '1.234', unit: 'km' });
  assert.deepEqual(lengthParts(-0.001), { value: '0.00', unit: 'm' });
  assert.deepEqual(areaParts(56.78), { value: '56.8', unit: 'm2' });
  assert.deepEqual(areaParts(12345.6), { value: '12346', unit: 'm2' });
  assert.deepEqual(areaParts(2.5e6), { value: '2.500', unit: 'km2' });
});

test('a vertical clipping plane keeps what lies ahead of it', () => {
  const east = verticalPlane(90, 100); // facing east, 100 m east of the centre
  assert.equal(keptBy([150, 0, 0], [east], true), true);
  assert.equal(keptBy([50, 0, 0], [east], true), false);
  const north = verticalPlane(0, -20);
  assert.equal(keptBy([0, -10, 0], [north], true), true);
  assert.equal(keptBy([0, -30, 0], [north], true), false);
  const flat = horizontalPlane(30); // cut above 30 m
  assert.equal(keptBy([0, 0, 10], [flat], true), true);
  assert.equal(keptBy([0, 0, 40], [flat], true), false);
});

test('a clipping box keeps its inside, or cuts it out', () => {
  const keep = boxPlanes([50, 50, 20], true);
  assert.equal(keep.planes.length, 6);
  assert.equal(keptBy([10, -10, 5], keep.planes, keep.union), true);
  assert.equal(keptBy([60, 0, 0], keep.planes, keep.union), false);
  assert.equal(keptBy([0, 0, -25], keep.planes, keep.union), false);
  const cut = boxPlanes([50, 50, 20], false);
  assert.equal(keptBy([10, -10, 5], cut.planes, cut.union), false);
  assert.equal(keptBy([60, 0, 0], cut.planes, cut.union), true);
});

test('a sight line is split at the first obstacle', () => {
  /** @type {Vec3} */
  const o = [0, 0, 0];
  /** @type {Vec3} */
  const t = [100, 0, 0];
  assert.deepEqual(sightSegments(o, t, null), { visible: true, clear: [o, t], blocked: [] });
  assert.equal(sightSegments(o, t, [99, 0, 0]).visible, true, 'the target itself, within tolerance');
  assert.equal(sightSegments(o, t, [120, 0, 0]).visible, true, 'a surface behind the target');
  const blocked = sightSegments(o, t, [40, 0, 0]);
  assert.equal(blocked.visible, false);
  assert.deepEqual(blocked.clear, [o, [40, 0, 0]]);
  assert.deepEqual(blocked.blocked, [[40, 0, 0], t]);
});

test('the viewshed grid: rays around the observer, rings out to the radius', () => {
  const grid = viewshedGrid(300, 36, 6);
  assert.equal(grid.length, 216);
  const far = grid.filter((g) => g.ring === 6);
  assert.equal(far.length, 36);
  for (const g of far) close(Math.hypot(g.east, g.north), 300, 1e-9);
  close(grid[0].north, 50, 1e-9, 'the first ray points north');
  const east = grid.find((g) => g.ray === 9 && g.ring === 1);
  close(east?.east ?? NaN, 50, 1e-9);
});

test('the sun: local time to UTC and its position', () => {
  assert.equal(localToUtcIso('2024-06-21', 12 * 60, 8), '2024-06-21T04:00:00.000Z');
  assert.equal(localToUtcIso('2024-01-01', 3 * 60, 8), '2023-12-31T19:00:00.000Z');
  assert.equal(clockText(615), '10:15');
  assert.equal(clockText(2000), '23:59');
  // Beijing (116.4, 39.9) near solar noon on the June solstice: ~73.5° high, due south
  const noon = sunPosition('2024-06-21T04:14:00Z', 116.4, 39.9);
  close(noon.altitude, 73.5, 1);
  close(noon.azimuth, 180, 5);
  // at 06:00 local time the sun is low in the north-east; at 02:00 below the horizon
  const morning = sunPosition('2024-06-20T22:00:00Z', 116.4, 39.9);
  assert.ok(morning.altitude > 0 && morning.altitude < 20 && morning.azimuth > 45 && morning.azimuth < 90, JSON.stringify(morning));
  assert.ok(sunPosition('2024-06-20T18:00:00Z', 116.4, 39.9).altitude < 0);
  // the winter solstice noon: ~26.7°
  close(sunPosition('2024-12-21T04:14:00Z', 116.4, 39.9).altitude, 26.7, 1);
});

test('time zone of the city', () => {
  assert.equal(utcOffset({ centre: [113.3, 40.1] }), 8);
  assert.equal(utcOffset({ centre: [87.6, 43.8] }), 8, 'all of China keeps Beijing time');
  assert.equal(utcOffset({ centre: [13.4, 52.5] }), 1);
});

test('routes: add, reorder, remove, persisted', () => {
  const mem = new Map();
  const storage = { getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => mem.set(k, v) };
  const store = new RouteStore('平城', storage);
  store.add({ name: 'a', v: [113, 40, 500, 0, -45, 0] });
  store.add({ name: 'b', v: [113.1, 40, 500, 90, -45, 0] });
  store.add({ name: 'c'.repeat(60), v: [113.2, 40, 500, 180, -45, 0, 99] });
  assert.equal(store.stops[2].name.length, 40);
  assert.equal(store.stops[2].v.length, 6);
  store.move(2, -1);
  assert.deepEqual(store.stops.map((s) => s.name[0]), ['a', 'c', 'b']);
  store.move(0, -1);
  assert.deepEqual(store.stops.map((s) => s.name[0]), ['a', 'c', 'b'], 'the first stays first');
  store.remove(0);
  const again = new RouteStore('平城', storage);
  assert.deepEqual(again.stops.map((s) => s.name[0]), ['c', 'b']);
  assert.deepEqual(new RouteStore('other', storage).stops, [], 'per city');
  mem.set('cim.route.bad', '{"not": "a list"');
  assert.deepEqual(new RouteStore('bad', storage).stops, []);
  mem.set('cim.route.junk', JSON.stringify([{ name: 'x', v: [1, 'a', 3] }, null, { name: 'ok', v: [1, 2, 3] }]));
  assert.deepEqual(new RouteStore('junk', storage).stops.map((s) => s.name), ['ok']);
  assert.deepEqual(moveItem([1, 2, 3], 0, 5), [2, 3, 1]);
});

test('the compass turns and tilts within limits', () => {
  assert.deepEqual(turn(350, -45, 15, 0), { heading: 5, pitch: -45 });
  assert.deepEqual(turn(5, -45, -15, 0), { heading: 350, pitch: -45 });
  assert.equal(turn(0, -10, 0, 10).pitch, -5, 'never above the horizon');
  assert.equal(turn(0, -85, 0, -10).pitch, -89, 'never past straight down');
});

test('swipe position and the city radius', () => {
  assert.equal(splitFraction(512, 0, 1024), 0.5);
  assert.equal(splitFraction(-50, 0, 1024), 0.01);
  assert.equal(splitFraction(5000, 0, 1024), 0.99);
  assert.equal(splitFraction(10, 0, 0), 0.5);
  assert.equal(cityRadius({}), 1000);
  const r = cityRadius({ extent: [113.28, 40.07, 113.32, 40.1] });
  assert.ok(r > 2000 && r < 2600, String(r));
});

/** A panel element as the panel manager sees it. */
function fakePanel() {
  return /** @type {HTMLElement} */ (/** @type {unknown} */ ({ hidden: false }));
}

test('the registry: one tool at a time, Esc ends it, inputs timed', () => {
  const bus = new Bus();
  const panels = new PanelManager(bus);
  let now = 0;
  /** @type {(() => void)[]} */
  const frames = [];
  const reg = new ToolRegistry(bus, panels, { now: () => now, nextFrame: (cb) => frames.push(cb) });
  const log = [];
  const mk = (id, capturesClicks = false) => ({
    id,
    labelKey: id,
    element: fakePanel(),
    capturesClicks,
    activate: () => log.push(`+${id}`),
    deactivate: () => log.push(`-${id}`),
  });
  const a = reg.register(mk('a', true));
  const b = reg.register(mk('b'));
  assert.throws(() => reg.register(mk('a')), /already/);
  assert.equal(a.element.hidden, true);
  reg.activate('a');
  assert.equal(reg.active, 'a');
  assert.equal(reg.capturesClicks(), true);
  assert.equal(a.element.hidden, false);
  reg.activate('b');
  assert.deepEqual(log, ['+a', '-a', '+b']);
  assert.equal(a.element.hidden, true);
  assert.equal(b.element.hidden, false);
  assert.equal(reg.capturesClicks(), false);
  assert.equal(panels.closeTop(), 'tool:b', 'Esc closes the tool panel');
  assert.equal(reg.active, null);
  assert.deepEqual(log, ['+a', '-a', '+b', '-b']);
  reg.toggle('a');
  reg.toggle('a');
  assert.equal(reg.active, null);
  assert.throws(() => reg.activate('nope'), /no tool/);

  const events = [];
  bus.on('tool:activate', ({ id }) => events.push(id));
  reg.activate('b');
  assert.deepEqual(events, ['b']);

  const handler = reg.timed('b', 'click', (x) => {
    now += 12;
    return x * 2;
  });
  assert.equal(handler(21), 42);
  assert.deepEqual(reg.timings.b, [{ action: 'click', handler: 12, frame: null }]);
  now += 30;
  frames.shift()?.();
  assert.equal(reg.timings.b[0].frame, 42, 'to the end of the next frame');
  const failing = reg.timed('b', 'bad', () => {
    throw new Error('x');
  });
  assert.throws(failing);
  assert.equal(reg.timings.b.length, 2, 'a handler that throws is timed too');
  for (let i = 0; i < 150; i++) handler(1);
  assert.equal(reg.timings.b.length, 100, 'the latest timings are kept');
});

test('a planned scheme: footprints with heights', () => {
  const square = (x, y, d = 0.0005) => [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]];
  const geo = {
    type: 'FeatureCollection',
    features: [
      { type: 'Feature', properties: { name: 'A', height: 30 }, geometry: { type: 'Polygon', coordinates: [square(113.3, 40.08)] } },
      { type: 'Feature', properties: { floors: 10 }, geometry: { type: 'Polygon', coordinates: [square(113.31, 40.08), square(113.3101, 40.0801, 0.0001)] } },
      { type: 'Feature', properties: { height: '24.5' }, geometry: { type: 'MultiPolygon', coordinates: [[square(113.32, 40.08)], [square(113.33, 40.08)]] } },
      { type: 'Feature', properties: {}, geometry: { type: 'Polygon', coordinates: [square(113.34, 40.08)] } },
      { type: 'Feature', properties: { height: 10 }, geometry: { type: 'Point', coordinates: [113.3, 40.08] } },
      { type: 'Feature', properties: { height: 10 }, geometry: { type: 'Polygon', coordinates: [[[500000, 4400000], [500100, 4400000], [500100, 4400100]]] } },
    ],
  };
  const { blocks, skipped } = parseScheme(geo);
  assert.equal(blocks.length, 4);
  assert.equal(skipped, 3, 'no height, not a polygon, projected coordinates');
  assert.equal(blocks[0].ring.length, 4, 'the closing point is dropped');
  assert.equal(blocks[1].height, 30, 'floors × 3 m');
  assert.equal(blocks[1].holes.length, 1);
  assert.equal(blocks[2].height, 24.5);
  const stats = schemeStats(blocks);
  assert.equal(stats.count, 4);
  assert.equal(stats.tallest, 30);
  // 0.0005° squares at 40.08°N: ~42.6 m × 55.5 m
  const one = 0.0005 * 111319.49 * Math.cos((40.08 * Math.PI) / 180) * 0.0005 * 111034;
  const hole = one / 25;
  close(stats.footprint, 4 * one - hole, one * 0.01);
  close(stats.floorArea, one * 10 + (one - hole) * 10 + 2 * one * 8, one * 0.1);
  assert.throws(() => parseScheme({ type: 'Topology' }), /GeoJSON/);
  assert.equal(featureHeight({ 'building:levels': '4' }), 12);
  assert.equal(featureHeight({ height: -3 }), null);
});

test('the excavation digs with a coarse signed-distance texture, made once', async () => {
  const { PIT_QUALITY, pitPolygons } = await import('../src/tools/clip.js');
  const made = [];
  const Cesium = {
    ClippingPolygonCollection: class {
      /** @param {{quality?: number}} [options] */
      constructor(options = {}) {
        this.quality = options.quality ?? 1;
        made.push(this);
      }
    },
  };
  /** @type {{clippingPolygons?: any}} */
  const globe = {};
  const first = pitPolygons(Cesium, globe);
  assert.equal(globe.clippingPolygons, first);
  assert.equal(pitPolygons(Cesium, globe), first, 'an existing collection is kept');
  assert.equal(made.length, 1);
  // CesiumJS's side of the texture is 4096 × quality: at most 1024 (its default 4096² pass
  // took 1.4–1.9 s under software WebGL, the frame that answers the dig)
  assert.ok(4096 * first.quality <= 1024, String(first.quality));
  assert.ok(Math.max(128, 4096 * PIT_QUALITY) >= 256, 'still fine enough for a pit');
});
