// @ts-check
// 坐标定位: the operator types coordinates in WGS84 or CGCS2000 degrees, or Gauss-Krüger
// metres (zone from the prefix or the city), or in the city's own CRS; the server converts
// them (api/locate, cim.crs) and the camera flies there, with a marker. A coordinate
// chosen in the search box (search:choose of type coordinate) gets the same marker.

import { t } from '../i18n.js';
import { bus } from '../core/bus.js';
import { el, fetchJson, toast } from '../util.js';
import { Sketch, button, row, select, toolPanel } from '../tools/common.js';

/**
 * The CRS choices: [value, label key]; the city's CRS is added by create().
 * @type {[string, string][]}
 */
export const CRS_CHOICES = [
  ['auto', 'locateAuto'],
  ['EPSG:4326', 'locateWgs84'],
  ['EPSG:4490', 'locateCgcs'],
  ['gk', 'locateGk'],
];

/**
 * The query string of api/locate for typed values ('gk' is detected like 'auto').
 * @param {string} x
 * @param {string} y
 * @param {string} crs
 * @returns {string | null} null when a value is not a number
 */
export function locateQuery(x, y, crs) {
  const clean = (/** @type {string} */ v) => v.trim().replace(/[,，]/g, '');
  const xs = clean(x);
  const ys = clean(y);
  if (!xs || !ys || !Number.isFinite(Number(xs)) || !Number.isFinite(Number(ys))) return null;
  return new URLSearchParams({ x: xs, y: ys, crs: crs === 'gk' ? 'auto' : crs }).toString();
}

/** @param {import('../tools/common.js').ToolContext} ctx */
export function create(ctx) {
  const Cesium = window.Cesium;
  const { viewer, registry, manifest } = ctx;
  const crs = select('locateCrs', CRS_CHOICES);
  const cityCrs = typeof manifest?.crs === 'string' ? manifest.crs : '';
  if (cityCrs && !CRS_CHOICES.some(([v]) => v === cityCrs)) {
    crs.append(el('option', { text: cityCrs, attrs: { value: cityCrs } }));
  }
  const x = /** @type {HTMLInputElement} */ (el('input', { attrs: { id: 'locateX', type: 'text', inputmode: 'decimal' } }));
  const y = /** @type {HTMLInputElement} */ (el('input', { attrs: { id: 'locateY', type: 'text', inputmode: 'decimal' } }));
  const out = el('p', { cls: 'result', attrs: { id: 'locateResult' } });
  /** @type {Sketch | null} */
  let marker = null;
  /** @type {{lon: number, lat: number, height: number, crs: string} | null} */
  let last = null;

  const mark = (/** @type {any} */ r) => {
    marker ||= new Sketch(viewer);
    marker.clear();
    const at = Cesium.Cartesian3.fromDegrees(Number(r.lon), Number(r.lat), Number(r.height) || 0);
    marker.point(at, Cesium.Color.fromCssColorString('#ff4d4f'), 14);
    marker.label(at, `${Number(r.lon).toFixed(6)}, ${Number(r.lat).toFixed(6)}`);
    viewer.scene.requestRender();
  };

  const go = async () => {
    const q = locateQuery(x.value, y.value, crs.value);
    if (!q) {
      toast(t('locateFailed'));
      return null;
    }
    try {
      const r = await fetchJson(`api/locate?${q}`);
      last = { lon: r.lon, lat: r.lat, height: r.height, crs: r.crs };
      out.textContent = `${t('locateResult')}: ${Number(r.lon).toFixed(6)}, ${Number(r.lat).toFixed(6)} (${r.crs})`;
      mark(r);
      window.cim?.flyToCandidate?.({ ...r, building_id: null, label: out.textContent });
      return r;
    } catch (err) {
      const status = /** @type {any} */ (err)?.status;
      out.textContent = '';
      toast(status === 400 ? t('locateFailed') : `${t('locateFailed')} (${t('httpError')} ${status || 0})`);
      return null;
    }
  };

  bus.on('search:choose', ({ result }) => {
    if (result?.type === 'coordinate') mark(result);
    else marker?.clear();
  });

  for (const input of [x, y]) {
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') go();
    });
  }
  const element = toolPanel(
    'locate',
    'toolLocate',
    [row('locateCrs', crs), row('locateX', x), row('locateY', y), button('locateGo', () => go(), { id: 'locateGo' }), out],
    () => registry.deactivate(),
  );
  return {
    id: 'locate',
    labelKey: 'toolLocate',
    element,
    activate() {
      x.focus();
    },
    deactivate() {
      marker?.clear();
      out.textContent = '';
    },
    api: {
      /**
       * @param {string | number} xv
       * @param {string | number} yv
       * @param {string} [crsValue]
       */
      locate(xv, yv, crsValue = 'auto') {
        x.value = String(xv);
        y.value = String(yv);
        crs.value = crsValue;
        return go();
      },
      last: () => last,
    },
  };
}
