// @ts-check
// Rendering resolution: full device resolution by default (every device pixel drawn,
// also on a 1920 wall without a GPU); "performance mode" draws at half resolution and
// keeps the same tiles by scaling the screen-space errors with it.

import { t } from '../i18n.js';

const KEY = 'cim.performance';

/** Globe screen-space error at full resolution (Cesium's default). */
const GLOBE_SSE = 2;

/**
 * Resolution scale for a mode.
 * @param {boolean} performance
 */
export function resolutionScale(performance) {
  return performance ? 0.5 : 1;
}

/**
 * Apply a mode to a viewer and the building tilesets.
 * @param {any} viewer the Cesium viewer (or anything with the same fields)
 * @param {boolean} performance
 * @param {{tileset: any, sse: number}[]} tilesets each with its full-resolution error
 */
export function applyResolution(viewer, performance, tilesets) {
  const scale = resolutionScale(performance);
  viewer.useBrowserRecommendedResolution = false;
  viewer.resolutionScale = scale;
  // errors are measured in drawing-buffer pixels: scale them so the same tiles load
  viewer.scene.globe.maximumScreenSpaceError = GLOBE_SSE * scale;
  for (const { tileset, sse } of tilesets) tileset.maximumScreenSpaceError = sse * scale;
  viewer.scene.requestRender();
  if (typeof document !== 'undefined') document.documentElement.dataset.performance = performance ? 'on' : 'off';
}

/** The saved mode (off unless the user switched it on). */
export function savedPerformance() {
  try {
    return globalThis.localStorage?.getItem(KEY) === 'on';
  } catch {
    return false;
  }
}

/**
 * Wire the performance-mode checkbox.
 * @param {any} viewer
 * @param {() => {tileset: any, sse: number}[]} tilesets
 * @param {() => void} [before] called before the mode is applied (puts back the full
 *   quality an interactive frame lowered, so it is not restored over the new mode)
 * @returns {(on: boolean) => void} set the mode
 */
export function mountDisplay(viewer, tilesets, before = () => {}) {
  const box = /** @type {HTMLInputElement} */ (document.getElementById('perfMode'));
  const set = (/** @type {boolean} */ on) => {
    box.checked = on;
    before();
    applyResolution(viewer, on, tilesets());
    try {
      globalThis.localStorage?.setItem(KEY, on ? 'on' : 'off');
    } catch {
      // storage disabled: the mode lasts for this page
    }
  };
  box.title = t('performanceHint');
  box.addEventListener('change', () => set(box.checked));
  set(savedPerformance());
  return set;
}
