// @ts-check
// The statistics of a building query (api/buildings/query) or of the whole city
// (api/buildings/stats): counts, footprint and floor area, heights, by use, by roof type
// (codes shown by name) and a height histogram. Text only (textContent).

import { codeName, t } from '../i18n.js';
import { el, fetchJson } from '../util.js';

/**
 * A number with thousands separators and at most `digits` decimals.
 * @param {number | null | undefined} value
 * @param {number} [digits]
 */
export function formatNumber(value, digits = 0) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return '–';
  return Number(value).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/**
 * The summary rows of a statistics object: [label key, text].
 * @param {any} stats
 * @returns {[string, string][]}
 */
export function summaryRows(stats) {
  const h = stats?.height || {};
  return [
    ['queryCount', formatNumber(stats?.count)],
    ['queryArea', `${formatNumber(stats?.area)} ${t('unitM2')}`],
    ['queryFloorArea', `${formatNumber(stats?.floor_area)} ${t('unitM2')}`],
    ['queryHeight', `${formatNumber(h.min, 1)} / ${formatNumber(h.mean, 1)} / ${formatNumber(h.max, 1)} ${t('unitM')}`],
  ];
}

/**
 * Rows of a grouping (by use, by roof type): [name, count, floor area], names by code.
 * @param {Record<string, {count: number, area: number, floor_area: number}>} groups
 * @param {string} field 'use' or 'roof_type'
 * @returns {[string, string, string][]}
 */
export function groupRows(groups, field) {
  return Object.entries(groups || {}).map(([code, g]) => [
    code ? codeName(field, code) : t('queryUnknown'),
    formatNumber(g.count),
    `${formatNumber(g.floor_area)} ${t('unitM2')}`,
  ]);
}

/**
 * Labels and counts of the height histogram.
 * @param {{min: number, max: number | null, count: number}[]} bins
 * @returns {{label: string, count: number, share: number}[]}
 */
export function histogramRows(bins) {
  const total = (bins || []).reduce((a, b) => a + b.count, 0) || 1;
  return (bins || []).map((b) => ({
    label: b.max === null ? `≥ ${b.min} ${t('unitM')}` : `${b.min}–${b.max} ${t('unitM')}`,
    count: b.count,
    share: b.count / total,
  }));
}

/**
 * Fill a container with the statistics.
 * @param {HTMLElement} box
 * @param {any} stats
 * @param {string} titleKey 'querySelection' or 'queryCityTitle'
 */
export function renderStats(box, stats, titleKey) {
  const table = (/** @type {string[][]} */ rows) =>
    el(
      'table',
      { cls: 'stats' },
      rows.map((r) => el('tr', {}, r.map((c) => el('td', { text: c })))),
    );
  const bars = histogramRows(stats?.height_histogram).map((r) =>
    el('div', { cls: 'bar' }, [
      el('span', { cls: 'barLabel', text: r.label }),
      el('span', { cls: 'barFill', attrs: { style: `width:${Math.round(r.share * 100)}%` } }),
      el('span', { cls: 'barCount', text: formatNumber(r.count) }),
    ]),
  );
  box.replaceChildren(
    el('h3', { text: t(titleKey) }),
    table(summaryRows(stats).map(([k, v]) => [t(k), v])),
    el('h3', { text: t('queryByUse') }),
    table(groupRows(stats?.by_use, 'use')),
    el('h3', { text: t('queryByRoof') }),
    table(groupRows(stats?.by_roof_type, 'roof_type')),
    el('h3', { text: t('queryHistogram') }),
    el('div', { cls: 'histogram' }, bars),
  );
  box.dataset.count = String(stats?.count ?? '');
}

/**
 * Run a building query on the server.
 * @param {{polygon?: number[][] | null, conditions?: string, predicate?: string}} spec
 * @returns {Promise<{count: number, ids: string[], stats: any}>}
 */
export async function queryBuildings(spec) {
  /** @type {Record<string, any>} */
  const body = { predicate: spec.predicate || 'intersects' };
  if (spec.polygon && spec.polygon.length >= 3) body.polygon = [...spec.polygon, spec.polygon[0]];
  if (spec.conditions && spec.conditions.trim()) body.conditions = spec.conditions.trim();
  return fetchJson('api/buildings/query', {
    method: 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** The whole city's statistics. */
export async function cityStats() {
  return (await fetchJson('api/buildings/stats')).stats;
}
