import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  STATES,
  STATE_COLORS,
  SensorStore,
  emptyFilter,
  formatReading,
  passes,
  stateColor,
} from '../src/layers/sensors.js';
import { chartOption, mergeReading, numeric, seriesFromHistory } from '../src/panels/sensorchart.js';
import { has, setLang, t } from '../src/i18n.js';

const snapshot = {
  resync: false,
  seq: 10,
  streams: [
    { ds: 1, name: 'river', dept: 'water', prop: 'water level', unit: 'm', lon: 116, lat: 39, value: 2, time: 1000, state: 'normal' },
    { ds: 2, name: 'gas', dept: 'gas', prop: 'methane', unit: '%LEL', lon: 116.1, lat: 39.1, value: 30, time: 1000, state: 'alarm' },
    { ds: 3, name: 'cover', dept: null, prop: null, lon: null, lat: null, value: null, time: null, state: null },
  ],
};

test('every state has its own colour; unknown states get the no-reading colour', () => {
  const colours = STATES.map(stateColor);
  assert.equal(new Set(colours).size, STATES.length);
  assert.equal(stateColor('alarm'), STATE_COLORS.alarm);
  assert.equal(stateColor(null), STATE_COLORS.none);
  assert.equal(stateColor('bogus'), STATE_COLORS.none);
  for (const c of Object.values(STATE_COLORS)) assert.match(c, /^#[0-9a-f]{6}$/);
});

test('every state is named in both languages', () => {
  for (const lang of ['zh', 'en']) {
    setLang(lang);
    for (const s of [...STATES, 'none']) assert.ok(has(`sensorState_${s}`) && t(`sensorState_${s}`) !== `sensorState_${s}`);
  }
  setLang('zh');
});

test('readings as label text', () => {
  assert.equal(formatReading(2.3456, 'm'), '2.35 m');
  assert.equal(formatReading(7, null), '7');
  assert.equal(formatReading(true, ''), 'true');
  assert.equal(formatReading(null, 'm'), '—');
  assert.equal(formatReading({ a: 1 }, undefined), '{"a":1}');
});

test('a snapshot replaces everything and tracks alarms', () => {
  const store = new SensorStore();
  store.applySnapshot(snapshot);
  assert.equal(store.entries.size, 3);
  assert.deepEqual([...store.alarms], [2]);
  const { changed, removed } = store.applySnapshot({ streams: [snapshot.streams[0]] });
  assert.deepEqual([...changed], [1]);
  assert.deepEqual([...removed].sort(), [2, 3]);
  assert.equal(store.alarms.size, 0);
});

test('deltas: observations, states, late readings, new and removed streams', () => {
  const store = new SensorStore();
  store.applySnapshot(snapshot);
  const out = store.applyDeltas([
    { seq: 11, kind: 'observation', ds: 1, value: 9, time: 2000, state: 'alarm' },
    { seq: 12, kind: 'state', ds: 1, state: 'alarm', from: 'normal', value: 9, time: 2000 },
    { seq: 13, kind: 'observation', ds: 2, value: 1, time: 500, state: 'alarm', late: true },
    { seq: 14, kind: 'observation', ds: 99, value: 1, time: 3000, state: 'normal' },
    { seq: 15, kind: 'stream', ds: 4, name: 'new', dept: 'traffic', prop: 'flow', lon: 1, lat: 2, state: null },
    { seq: 16, kind: 'removed', ds: 3 },
  ]);
  assert.equal(store.entries.get(1)?.value, 9);
  assert.equal(store.entries.get(1)?.state, 'alarm');
  assert.equal(store.entries.get(2)?.value, 30, 'a late reading changes nothing');
  assert.equal(store.entries.has(99), false, 'unknown datastreams are ignored');
  assert.equal(store.entries.get(4)?.name, 'new');
  assert.equal('seq' in (store.entries.get(4) || {}), false);
  assert.equal(store.entries.has(3), false);
  assert.deepEqual([...out.changed].sort(), [1, 4]);
  assert.deepEqual([...out.removed], [3]);
  assert.deepEqual([...out.moved], [4]);
  assert.deepEqual([...store.alarms].sort(), [1, 2]);
  store.applyDeltas([{ seq: 17, kind: 'state', ds: 2, state: 'stale', from: 'alarm' }]);
  assert.deepEqual([...store.alarms], [1], 'leaving alarm leaves the alarm list');
});

test('filters hide departments and observed properties', () => {
  const store = new SensorStore();
  store.applySnapshot(snapshot);
  const filter = emptyFilter();
  const visible = () => [...store.entries.values()].filter((e) => passes(e, filter)).map((e) => e.ds);
  assert.deepEqual(visible(), [1, 2, 3]);
  filter.departments.add('water');
  assert.deepEqual(visible(), [2, 3]);
  filter.properties.add('');
  assert.deepEqual(visible(), [2], "'' stands for no property");
  filter.departments.clear();
  filter.properties.clear();
  filter.properties.add('methane');
  assert.deepEqual(visible(), [1, 3]);
  const { departments, properties } = store.facets();
  assert.deepEqual(Object.fromEntries(departments), { water: 1, gas: 1, '': 1 });
  assert.deepEqual(Object.fromEntries(properties), { 'water level': 1, methane: 1, '': 1 });
});

test('live readings extend the history buckets', () => {
  const series = seriesFromHistory({ bucket: 1000, points: [[0, 1, 3, 2, 2], [1000, 5, 5, 5, 1]] }, 3000);
  mergeReading(series, 1500, 7); // into the last bucket
  assert.deepEqual(series.points[1], [1000, 5, 7, 6, 2]);
  mergeReading(series, 2999, 1); // a new bucket
  assert.deepEqual(series.points.at(-1), [2000, 1, 1, 1, 1]);
  mergeReading(series, 10, 0); // late, into the first
  const [t0, lo, hi, mean, n] = series.points[0];
  assert.deepEqual([t0, lo, hi, n], [0, 0, 3, 3]);
  assert.ok(Math.abs(mean - 4 / 3) < 1e-12);
  mergeReading(series, 3500, 'open'); // text is not charted
  assert.equal(series.points.length, 3);
  mergeReading(series, 4200, true); // 4000: the window drops bucket 0
  assert.deepEqual(series.points.map((p) => p[0]), [1000, 2000, 4000]);
  assert.equal(numeric(Number.NaN), null);
});

test('the chart option draws mean, min and max', () => {
  const series = seriesFromHistory({ bucket: 1000, points: [[0, 1, 3, 2, 2]] });
  const option = chartOption(series, { mean: 'Mean', min: 'Min', max: 'Max', unit: 'm' });
  assert.deepEqual(option.series.map((s) => s.name), ['Mean', 'Min', 'Max']);
  assert.deepEqual(option.series[0].data, [[0, 2]]);
  assert.deepEqual(option.series[1].data, [[0, 1]]);
  assert.deepEqual(option.series[2].data, [[0, 3]]);
  assert.equal(option.yAxis.name, 'm');
  assert.equal(option.xAxis.type, 'time');
});
