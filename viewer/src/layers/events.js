// @ts-check
// City events (城市运行事件, the GB/T 30428 case lifecycle) on the 3D city: every case the
// list filter selects is one point of ONE PointPrimitiveCollection (never an entity per
// case), coloured by its state; overdue cases flash (only they are touched, twice a
// second). The cases come from /api/events (paged), and change live through the
// `event` deltas of /api/live/stream (Server-Sent Events). The side panel lists the
// cases with filters and counts (panels/eventlist.js), a click opens the detail with
// its audit timeline and the actions the session's token may take (panels/event.js),
// and a case can be reported by clicking the map.
//
// The pure parts (colours, the filter as a query and as a test, deltas) need no Cesium
// and no DOM: the unit tests import them under node.

import { onLangChange, t } from '../i18n.js';
import { debounce, fetchJson, toast } from '../util.js';
import { authHeaders, liveStoreAvailable } from './deptlayers.js';
import { formatReading } from './sensors.js';

export const group = 'events';
export const order = 30;

/** The lifecycle's states, in order. */
export const STATES = /** @type {const} */ ([
  'reported',
  'filed',
  'dispatched',
  'handling',
  'extension_requested',
  'deferral_requested',
  'deferred',
  'handled',
  'checked',
  'closed',
  'evaluated',
  'cancelled',
]);

/** States after which nothing happens any more. */
export const FINAL_STATES = Object.freeze(['closed', 'evaluated', 'cancelled']);

/** Marker colours by state (the legend shows the same). */
export const STATE_COLORS = Object.freeze({
  reported: '#5dade2',
  filed: '#3498db',
  dispatched: '#f5b041',
  handling: '#e67e22',
  extension_requested: '#bb8fce',
  deferral_requested: '#a569bd',
  deferred: '#95a5a6',
  handled: '#48c9b0',
  checked: '#17a589',
  closed: '#2ecc71',
  evaluated: '#239b56',
  cancelled: '#7f8c8d',
});

/** The two phases of an overdue case's flashing. */
export const OVERDUE_COLORS = Object.freeze(['#e74c3c', '#ffffff']);

/** Most cases drawn (one request to /api/events/markers). */
export const MAX_MARKERS = 20000;

/**
 * @param {string | null | undefined} state
 * @returns {string} its CSS colour (grey for an unknown state)
 */
export function stateColor(state) {
  return /** @type {Record<string, string>} */ (STATE_COLORS)[String(state)] ?? '#8c96a0';
}

/**
 * @typedef {object} EventFilter
 * @property {string} state '' (every open case), 'all', or a state
 * @property {string} department '' for all
 * @property {string} category '' for all; a 大类 (SJ01) or 小类 (SJ0102) code
 * @property {boolean} overdue only overdue cases
 * @property {string} [text] '' for all; cases whose description, address or building holds it
 */

/** @returns {EventFilter} open cases of every department and category */
export function defaultFilter() {
  return { state: '', department: '', category: '', overdue: false, text: '' };
}

/**
 * The filter as the query of /api/events.
 * @param {EventFilter} f
 * @param {{limit?: number, offset?: number}} [page]
 */
export function filterQuery(f, page = {}) {
  const q = new URLSearchParams();
  if (f.state === '') q.set('open', '1');
  else if (f.state !== 'all') q.set('state', f.state);
  if (f.department) q.set('department', f.department);
  if (f.category) q.set('category', f.category);
  if (f.overdue) q.set('overdue', '1');
  if (f.text?.trim()) q.set('q', f.text.trim());
  if (page.limit !== undefined) q.set('limit', String(page.limit));
  if (page.offset) q.set('offset', String(page.offset));
  return q.toString();
}

/**
 * Whether a case passes the filter (what the server's query would say, for deltas). The
 * text is not tested: a delta does not carry the texts, and a transition never changes
 * them (a case the list holds still matches; see applyDeltas for one it does not).
 * @param {{state: string, department?: string | null, subcategory?: string, overdue?: boolean}} e
 * @param {EventFilter} f
 */
export function passesFilter(e, f) {
  if (f.state === '' && FINAL_STATES.includes(e.state)) return false;
  if (f.state !== '' && f.state !== 'all' && e.state !== f.state) return false;
  if (f.department && (e.department ?? '') !== f.department) return false;
  if (f.category && !String(e.subcategory || '').startsWith(f.category)) return false;
  if (f.overdue && !e.overdue) return false;
  return true;
}

/**
 * A list item from the API as the marker needs it.
 * @param {any} item an /api/events item
 */
export function markerOf(item) {
  return {
    id: Number(item.id),
    state: String(item.state),
    department: item.department ?? null,
    subcategory: item.subcategory,
    name: item.subcategory_name || item.subcategory,
    lon: item.location?.lon ?? item.lon ?? null,
    lat: item.location?.lat ?? item.lat ?? null,
    h: item.location?.h ?? item.h ?? null,
    overdue: Boolean(item.overdue),
    approaching: Boolean(item.approaching),
    version: Number(item.version) || 0,
  };
}

/**
 * A row of /api/events/markers (its `columns`) as the marker needs it.
 * @param {any[]} row
 * @param {string[]} columns
 */
export function markerOfRow(row, columns) {
  /** @type {Record<string, any>} */
  const r = {};
  columns.forEach((c, i) => {
    r[c] = row[i];
  });
  return {
    id: Number(r.id),
    state: String(r.state),
    department: r.department ?? null,
    subcategory: r.subcategory,
    name: r.subcategory,
    lon: r.lon ?? null,
    lat: r.lat ?? null,
    h: r.h ?? null,
    overdue: Boolean(r.overdue),
    approaching: Boolean(r.approaching),
    version: Number(r.version) || 0,
  };
}

/**
 * Apply the stream's deltas to the cases by id; returns the ids that changed, those
 * that left the filter (removed), and those that may have entered a text filter
 * (unknown: the delta has no texts; the markers are read again for them).
 * @param {Map<number, any>} cases
 * @param {any[]} deltas
 * @param {EventFilter} filter
 */
export function applyDeltas(cases, deltas, filter) {
  const changed = new Set();
  const removed = new Set();
  /** cases the filter's text may select that are not held: only the server can say */
  const unknown = new Set();
  for (const d of deltas) {
    if (d?.kind !== 'event') continue;
    const id = Number(d.id);
    const old = cases.get(id);
    if (old && Number(d.version) <= old.version) continue; // not newer than the case held (late, or already in the list)
    if (!old && filter.text?.trim()) {
      if (passesFilter({ ...markerOf(d) }, filter)) unknown.add(id);
      continue;
    }
    const merged = { ...(old || {}), ...markerOf(d), name: old?.name ?? d.subcategory };
    if (passesFilter(merged, filter)) {
      cases.set(id, merged);
      changed.add(id);
      removed.delete(id);
    } else if (cases.delete(id)) {
      removed.add(id);
      changed.delete(id);
    }
  }
  return { changed, removed, unknown };
}

/**
 * Whether a case's point must be redrawn: its place, state or overdue flag changed.
 * @param {any} old the case as drawn (undefined: not drawn)
 * @param {any} e the case now
 */
export function markerChanged(old, e) {
  if (!old) return true;
  return old.state !== e.state || old.overdue !== e.overdue || old.lon !== e.lon || old.lat !== e.lat || old.h !== e.h;
}

/**
 * The list a load read, with the deltas that arrived while it loaded applied over it
 * (only those newer than the case the list holds), so the list cannot undo them.
 * @param {Map<number, any>} loaded the cases the load read, by id (changed in place)
 * @param {any[]} during the deltas received since the load began, in order
 * @param {EventFilter} filter
 * @returns {Map<number, any>} ``loaded``
 */
export function mergeLoaded(loaded, during, filter) {
  applyDeltas(loaded, during, filter);
  return loaded;
}

/**
 * Whether a stream ``snapshot`` says deltas may have been missed (the list must be read
 * again): ``"resync": true``.
 * @param {string} data the snapshot event's data
 */
export function isResync(data) {
  try {
    return JSON.parse(data)?.resync === true;
  } catch {
    return false;
  }
}

/**
 * Hours as text: '3.5 h', or days beyond two days ('2.3 d'; working time is not
 * calendar time, this is only the figure the server gives).
 * @param {number | null | undefined} hours
 */
export function formatHours(hours) {
  if (hours === null || hours === undefined || !Number.isFinite(Number(hours))) return '—';
  const h = Number(hours);
  return `${Math.round(h * 10) / 10} h`;
}

/**
 * A count of the list as text: '5,000+' where the server stopped counting a search
 * (`capped`: the figure is that of its newest matches, a lower bound).
 * @param {number} n
 * @param {boolean | undefined} capped
 */
export function formatCount(n, capped) {
  const text = Number(n).toLocaleString('en-US');
  return capped ? `${text}+` : text;
}

/**
 * An ISO time as local text (as it is when it cannot be read).
 * @param {string | null | undefined} iso
 */
export function formatTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * The subcategory a sensor alarm files its case in: the first whose `sensor` keywords
 * occur in the observed property's name (case-insensitive), else the table's
 * `sensor_default` (as the server's alarm listener picks it: CategoryTable.for_sensor).
 * @param {string | null | undefined} property
 * @param {any} categories /api/events/categories
 * @returns {string | null}
 */
export function sensorSubcategory(property, categories) {
  const text = String(property || '').toLowerCase();
  for (const c of categories?.categories || []) {
    for (const s of c.subcategories || []) {
      if ((s.sensor || []).some((/** @type {string} */ k) => k && text.includes(String(k).toLowerCase()))) return String(s.code);
    }
  }
  return categories?.sensor_default ?? null;
}

/**
 * The report form's fields for a case filed from a sensor alarm: the sensor's place,
 * the category its property maps to, its reading in the description, source `sensor`,
 * priority high, and the datastream (the server keeps one open case per datastream).
 * @param {{ds: number, name?: string, prop?: string | null, unit?: string | null, value?: any, lon?: number | null, lat?: number | null, h?: number | null, time?: number | null}} entry a sensors-layer entry
 * @param {any} categories /api/events/categories
 * @param {(value: any, unit?: string | null) => string} [reading] how a reading is written
 */
export function alarmPrefill(entry, categories, reading = (v, u) => (u ? `${v} ${u}` : String(v))) {
  const num = (/** @type {any} */ v) => (v === null || v === undefined || v === '' ? NaN : Number(v));
  const lon = num(entry.lon);
  const lat = num(entry.lat);
  const when = entry.time ? new Date(entry.time).toISOString() : null;
  return {
    datastream: Number(entry.ds),
    subcategory: sensorSubcategory(entry.prop, categories),
    source: 'sensor',
    priority: 'high',
    lon: Number.isFinite(lon) ? lon : null,
    lat: Number.isFinite(lat) ? lat : null,
    description: `${entry.name || `#${entry.ds}`}: ${entry.prop || ''} = ${reading(entry.value, entry.unit)} (告警${when ? ` ${when}` : ''})`,
  };
}

/** Fetch with the session's token. @param {string} url @param {RequestInit} [options] */
export function api(url, options = {}) {
  return fetchJson(url, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
}

// --- the layer -----------------------------------------------------------------------------------

/**
 * The events layer, when the server has a live store (null otherwise).
 * @param {any} ctx {viewer, bus}
 * @param {string} id
 * @param {any} _info
 * @returns {Promise<import('../core/layertree.js').LayerHandle | null>}
 */
export async function create(ctx, id, _info) {
  if (!(await liveStoreAvailable())) return null; // no live store on this server: no events
  let categories;
  try {
    categories = await fetchJson('api/events/categories');
  } catch {
    return null; // no live store (or no events) on this server: no layer
  }
  const cim = window.cim || {};
  const [{ EventPanel }, { EventList }] = await Promise.all([import('../panels/event.js'), import('../panels/eventlist.js')]);
  const layer = new EventsLayer(ctx, cim, categories);
  layer.panel = cim.panels ? new EventPanel(cim.panels, ctx.bus, layer) : null;
  layer.list = new EventList(layer, ctx.bus);
  if (window.cim) window.cim.events = layer;
  onLangChange(() => layer.refreshText());
  layer.setOn(true);
  // an alarm in the sensors' alarm list gets a button that files a case from it
  ctx.bus.on('sensors:alarm-item', (/** @type {any} */ p) => layer.decorateAlarm(p.li, p.entry));
  try {
    cim.sensors?.renderSidebar?.(); // the alarms listed before this layer existed
  } catch (err) {
    console.warn('sensor alarm list', err);
  }
  return {
    id,
    kind: 'events',
    labelKey: 'layerEvents',
    object: layer.points,
    getShow: () => layer.on,
    setShow: (on) => layer.setOn(on),
  };
}

export class EventsLayer {
  /**
   * @param {any} ctx {viewer, bus}
   * @param {any} cim window.cim: legend, panels
   * @param {any} categories /api/events/categories
   */
  constructor(ctx, cim, categories) {
    /** @type {any} */
    const Cesium = window.Cesium;
    this.Cesium = Cesium;
    this.viewer = ctx.viewer;
    this.bus = ctx.bus;
    this.cim = cim;
    this.categories = categories;
    this.filter = defaultFilter();
    /** @type {Map<number, any>} the cases drawn, by id */
    this.cases = new Map();
    /** @type {Map<number, any>} their points */
    this.markers = new Map();
    /** @type {Set<number>} the drawn cases that are overdue (they flash) */
    this.overdue = new Set();
    this.points = this.viewer.scene.primitives.add(new Cesium.PointPrimitiveCollection());
    /** @type {Map<string, any>} */
    this.colors = new Map();
    this.on = false;
    /** @type {EventSource | null} */
    this.source = null;
    /** @type {any} */
    this.panel = null;
    /** @type {any} */
    this.list = null;
    this.flashPhase = 0;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.flashTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.refreshTimer = undefined;
    this.loadSeq = 0;
    /** read the markers again a second after deltas a text filter cannot place */
    this.reloadSoon = debounce(() => this.reload(), 1000);
    /** @type {any[] | null} event deltas received while a list load runs */
    this.duringLoad = null;
    this.received = { deltas: 0 };
    /** @type {null | ((lon: number, lat: number) => void)} a map click waited for */
    this.clickWanted = null;
    this.handler = new Cesium.ScreenSpaceEventHandler(this.viewer.scene.canvas);
    this.handler.setInputAction((/** @type {any} */ ev) => this.onClick(ev.position), Cesium.ScreenSpaceEventType.LEFT_CLICK);
  }

  /** @param {boolean} on */
  setOn(on) {
    if (on === this.on) return;
    this.on = on;
    this.points.show = on;
    if (on) {
      this.connect();
      this.reload();
      this.flashTimer = setInterval(() => this.flash(), 500);
      // overdue flags change with time alone: the list and markers are re-read each minute
      this.refreshTimer = setInterval(() => this.reload(), 60_000);
      this.setLegend();
    } else {
      this.source?.close();
      this.source = null;
      clearInterval(this.flashTimer);
      clearInterval(this.refreshTimer);
      this.points.removeAll();
      this.markers.clear();
      this.overdue.clear();
      this.cases.clear();
      this.cim.legend?.clear('events');
    }
    this.list?.setVisible(on);
    this.viewer.scene.requestRender();
  }

  connect() {
    if (typeof EventSource === 'undefined') return;
    const source = new EventSource('api/live/stream');
    this.source = source;
    source.addEventListener('delta', (ev) => {
      let deltas;
      try {
        deltas = JSON.parse(/** @type {MessageEvent} */ (ev).data);
      } catch {
        return;
      }
      const mine = (Array.isArray(deltas) ? deltas : [deltas]).filter((d) => d?.kind === 'event');
      if (mine.length) this.applyDeltas(mine);
    });
    // the server could not resume the numbering: deltas may be lost, read the list again
    source.addEventListener('snapshot', (ev) => {
      if (isResync(/** @type {MessageEvent} */ (ev).data)) this.reload();
    });
  }

  /** Read the markers of the cases the filter selects (one request), and the list. */
  async reload() {
    const seq = ++this.loadSeq;
    this.duringLoad = [];
    this.list?.load();
    /** @type {Map<number, any>} */
    const fresh = new Map();
    try {
      const body = await api(`api/events/markers?${filterQuery(this.filter, { limit: MAX_MARKERS })}`);
      if (seq !== this.loadSeq) return; // a newer filter won
      for (const row of body.items || []) {
        const m = markerOfRow(row, body.columns);
        fresh.set(m.id, m);
      }
    } catch (err) {
      if (seq === this.loadSeq) this.duringLoad = null;
      if (seq === this.loadSeq) toast(`${t('evLoadFailed')} (${/** @type {any} */ (err).status || t('disconnected')})`);
      return;
    }
    if (!this.on) return;
    mergeLoaded(fresh, this.duringLoad || [], this.filter);
    this.duringLoad = null;
    for (const id of [...this.cases.keys()]) if (!fresh.has(id)) this.drop(id);
    const before = this.cases;
    this.cases = fresh;
    // the minute's re-read of 10,000 cases touches only the points that changed
    for (const [id, e] of fresh) if (!this.markers.has(id) || markerChanged(before.get(id), e)) this.draw(id);
    this.viewer.scene.requestRender();
    this.bus.emit('events:loaded', { count: fresh.size });
  }

  /** @param {any[]} deltas */
  applyDeltas(deltas) {
    this.received.deltas += deltas.length;
    this.duringLoad?.push(...deltas); // re-applied over the list being loaded
    const { changed, removed, unknown } = applyDeltas(this.cases, deltas, this.filter);
    if (unknown.size) this.reloadSoon();
    for (const id of removed) this.drop(id);
    for (const id of changed) this.draw(id);
    this.viewer.scene.requestRender();
    this.list?.later();
    for (const d of deltas) if (this.panel?.eventId === Number(d.id)) this.panel.reload();
  }

  /** @param {string} css */
  color(css) {
    let c = this.colors.get(css);
    if (!c) this.colors.set(css, (c = this.Cesium.Color.fromCssColorString(css)));
    return c;
  }

  /** @param {number} id create or update a case's point */
  draw(id) {
    const Cesium = this.Cesium;
    const e = this.cases.get(id);
    if (!e) return;
    if (e.overdue && !FINAL_STATES.includes(e.state)) this.overdue.add(id);
    else this.overdue.delete(id);
    if (e.lon === null || e.lat === null || !Number.isFinite(Number(e.lon))) {
      this.drop(id);
      return;
    }
    const position = Cesium.Cartesian3.fromDegrees(Number(e.lon), Number(e.lat), Number(e.h) || 0);
    let p = this.markers.get(id);
    if (!p) {
      p = this.points.add({
        position,
        pixelSize: 11,
        outlineColor: this.color('#0b1320'),
        outlineWidth: 2,
        disableDepthTestDistance: Number.POSITIVE_INFINITY,
        id: { layerPick: 'events', event: id },
      });
      this.markers.set(id, p);
    } else {
      p.position = position;
    }
    p.color = this.color(stateColor(e.state));
    p.pixelSize = 11;
  }

  /** @param {number} id */
  drop(id) {
    const p = this.markers.get(id);
    if (p) this.points.remove(p);
    this.markers.delete(id);
    this.overdue.delete(id);
  }

  /** Overdue cases flash: only their points are touched (the cases are not walked). */
  flash() {
    this.flashPhase = 1 - this.flashPhase;
    let any = false;
    for (const id of this.overdue) {
      const p = this.markers.get(id);
      if (!p) continue;
      p.color = this.color(OVERDUE_COLORS[this.flashPhase]);
      p.pixelSize = this.flashPhase ? 15 : 11;
      any = true;
    }
    if (any) this.viewer.scene.requestRender();
  }

  /**
   * Add the 立案 button to an alarm of the sensors' alarm list.
   * @param {HTMLElement} li the alarm's list item
   * @param {any} entry the sensors-layer entry
   */
  decorateAlarm(li, entry) {
    if (!li || !entry || !this.panel) return;
    // a link-styled action, not a second <button>: the item's own button stays the one
    // the sensors layer (and its tests) address
    const b = document.createElement('a');
    b.href = '#';
    b.setAttribute('role', 'button');
    b.className = 'ev-from-alarm';
    b.dataset.alarmDs = String(entry.ds);
    b.textContent = t('evFromAlarm');
    b.title = t('evFromAlarmTitle');
    b.addEventListener('click', (ev) => {
      ev.preventDefault();
      ev.stopPropagation();
      this.reportFromAlarm(entry);
    });
    li.append(' ', b);
  }

  /**
   * Open the report form filled in from a sensor alarm (the operator checks and sends it).
   * @param {any} entry the sensors-layer entry
   */
  reportFromAlarm(entry) {
    this.panel?.form.fromAlarm(alarmPrefill(entry, this.categories, formatReading));
  }

  /** Departments a case may go to: the categories' defaults and those of the cases seen. */
  departments() {
    const out = new Set();
    for (const c of this.categories?.categories || []) for (const s of c.subcategories || []) if (s.department) out.add(String(s.department));
    for (const e of this.cases.values()) if (e.department) out.add(String(e.department));
    for (const d of this.list?.seenDepartments || []) out.add(String(d));
    return [...out].sort();
  }

  /** @param {Partial<EventFilter>} change */
  setFilter(change) {
    this.filter = { ...this.filter, ...change };
    this.reload();
  }

  // --- clicks --------------------------------------------------------------------------------------

  /** @param {any} position */
  onClick(position) {
    if (!position) return;
    const scene = this.viewer.scene;
    if (this.clickWanted) {
      const want = this.clickWanted;
      const cartesian = scene.pickPositionSupported ? scene.pickPosition(position) : null;
      const ground = cartesian || this.viewer.camera.pickEllipsoid(position, scene.globe.ellipsoid);
      if (!ground) return;
      const carto = this.Cesium.Cartographic.fromCartesian(ground);
      this.clickWanted = null;
      // the other click handlers of this same click still see the click as ours
      setTimeout(() => this.setClickMode(false), 0);
      want(this.Cesium.Math.toDegrees(carto.longitude), this.Cesium.Math.toDegrees(carto.latitude));
      return;
    }
    // a map tool (measure, clip...) takes the click: no pick (it may draw a full frame)
    if (!this.on || /** @type {any} */ (window).cim?.tools?.capturesClicks()) return;
    const picked = scene.pick(position);
    if (picked?.id?.layerPick === 'events') this.select(picked.id.event);
  }

  /**
   * Wait for a click on the map (creating a case); the click goes to nobody else.
   * @param {null | ((lon: number, lat: number) => void)} fn null: stop waiting
   */
  waitForClick(fn) {
    this.clickWanted = fn;
    this.setClickMode(Boolean(fn));
  }

  /** @param {boolean} on the map's next click is ours (main.js leaves it alone) */
  setClickMode(on) {
    if (window.cim) window.cim.clickMode = on ? 'events:create' : null;
    this.viewer.scene.canvas.style.cursor = on ? 'crosshair' : '';
    this.bus.emit('events:clickmode', { on });
  }

  /** @param {number} id open a case's detail */
  select(id) {
    this.panel?.open(id);
    this.bus.emit('event:select', { id });
  }

  /**
   * Fly to a case (and open it).
   * @param {number} id
   * @param {{lon: number, lat: number, h?: number} | null} [where] when it is not drawn
   */
  flyTo(id, where) {
    const Cesium = this.Cesium;
    const e = this.cases.get(id) || where;
    if (!e || e.lon === null || e.lon === undefined) return;
    const target = Cesium.Cartesian3.fromDegrees(Number(e.lon), Number(e.lat), Number(e.h) || 0);
    this.viewer.camera.flyToBoundingSphere(new Cesium.BoundingSphere(target, 40), {
      offset: new Cesium.HeadingPitchRange(0, Cesium.Math.toRadians(-40), 450),
      duration: 1.2,
    });
    this.select(id);
  }

  // --- legend, language, test hooks ----------------------------------------------------------------

  setLegend() {
    const shown = ['reported', 'filed', 'dispatched', 'handling', 'handled', 'checked', 'closed', 'deferred'];
    this.cim.legend?.set('events', {
      title: t('layerEvents'),
      items: [
        ...shown.map((s) => ({ color: stateColor(s), label: t(`evState_${s}`) })),
        { color: OVERDUE_COLORS[0], label: t('evOverdueFlashing') },
      ],
    });
  }

  refreshText() {
    if (this.on) this.setLegend();
    this.list?.render();
    this.list?.whoAmI();
    this.panel?.render();
    this.panel?.form.refresh();
  }

  /** @param {number} id the CSS colour of a case's point now, or null (test hook) */
  markerColor(id) {
    const p = this.markers.get(id);
    return p ? p.color.toCssHexString() : null;
  }

  /** @param {number} id where a case is on screen (CSS pixels), or null (test hook) */
  screenPosition(id) {
    const p = this.markers.get(id);
    if (!p) return null;
    const s = this.Cesium.SceneTransforms.worldToWindowCoordinates(this.viewer.scene, p.position);
    return s ? { x: s.x, y: s.y } : null;
  }
}
