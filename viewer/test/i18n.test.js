import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { codeName, has, keysOf, setLang, t } from '../src/i18n.js';

const SRC = new URL('../src/', import.meta.url).pathname;

function sources(dir = SRC) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : [],
  );
}

const plain = (keys) => keys.filter((k) => !k.startsWith('code.')).sort();

test('both languages have the same interface keys', () => {
  assert.deepEqual(plain(keysOf('en')), plain(keysOf('zh')));
});

test('the Chinese interface has no English words', () => {
  setLang('zh');
  // product and format names that stay as they are
  const allowed = new Set(['cim', 'build', 'L2', 'L3']);
  for (const key of plain(keysOf('zh'))) {
    const words = (t(key).match(/[A-Za-z]{2,}\d*/g) || []).filter((w) => !allowed.has(w));
    assert.deepEqual(words, [], `zh ${key}: ${t(key)}`);
  }
});

test('every key used by the sources and index.html has a translation', () => {
  const used = new Set();
  for (const file of sources()) {
    const js = readFileSync(file, 'utf-8');
    for (const m of js.matchAll(/\bt\('([A-Za-z_.]+)'\)/g)) used.add(m[1]);
    for (const m of js.matchAll(/labelKey: '([A-Za-z_]+)'/g)) used.add(m[1]);
  }
  const html = readFileSync(new URL('../index.html', import.meta.url), 'utf-8');
  for (const m of html.matchAll(/data-i18n(?:-placeholder|-title)?="([^"]+)"/g)) used.add(m[1]);
  assert.ok(used.size > 20);
  const missing = [...used].filter((k) => !has(k));
  assert.deepEqual(missing, []);
});

test('roof types and uses are shown by their name in the chosen language', () => {
  setLang('zh');
  assert.equal(codeName('roof_type', 'flat'), '平顶');
  assert.match(codeName('roof_type', 'gabled'), /双坡/);
  assert.match(codeName('roof_type', 'hipped'), /四坡/);
  assert.match(codeName('roof_type', 'pyramidal'), /攒尖/);
  assert.equal(codeName('roof_type', 'Flat'), '平顶', 'codes are matched case-insensitively');
  assert.equal(codeName('roof_type', 'thatched-special'), 'thatched-special', 'unknown codes as they are');
  assert.equal(codeName('use', 'residential'), '住宅');
  assert.equal(codeName('use', '住宅'), '住宅');
  setLang('en');
  assert.equal(codeName('roof_type', 'flat'), 'Flat');
  assert.equal(codeName('use', '住宅'), 'Residential');
  assert.equal(t('title'), 'City Operations View');
  setLang('xx');
  assert.equal(t('title'), '城市运行指挥视图', 'unknown language falls back to Chinese');
});
