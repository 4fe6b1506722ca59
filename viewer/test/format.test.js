import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setLang } from '../src/i18n.js';
import { formatLonLat, formatValue, propertyLabel } from '../src/format.js';
import { escapeHtml, resolveTemplate, debounce } from '../src/util.js';

test('formatValue: units, rounding, missing values, codes', () => {
  setLang('zh');
  assert.equal(formatValue('height', 12.345), '12.3 米');
  assert.equal(formatValue('floors', 7), '7');
  assert.equal(formatValue('area', 3.14159), '3.14');
  assert.equal(formatValue('name', ''), '—');
  assert.equal(formatValue('name', null), '—');
  assert.equal(formatValue('height', Number.NaN), '—');
  assert.equal(formatValue('list', new Float32Array([1, 2])), '1, 2');
  assert.equal(formatValue('roof_type', 'gabled'), '双坡顶（人字顶）');
  assert.equal(formatValue('name', 'flat'), 'flat', 'only coded attributes are translated');
  setLang('en');
  assert.equal(formatValue('height', 5), '5.0 m');
  assert.equal(formatValue('roof_type', 'hipped'), 'Hipped');
  setLang('zh');
});

test('propertyLabel: interface name, else the schema name, else the id', () => {
  setLang('zh');
  assert.equal(propertyLabel('roof_type', 'Roof type'), '屋顶类型');
  assert.equal(propertyLabel('jzjg', '建筑结构'), '建筑结构');
  assert.equal(propertyLabel('jzjg', null), 'jzjg');
});

test('formatLonLat', () => {
  assert.equal(formatLonLat(113.3, 40.1), '113.300000, 40.100000');
});

test('escapeHtml escapes every markup character', () => {
  assert.equal(escapeHtml('<img src=x onerror="a()">&\'b\''), '&lt;img src=x onerror=&quot;a()&quot;&gt;&amp;&#39;b&#39;');
  assert.equal(escapeHtml(null), '');
  assert.equal(escapeHtml(5), '5');
});

test('resolveTemplate keeps placeholders and absolute URLs', () => {
  assert.equal(resolveTemplate('{z}/{x}/{y}.webp', 'http://h/data/imagery/tilejson.json'), 'http://h/data/imagery/{z}/{x}/{y}.webp');
  assert.equal(resolveTemplate('/abs/{z}.png', 'http://h/a/b.json'), '/abs/{z}.png');
});

test('debounce runs once after the last call, and cancel stops it', async () => {
  const calls = [];
  const d = debounce((x) => calls.push(x), 10);
  d(1);
  d(2);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(calls, [2]);
  d(3);
  d.cancel();
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(calls, [2]);
});
