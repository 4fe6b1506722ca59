// @ts-check
// The sensors layer: every datastream of the live store as one point of ONE
// PointPrimitiveCollection (never an entity per sensor), coloured by its state, with
// its latest value as a label at close range. It listens to the live stream
// (/api/live/stream, Server-Sent Events: a snapshot, then deltas; the browser resumes
// with Last-Event-ID by itself). Alarms flash (only the alarming points are touched,
// twice a second) and are listed to fly to; a click opens the sensor panel with a live
// chart. Filters by department and observed property hide points client-side.
//
// The pure parts (SensorStore, stateColor, passes, formatReading) need no Cesium and
// no DOM: the unit tests import them under node.

import { onLangChange, t } from '../i18n.js';
import { el, fetchJson } from '../util.js';

export const group = 'sensors';
export const order = 20;

/** The states a datastream can be in; null: no reading yet. */
export const STATES = /** @type {const} */ (['normal', 'warning', 'alarm', 'stale']);

/** Colours by state (the legend shows the same). */
export const STATE_COLORS = Object.freeze({
  normal: '#2ecc71',
  warning: '#f5b041',
  alarm: '#e74c3c',
  stale: '#8c96a0',
  none: '#5dade2',
});

/** The bright phase of a flashing alarm. */
export const ALARM_FLASH_COLOR = '#ffffff';

/** Reconnect this long after the server refused the stream (ms). */
const RETRY_MS = 10000;

/** Labels (latest value) show within this distance of the camera (metres). */
export const LABEL_RANGE = 1500;

/**
 * The CSS colour of a state (unknown or no state: 'none').
 * @param {string | null | undefined} state
 * @returns {string}
 */
export function stateColor(state) {
  return /** @type {Record<string, string>} */ (STATE_COLORS)[String(state)] ?? STATE_COLORS.none;
}

/**
 * A reading as label text: the value (numbers to at most 2 decimals) and the unit.
 * @param {unknown} value
 * @param {string | null | undefined} unit
 * @returns {string}
 */
export function formatReading(value, unit) {
  if (value === null || value === undefined) return '—';
  let text;
  if (typeof value === 'number') text = Number.isInteger(value) ? String(value) : String(Math.round(value * 100) / 100);
  else if (typeof value === 'boolean' || typeof value === 'string') text = String(value);
  else text = JSON.stringify(value);
  return unit ? `${text} ${unit}` : text;
}

/**
 * @typedef {object} SensorEntry one datastream as the stream describes it
 * @property {number} ds
 * @property {string} [name]
 * @property {string | null} [dept]
 * @property {number | null} [propId]
 * @property {string | null} [prop]
 * @property {string | null} [unit]
 * @property {number | null} [lon]
 * @property {number | null} [lat]
 * @property {number | null} [h]
 * @property {any} [value]
 * @property {number | null} [time] ms since the epoch
 * @property {string | null} [state]
 * @property {Record<string, number>} [thresholds]
 * @property {number | null} [staleAfter]
 */

/**
 * @typedef {object} SensorFilter hidden departments and observed properties
 * @property {Set<string>} departments hidden department ids ('' for none)
 * @property {Set<string>} properties hidden observed property names ('' for none)
 */

/** @returns {SensorFilter} a filter that hides nothing */
export function emptyFilter() {
  return { departments: new Set(), properties: new Set() };
}

/**
 * Whether a datastream passes the filter.
 * @param {SensorEntry} entry
 * @param {SensorFilter} filter
 */
export function passes(entry, filter) {
  return !filter.departments.has(entry.dept ?? '') && !filter.properties.has(entry.prop ?? '');
}

/**
 * The latest state of every datastream, kept from the stream's snapshots and deltas.
 * Each apply returns what changed, so the renderer touches only those points.
 */
export class SensorStore {
  constructor() {
    /** @type {Map<number, SensorEntry>} */
    this.entries = new Map();
    /** @type {Set<number>} datastreams in alarm */
    this.alarms = new Set();
  }

  /**
   * Replace everything with a snapshot's streams.
   * @param {{streams: SensorEntry[]}} snapshot
   * @returns {{changed: Set<number>, removed: Set<number>}}
   */
  applySnapshot(snapshot) {
    const removed = new Set(this.entries.keys());
    const changed = new Set();
    this.alarms.clear();
    const fresh = new Map();
    for (const s of snapshot.streams || []) {
      fresh.set(s.ds, { ...s });
      removed.delete(s.ds);
      changed.add(s.ds);
      if (s.state === 'alarm') this.alarms.add(s.ds);
    }
    this.entries = fresh;
    return { changed, removed };
  }

  /**
   * Apply a batch of deltas (observation, state, stream, removed).
   * @param {any[]} deltas
   * @returns {{changed: Set<number>, removed: Set<number>, moved: Set<number>}}
   *   moved: datastreams whose place or description changed (a `stream` delta)
   */
  applyDeltas(deltas) {
    const changed = new Set();
    const removed = new Set();
    const moved = new Set();
    for (const d of deltas) {
      const ds = d.ds;
      if (d.kind === 'removed') {
        if (this.entries.delete(ds)) removed.add(ds);
        this.alarms.delete(ds);
        changed.delete(ds);
        continue;
      }
      if (d.kind === 'stream') {
        const entry = { ...d };
        delete entry.seq;
        delete entry.kind;
        this.entries.set(ds, entry);
        removed.delete(ds);
        moved.add(ds);
      } else {
        const entry = this.entries.get(ds);
        if (!entry) continue; // a datastream this client does not see
        if (d.kind === 'observation') {
          if (d.late) continue; // older than the latest: nothing on screen changes
          entry.value = d.value;
          entry.time = d.time;
          if (d.state !== undefined) entry.state = d.state;
        } else if (d.kind === 'state') {
          entry.state = d.state;
          if ('value' in d) entry.value = d.value;
          if ('time' in d) entry.time = d.time;
        } else {
          continue;
        }
      }
      const entry = this.entries.get(ds);
      if (entry?.state === 'alarm') this.alarms.add(ds);
      else this.alarms.delete(ds);
      changed.add(ds);
    }
    return { changed, removed, moved };
  }

  /**
   * Departments and observed properties present, with counts (for the filters).
   * @returns {{departments: Map<string, number>, properties: Map<string, number>}}
   */
  facets() {
    const departments = new Map();
    const properties = new Map();
    for (const e of this.entries.values()) {
      const d = e.dept ?? '';
      const p = e.prop ?? '';
      departments.set(d, (departments.get(d) || 0) + 1);
      properties.set(p, (properties.get(p) || 0) + 1);
    }
    return { departments, properties };
  }
}

// --- the Cesium layer ------------------------------------------------------------------

/** @type {Map<string, Promise<void>>} */
const scripts = new Map();

/**
 * Load one classic script once (a vendored library); resolves when it ran.
 * @param {string} src
 * @returns {Promise<void>}
 */
export function loadScript(src) {
  if (!scripts.has(src)) {
    scripts.set(
      src,
      new Promise((resolve, reject) => {
        const node = document.createElement('script');
        node.src = src;
        node.onload = () => resolve(undefined);
        node.onerror = () => {
          scripts.delete(src);
          reject(new Error(`cannot load ${src}`));
        };
        document.head.append(node);
      }),
    );
  }
  return /** @type {Promise<void>} */ (scripts.get(src));
}

/**
 * The sensors layer, when the server has a live store (null otherwise: the layer is
 * skipped). ctx: {viewer, bus}; the panel manager, legend and tree come from window.cim.
 * @param {any} ctx
 * @param {string} id
 * @param {any} _info
 * @returns {Promise<import('../core/layertree.js').LayerHandle | null>}
 */
export async function create(ctx, id, _info) {
  let info;
  try {
    info = await fetchJson('api/live/info');
  } catch {
    info = null;
  }
  if (!info?.available) return null; // no live store on this server: no layer
  const { SensorPanel } = await import('../panels/sensor.js');
  const layer = new SensorsLayer(ctx, window.cim || {}, SensorPanel);
  if (window.cim) window.cim.sensors = layer;
  onLangChange(() => layer.refresh());
  return {
    id,
    kind: 'sensors',
    labelKey: 'layerSensors',
    object: layer.points,
    getShow: () => layer.on,
    setShow: (on) => layer.setOn(on),
  };
}

export class SensorsLayer {
  /**
   * @param {any} ctx {viewer, bus}
   * @param {any} cim window.cim: panels, legend
   * @param {any} PanelClass the sensor panel's class
   */
  constructor(ctx, cim, PanelClass) {
    const Cesium = window.Cesium;
    this.Cesium = Cesium;
    this.viewer = ctx.viewer;
    this.bus = ctx.bus;
    this.legend = cim.legend || null;
    this.store = new SensorStore();
    this.filter = emptyFilter();
    this.points = this.viewer.scene.primitives.add(new Cesium.PointPrimitiveCollection());
    this.labels = this.viewer.scene.primitives.add(new Cesium.LabelCollection());
    /** @type {Map<number, {point: any, label: any, pos: any, labelDirty: boolean}>} */
    this.graphics = new Map();
    /** @type {Map<string, any>} Cesium colours by CSS string */
    this.colors = new Map();
    this.on = false;
    /** @type {EventSource | null} */
    this.source = null;
    this.flashPhase = false;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.flashTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    this.renderQueued = false;
    this.sidebarQueued = false;
    this.sidebarFacetsDirty = true;
    /** stream events and the deltas they carried (the bench reads them) */
    this.received = { snapshots: 0, deltas: 0, items: 0 };
    this.panel = cim.panels ? new PanelClass(cim.panels, this.bus, this) : null;
    this.sidebar = this.mountSidebar();
    this.handler = new Cesium.ScreenSpaceEventHandler(this.viewer.scene.canvas);
    this.handler.setInputAction((/** @type {any} */ ev) => this.onClick(ev.position), Cesium.ScreenSpaceEventType.LEFT_CLICK);
    this.removeMoveEnd = this.viewer.camera.moveEnd.addEventListener(() => this.refreshLabels());
    this.setLegend();
    this.setOn(true);
  }

  // --- on / off ------------------------------------------------------------------------

  /** @param {boolean} on */
  setOn(on) {
    if (on === this.on) return;
    this.on = on;
    this.points.show = on;
    this.labels.show = on;
    if (this.sidebar) this.sidebar.hidden = !on;
    if (on) {
      this.connect();
      this.flashTimer = setInterval(() => this.flash(), 500);
      this.setLegend();
    } else {
      // nothing runs while the layer is off: no stream, no timer, no points
      this.source?.close();
      this.source = null;
      clearTimeout(this.retryTimer);
      clearInterval(this.flashTimer);
      this.flashTimer = undefined;
      this.clear();
      this.legend?.clear('sensors');
      if (this.panel && this.panel.ds !== null) this.panel.close();
    }
    this.viewer.scene.requestRender();
  }

  connect() {
    const source = new EventSource('api/live/stream');
    this.source = source;
    source.addEventListener('snapshot', (ev) => {
      this.received.snapshots += 1;
      this.applySnapshot(JSON.parse(/** @type {MessageEvent} */ (ev).data));
    });
    // the browser reconnects by itself after a network error (Last-Event-ID), but not
    // after an HTTP error (e.g. 503: the server holds its most streams): retry later
    source.addEventListener('error', () => {
      if (source.readyState !== EventSource.CLOSED || this.source !== source) return;
      this.source = null;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        if (this.on && !this.source) this.connect();
      }, RETRY_MS);
    });
    source.addEventListener('delta', (ev) => {
      const deltas = JSON.parse(/** @type {MessageEvent} */ (ev).data);
      this.received.deltas += 1;
      this.received.items += deltas.length;
      this.applyDeltas(deltas);
    });
  }

  clear() {
    this.points.removeAll();
    this.labels.removeAll();
    this.graphics.clear();
    this.store = new SensorStore();
    this.renderSidebar();
  }

  // --- stream → points ------------------------------------------------------------------

  /** @param {{streams: SensorEntry[]}} snapshot */
  applySnapshot(snapshot) {
    const { changed, removed } = this.store.applySnapshot(snapshot);
    for (const ds of removed) this.drop(ds);
    for (const ds of changed) this.draw(ds, true);
    this.afterChange(true);
  }

  /** @param {any[]} deltas */
  applyDeltas(deltas) {
    const { changed, removed, moved } = this.store.applyDeltas(deltas);
    for (const ds of removed) this.drop(ds);
    for (const ds of changed) this.draw(ds, moved.has(ds));
    this.afterChange(moved.size > 0 || removed.size > 0);
  }

  /** @param {boolean} structural new facets (departments, properties) may have appeared */
  afterChange(structural) {
    if (!this.renderQueued) {
      this.renderQueued = true;
      requestAnimationFrame(() => {
        this.renderQueued = false;
        this.viewer.scene.requestRender();
      });
    }
    // the filter list and the alarm list change rarely: at most once a second
    if (structural) this.sidebarFacetsDirty = true;
    if (!this.sidebarQueued) {
      this.sidebarQueued = true;
      setTimeout(() => {
        this.sidebarQueued = false;
        this.renderSidebar();
      }, structural ? 50 : 1000);
    }
  }

  /** @param {string} css */
  color(css) {
    let c = this.colors.get(css);
    if (!c) this.colors.set(css, (c = this.Cesium.Color.fromCssColorString(css)));
    return c;
  }

  /**
   * Create or update the point (and label) of a datastream.
   * @param {number} ds
   * @param {boolean} placed its place may have changed
   */
  draw(ds, placed) {
    const Cesium = this.Cesium;
    const entry = this.store.entries.get(ds);
    if (!entry) return;
    let g = this.graphics.get(ds);
    if (entry.lon === null || entry.lon === undefined || entry.lat === null || entry.lat === undefined) {
      if (g) this.drop(ds);
      return; // not placed: listed, not drawn
    }
    if (!g) {
      const pos = Cesium.Cartesian3.fromDegrees(entry.lon, entry.lat, entry.h ?? 0);
      const point = this.points.add({
        position: pos,
        pixelSize: 10,
        outlineColor: this.color('#0b1320'),
        outlineWidth: 1.5,
        // markers above the ground stay visible; they never hide under the terrain
        disableDepthTestDistance: Number.POSITIVE_INFINITY,
        id: { layerPick: 'sensors', ds },
      });
      g = { point, label: null, pos, labelDirty: true };
      this.graphics.set(ds, g);
    } else if (placed) {
      g.pos = Cesium.Cartesian3.fromDegrees(Number(entry.lon), Number(entry.lat), entry.h ?? 0);
      g.point.position = g.pos;
      if (g.label) g.label.position = g.pos;
    }
    g.point.color = this.color(stateColor(entry.state));
    g.point.pixelSize = 10; // a point that stopped alarming may be in the flash's large phase
    g.point.show = passes(entry, this.filter);
    g.labelDirty = true;
    if (g.label) {
      g.label.show = g.point.show;
      if (this.nearCamera(g.pos)) this.updateLabel(entry, g);
    } else if (g.point.show && this.nearCamera(g.pos)) {
      this.updateLabel(entry, g);
    }
    if (this.panel?.ds === ds) this.panel.update(entry);
  }

  /** @param {number} ds */
  drop(ds) {
    const g = this.graphics.get(ds);
    if (!g) return;
    this.points.remove(g.point);
    if (g.label) this.labels.remove(g.label);
    this.graphics.delete(ds);
    if (this.panel?.ds === ds) this.panel.close();
  }

  /** @param {any} pos */
  nearCamera(pos) {
    const cam = this.viewer.camera.positionWC;
    return this.Cesium.Cartesian3.distanceSquared(cam, pos) < LABEL_RANGE * LABEL_RANGE * 1.44;
  }

  /**
   * Set a label's text (labels are made only for sensors the camera came close to, and
   * only re-laid out while close: far ones are marked and caught up on moveEnd).
   * @param {SensorEntry} entry
   * @param {{point: any, label: any, pos: any, labelDirty: boolean}} g
   */
  updateLabel(entry, g) {
    const Cesium = this.Cesium;
    const text = formatReading(entry.value, entry.unit);
    if (!g.label) {
      g.label = this.labels.add({
        position: g.pos,
        text,
        font: '13px sans-serif',
        fillColor: Cesium.Color.WHITE,
        outlineColor: this.color('#0b1320'),
        outlineWidth: 3,
        style: Cesium.LabelStyle.FILL_AND_OUTLINE,
        verticalOrigin: Cesium.VerticalOrigin.BOTTOM,
        pixelOffset: new Cesium.Cartesian2(0, -10),
        distanceDisplayCondition: new Cesium.DistanceDisplayCondition(0, LABEL_RANGE),
        disableDepthTestDistance: Number.POSITIVE_INFINITY,
        id: { layerPick: 'sensors', ds: entry.ds },
      });
    } else if (g.label.text !== text) {
      g.label.text = text;
    }
    g.label.show = g.point.show;
    g.labelDirty = false;
  }

  /** After the camera moved: bring the labels near it up to date. */
  refreshLabels() {
    if (!this.on) return;
    for (const [ds, g] of this.graphics) {
      if (g.labelDirty && g.point.show && this.nearCamera(g.pos)) {
        const entry = this.store.entries.get(ds);
        if (entry) this.updateLabel(entry, g);
      }
    }
    this.viewer.scene.requestRender();
  }

  /** Toggle the colour of the alarming points only (twice a second). */
  flash() {
    if (!this.store.alarms.size) return;
    this.flashPhase = !this.flashPhase;
    const color = this.color(this.flashPhase ? ALARM_FLASH_COLOR : STATE_COLORS.alarm);
    const size = this.flashPhase ? 14 : 10;
    for (const ds of this.store.alarms) {
      const g = this.graphics.get(ds);
      if (!g) continue;
      g.point.color = color;
      g.point.pixelSize = size;
    }
    this.viewer.scene.requestRender();
  }

  // --- filters ----------------------------------------------------------------------------

  /**
   * Hide or show a department's or observed property's sensors.
   * @param {'departments' | 'properties'} facet
   * @param {string} value
   * @param {boolean} visible
   */
  setFilter(facet, value, visible) {
    if (visible) this.filter[facet].delete(value);
    else this.filter[facet].add(value);
    for (const [ds, g] of this.graphics) {
      const entry = this.store.entries.get(ds);
      if (!entry) continue;
      g.point.show = passes(entry, this.filter);
      if (g.label) g.label.show = g.point.show;
    }
    this.refreshLabels();
    this.renderSidebar();
    this.bus.emit('sensors:filter', { facet, value, visible });
  }

  /** Datastream ids drawn and passing the filter. */
  visibleIds() {
    return [...this.graphics.entries()].filter(([, g]) => g.point.show).map(([ds]) => ds);
  }

  // --- picking, flying, test hooks -----------------------------------------------------------

  /** @param {any} position window position of the click */
  onClick(position) {
    // a map tool (measure, clip...) takes the click: no pick (it may draw a full frame)
    if (!this.on || !position || /** @type {any} */ (window).cim?.tools?.capturesClicks()) return;
    const picked = this.viewer.scene.pick(position);
    const ds = picked?.id?.layerPick === 'sensors' ? picked.id.ds : null;
    if (ds !== null && ds !== undefined) this.select(ds);
  }

  /** @param {number} ds open the panel of a datastream */
  select(ds) {
    const entry = this.store.entries.get(ds);
    if (!entry || !this.panel) return;
    this.panel.show(entry);
    this.bus.emit('sensor:select', { id: ds });
  }

  /** @param {number} ds fly to a sensor (and open its panel) */
  flyTo(ds) {
    const Cesium = this.Cesium;
    const g = this.graphics.get(ds);
    if (!g) return;
    this.viewer.camera.flyToBoundingSphere(new Cesium.BoundingSphere(g.pos, 30), {
      offset: new Cesium.HeadingPitchRange(0, Cesium.Math.toRadians(-40), 400),
      duration: 1.5,
    });
    this.select(ds);
  }

  /**
   * The CSS colour a sensor's point has now (test hook).
   * @param {number} ds
   */
  pointColor(ds) {
    const g = this.graphics.get(ds);
    return g ? g.point.color.toCssHexString() : null;
  }

  /**
   * Where a sensor is on screen (CSS pixels), or null (test hook).
   * @param {number} ds
   */
  screenPosition(ds) {
    const g = this.graphics.get(ds);
    if (!g) return null;
    const p = this.Cesium.SceneTransforms.worldToWindowCoordinates(this.viewer.scene, g.pos);
    return p ? { x: p.x, y: p.y } : null;
  }

  // --- legend and the side panel -------------------------------------------------------------

  setLegend() {
    this.legend?.set('sensors', {
      title: t('layerSensors'),
      items: [...STATES, 'none'].map((s) => ({ color: stateColor(s), label: t(`sensorState_${s}`) })),
    });
  }

  /** The filters and the alarm list, under the layer tree. */
  mountSidebar() {
    const side = document.getElementById('sidePanel');
    if (!side) return null;
    const section = el('section', { attrs: { id: 'sensorFilters' } }, [
      el('h2', { text: t('layerSensors') }),
      el('h3', { text: t('sensorDepartments') }),
      el('ul', { attrs: { id: 'sensorDeptList' } }),
      el('h3', { text: t('sensorProperties') }),
      el('ul', { attrs: { id: 'sensorPropList' } }),
      el('h3', { text: t('sensorAlarms') }),
      el('ul', { attrs: { id: 'sensorAlarmList' } }),
    ]);
    const layerPanel = document.getElementById('layerPanel');
    if (layerPanel) layerPanel.after(section);
    else side.prepend(section);
    return section;
  }

  /** Re-render the filters (when departments or properties changed) and the alarm list. */
  renderSidebar() {
    const section = this.sidebar;
    if (!section) return;
    const [title, deptTitle, deptList, propTitle, propList, alarmTitle, alarmList] = section.children;
    title.textContent = t('layerSensors');
    deptTitle.textContent = t('sensorDepartments');
    propTitle.textContent = t('sensorProperties');
    alarmTitle.textContent = `${t('sensorAlarms')} (${this.store.alarms.size})`;
    if (this.sidebarFacetsDirty !== false) {
      const { departments, properties } = this.store.facets();
      deptList.replaceChildren(...this.facetItems('departments', departments));
      propList.replaceChildren(...this.facetItems('properties', properties));
      this.sidebarFacetsDirty = false;
    }
    const alarms = [...this.store.alarms]
      .map((ds) => this.store.entries.get(ds))
      .filter((e) => e && passes(e, this.filter))
      .slice(0, 50);
    const items = alarms.map((e) => {
      const entry = /** @type {SensorEntry} */ (e);
      const button = el('button', {
        text: `${entry.name || entry.ds} · ${formatReading(entry.value, entry.unit)}`,
        cls: 'link',
        attrs: { type: 'button', 'data-ds': String(entry.ds), title: t('sensorFlyTo') },
      });
      button.addEventListener('click', () => this.flyTo(entry.ds));
      const li = el('li', {}, [button]);
      this.bus.emit('sensors:alarm-item', { li, entry }); // other layers add their actions (events: 立案)
      return li;
    });
    if (!items.length) items.push(el('li', { text: t('sensorNoAlarms'), cls: 'empty' }));
    alarmList.replaceChildren(...items);
  }

  /**
   * @param {'departments' | 'properties'} facet
   * @param {Map<string, number>} counts
   */
  facetItems(facet, counts) {
    return [...counts.entries()]
      .sort((a, b) => a[0].localeCompare(b[0]))
      .map(([value, n], i) => {
        const id = `sensor-${facet}-${i}`;
        const box = /** @type {HTMLInputElement} */ (
          el('input', { attrs: { type: 'checkbox', id, 'data-value': value } })
        );
        box.checked = !this.filter[facet].has(value);
        box.addEventListener('change', () => this.setFilter(facet, value, box.checked));
        const name = value || t('unknown');
        return el('li', {}, [box, el('label', { text: `${name} (${n})`, attrs: { for: id } })]);
      });
  }

  /** Re-label after a language switch. */
  refresh() {
    this.sidebarFacetsDirty = true;
    this.renderSidebar();
    if (this.on) this.setLegend();
    this.panel?.refresh();
  }
}
