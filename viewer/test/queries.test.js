import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RESULT_TYPES, resultType } from '../src/search.js';
import { formatNumber, groupRows, histogramRows, summaryRows } from '../src/panels/query.js';
import { CRS_CHOICES, locateQuery } from '../src/panels/locate.js';
import { authHeaders, labelText } from '../src/panels/annotations.js';
import { has, setLang } from '../src/i18n.js';

test('search results are typed; untyped ones are addresses', () => {
  assert.equal(resultType({ type: 'building' }), 'building');
  assert.equal(resultType({ type: 'coordinate' }), 'coordinate');
  assert.equal(resultType({ type: 'nonsense' }), 'address');
  assert.equal(resultType({ address: 'x' }), 'address');
  for (const key of Object.values(RESULT_TYPES)) assert.ok(has(key), key);
});

const STATS = {
  count: 1234,
  area: 56789.4,
  floor_area: 123456.7,
  height: { min: 3, mean: 13.126, max: 238 },
  by_use: { 住宅: { count: 1000, area: 1, floor_area: 2000 }, '': { count: 4, area: 1, floor_area: 5 } },
  by_roof_type: { flat: { count: 800, area: 1, floor_area: 1 }, gabled: { count: 434, area: 1, floor_area: 1 } },
  height_histogram: [
    { min: 0, max: 10, count: 3 },
    { min: 10, max: null, count: 1 },
  ],
};

test('statistics rows: numbers, units, code names, histogram shares', () => {
  setLang('zh');
  assert.equal(formatNumber(1234567.891, 1), '1,234,567.9');
  assert.equal(formatNumber(null), '–');
  const rows = Object.fromEntries(summaryRows(STATS));
  assert.equal(rows.queryCount, '1,234');
  assert.equal(rows.queryFloorArea, '123,457 平方米');
  assert.equal(rows.queryHeight, '3 / 13.1 / 238 米');
  assert.deepEqual(groupRows(STATS.by_roof_type, 'roof_type').map((r) => r[0]), ['平顶', '双坡顶（人字顶）']);
  assert.equal(groupRows(STATS.by_use, 'use')[1][0], '未知');
  const bins = histogramRows(STATS.height_histogram);
  assert.deepEqual(bins.map((b) => b.label), ['0–10 米', '≥ 10 米']);
  assert.deepEqual(bins.map((b) => b.share), [0.75, 0.25]);
  setLang('en');
  assert.equal(Object.fromEntries(summaryRows(STATS)).queryArea, '56,789 m²');
  setLang('zh');
});

test('locate: typed values to the api/locate query', () => {
  assert.equal(locateQuery(' 113.3 ', '40.09', 'EPSG:4326'), 'x=113.3&y=40.09&crs=EPSG%3A4326');
  assert.equal(locateQuery('38,501,234.5', '3345678.9', 'gk'), 'x=38501234.5&y=3345678.9&crs=auto');
  assert.equal(locateQuery('east', '1', 'auto'), null);
  assert.equal(locateQuery('', '1', 'auto'), null);
  for (const [, key] of CRS_CHOICES) assert.ok(has(key), key);
});

test('annotations: labels are one short line; the token goes in a Bearer header', () => {
  assert.equal(labelText('  a\n b  '), 'a b');
  const long = labelText('字'.repeat(100));
  assert.equal(long.length, 40);
  assert.ok(long.endsWith('…'));
  assert.deepEqual(authHeaders(''), { Accept: 'application/json' });
  assert.deepEqual(authHeaders('water.abc', true), {
    Accept: 'application/json',
    Authorization: 'Bearer water.abc',
    'Content-Type': 'application/json',
  });
});
