// @ts-check
// The sensor panel's chart data, without the chart library: the history from
// /api/live/history (buckets of min, max, mean, count), extended by live readings into
// the same epoch-aligned buckets, and the ECharts option drawn from it. Pure: the unit
// tests run it under node.

/** How much history the panel shows (ms). */
export const WINDOW_MS = 60 * 60 * 1000;

/** Buckets asked for over the window. */
export const POINTS = 120;

/**
 * @typedef {object} Series
 * @property {number} step bucket size, ms
 * @property {number} windowMs buckets older than the newest minus this are dropped
 * @property {number[][]} points [time, min, max, mean, count] per bucket, oldest first
 */

/**
 * A series from the history endpoint's answer.
 * @param {{bucket: number, points: number[][]}} json
 * @param {number} [windowMs]
 * @returns {Series}
 */
export function seriesFromHistory(json, windowMs = WINDOW_MS) {
  const step = Math.max(1, Number(json.bucket) || 1);
  return { step, windowMs, points: (json.points || []).map((p) => p.slice(0, 5)) };
}

/**
 * A number for the chart, or null (text and objects are not charted).
 * @param {unknown} value
 */
export function numeric(value) {
  if (typeof value === 'boolean') return value ? 1 : 0;
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/**
 * Add one live reading to its bucket (a new bucket at the end, or the one it falls in),
 * then drop buckets that left the window. Mutates and returns the series.
 * @param {Series} series
 * @param {number} time ms since the epoch
 * @param {unknown} value
 * @returns {Series}
 */
export function mergeReading(series, time, value) {
  const v = numeric(value);
  if (v === null || !Number.isFinite(time)) return series;
  const start = Math.floor(time / series.step) * series.step;
  const pts = series.points;
  let i = pts.length - 1;
  while (i >= 0 && pts[i][0] > start) i -= 1;
  if (i >= 0 && pts[i][0] === start) {
    const p = pts[i];
    const n = p[4] + 1;
    p[1] = Math.min(p[1], v);
    p[2] = Math.max(p[2], v);
    p[3] = p[3] + (v - p[3]) / n;
    p[4] = n;
  } else {
    pts.splice(i + 1, 0, [start, v, v, v, 1]);
  }
  const newest = pts[pts.length - 1][0];
  let drop = 0;
  while (drop < pts.length && pts[drop][0] < newest - series.windowMs) drop += 1;
  if (drop) pts.splice(0, drop);
  return series;
}

/**
 * The ECharts option of a series: the mean as a line, min and max as thin dashed lines.
 * @param {Series} series
 * @param {{mean: string, min: string, max: string, unit?: string | null}} labels
 */
export function chartOption(series, labels) {
  const line = (/** @type {string} */ name, /** @type {number} */ col, /** @type {any} */ style) => ({
    name,
    type: 'line',
    showSymbol: series.points.length < 3,
    animation: false,
    data: series.points.map((p) => [p[0], p[col]]),
    lineStyle: style,
  });
  return {
    animation: false,
    grid: { left: 44, right: 12, top: 26, bottom: 24 },
    textStyle: { color: '#c8d3de' },
    xAxis: { type: 'time', axisLabel: { color: '#9fb0c0', hideOverlap: true } },
    yAxis: {
      type: 'value',
      scale: true,
      name: labels.unit || '',
      axisLabel: { color: '#9fb0c0' },
      splitLine: { lineStyle: { color: 'rgba(255,255,255,0.08)' } },
    },
    series: [
      line(labels.mean, 3, { width: 2, color: '#4fc3f7' }),
      line(labels.min, 1, { width: 1, type: 'dashed', color: '#2ecc71' }),
      line(labels.max, 2, { width: 1, type: 'dashed', color: '#e74c3c' }),
    ],
  };
}
