// @ts-check
// 日照: the shadows of the buildings and the terrain at a date and a time of day (a
// date field and a time slider; local time of the city's time zone). Shadows are on
// only while the tool is open (a shadow map costs a pass per frame); closing it puts
// the fixed daylight of the view back.

import { t } from '../i18n.js';
import { el } from '../util.js';
import { clockText, localToUtcIso, sunPosition } from './geo.js';
import { row, slider, toolPanel } from './common.js';

/**
 * The city's time zone offset in hours: China Standard Time (UTC+8) inside China's
 * longitudes, else the nearest hour of the longitude (the manifest carries no zone).
 * @param {any} manifest
 */
export function utcOffset(manifest) {
  const lon = Number(manifest?.centre?.[0]);
  if (!Number.isFinite(lon)) return 8;
  return lon >= 73 && lon <= 135 ? 8 : Math.round(lon / 15);
}

/** @param {import('./common.js').ToolContext} ctx */
export function create(ctx) {
  const Cesium = window.Cesium;
  const { viewer, registry, tree, manifest, interactive } = ctx;
  const today = new Date();
  const dateIn = /** @type {HTMLInputElement} */ (el('input', { attrs: { id: 'sunDate', type: 'date' } }));
  dateIn.value = `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, '0')}-${String(today.getDate()).padStart(2, '0')}`;
  const timeIn = slider('sunTime', 0, 24 * 60 - 10, 10, 10 * 60);
  const clock = el('output', { attrs: { id: 'sunClock', for: 'sunTime' } });
  const info = el('p', { cls: 'result', attrs: { id: 'sunInfo' } });
  const offset = utcOffset(manifest);
  const [lon = 0, lat = 0] = manifest?.centre || [];
  /** @type {any} */
  let savedTime = null;
  const state = { iso: '', altitude: 0, azimuth: 0, on: false };

  const tilesets = () => [...tree.layers.values()].filter((l) => l.kind === 'buildings' && l.object).map((l) => l.object);
  // the other tilesets (the pipelines under the ground) neither cast nor receive the sun's
  // shadows: a pass of theirs for nothing, and programs of their own to compile
  const others = () => [...tree.layers.values()].filter((l) => l.kind !== 'buildings' && l.object && 'shadows' in l.object).map((l) => l.object);
  /** @type {Map<any, any>} the other tilesets' shadow modes while the sun's shadows are on */
  const othersSaved = new Map();

  const describe = () => {
    const zone = `${t('sunZone')} UTC${offset >= 0 ? '+' : ''}${offset}`;
    clock.textContent = `${clockText(Number(timeIn.value))} (${zone})`;
    info.textContent =
      state.altitude > 0
        ? `${t('sunAltitude')} ${state.altitude.toFixed(1)}° · ${t('sunAzimuth')} ${state.azimuth.toFixed(1)}°`
        : t('sunBelowHorizon');
  };

  const apply = registry.timed('shadows', 'time', () => {
    if (!dateIn.value) return;
    state.iso = localToUtcIso(dateIn.value, Number(timeIn.value), offset);
    Object.assign(state, sunPosition(state.iso, lon, lat));
    viewer.clock.currentTime = Cesium.JulianDate.fromIso8601(state.iso);
    describe();
    viewer.scene.requestRender();
  });
  dateIn.addEventListener('change', apply);
  timeIn.addEventListener('input', apply);

  const element = toolPanel(
    'shadows',
    'toolShadows',
    [row('sunDateLabel', dateIn), row('sunTimeLabel', timeIn), clock, info],
    () => registry.deactivate(),
  );

  const setShadows = (/** @type {boolean} */ on) => {
    const mode = on ? Cesium.ShadowMode.ENABLED : Cesium.ShadowMode.DISABLED;
    viewer.shadows = on;
    viewer.terrainShadows = mode;
    for (const ts of tilesets()) ts.shadows = mode;
    if (on) {
      for (const ts of others()) {
        if (!othersSaved.has(ts)) othersSaved.set(ts, ts.shadows);
        ts.shadows = Cesium.ShadowMode.DISABLED;
      }
    } else {
      for (const [ts, saved] of othersSaved) ts.shadows = saved;
      othersSaved.clear();
    }
    if (on) {
      const map = viewer.scene.shadowMap;
      map.softShadows = false;
      map.size = 2048;
      map.maximumDistance = 4000;
      map.darkness = 0.45;
    }
    state.on = on;
  };

  // the one-cascade shadow map that the interactive frames swap in at their low levels
  // (interactive.js), switched on for the warm-up so that its programs are compiled too
  /** @type {any} */
  let fullMap = null;
  const previewOn = () => {
    setShadows(true);
    if (!interactive) return;
    fullMap = viewer.scene.shadowMap;
    const map = interactive.shadowPreview(fullMap);
    map.size = Math.max(256, Math.round(fullMap.size / 4));
    map.enabled = true;
    viewer.scene.shadowMap = map;
  };
  const previewOff = () => {
    if (fullMap) {
      viewer.scene.shadowMap.enabled = false;
      viewer.scene.shadowMap = fullMap;
      fullMap = null;
    }
    setShadows(false);
  };

  return {
    id: 'shadows',
    labelKey: 'toolShadows',
    element,
    activate() {
      savedTime = viewer.clock.currentTime.clone();
      setShadows(true);
      apply();
    },
    deactivate() {
      setShadows(false);
      if (savedTime) viewer.clock.currentTime = savedTime;
      viewer.scene.requestRender();
    },
    relabel: describe,
    api: { state, apply, others },
    // the shadow map's passes and every layer's shadowed shaders, compiled after load
    // (warm.js): at the view's own time, so the sun is up as the page shows it; and those
    // of the interactive frames' one-cascade map
    warmUps: () => [
      { name: 'shadows', on: () => setShadows(true), off: () => setShadows(false) },
      ...(interactive ? [{ name: 'shadows preview', on: previewOn, off: previewOff }] : []),
    ],
  };
}
