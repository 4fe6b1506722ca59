import { test } from 'node:test';
import assert from 'node:assert/strict';
import { candidateLabel, isComposing } from '../src/search.js';
import { applyResolution, resolutionScale } from '../src/panels/display.js';
import { themeLegend } from '../src/panels/theme.js';
import { setLang } from '../src/i18n.js';

test('input events of an unfinished composition are not searched', () => {
  assert.equal(isComposing({ isComposing: true }, false), true);
  assert.equal(isComposing({ isComposing: false }, true), true);
  assert.equal(isComposing({}, false), false);
});

test('candidateLabel: label, address, components, coordinates', () => {
  assert.equal(candidateLabel({ label: '华严寺' }), '华严寺');
  assert.equal(candidateLabel({ address: '鼓楼东街1号' }), '鼓楼东街1号');
  assert.equal(candidateLabel({ components: { street: '鼓楼东街', number: '1号' } }), '鼓楼东街1号');
  assert.equal(candidateLabel({ lon: 113.3, lat: 40.1 }), '113.30000, 40.10000');
});

test('full resolution by default; performance mode halves it and the errors', () => {
  assert.equal(resolutionScale(false), 1);
  assert.equal(resolutionScale(true), 0.5);
  const viewer = { scene: { globe: {}, requestRender() {} } };
  const tileset = {};
  applyResolution(viewer, false, [{ tileset, sse: 16 }]);
  assert.equal(viewer.useBrowserRecommendedResolution, false);
  assert.equal(viewer.resolutionScale, 1);
  assert.equal(tileset.maximumScreenSpaceError, 16);
  applyResolution(viewer, true, [{ tileset, sse: 16 }]);
  assert.equal(viewer.resolutionScale, 0.5);
  assert.equal(tileset.maximumScreenSpaceError, 8);
  assert.equal(viewer.scene.globe.maximumScreenSpaceError, 1);
});

test('use legend lists every use of the city from the manifest, by name', () => {
  setLang('zh');
  const loaded = new Map([['住宅', 5]]);
  const fromManifest = themeLegend('use', { uses: ['住宅', '商业', '寺庙'] }, loaded);
  assert.deepEqual(fromManifest.map((i) => i.label), ['住宅', '商业', '寺庙']);
  const counted = themeLegend('use', { use_counts: { 商业: 3, 住宅: 12 } }, loaded);
  assert.deepEqual(counted.map((i) => i.label), ['住宅 (12)', '商业 (3)']);
  assert.deepEqual(themeLegend('use', undefined, loaded).map((i) => i.label), ['住宅']);
  assert.equal(themeLegend('height', undefined, loaded).length, 5);
  assert.deepEqual(themeLegend('none', undefined, loaded), []);
  setLang('en');
  assert.deepEqual(themeLegend('use', { uses: ['住宅', ''] }, loaded).map((i) => i.label), ['Residential', 'Unknown']);
  setLang('zh');
});
