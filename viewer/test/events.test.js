import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FINAL_STATES,
  STATES,
  STATE_COLORS,
  alarmPrefill,
  applyDeltas,
  defaultFilter,
  filterQuery,
  formatCount,
  formatHours,
  formatTime,
  isResync,
  markerChanged,
  markerOf,
  markerOfRow,
  mergeLoaded,
  passesFilter,
  sensorSubcategory,
  stateColor,
} from '../src/layers/events.js';
import { actionName, detailRows, stateName } from '../src/panels/event.js';
import { onTimeText, statsOptions } from '../src/panels/eventstats.js';
import { has, setLang } from '../src/i18n.js';

test('every state has its own colour and a name in both languages', () => {
  assert.equal(new Set(STATES.map(stateColor)).size, STATES.length);
  assert.equal(stateColor('closed'), STATE_COLORS.closed);
  assert.equal(stateColor('bogus'), '#8c96a0');
  for (const s of STATES) assert.ok(has(`evState_${s}`), s);
  setLang('zh');
  assert.equal(stateName('dispatched'), '已派遣');
  assert.equal(actionName('close'), '结案');
  assert.equal(actionName('unknown_action', '某操作'), '某操作', "the server's label for an action the viewer does not know");
  setLang('en');
  assert.equal(stateName('dispatched'), 'Dispatched');
  assert.equal(actionName('report_done'), 'Report done');
  setLang('zh');
});

test('the filter as the query of /api/events', () => {
  const f = defaultFilter();
  assert.equal(filterQuery(f, { limit: 100 }), 'open=1&limit=100');
  assert.equal(filterQuery({ ...f, state: 'all' }), '');
  assert.equal(
    filterQuery({ state: 'handling', department: 'water', category: 'SJ01', overdue: true }, { limit: 10, offset: 20 }),
    'state=handling&department=water&category=SJ01&overdue=1&limit=10&offset=20',
  );
  assert.equal(filterQuery({ ...f, text: ' 井盖 & 柳巷 ' }), 'open=1&q=%E4%BA%95%E7%9B%96+%26+%E6%9F%B3%E5%B7%B7');
  assert.equal(filterQuery({ ...f, text: '   ' }), 'open=1');
});

test('the filter as a test agrees with the query (for deltas)', () => {
  const e = { state: 'handling', department: 'water', subcategory: 'SJ0102', overdue: false };
  assert.ok(passesFilter(e, defaultFilter()));
  for (const s of FINAL_STATES) assert.ok(!passesFilter({ ...e, state: s }, defaultFilter()), `${s} is not open`);
  assert.ok(passesFilter({ ...e, state: 'closed' }, { ...defaultFilter(), state: 'all' }));
  assert.ok(!passesFilter(e, { ...defaultFilter(), state: 'filed' }));
  assert.ok(!passesFilter(e, { ...defaultFilter(), department: 'police' }));
  assert.ok(passesFilter(e, { ...defaultFilter(), category: 'SJ01' }), 'a 大类 holds its 小类');
  assert.ok(passesFilter(e, { ...defaultFilter(), category: 'SJ0102' }));
  assert.ok(!passesFilter(e, { ...defaultFilter(), category: 'BJ01' }));
  assert.ok(!passesFilter(e, { ...defaultFilter(), overdue: true }));
  assert.ok(passesFilter({ ...e, overdue: true }, { ...defaultFilter(), overdue: true }));
});

test('deltas update, add and drop cases; a late older delta changes nothing', () => {
  const cases = new Map([[1, markerOf({ id: 1, state: 'filed', subcategory: 'SJ0102', subcategory_name: '暴露垃圾', location: { lon: 113, lat: 40, h: 5 }, version: 2 })]]);
  const f = defaultFilter();
  let r = applyDeltas(cases, [{ kind: 'event', id: 1, state: 'dispatched', department: 'water', subcategory: 'SJ0102', lon: 113, lat: 40, h: 5, version: 3, overdue: true }], f);
  assert.deepEqual([...r.changed], [1]);
  assert.equal(cases.get(1)?.state, 'dispatched');
  assert.equal(cases.get(1)?.overdue, true);
  assert.equal(cases.get(1)?.name, '暴露垃圾', 'the name stays');
  r = applyDeltas(cases, [{ kind: 'event', id: 1, state: 'filed', version: 2, subcategory: 'SJ0102', lon: 113, lat: 40 }], f);
  assert.equal(r.changed.size, 0);
  assert.equal(cases.get(1)?.state, 'dispatched');
  r = applyDeltas(cases, [{ kind: 'event', id: 2, state: 'reported', subcategory: 'SJ0102', lon: 113.1, lat: 40.1, version: 1 }, { kind: 'observation', ds: 5 }], f);
  assert.deepEqual([...r.changed], [2]);
  r = applyDeltas(cases, [{ kind: 'event', id: 1, state: 'closed', subcategory: 'SJ0102', lon: 113, lat: 40, version: 9 }], f);
  assert.deepEqual([...r.removed], [1], 'a closed case leaves the open cases');
  assert.ok(!cases.has(1));
});

test('with a text filter a delta keeps a held case and cannot place a new one', () => {
  const held = markerOf({ id: 1, state: 'filed', subcategory: 'SJ0102', location: { lon: 113, lat: 40 }, version: 2 });
  const cases = new Map([[1, held]]);
  const f = { ...defaultFilter(), text: '井盖' };
  let r = applyDeltas(cases, [{ kind: 'event', id: 1, state: 'dispatched', subcategory: 'SJ0102', lon: 113, lat: 40, version: 3 }], f);
  assert.deepEqual([...r.changed], [1], 'a transition keeps the texts: still a match');
  r = applyDeltas(cases, [{ kind: 'event', id: 2, state: 'reported', subcategory: 'SJ0102', lon: 113, lat: 40, version: 1 }], f);
  assert.deepEqual([...r.unknown], [2], 'only the server knows whether its texts match');
  assert.ok(!cases.has(2) && r.changed.size === 0);
  r = applyDeltas(cases, [{ kind: 'event', id: 3, state: 'closed', subcategory: 'SJ0102', lon: 113, lat: 40, version: 4 }], f);
  assert.equal(r.unknown.size, 0, 'a closed case is not an open one, whatever its texts');
  r = applyDeltas(cases, [{ kind: 'event', id: 4, state: 'reported', subcategory: 'SJ0102', lon: 113, lat: 40, version: 1 }], defaultFilter());
  assert.deepEqual([...r.changed], [4], 'without a text the filter places it');
});

test('times and hours as text', () => {
  assert.equal(formatCount(5000, true), '5,000+');
  assert.equal(formatCount(24801, false), '24,801');
  assert.equal(formatCount(0, undefined), '0');
  assert.equal(formatHours(3.456), '3.5 h');
  assert.equal(formatHours(null), '—');
  assert.equal(formatTime(null), '—');
  assert.equal(formatTime('not a time'), 'not a time');
  assert.match(formatTime('2026-10-08T11:00:00+08:00'), /^2026-10-0\d \d\d:\d\d$/);
});

test('detail rows are text (markup stays characters) with the flags', () => {
  setLang('zh');
  const rows = detailRows({
    id: 7,
    state: 'handling',
    subcategory: 'SJ0102',
    subcategory_name: '暴露垃圾',
    department: 'water',
    description: '<img src=x onerror=alert(1)>',
    location: { lon: 113.3, lat: 40.09, address: '平城路1号', building: 'B1', floor: 3 },
    reported_at: '2026-10-08T09:00:00+08:00',
    deadline: '2026-10-08T13:00:00+08:00',
    remaining_hours: -1.5,
    overdue: true,
    late: true,
    priority: 'high',
    source: 'hotline',
  });
  const by = Object.fromEntries(rows.map(([, v, k]) => [k, v]));
  assert.equal(by.description, '<img src=x onerror=alert(1)>');
  assert.equal(by.state, '处理中');
  assert.equal(by.building, 'B1 · 3层');
  assert.match(by.flags, /已超时/);
  assert.match(by.flags, /曾超时/);
  assert.equal(by.priority, '紧急');
  assert.equal(by.source, '热线');
  assert.match(by.deadline, /-1\.5 h/);
});

test('statistics as charts and the on-time rate', () => {
  setLang('zh');
  const stats = {
    by_state: { closed: 3, handling: 2, filed: 0 },
    by_department: { water: { open: 2, closed: 3 }, '': { open: 1, closed: 0 } },
    closed: 4,
    on_time: 3,
    on_time_rate: 0.75,
    mean_hours_by_subcategory: [
      { subcategory: 'SJ0102', name: '暴露垃圾', hours: 2.5 },
      { subcategory: 'SJ0109', name: '空气污染', hours: 9 },
    ],
  };
  const o = statsOptions(stats);
  assert.deepEqual(o.states.xAxis.data, ['结案', '处理中'], 'states without cases are left out');
  assert.deepEqual(o.states.series[0].data.map((d) => d.value), [3, 2]);
  assert.equal(o.states.series[0].data[0].itemStyle.color, STATE_COLORS.closed);
  assert.deepEqual(o.departments.xAxis.data, ['water', '未分派']);
  assert.deepEqual(o.departments.series.map((s) => s.data), [[2, 1], [3, 0]]);
  assert.deepEqual(o.hours.yAxis.data, ['空气污染', '暴露垃圾'], 'longest first');
  assert.equal(onTimeText(stats), '75%（3/4）');
  assert.equal(onTimeText({ closed: 0, on_time_rate: null }), '—');
});

test('a list that finishes loading keeps the deltas that arrived while it loaded', () => {
  const f = defaultFilter();
  const at = (/** @type {number} */ id, /** @type {string} */ state, /** @type {number} */ version) => ({ kind: 'event', id, state, subcategory: 'SJ0102', lon: 113, lat: 40, version });
  // the list was read at versions 3 (case 1) and 5 (case 2); case 3 is not in it yet
  const loaded = new Map([
    [1, markerOf({ ...at(1, 'filed', 3), subcategory_name: '暴露垃圾' })],
    [2, markerOf(at(2, 'handling', 5))],
  ]);
  const during = [at(1, 'dispatched', 4), at(2, 'filed', 4), at(2, 'handling', 5), at(3, 'reported', 1)];
  const merged = mergeLoaded(loaded, during, f);
  assert.equal(merged, loaded);
  assert.equal(merged.get(1)?.state, 'dispatched', 'a newer delta wins over the list');
  assert.equal(merged.get(1)?.version, 4);
  assert.equal(merged.get(1)?.name, '暴露垃圾');
  assert.equal(merged.get(2)?.state, 'handling', 'older or equal deltas do not undo the list');
  assert.equal(merged.get(3)?.state, 'reported', 'a case created while loading is added');
  mergeLoaded(merged, [at(1, 'closed', 6)], f);
  assert.ok(!merged.has(1), 'a delta that leaves the filter removes the case');
});

test('only a snapshot marked resync reloads the list', () => {
  assert.equal(isResync('{"resync":true,"seq":1,"streams":[]}'), true);
  assert.equal(isResync('{"resync":false,"seq":1,"streams":[]}'), false);
  assert.equal(isResync('{"seq":1}'), false);
  assert.equal(isResync('not json'), false);
});

const SENSOR_CATEGORIES = {
  categories: [
    { code: 'BJ01', subcategories: [{ code: 'BJ0101', sensor: ['manhole', '井盖'] }, { code: 'BJ0110', sensor: ['gas', '燃气'] }] },
    { code: 'SJ04', subcategories: [{ code: 'SJ0401', sensor: [] }, { code: 'SJ0405', sensor: ['water level', '水位'] }] },
  ],
  sensor_default: 'SJ0499',
};

test('a sensor alarm files its case in the subcategory its property names, as the server does', () => {
  assert.equal(sensorSubcategory('河道水位', SENSOR_CATEGORIES), 'SJ0405');
  assert.equal(sensorSubcategory('Water Level (m)', SENSOR_CATEGORIES), 'SJ0405', 'case-insensitive');
  assert.equal(sensorSubcategory('管廊燃气浓度', SENSOR_CATEGORIES), 'BJ0110');
  assert.equal(sensorSubcategory('噪声', SENSOR_CATEGORIES), 'SJ0499', 'no keyword: the table default');
  assert.equal(sensorSubcategory(null, { categories: [] }), null, 'no default: none');
});

test('the report form from an alarm carries the place, category, reading and datastream', () => {
  const entry = { ds: 42, name: '1号井', prop: '井盖位移', unit: 'mm', value: 12.5, lon: 112.5, lat: 37.8, time: Date.UTC(2026, 10, 28, 8, 0, 0) };
  const p = alarmPrefill(entry, SENSOR_CATEGORIES);
  assert.equal(p.datastream, 42);
  assert.equal(p.subcategory, 'BJ0101');
  assert.equal(p.source, 'sensor');
  assert.equal(p.priority, 'high');
  assert.deepEqual([p.lon, p.lat], [112.5, 37.8]);
  assert.equal(p.description, '1号井: 井盖位移 = 12.5 mm (告警 2026-11-28T08:00:00.000Z)');
  const placeless = alarmPrefill({ ds: 7, prop: '水位', value: 3, lon: null, lat: undefined }, SENSOR_CATEGORIES, (v) => `<${v}>`);
  assert.equal(placeless.lon, null, 'a sensor without a place is placed by a click');
  assert.equal(placeless.lat, null);
  assert.equal(placeless.description, '#7: 水位 = <3> (告警)', 'the reading as the sensors layer writes it');
});

test('a re-read redraws only the cases whose place, state or overdue flag changed', () => {
  const e = { id: 1, state: 'filed', overdue: false, lon: 112.5, lat: 37.8, h: 3, version: 2, name: 'x' };
  assert.equal(markerChanged(undefined, e), true, 'not drawn yet');
  assert.equal(markerChanged({ ...e }, { ...e, version: 3, name: 'y' }), false);
  for (const change of [{ state: 'dispatched' }, { overdue: true }, { lon: 112.6 }, { lat: 37.9 }, { h: 4 }]) {
    assert.equal(markerChanged(e, { ...e, ...change }), true, JSON.stringify(change));
  }
});

test('a row of /api/events/markers reads like a list item', () => {
  const columns = ['id', 'state', 'department', 'subcategory', 'lon', 'lat', 'h', 'version', 'overdue', 'approaching'];
  const row = [7, 'handling', 'water', 'SJ0102', 112.5, 37.8, 3.5, 4, true, false];
  const item = { id: 7, state: 'handling', department: 'water', subcategory: 'SJ0102', location: { lon: 112.5, lat: 37.8, h: 3.5 }, version: 4, overdue: true, approaching: false };
  assert.deepEqual({ ...markerOfRow(row, columns), name: '' }, { ...markerOf(item), name: '' });
  assert.equal(markerOfRow([...row].reverse(), [...columns].reverse()).id, 7, 'by column name, not position');
  assert.equal(markerOfRow([8, 'filed', null, 'SJ0102', null, null, null, 1, false, false], columns).lon, null);
});
