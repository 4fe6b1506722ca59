// @ts-check
// The building theme selector (none / by height / by use) and its legend entries.

import { codeName, t } from '../i18n.js';
import { HEIGHT_CLASSES, useColor } from '../colors.js';

/**
 * Legend items of a theme. Uses come from the manifest (every use of the city, with
 * counts when the build gives them), else from the buildings loaded so far.
 * @param {string} theme
 * @param {{uses?: string[], use_counts?: Record<string, number>} | undefined} l2 the manifest's l2 entry
 * @param {Map<string, number>} loadedCounts
 * @returns {{color: string, label: string}[]}
 */
export function themeLegend(theme, l2, loadedCounts) {
  if (theme === 'height') return HEIGHT_CLASSES.map((c) => ({ color: c.color, label: `${c.label} ${t('metres')}` }));
  if (theme !== 'use') return [];
  const name = (/** @type {string} */ use) => (use ? codeName('use', use) : t('unknown'));
  const counts = l2?.use_counts;
  if (counts && typeof counts === 'object') {
    return Object.entries(counts)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([use, n]) => ({ color: useColor(use), label: `${name(use)} (${n})` }));
  }
  if (Array.isArray(l2?.uses) && l2.uses.length) {
    return l2.uses.slice(0, 12).map((use) => ({ color: useColor(use), label: name(use) }));
  }
  return [...loadedCounts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([use]) => ({ color: useColor(use), label: name(use) }));
}

/**
 * @param {import('../buildings.js').Buildings} buildings
 * @param {import('../core/legend.js').Legend} legend
 * @param {import('../core/bus.js').Bus} bus
 * @param {any} manifest
 * @returns {() => void} refresh (after a language switch)
 */
export function mountTheme(buildings, legend, bus, manifest) {
  const select = /** @type {HTMLSelectElement} */ (document.getElementById('themeSelect'));
  const l2 = manifest?.layers?.l2;
  const refresh = () => {
    select.value = buildings.theme;
    const items = themeLegend(buildings.theme, l2, buildings.loadedUseCounts());
    legend.set('buildings', { title: t(buildings.theme === 'use' ? 'themeUse' : 'themeHeight'), items });
  };
  select.addEventListener('change', () => buildings.setTheme(select.value));
  bus.on('buildings:theme', refresh);
  bus.on('buildings:loaded', () => {
    if (buildings.theme === 'use' && !l2?.uses && !l2?.use_counts) refresh();
  });
  refresh();
  return refresh;
}
