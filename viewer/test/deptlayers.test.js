import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FeatureOwners,
  MAX_ZOOM,
  classColor,
  featureTitle,
  geometryBbox,
  gridSampler,
  intersect,
  legendEntry,
  levelFor,
  parseKey,
  relative,
  selectTiles,
  splitGeometry,
  styleClasses,
  tileKey,
  tileRect,
  tilesCovering,
} from '../src/layers/deptlayers.js';
import { featureRows, valueText } from '../src/panels/deptlayer.js';
import { setLang } from '../src/i18n.js';

const category = {
  color: '#1f77b4',
  by: { kind: 'category', attribute: '类型', categories: { 消火栓: '#d62728', 井盖: '#2ca02c' } },
};
const graduated = {
  color: '#1f77b4',
  by: { kind: 'graduated', attribute: '压力', breaks: [0.3, 0.5], colors: ['#ffffb2', '#fd8d3c', '#bd0026'] },
};

test('category colours; values the style does not list and missing ones take the layer colour', () => {
  assert.equal(classColor(category, { 类型: '消火栓' }), '#d62728');
  assert.equal(classColor(category, { 类型: '井盖' }), '#2ca02c');
  assert.equal(classColor(category, { 类型: '其他' }), '#1f77b4');
  assert.equal(classColor(category, {}), '#1f77b4');
  assert.equal(classColor(category, null), '#1f77b4');
  assert.equal(classColor({ color: '#abcdef' }, { x: 1 }), '#abcdef');
});

test('graduated classes: below the first break, between, at and above the last', () => {
  assert.equal(classColor(graduated, { 压力: 0.1 }), '#ffffb2');
  assert.equal(classColor(graduated, { 压力: 0.3 }), '#fd8d3c', 'a break starts its class');
  assert.equal(classColor(graduated, { 压力: 0.49 }), '#fd8d3c');
  assert.equal(classColor(graduated, { 压力: 0.5 }), '#bd0026');
  assert.equal(classColor(graduated, { 压力: 9 }), '#bd0026');
  assert.equal(classColor(graduated, { 压力: '0.4' }), '#fd8d3c', 'numeric text counts');
  assert.equal(classColor(graduated, { 压力: 'n/a' }), '#1f77b4');
  assert.equal(classColor(graduated, { 压力: true }), '#1f77b4');
});

test('legend: one item per class, graduated ranges, the icon on each item', () => {
  assert.deepEqual(
    styleClasses(category).map((c) => c.label),
    ['消火栓', '井盖'],
  );
  assert.deepEqual(
    styleClasses(graduated).map((c) => c.label),
    ['< 0.3', '0.3 – 0.5', '≥ 0.5'],
  );
  const entry = legendEntry({ name: '消火栓', style: { ...category, point: { icon: 'hydrant', size: 24 } } });
  assert.equal(entry.title, '消火栓 · 类型');
  assert.equal(entry.items.length, 2);
  assert.ok(entry.items.every((i) => i.icon === 'viewer/icons/hydrant.svg'));
  const single = legendEntry({ name: '街道家具', style: { color: '#123456' } });
  assert.deepEqual(single.items, [{ color: '#123456', label: '街道家具' }]);
});

test('feature titles: the label attribute, a name, else the id', () => {
  assert.equal(featureTitle({ label: { attribute: '编号' } }, { 编号: 7, 名称: 'x' }, 3), '7');
  assert.equal(featureTitle({}, { 名称: '一号' }, 3), '一号');
  assert.equal(featureTitle({}, { other: 1 }, 3), '#3');
});

test('geometry parts and bounding boxes through multi-geometries', () => {
  const g = {
    type: 'GeometryCollection',
    geometries: [
      { type: 'MultiPoint', coordinates: [[1, 2], [3, 4]] },
      { type: 'LineString', coordinates: [[0, 0], [5, 1]] },
      { type: 'MultiPolygon', coordinates: [[[[0, 0], [1, 0], [1, 1], [0, 0]]]] },
    ],
  };
  const parts = splitGeometry(g);
  assert.equal(parts.points.length, 2);
  assert.equal(parts.lines.length, 1);
  assert.equal(parts.polygons.length, 1);
  assert.deepEqual(geometryBbox(g), [0, 0, 5, 4]);
  assert.equal(geometryBbox(null), null);
});

test('tile arithmetic matches the server (GeographicTilingScheme)', () => {
  assert.deepEqual(tileRect(0, 0, 0), [-180, -90, 0, 90]);
  assert.deepEqual(tileRect(0, 1, 0), [0, -90, 180, 90]);
  const [w, s, e, n] = tileRect(10, 1668, 282);
  assert.ok(Math.abs(e - w - 180 / 1024) < 1e-12 && Math.abs(n - s - 180 / 1024) < 1e-12);
  // a point lies in the one tile tilesCovering names
  const p = [113.3, 40.09];
  const [[z, x, y]] = tilesCovering([p[0], p[1], p[0], p[1]], 12);
  const r = tileRect(z, x, y);
  assert.ok(r[0] <= p[0] && p[0] < r[2] && r[1] <= p[1] && p[1] < r[3]);
  const rect = [113.2, 40.0, 113.4, 40.2];
  const tiles = tilesCovering(rect, 12);
  assert.ok(tiles.every(([a, b, c]) => intersect(tileRect(a, b, c), rect)), 'every tile meets the rectangle');
  for (const [cx, cy] of [[rect[0], rect[1]], [rect[2] - 1e-9, rect[3] - 1e-9], [113.3, 40.1]]) {
    const holders = tiles.filter(([a, b, c]) => {
      const t = tileRect(a, b, c);
      return t[0] <= cx && cx < t[2] && t[1] <= cy && cy < t[3];
    });
    assert.equal(holders.length, 1, `(${cx}, ${cy}) is in one tile`);
  }
  assert.deepEqual(parseKey(tileKey(3, 4, 5)), [3, 4, 5]);
  assert.deepEqual(intersect([0, 0, 2, 2], [1, 1, 3, 3]), [1, 1, 2, 2]);
  assert.equal(intersect([0, 0, 1, 1], [2, 2, 3, 3]), null);
});

test('the starting level holds the layer in at most 2 × 2 tiles', () => {
  for (const rect of [[113.2, 40.0, 113.4, 40.2], [113.29, 40.08, 113.3, 40.09], [-10, -10, 10, 10]]) {
    const z = levelFor(rect);
    assert.ok(tilesCovering(rect, z).length <= 4, `${rect} at ${z}`);
    assert.ok(z === 0 || tilesCovering(rect, z + 1).length >= 1);
  }
  assert.equal(levelFor([1, 1, 1, 1]), MAX_ZOOM, 'a single point: the deepest level');
});

test('tile selection: request the start, draw complete tiles, refine thinned ones near the camera', () => {
  const area = [113.25, 40.05, 113.35, 40.12];
  const start = levelFor(area);
  const roots = tilesCovering(area, start).map(([z, x, y]) => tileKey(z, x, y));
  const loaded = new Map();
  let sel = selectTiles({ area, start, loaded, refine: () => true });
  assert.deepEqual(sel.draw, []);
  assert.deepEqual(sel.request.sort(), [...roots].sort());
  // the roots arrive thinned: they are drawn while their children are requested
  for (const k of roots) loaded.set(k, { complete: false });
  sel = selectTiles({ area, start, loaded, refine: () => true });
  assert.deepEqual(sel.draw.sort(), [...roots].sort());
  assert.ok(sel.request.length > 0 && sel.request.every((k) => parseKey(k)[0] === start + 1));
  // the children arrive complete: they replace their parents
  for (const k of sel.request) loaded.set(k, { complete: true });
  const children = sel.request;
  sel = selectTiles({ area, start, loaded, refine: () => true });
  assert.deepEqual(sel.draw.sort(), [...children].sort());
  assert.deepEqual(sel.request, []);
  // the parents were gone through: their data must stay cached
  assert.deepEqual([...sel.visited].sort(), [...roots, ...children].sort());
  // far away (refine says no), a thinned tile is drawn as it is
  sel = selectTiles({ area, start, loaded, refine: () => false });
  assert.deepEqual(sel.draw.sort(), [...roots].sort());
  // nothing in view: nothing at all
  const none = selectTiles({ area: null, start, loaded, refine: () => true });
  assert.deepEqual([none.draw, none.request, none.visited.size], [[], [], 0]);
});

test('tile selection stops refining at the tile budget', () => {
  const area = [113.0, 40.0, 113.6, 40.4];
  const start = levelFor(area);
  const loaded = new Map();
  // every tile down to level start + 3 is loaded and thinned
  for (let z = start; z <= start + 3; z++) for (const [a, b, c] of tilesCovering(area, z)) loaded.set(tileKey(a, b, c), { complete: false });
  const sel = selectTiles({ area, start, loaded, refine: () => true, maxTiles: 10 });
  assert.ok(sel.draw.length <= 10, `${sel.draw.length} tiles drawn`);
  assert.ok(sel.draw.some((k) => parseKey(k)[0] > start), 'it did refine up to the budget');
});

test('features are kept by id: one owner, taken over when a tile goes', () => {
  const owners = new FeatureOwners();
  assert.deepEqual(owners.add('a', [1, 2, 3]), [1, 2, 3]);
  assert.deepEqual(owners.add('b', [3, 4]), [4], 'feature 3 (across the edge) is drawn once');
  assert.equal(owners.size, 4);
  const gone = owners.remove('a', [1, 2, 3]);
  assert.deepEqual(gone.dropped.sort(), [1, 2]);
  assert.deepEqual([...gone.moved.entries()], [['b', [3]]], 'tile b now draws feature 3');
  assert.equal(owners.size, 2);
  const rest = owners.remove('b', [3, 4]);
  assert.deepEqual(rest.dropped.sort(), [3, 4]);
  assert.equal(rest.moved.size, 0);
  assert.equal(owners.size, 0);
  // removing a tile that only held (did not own) a feature moves nothing
  owners.add('c', [9]);
  owners.add('d', [9]);
  assert.deepEqual(owners.remove('d', [9]), { dropped: [], moved: new Map() });
  assert.equal(owners.owner.get(9), 'c');
});

test('API links become page-relative URLs', () => {
  assert.equal(relative('/api/layers/3/features'), 'api/layers/3/features');
  assert.equal(relative('api/layers'), 'api/layers');
});

test('attribute rows are text: markup stays characters, objects as JSON', () => {
  setLang('zh');
  const rows = featureRows({
    id: 5,
    properties: { 名称: '<img src=x onerror=alert(1)>', 数量: 3, 空: null, 对象: { a: 1 } },
    geometry: { type: 'Point', coordinates: [113.3, 40.09] },
  });
  assert.deepEqual(rows[0], ['要素编号', '5', '__id']);
  assert.deepEqual(rows[1], ['名称', '<img src=x onerror=alert(1)>', '名称']);
  assert.equal(rows.find((r) => r[2] === '数量')?.[1], '3');
  assert.equal(rows.find((r) => r[2] === '空')?.[1], '—');
  assert.equal(rows.find((r) => r[2] === '对象')?.[1], '{"a":1}');
  assert.equal(rows.at(-1)?.[2], '__where');
  assert.equal(valueText(0), '0');
});

test('coarse tiles take ground heights from a grid: exact on planes, each sample once', () => {
  let calls = 0;
  const plane = (lon, lat) => {
    calls += 1;
    return 1000 + 50 * (lon - 113) + 20 * (lat - 40);
  };
  const h = gridSampler([113, 40, 113.2, 40.1], 16, plane);
  for (const [lon, lat] of [[113.01, 40.02], [113.19, 40.099], [113.1234, 40.0567]]) {
    assert.ok(Math.abs(h(lon, lat) - 1000 - 50 * (lon - 113) - 20 * (lat - 40)) < 1e-9);
  }
  const before = calls;
  for (let k = 0; k < 1000; k++) h(113 + Math.random() * 0.2, 40 + Math.random() * 0.1);
  assert.ok(calls <= 17 * 17, `${calls} samples`);
  assert.ok(calls >= before);
  assert.equal(h(112, 39), plane(113, 40), 'outside: the nearest edge');
});
