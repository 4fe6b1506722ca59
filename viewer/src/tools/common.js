// @ts-check
// What the tools share: the context they get, picking a point on the ground or a
// building, converting between Cesium and the plain vectors of geo.js, the options panel
// frame and values with units in the chosen language.

import { t } from '../i18n.js';
import { el } from '../util.js';
import { areaParts, lengthParts } from './geo.js';

/**
 * What every tool module's create() gets.
 * @typedef {object} ToolContext
 * @property {any} viewer the Cesium viewer
 * @property {import('../core/bus.js').Bus} bus
 * @property {import('../core/layertree.js').LayerTree} tree
 * @property {any} manifest
 * @property {string} dataBase the data URL the layers are read from
 * @property {import('./registry.js').ToolRegistry} registry
 * @property {import('../interactive.js').InteractiveFrames} [interactive] the interactive
 *   frames (the level the frame answering an input is drawn at), when the page has them
 */

/**
 * The point on the ground or a building under a screen position (depth buffer), else on
 * the terrain along the camera ray; null over the sky.
 * @param {any} viewer
 * @param {any} position a Cesium.Cartesian2 (CSS pixels of the canvas)
 * @returns {any} a Cesium.Cartesian3 or null
 */
export function pickPoint(viewer, position) {
  const { scene } = viewer;
  if (scene.pickPositionSupported) {
    try {
      const p = scene.pickPosition(position);
      if (p && Number.isFinite(p.x)) return p;
    } catch (err) {
      // a pick pass drawn while a clipping texture is still being computed (the frame
      // after an excavation) can fail: fall back to the terrain
      console.warn('pickPosition failed', err);
    }
  }
  const ray = scene.camera.getPickRay(position);
  return ray ? scene.globe.pick(ray, scene) || null : null;
}

/**
 * @param {any} c a Cesium.Cartesian3
 * @returns {import('./geo.js').Vec3}
 */
export const vec = (c) => [c.x, c.y, c.z];

/**
 * @param {import('./geo.js').Vec3} v
 * @returns {any} a Cesium.Cartesian3
 */
export const cart = (v) => new window.Cesium.Cartesian3(v[0], v[1], v[2]);

/**
 * A point moved up (along the ellipsoid normal) by metres.
 * @param {any} c a Cesium.Cartesian3
 * @param {number} metres
 */
export function raise(c, metres) {
  const Cesium = window.Cesium;
  const up = Cesium.Ellipsoid.WGS84.geodeticSurfaceNormal(c, new Cesium.Cartesian3());
  return Cesium.Cartesian3.add(c, Cesium.Cartesian3.multiplyByScalar(up, metres, up), new Cesium.Cartesian3());
}

/**
 * A length with its unit in the chosen language (e.g. "12.50 米", "1.204 km").
 * @param {number} metres
 */
export function formatLength(metres) {
  const { value, unit } = lengthParts(metres);
  return `${value} ${t(unit === 'km' ? 'unitKm' : 'unitM')}`;
}

/** @param {number} m2 */
export function formatArea(m2) {
  const { value, unit } = areaParts(m2);
  return `${value} ${t(unit === 'km2' ? 'unitKm2' : 'unitM2')}`;
}

/** @param {number} degrees */
export function formatAngle(degrees) {
  return `${degrees.toFixed(1)}°`;
}

/**
 * The frame of a tool's options panel: a title, a close button, the content.
 * @param {string} id the tool id (the element is #tool-<id>)
 * @param {string} titleKey
 * @param {(Node | string)[]} children
 * @param {() => void} onClose
 */
export function toolPanel(id, titleKey, children, onClose) {
  const close = el('button', { text: '×', cls: 'close', attrs: { type: 'button', 'data-i18n-title': 'close', 'aria-label': 'close' } });
  close.addEventListener('click', onClose);
  const head = el('header', {}, [el('h2', { attrs: { 'data-i18n': titleKey } }), close]);
  return el('section', { cls: 'toolPanel', attrs: { id: `tool-${id}`, 'aria-live': 'polite' } }, [head, ...children]);
}

/**
 * A labelled control row.
 * @param {string} labelKey
 * @param {HTMLElement} control
 */
export function row(labelKey, control) {
  const id = control.id || `c${Math.random().toString(36).slice(2, 8)}`;
  control.id = id;
  return el('div', { cls: 'row' }, [el('label', { attrs: { for: id, 'data-i18n': labelKey } }), control]);
}

/**
 * A button whose text is an i18n key.
 * @param {string} key
 * @param {() => void} onClick
 * @param {Record<string, string>} [attrs]
 */
export function button(key, onClick, attrs = {}) {
  const b = el('button', { attrs: { type: 'button', 'data-i18n': key, ...attrs } });
  b.addEventListener('click', onClick);
  return b;
}

/**
 * A range input.
 * @param {string} id
 * @param {number} min
 * @param {number} max
 * @param {number} step
 * @param {number} value
 */
export function slider(id, min, max, step, value) {
  const s = /** @type {HTMLInputElement} */ (
    el('input', { attrs: { id, type: 'range', min: String(min), max: String(max), step: String(step) } })
  );
  s.value = String(value);
  return s;
}

/**
 * A select whose options are i18n keys.
 * @param {string} id
 * @param {[string, string][]} options [value, labelKey]
 */
export function select(id, options) {
  return /** @type {HTMLSelectElement} */ (
    el(
      'select',
      { attrs: { id } },
      options.map(([value, key]) => el('option', { attrs: { value, 'data-i18n': key } })),
    )
  );
}

/**
 * The ENU frame at the city centre (the manifest's centre), as a Cesium Matrix4.
 * @param {any} manifest
 */
export function cityFrame(manifest) {
  const Cesium = window.Cesium;
  const [lon = 0, lat = 0, h = 0] = manifest?.centre || [];
  return Cesium.Transforms.eastNorthUpToFixedFrame(Cesium.Cartesian3.fromDegrees(lon, lat, h));
}

/**
 * What a tool draws on the map: points, polylines, labels and primitives, all drawn
 * synchronously (no worker round trip), removed at once by clear().
 */
export class Sketch {
  /** @param {any} viewer */
  constructor(viewer) {
    const Cesium = window.Cesium;
    this.viewer = viewer;
    this.collection = viewer.scene.primitives.add(new Cesium.PrimitiveCollection({ destroyPrimitives: true }));
    this.reset();
  }

  reset() {
    const Cesium = window.Cesium;
    this.collection.removeAll();
    this.points = this.collection.add(new Cesium.PointPrimitiveCollection());
    this.lines = this.collection.add(new Cesium.PolylineCollection());
    this.labels = this.collection.add(new Cesium.LabelCollection());
  }

  /**
   * @param {any} position
   * @param {any} color a Cesium.Color
   * @param {number} [size]
   */
  point(position, color, size = 9) {
    return this.points.add({
      position,
      color,
      pixelSize: size,
      outlineColor: window.Cesium.Color.BLACK,
      outlineWidth: 1,
      disableDepthTestDistance: Number.POSITIVE_INFINITY,
    });
  }

  /**
   * @param {any[]} positions
   * @param {any} color
   * @param {number} [width]
   */
  line(positions, color, width = 3) {
    const Cesium = window.Cesium;
    return this.lines.add({ positions, width, material: Cesium.Material.fromType('Color', { color }) });
  }

  /**
   * @param {any} position
   * @param {string} text
   */
  label(position, text) {
    const Cesium = window.Cesium;
    return this.labels.add({
      position,
      text,
      font: '15px sans-serif',
      fillColor: Cesium.Color.WHITE,
      outlineColor: Cesium.Color.BLACK,
      outlineWidth: 3,
      style: Cesium.LabelStyle.FILL_AND_OUTLINE,
      showBackground: true,
      backgroundColor: new Cesium.Color(0.05, 0.1, 0.16, 0.75),
      pixelOffset: new Cesium.Cartesian2(0, -18),
      disableDepthTestDistance: Number.POSITIVE_INFINITY,
    });
  }

  /**
   * A primitive of one colour per instance, built synchronously.
   * @param {any[]} instances Cesium.GeometryInstance with a color attribute
   * @param {boolean} [translucent]
   */
  geometry(instances, translucent = true) {
    const Cesium = window.Cesium;
    return this.collection.add(
      new Cesium.Primitive({
        geometryInstances: instances,
        appearance: new Cesium.PerInstanceColorAppearance({ flat: true, translucent }),
        asynchronous: false,
      }),
    );
  }

  /** Remove everything drawn. */
  clear() {
    this.reset();
    this.viewer.scene.requestRender();
  }

  destroy() {
    this.viewer.scene.primitives.remove(this.collection);
  }
}
