// @ts-check
// The 综合评价 of events (bottom slot): counts by state and by department (open and
// closed), the on-time rate and the average handling time per category, over the last
// 7, 30 or 90 days (GET /api/events/stats), as bar charts (Apache ECharts, vendored,
// loaded on first use). The figures are also in a text table, which is what shows when
// ECharts cannot load.

import { t } from '../i18n.js';
import { el } from '../util.js';
import { loadScript } from '../layers/sensors.js';
import { api, stateColor } from '../layers/events.js';
import { stateName } from './event.js';

export const PANEL_ID = 'eventStats';
/** The ECharts build the sensor panel loads too (bar charts included). */
export const ECHARTS_SRC = 'vendor/echarts/echarts.simple.min.js';

/**
 * The chart options of a stats answer (pure: tested under node).
 * @param {any} stats /api/events/stats
 * @returns {{states: any, departments: any, hours: any}}
 */
export function statsOptions(stats) {
  const byState = Object.entries(stats?.by_state || {}).filter(([, n]) => Number(n) > 0);
  const depts = Object.entries(stats?.by_department || {});
  const hours = (stats?.mean_hours_by_subcategory || []).slice().sort((/** @type {any} */ a, /** @type {any} */ b) => b.hours - a.hours).slice(0, 12);
  const grid = { left: 8, right: 16, top: 28, bottom: 8, containLabel: true };
  const text = { color: '#c8d3de' };
  return {
    states: {
      animation: false,
      title: { text: t('evStatsByState'), textStyle: { ...text, fontSize: 13 } },
      grid,
      xAxis: { type: 'category', data: byState.map(([s]) => stateName(s)), axisLabel: { ...text, interval: 0, rotate: 30 } },
      yAxis: { type: 'value', minInterval: 1, axisLabel: text },
      series: [
        {
          type: 'bar',
          data: byState.map(([s, n]) => ({ value: Number(n), itemStyle: { color: stateColor(s) } })),
        },
      ],
    },
    departments: {
      animation: false,
      title: { text: t('evStatsByDepartment'), textStyle: { ...text, fontSize: 13 } },
      legend: { right: 0, textStyle: text },
      grid,
      xAxis: { type: 'category', data: depts.map(([d]) => d || t('evUnassigned')), axisLabel: { ...text, interval: 0 } },
      yAxis: { type: 'value', minInterval: 1, axisLabel: text },
      series: [
        { name: t('evStatsOpen'), type: 'bar', stack: 'n', data: depts.map(([, v]) => Number(/** @type {any} */ (v).open) || 0), itemStyle: { color: '#f5b041' } },
        { name: t('evStatsClosed'), type: 'bar', stack: 'n', data: depts.map(([, v]) => Number(/** @type {any} */ (v).closed) || 0), itemStyle: { color: '#2ecc71' } },
      ],
    },
    hours: {
      animation: false,
      title: { text: t('evStatsHours'), textStyle: { ...text, fontSize: 13 } },
      grid,
      xAxis: { type: 'value', axisLabel: text, name: 'h' },
      yAxis: { type: 'category', data: hours.map((/** @type {any} */ h) => h.name), axisLabel: text, inverse: true },
      series: [{ type: 'bar', data: hours.map((/** @type {any} */ h) => h.hours), itemStyle: { color: '#5dade2' } }],
    },
  };
}

/**
 * The on-time rate as text ('—' without closed cases).
 * @param {any} stats
 */
export function onTimeText(stats) {
  const rate = stats?.on_time_rate;
  if (rate === null || rate === undefined) return '—';
  return `${Math.round(Number(rate) * 1000) / 10}%（${stats.on_time}/${stats.closed}）`;
}

/** @type {StatsPanel | null} */
let panel = null;

/**
 * Open the statistics view.
 * @param {any} panels the panel manager
 * @param {any} layer the events layer
 */
export function openStats(panels, layer) {
  if (!panels) return null;
  if (!panel) panel = new StatsPanel(panels, layer);
  panel.open();
  return panel;
}

class StatsPanel {
  /**
   * @param {any} panels
   * @param {any} layer
   */
  constructor(panels, layer) {
    this.panels = panels;
    this.layer = layer;
    /** @type {any[]} */
    this.charts = [];
    this.title = el('h2', { text: t('evStats') });
    this.range = /** @type {HTMLSelectElement} */ (el('select', { attrs: { id: 'evStatsRange' } }));
    for (const d of [7, 30, 90]) this.range.append(el('option', { text: `${d} ${t('evDays')}`, attrs: { value: String(d) } }));
    this.range.value = '30';
    this.range.addEventListener('change', () => this.load());
    const close = el('button', { text: '×', attrs: { id: 'evStatsClose', type: 'button', 'aria-label': 'close' } });
    close.addEventListener('click', () => panels.close(PANEL_ID));
    this.summary = el('p', { attrs: { id: 'evStatsSummary' } });
    this.boxes = [0, 1, 2].map((i) => el('div', { cls: 'ev-chart', attrs: { id: `evChart${i}` } }));
    this.table = el('tbody');
    this.element = el('aside', { attrs: { id: 'evStatsPanel' } }, [
      el('header', {}, [this.title, this.range, close]),
      this.summary,
      el('div', { cls: 'ev-charts' }, this.boxes),
      el('details', {}, [el('summary', { text: t('evStatsTable') }), el('table', {}, [this.table])]),
    ]);
    document.body.append(this.element);
    panels.register(PANEL_ID, { slot: 'bottom', element: this.element });
  }

  open() {
    this.panels.open(PANEL_ID);
    this.load();
  }

  async load() {
    const days = Number(this.range.value) || 30;
    const to = new Date();
    const from = new Date(to.getTime() - days * 86400_000);
    let stats;
    try {
      stats = await api(`api/events/stats?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`);
    } catch (err) {
      this.summary.textContent = `${t('evLoadFailed')} (${/** @type {any} */ (err).status || t('disconnected')})`;
      return;
    }
    this.stats = stats;
    this.summary.textContent = `${t('evStatsClosed')} ${stats.closed ?? 0}；${t('evOnTimeRate')} ${onTimeText(stats)}`;
    this.element.dataset.closed = String(stats.closed ?? 0);
    this.table.replaceChildren(
      ...Object.entries(stats.by_state || {}).map(([s, n]) => el('tr', {}, [el('th', { text: stateName(s) }), el('td', { text: String(n) })])),
      ...(stats.mean_hours_by_subcategory || []).map((/** @type {any} */ h) =>
        el('tr', {}, [el('th', { text: `${h.name} ${t('evStatsHoursShort')}` }), el('td', { text: `${h.hours} h` })]),
      ),
    );
    try {
      await loadScript(ECHARTS_SRC);
    } catch {
      return; // the table shows the figures
    }
    const echarts = /** @type {any} */ (window).echarts;
    if (!echarts) return;
    const options = statsOptions(stats);
    const list = [options.states, options.departments, options.hours];
    this.boxes.forEach((box, i) => {
      if (!this.charts[i]) this.charts[i] = echarts.init(box, null, { renderer: 'canvas' });
      this.charts[i].setOption(list[i], true);
      this.charts[i].resize();
    });
    this.element.dataset.charts = String(this.charts.length);
  }
}
