// @ts-check
// The sensor panel (right slot, through the panel manager): a datastream's metadata as
// text only (textContent), and a live history chart (Apache ECharts, vendored and
// loaded on first use from vendor/echarts/) extended by the readings that arrive.

import { t } from '../i18n.js';
import { formatLonLat } from '../format.js';
import { el, fetchJson } from '../util.js';
import { formatReading, loadScript, stateColor } from '../layers/sensors.js';
import { POINTS, WINDOW_MS, chartOption, mergeReading, seriesFromHistory } from './sensorchart.js';

export const PANEL_ID = 'sensor';

/** The ECharts build served locally (line charts, time axes; ~170 kB gzipped). */
export const ECHARTS_SRC = 'vendor/echarts/echarts.simple.min.js';

/** Live readings redraw the chart at most once per this many ms (a redraw costs ~10–50 ms). */
const REDRAW_MS = 1000;

/**
 * @param {string} label
 * @param {string} value
 * @param {string} key
 */
function row(label, value, key) {
  return el('tr', {}, [el('th', { text: label, attrs: { scope: 'row' } }), el('td', { text: value, attrs: { 'data-key': key } })]);
}

/** @param {number | null | undefined} ms */
function formatTime(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toLocaleString();
}

export class SensorPanel {
  /**
   * @param {import('../core/panels.js').PanelManager} panels
   * @param {import('../core/bus.js').Bus} bus
   * @param {any} layer the sensors layer (for the latest entries)
   */
  constructor(panels, bus, layer) {
    this.panels = panels;
    this.bus = bus;
    this.layer = layer;
    /** @type {number | null} the datastream shown */
    this.ds = null;
    /** @type {any} */
    this.entry = null;
    /** @type {import('./sensorchart.js').Series | null} */
    this.series = null;
    /** @type {any} the ECharts instance */
    this.chart = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.redrawTimer = undefined;
    this.title = el('h2', { attrs: { id: 'sensorTitle' } });
    const close = el('button', { text: '×', attrs: { id: 'sensorClose', type: 'button', 'aria-label': 'close' } });
    close.addEventListener('click', () => this.close());
    this.body = el('tbody');
    this.chartBox = el('div', { attrs: { id: 'sensorChart' } });
    this.note = el('p', { cls: 'note', attrs: { id: 'sensorChartNote' } });
    this.element = el('aside', { attrs: { id: 'sensorPanel', 'aria-live': 'polite' } }, [
      el('header', {}, [this.title, close]),
      el('table', { attrs: { id: 'sensorTable' } }, [this.body]),
      el('h3', { text: t('sensorHistory'), attrs: { id: 'sensorHistoryTitle' } }),
      this.chartBox,
      this.note,
    ]);
    document.body.append(this.element);
    panels.register(PANEL_ID, {
      slot: 'right',
      element: this.element,
      onClose: () => this.closed(),
    });
  }

  /**
   * Show a datastream (opens the panel) and load its history.
   * @param {any} entry
   */
  show(entry) {
    const same = this.ds === entry.ds;
    this.ds = entry.ds;
    this.entry = entry;
    this.fill();
    this.panels.open(PANEL_ID);
    if (!same) {
      this.series = null;
      this.element.dataset.points = '0';
      this.loadHistory(entry.ds);
    }
  }

  /** Fill the title and the metadata table (text only). */
  fill() {
    const e = this.entry;
    if (!e) return;
    this.title.textContent = e.name || `${t('sensorId')} ${e.ds}`;
    const thresholds = Object.entries(e.thresholds || {})
      .map(([k, v]) => `${t(`sensorThreshold_${k}`)} ${v}`)
      .join('，');
    const state = e.state || 'none';
    const rows = [
      row(t('sensorId'), String(e.ds), 'ds'),
      row(t('sensorValue'), formatReading(e.value, e.unit), 'value'),
      row(t('sensorState'), t(`sensorState_${state}`), 'state'),
      row(t('sensorTime'), formatTime(e.time), 'time'),
      row(t('sensorProperty'), e.prop || '—', 'prop'),
      row(t('sensorDepartment'), e.dept || '—', 'dept'),
      row(t('coordinates'), Number.isFinite(e.lon) && Number.isFinite(e.lat) ? formatLonLat(e.lon, e.lat) : '—', 'place'),
    ];
    if (thresholds) rows.push(row(t('sensorThresholds'), thresholds, 'thresholds'));
    if (e.staleAfter) rows.push(row(t('sensorStaleAfter'), `${e.staleAfter} s`, 'staleAfter'));
    this.body.replaceChildren(...rows);
    const swatch = this.body.querySelector('td[data-key="state"]');
    if (swatch) /** @type {HTMLElement} */ (swatch).style.color = stateColor(e.state);
    this.element.dataset.state = state;
  }

  /** @param {number} ds */
  async loadHistory(ds) {
    const now = Date.now();
    const url = `api/live/history?datastream=${ds}&from=${now - WINDOW_MS}&to=${now + 60000}&points=${POINTS}`;
    this.note.textContent = t('loading');
    try {
      const [json] = await Promise.all([fetchJson(url), loadScript(ECHARTS_SRC)]);
      if (this.ds !== ds) return; // another sensor was opened meanwhile
      this.series = seriesFromHistory(json);
      // readings that arrived while the history loaded
      if (this.entry?.time) mergeReading(this.series, this.entry.time, this.entry.value);
      this.note.textContent = this.series.points.length ? '' : t('sensorNoData');
      this.draw();
    } catch (err) {
      if (this.ds !== ds) return;
      console.warn('sensor history failed', err);
      const status = /** @type {any} */ (err).status;
      this.note.textContent = status ? `${t('sensorChartFailed')} (${t('httpError')} ${status})` : t('sensorChartFailed');
    }
  }

  draw() {
    const echarts = /** @type {any} */ (window).echarts;
    if (!this.series || !echarts || this.element.hidden) return;
    if (!this.chart) this.chart = echarts.init(this.chartBox, null, { renderer: 'canvas' });
    const e = this.entry || {};
    this.chart.setOption(
      chartOption(this.series, { mean: t('sensorMean'), min: t('sensorMin'), max: t('sensorMax'), unit: e.unit }),
      true,
    );
    this.element.dataset.points = String(this.series.points.length);
  }

  /**
   * A new reading or state of the shown datastream.
   * @param {any} entry
   */
  update(entry) {
    if (entry.ds !== this.ds) return;
    const fresh = entry.time !== this.entry?.time;
    this.entry = entry;
    this.fill();
    if (!this.series || !fresh || entry.time === null || entry.time === undefined) return;
    mergeReading(this.series, entry.time, entry.value);
    if (this.redrawTimer === undefined) {
      this.redrawTimer = setTimeout(() => {
        this.redrawTimer = undefined;
        this.draw();
      }, REDRAW_MS);
    }
  }

  close() {
    this.panels.close(PANEL_ID);
  }

  /** After the panel closed: forget the datastream, free the chart. */
  closed() {
    this.ds = null;
    this.entry = null;
    this.series = null;
    clearTimeout(this.redrawTimer);
    this.redrawTimer = undefined;
    this.chart?.dispose();
    this.chart = null;
  }

  /** Re-label after a language switch. */
  refresh() {
    const head = this.element.querySelector('#sensorHistoryTitle');
    if (head) head.textContent = t('sensorHistory');
    if (this.ds !== null) {
      this.fill();
      this.draw();
    }
  }
}
