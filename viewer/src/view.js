// @ts-check
// Camera: the home view framed on the city, camera bookmarks (localStorage) and the
// shareable URL hash (#v=lon,lat,height,heading,pitch,roll&b=building&theme=..&lang=..).

import { t, onLangChange } from './i18n.js';
import { el } from './util.js';

const Cesium = window.Cesium;
const { Math: CMath } = Cesium;

/**
 * The city's rectangle and centre from the manifest.
 * @param {any} manifest
 */
export function cityFrame(manifest) {
  const [west, south, east, north] = manifest.extent || [];
  const centre = manifest.centre || [];
  if ([west, south, east, north].every(Number.isFinite)) {
    return {
      rectangle: Cesium.Rectangle.fromDegrees(west, south, east, north),
      height: Number.isFinite(centre[2]) ? centre[2] : 0,
    };
  }
  if (Number.isFinite(centre[0]) && Number.isFinite(centre[1])) {
    const d = 0.02;
    return {
      rectangle: Cesium.Rectangle.fromDegrees(centre[0] - d, centre[1] - d, centre[0] + d, centre[1] + d),
      height: Number.isFinite(centre[2]) ? centre[2] : 0,
    };
  }
  return null;
}

/**
 * Oblique view of the whole city (heading north, 50° down).
 * @param {any} viewer
 * @param {any} manifest
 * @param {number} [duration]
 */
export function flyHome(viewer, manifest, duration = 1.5) {
  const frame = cityFrame(manifest);
  if (!frame) return;
  const sphere = Cesium.BoundingSphere.fromRectangle3D(frame.rectangle, Cesium.Ellipsoid.WGS84, frame.height);
  const radius = Math.max(sphere.radius, 150);
  const offset = new Cesium.HeadingPitchRange(0, CMath.toRadians(-50), radius * 2.2);
  viewer.camera.flyToBoundingSphere(new Cesium.BoundingSphere(sphere.center, radius), {
    offset,
    duration,
  });
  viewer.scene.requestRender();
}

/**
 * Current camera as [lon, lat, height, heading, pitch, roll] (degrees, metres).
 * @param {any} viewer
 * @returns {number[]}
 */
export function currentView(viewer) {
  const c = viewer.camera.positionCartographic;
  return [
    CMath.toDegrees(c.longitude),
    CMath.toDegrees(c.latitude),
    c.height,
    CMath.toDegrees(viewer.camera.heading),
    CMath.toDegrees(viewer.camera.pitch),
    CMath.toDegrees(viewer.camera.roll),
  ];
}

/**
 * Move the camera to a view from currentView (duration 0 = jump).
 * @param {any} viewer
 * @param {unknown} v
 * @param {number} [duration]
 */
export function applyView(viewer, v, duration = 1.2) {
  if (!Array.isArray(v) || v.length < 3 || !v.slice(0, 6).every(Number.isFinite)) return false;
  const [lon, lat, height, heading = 0, pitch = -45, roll = 0] = v;
  if (Math.abs(lon) > 180 || Math.abs(lat) > 90) return false;
  const options = {
    destination: Cesium.Cartesian3.fromDegrees(lon, lat, height),
    orientation: { heading: CMath.toRadians(heading), pitch: CMath.toRadians(pitch), roll: CMath.toRadians(roll) },
  };
  if (duration > 0) viewer.camera.flyTo({ ...options, duration });
  else viewer.camera.setView(options);
  viewer.scene.requestRender();
  return true;
}

/**
 * @typedef {{v?: number[], b?: string, theme?: string, lang?: string, off?: string[]}} HashState
 */

/**
 * Parse the URL hash into {v, b, theme, lang, off}.
 * @param {string} [hash]
 * @returns {HashState}
 */
export function parseHash(hash = window.location.hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  /** @type {HashState} */
  const out = {};
  const get = (/** @type {string} */ key) => params.get(key) || '';
  if (params.has('v')) out.v = get('v').split(',').map(Number);
  if (get('b')) out.b = get('b');
  if (get('theme')) out.theme = get('theme');
  if (get('lang')) out.lang = get('lang');
  if (params.has('off')) out.off = get('off').split(',').filter(Boolean);
  return out;
}

/**
 * Build the hash for a state {v, b, theme, lang, off}.
 * @param {{v?: number[], b?: string | null, theme?: string, lang?: string, off?: string[]}} state
 */
export function formatHash(state) {
  const params = new URLSearchParams();
  if (state.v) {
    const [lon, lat, h, hd, p, r] = state.v;
    params.set('v', [lon.toFixed(6), lat.toFixed(6), h.toFixed(1), hd.toFixed(1), p.toFixed(1), r.toFixed(1)].join(','));
  }
  if (state.b) params.set('b', state.b);
  if (state.theme && state.theme !== 'none') params.set('theme', state.theme);
  if (state.lang && state.lang !== 'zh') params.set('lang', state.lang);
  if (state.off?.length) params.set('off', state.off.join(','));
  return `#${params.toString().replace(/%2C/g, ',')}`;
}

/** Camera bookmarks kept in localStorage, per city. */
export class Bookmarks {
  /**
   * @param {any} viewer
   * @param {string} [cityKey]
   */
  constructor(viewer, cityKey) {
    this.viewer = viewer;
    this.key = `cim.bookmarks.${cityKey || 'city'}`;
    /** @type {{name: string, v: number[]}[]} */
    this.items = this.load();
    document.getElementById('bookmarkForm')?.addEventListener('submit', (event) => {
      event.preventDefault();
      const input = /** @type {HTMLInputElement} */ (document.getElementById('bookmarkName'));
      this.add(input.value.trim() || `${t('bookmarks')} ${this.items.length + 1}`);
      input.value = '';
    });
    onLangChange(() => this.render());
    this.render();
  }

  load() {
    try {
      const items = JSON.parse(localStorage.getItem(this.key) || '[]');
      return Array.isArray(items)
        ? items.filter((b) => b && typeof b.name === 'string' && Array.isArray(b.v))
        : [];
    } catch {
      return [];
    }
  }

  save() {
    try {
      localStorage.setItem(this.key, JSON.stringify(this.items));
    } catch {
      // storage full or disabled: bookmarks last for this page only
    }
  }

  /** @param {string} name */
  add(name) {
    this.items.push({ name: name.slice(0, 40), v: currentView(this.viewer) });
    this.save();
    this.render();
  }

  /** @param {number} index */
  remove(index) {
    this.items.splice(index, 1);
    this.save();
    this.render();
  }

  render() {
    const list = /** @type {HTMLElement} */ (document.getElementById('bookmarkList'));
    list.replaceChildren(
      ...this.items.map((item, i) => {
        const go = el('button', { text: item.name, cls: 'link', attrs: { type: 'button' } });
        go.addEventListener('click', () => applyView(this.viewer, item.v));
        const del = el('button', { text: '×', cls: 'del', attrs: { type: 'button', title: t('remove'), 'aria-label': t('remove') } });
        del.addEventListener('click', () => this.remove(i));
        return el('li', {}, [go, del]);
      }),
    );
  }
}
