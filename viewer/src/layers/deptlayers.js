// @ts-check
// Department layers (部门图层): every layer `GET /api/layers` lists for the caller, one
// group per department in the layer tree, each with a toggle, an opacity slider and a
// legend from its stored style. Drawing is batched, never one entity per feature:
// points go into one PointPrimitiveCollection (dots) or BillboardCollection (the
// style's icon) per layer, lines into GroundPolylinePrimitives and polygons into
// GroundPrimitives (one batch per tile, per-instance colours by style class), polygons
// with `polygon.extrude` into one extruded Primitive per tile, labels into a
// LabelCollection. Small layers (`serve: geojson`) load whole; large ones
// (`serve: tiles`) by the tiles of CesiumJS's GeographicTilingScheme the camera sees:
// the coarsest tile holding the layer first, refined where a tile is thinned
// (`complete: false`) and the camera is close; tiles out of view are dropped. A feature
// in several tiles (a polygon across an edge) is drawn once: features are kept by id.
// A click on a feature opens its attributes (GET /features/<fid>) in the panel.
//
// The pure parts (classes and colours, legends, tile arithmetic and selection, the
// feature registry) need no Cesium and no DOM: the unit tests import them under node.

import { onLangChange, t } from '../i18n.js';
import { fetchJson, toast } from '../util.js';

export const group = 'departments';
export const order = 40;

/** The deepest tile level the server makes (layers/deptlayers/tiles.py MAX_ZOOM). */
export const MAX_ZOOM = 18;
/** Most tiles drawn at once per layer (a street view needs ~4–12). */
export const MAX_TILES = 24;
/** Tile data kept after a tile left the view (re-shown without a request). */
export const CACHE_TILES = 64;
/** Parallel tile requests per layer. */
const PARALLEL = 6;
/** A tile is refined when its width exceeds this share of the camera's distance to it. */
export const REFINE_RATIO = 0.75;
/** Labels are made for tiles of this level and deeper (cells under ~1.2 km). */
export const LABEL_LEVEL = 14;
/** Tiles of this level and deeper take each point's own ground height; coarser ones a grid's. */
export const EXACT_HEIGHT_LEVEL = 15;
/** Cells per side of a coarse tile's height grid. */
const HEIGHT_GRID = 16;
/** Most labels per layer (only features within the label distance of the camera get one). */
export const MAX_LABELS = 300;
/** Where the catalogue comes from and the session token the events panel stores. */
export const CATALOG_URL = 'api/layers';
export const TOKEN_KEY = 'cim.token';

// --- style: classes, colours, legend -------------------------------------------------------

/**
 * @typedef {object} StyleClass one colour class of a style
 * @property {string} color CSS colour
 * @property {string} label text for the legend ('' for a single-colour layer)
 */

/**
 * The colour classes of a stored style, for the legend.
 * @param {any} style the layer's style (docs/layers.md, "Styles")
 * @returns {StyleClass[]}
 */
export function styleClasses(style) {
  const by = style?.by;
  if (by?.kind === 'category') {
    return Object.entries(by.categories || {}).map(([value, color]) => ({ color: String(color), label: value }));
  }
  if (by?.kind === 'graduated') {
    const breaks = (by.breaks || []).map(Number);
    const colors = by.colors || [];
    if (!breaks.length) return [{ color: String(colors[0] || style.color), label: '' }];
    return colors.map((/** @type {string} */ color, /** @type {number} */ i) => {
      let label;
      if (i === 0) label = `< ${formatNumber(breaks[0])}`;
      else if (i === breaks.length) label = `≥ ${formatNumber(breaks[i - 1])}`;
      else label = `${formatNumber(breaks[i - 1])} – ${formatNumber(breaks[i])}`;
      return { color: String(color), label };
    });
  }
  return [{ color: String(style?.color || '#1f77b4'), label: '' }];
}

/** @param {number} x a class break, to at most 3 significant decimals */
export function formatNumber(x) {
  if (!Number.isFinite(x)) return String(x);
  return String(Math.round(x * 1000) / 1000);
}

/**
 * The CSS colour of a feature under a style: its category's, its graduated class's, or
 * the layer colour (a value the style does not list, or no value).
 * @param {any} style
 * @param {Record<string, any> | null | undefined} props
 * @returns {string}
 */
export function classColor(style, props) {
  const by = style?.by;
  const base = String(style?.color || '#1f77b4');
  if (!by || !props) return base;
  const value = props[by.attribute];
  if (value === null || value === undefined) return base;
  if (by.kind === 'category') return String(by.categories?.[String(value)] ?? base);
  if (by.kind === 'graduated') {
    const v = Number(value);
    if (typeof value === 'boolean' || !Number.isFinite(v)) return base;
    const breaks = by.breaks || [];
    let i = 0;
    while (i < breaks.length && v >= Number(breaks[i])) i += 1;
    return String(by.colors?.[i] ?? base);
  }
  return base;
}

/** @param {string | null | undefined} icon a built-in icon name → its URL (relative) */
export function iconUrl(icon) {
  return icon ? `viewer/icons/${encodeURIComponent(icon)}.svg` : null;
}

/**
 * The legend entry of a layer: its classes, each with the point icon when it has one.
 * @param {{name: string, style: any}} layer
 * @returns {{title: string, items: {color: string, label: string, icon?: string}[]}}
 */
export function legendEntry(layer) {
  const icon = iconUrl(layer.style?.point?.icon);
  const items = styleClasses(layer.style).map((c) => {
    /** @type {{color: string, label: string, icon?: string}} */
    const item = { color: c.color, label: c.label || layer.name };
    if (icon) item.icon = icon;
    return item;
  });
  const by = layer.style?.by;
  return { title: by?.attribute ? `${layer.name} · ${by.attribute}` : layer.name, items };
}

/**
 * The text a feature is listed and labelled by: the style's label attribute, a name-like
 * attribute, else its id.
 * @param {any} style
 * @param {Record<string, any> | null | undefined} props
 * @param {number | string} fid
 */
export function featureTitle(style, props, fid) {
  const p = props || {};
  const keys = [style?.label?.attribute, '名称', 'name', 'NAME', '名字', 'title'];
  for (const k of keys) {
    if (k && p[k] !== null && p[k] !== undefined && String(p[k]).trim()) return String(p[k]);
  }
  return `#${fid}`;
}

// --- geometry helpers -------------------------------------------------------------------------

/**
 * Bounding box [west, south, east, north] of a GeoJSON geometry (null when empty).
 * @param {any} geometry
 * @returns {number[] | null}
 */
export function geometryBbox(geometry) {
  let w = Infinity;
  let s = Infinity;
  let e = -Infinity;
  let n = -Infinity;
  const walk = (/** @type {any} */ c) => {
    if (typeof c[0] === 'number') {
      if (c[0] < w) w = c[0];
      if (c[0] > e) e = c[0];
      if (c[1] < s) s = c[1];
      if (c[1] > n) n = c[1];
    } else for (const x of c) walk(x);
  };
  const visit = (/** @type {any} */ g) => {
    if (!g) return;
    if (g.type === 'GeometryCollection') for (const x of g.geometries || []) visit(x);
    else if (g.coordinates) walk(g.coordinates);
  };
  visit(geometry);
  return Number.isFinite(w) ? [w, s, e, n] : null;
}

/**
 * The parts of a geometry by dimension: point positions, line coordinate lists and
 * polygons (lists of rings), through Multi- and GeometryCollection nesting.
 * @param {any} geometry
 * @returns {{points: number[][], lines: number[][][], polygons: number[][][][]}}
 */
export function splitGeometry(geometry) {
  /** @type {{points: number[][], lines: number[][][], polygons: number[][][][]}} */
  const out = { points: [], lines: [], polygons: [] };
  const visit = (/** @type {any} */ g) => {
    if (!g) return;
    const c = g.coordinates;
    switch (g.type) {
      case 'Point': out.points.push(c); break;
      case 'MultiPoint': out.points.push(...c); break;
      case 'LineString': out.lines.push(c); break;
      case 'MultiLineString': out.lines.push(...c); break;
      case 'Polygon': out.polygons.push(c); break;
      case 'MultiPolygon': out.polygons.push(...c); break;
      case 'GeometryCollection': for (const x of g.geometries || []) visit(x); break;
      default: break;
    }
  };
  visit(geometry);
  return out;
}

// --- tiles: GeographicTilingScheme arithmetic and selection ------------------------------------

/**
 * (west, south, east, north) of tile z/x/y: level z has 2^(z+1) × 2^z tiles, x from
 * 180° W, y from 90° N (as layers/deptlayers/tiles.py).
 * @param {number} z
 * @param {number} x
 * @param {number} y
 * @returns {number[]}
 */
export function tileRect(z, x, y) {
  const size = 180 / 2 ** z;
  const west = -180 + x * size;
  const north = 90 - y * size;
  return [west, north - size, west + size, north];
}

/** @param {number} z @param {number} x @param {number} y */
export function tileKey(z, x, y) {
  return `${z}/${x}/${y}`;
}

/** @param {string} key @returns {number[]} the tile's [w, s, e, n] */
export function keyRect(key) {
  const [z, x, y] = parseKey(key);
  return tileRect(z, x, y);
}

/** @param {string} key @returns {number[]} [z, x, y] */
export function parseKey(key) {
  return key.split('/').map(Number);
}

/**
 * @param {number[] | null} a [w, s, e, n]
 * @param {number[] | null} b
 * @returns {number[] | null} their intersection, or null
 */
export function intersect(a, b) {
  if (!a || !b) return null;
  const r = [Math.max(a[0], b[0]), Math.max(a[1], b[1]), Math.min(a[2], b[2]), Math.min(a[3], b[3])];
  return r[0] <= r[2] && r[1] <= r[3] ? r : null;
}

/**
 * The level whose tiles are at least as large as the rectangle (it then meets at most
 * 2 × 2 of them): where loading a layer starts.
 * @param {number[]} rect
 */
export function levelFor(rect) {
  const extent = Math.max(rect[2] - rect[0], rect[3] - rect[1], 1e-9);
  return Math.min(MAX_ZOOM, Math.max(0, Math.floor(Math.log2(180 / extent))));
}

/**
 * The tiles of level z that meet a rectangle.
 * @param {number[]} rect [w, s, e, n] in degrees
 * @param {number} z
 * @returns {number[][]} [z, x, y] each
 */
export function tilesCovering(rect, z) {
  const size = 180 / 2 ** z;
  const nx = 2 ** (z + 1);
  const ny = 2 ** z;
  const eps = 1e-12;
  const x0 = Math.max(0, Math.floor((rect[0] + 180) / size));
  const x1 = Math.min(nx - 1, Math.floor((rect[2] + 180 - eps) / size));
  const y0 = Math.max(0, Math.floor((90 - rect[3]) / size));
  const y1 = Math.min(ny - 1, Math.floor((90 - rect[1] - eps) / size));
  const out = [];
  for (let x = x0; x <= x1; x++) for (let y = y0; y <= y1; y++) out.push([z, x, y]);
  return out;
}

/**
 * @typedef {object} TileState what is known of a loaded tile
 * @property {boolean} complete false: the tile was thinned (its children hold more)
 */

/**
 * Which tiles to draw and which to request for the current view.
 *
 * Starting from the tiles of `start` meeting `area` (the layer's bounds within the
 * view), a loaded tile is drawn; a thinned one (`complete: false`) that `refine` asks
 * for (the camera is close to it) is refined into its children meeting the area, and is
 * drawn itself until every one of them is loaded. Unloaded tiles are requested. No
 * refinement makes more than `maxTiles` tiles drawn or awaited.
 * @param {object} args
 * @param {number[] | null} args.area [w, s, e, n] or null (nothing in view)
 * @param {number} args.start the starting level
 * @param {Map<string, TileState>} args.loaded tiles loaded, by key
 * @param {(z: number, x: number, y: number) => boolean} args.refine whether a tile is too coarse here
 * @param {number} [args.maxTiles]
 * @returns {{draw: string[], request: string[], visited: Set<string>}} visited: every
 *   loaded tile the selection went through (its data must stay cached)
 */
export function selectTiles({ area, start, loaded, refine, maxTiles = MAX_TILES }) {
  /** @type {string[]} */
  const draw = [];
  /** @type {string[]} */
  const request = [];
  /** @type {Set<string>} */
  const visited = new Set();
  if (!area) return { draw, request, visited };
  // breadth first, so the budget goes to the coarse levels everywhere before any detail
  const queue = tilesCovering(area, start);
  let count = queue.length; // tiles drawn or waited for
  while (queue.length) {
    const [z, x, y] = /** @type {number[]} */ (queue.shift());
    const key = tileKey(z, x, y);
    const state = loaded.get(key);
    if (!state) {
      request.push(key);
      continue;
    }
    visited.add(key);
    const sub = state.complete || z >= MAX_ZOOM ? null : intersect(tileRect(z, x, y), area);
    const kids = sub ? tilesCovering(sub, z + 1) : [];
    const waiting = kids.some(([a, b, c]) => !loaded.has(tileKey(a, b, c)));
    const extra = kids.length - 1 + (waiting ? 1 : 0);
    if (!kids.length || count + extra > maxTiles || !refine(z, x, y)) {
      draw.push(key);
      continue;
    }
    count += extra;
    // a thinned tile stays drawn until every child it is refined into has arrived
    if (waiting) draw.push(key);
    queue.push(...kids);
  }
  return { draw, request, visited };
}

/**
 * A function over a rectangle from an (n + 1) × (n + 1) grid of samples of `f` (each
 * taken once, when first needed), interpolated bilinearly; outside, the nearest edge.
 * @param {number[]} rect [w, s, e, n]
 * @param {number} n cells per side
 * @param {(lon: number, lat: number) => number} f
 * @returns {(lon: number, lat: number) => number}
 */
export function gridSampler(rect, n, f) {
  const [w, s, e, nn] = rect;
  const dx = (e - w) / n;
  const dy = (nn - s) / n;
  const grid = new Float64Array((n + 1) * (n + 1)).fill(Number.NaN);
  const sample = (/** @type {number} */ i, /** @type {number} */ j) => {
    const k = j * (n + 1) + i;
    if (Number.isNaN(grid[k])) grid[k] = f(w + i * dx, s + j * dy);
    return grid[k];
  };
  return (lon, lat) => {
    const fx = Math.min(Math.max((lon - w) / dx, 0), n - 1e-9);
    const fy = Math.min(Math.max((lat - s) / dy, 0), n - 1e-9);
    const i = Math.floor(fx);
    const j = Math.floor(fy);
    const u = fx - i;
    const v = fy - j;
    const south = sample(i, j) * (1 - u) + sample(i + 1, j) * u;
    const north = sample(i, j + 1) * (1 - u) + sample(i + 1, j + 1) * u;
    return south * (1 - v) + north * v;
  };
}

// --- features kept by id -------------------------------------------------------------------------

/**
 * Which drawn tile draws each feature: a feature in several tiles (a polygon across a
 * tile edge, a point on one) is drawn by one of them; when that tile goes, another
 * drawn tile holding it takes it over.
 */
export class FeatureOwners {
  constructor() {
    /** @type {Map<number, string>} fid → the tile drawing it */
    this.owner = new Map();
    /** @type {Map<number, Set<string>>} fid → drawn tiles holding it */
    this.holders = new Map();
  }

  /**
   * A tile is drawn: the features it holds that no other tile draws are its own.
   * @param {string} key
   * @param {Iterable<number>} fids
   * @returns {number[]} the fids this tile must draw
   */
  add(key, fids) {
    const mine = [];
    for (const fid of fids) {
      let h = this.holders.get(fid);
      if (!h) this.holders.set(fid, (h = new Set()));
      h.add(key);
      if (!this.owner.has(fid)) {
        this.owner.set(fid, key);
        mine.push(fid);
      }
    }
    return mine;
  }

  /**
   * A tile is no longer drawn.
   * @param {string} key
   * @param {Iterable<number>} fids the fids it held
   * @returns {{dropped: number[], moved: Map<string, number[]>}} features no drawn tile
   *   holds any more, and those another drawn tile takes over (by that tile)
   */
  remove(key, fids) {
    const dropped = [];
    /** @type {Map<string, number[]>} */
    const moved = new Map();
    for (const fid of fids) {
      const h = this.holders.get(fid);
      if (!h) continue;
      h.delete(key);
      if (this.owner.get(fid) !== key) continue;
      const next = h.values().next();
      if (next.done) {
        this.owner.delete(fid);
        this.holders.delete(fid);
        dropped.push(fid);
      } else {
        this.owner.set(fid, next.value);
        if (!moved.has(next.value)) moved.set(next.value, []);
        moved.get(next.value)?.push(fid);
      }
    }
    return { dropped, moved };
  }

  /** Number of features drawn. */
  get size() {
    return this.owner.size;
  }
}

// --- requests ------------------------------------------------------------------------------------

/** The session's department token (entered in the events panel), or null. */
export function sessionToken() {
  try {
    return globalThis.sessionStorage?.getItem(TOKEN_KEY) || null;
  } catch {
    return null;
  }
}

/** Request headers: JSON, and the session's token when there is one. */
export function authHeaders() {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  const token = sessionToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

/**
 * An API link as a URL relative to the page (the server gives absolute paths; the
 * page may be served under a prefix).
 * @param {string} link
 */
export function relative(link) {
  return String(link).replace(/^\/+/, '');
}

/**
 * @param {string} url
 * @param {AbortSignal} [signal]
 */
export function getJson(url, signal) {
  return fetchJson(url, { headers: authHeaders(), signal });
}

// --- the layer kind ---------------------------------------------------------------------------------

/** The shared state of every department layer of the page. */
const shared = {
  /** @type {Map<string, DeptLayer>} by tree id */
  layers: new Map(),
  /** @type {any} */
  handler: null,
  /** @type {any} */
  panel: null,
  /** @type {any} */
  search: null,
  /** @type {any} */
  ctx: null,
  /** @type {{ms: number, layers: number | null, status: number | null} | null} the last listing */
  lastCatalog: null,
};

/** window.cim.deptlayers: the layers and the panel, for the tests and the benchmark. */
function publishHooks() {
  const cim = window.cim;
  if (!cim) return;
  cim.deptlayers = {
    layers: shared.layers,
    get: (/** @type {number} */ lid) => shared.layers.get(`deptlayer-${lid}`),
    catalog: () => shared.lastCatalog,
    reload: () => (shared.ctx ? loadCatalog(shared.ctx) : Promise.resolve([])),
    panel: shared.panel,
    search: shared.search,
  };
}

/**
 * Two uses: the server-layers entry (`{kind: 'deptlayer', catalog: true}`) lists
 * `/api/layers` and adds a layer per entry to the tree (itself resolving to null), and
 * an entry of that list makes its layer.
 * @param {any} ctx {viewer, bus, manifest}
 * @param {string} id
 * @param {any} info
 * @returns {Promise<import('../core/layertree.js').LayerHandle | null>}
 */
export async function create(ctx, id, info) {
  if (info?.catalog) {
    // department layers live in the live store: without one there is nothing to list
    // (and asking would only log an error)
    if (!(await liveStoreAvailable())) return null;
    shared.ctx = ctx;
    await loadCatalog(ctx);
    onLangChange(() => {
      for (const layer of shared.layers.values()) layer.setLegend();
      shared.panel?.refresh();
      shared.search?.refresh();
    });
    ctx.bus.on('token:change', () => loadCatalog(ctx));
    return null;
  }
  return makeLayer(ctx, info);
}

/** @type {Promise<boolean> | null} */
let liveInfo = null;

/** Whether the server has a live store (`/api/live/info`; asked once per page). */
export function liveStoreAvailable() {
  if (!liveInfo) {
    liveInfo = fetchJson('api/live/info').then(
      (body) => Boolean(body?.available),
      () => false,
    );
  }
  return liveInfo;
}

/**
 * Add every layer of /api/layers the tree does not have yet (none when the server has
 * no live store).
 * @param {any} ctx
 */
export async function loadCatalog(ctx) {
  let list;
  const started = performance.now();
  try {
    list = await getJson(CATALOG_URL);
  } catch (err) {
    const status = /** @type {any} */ (err).status;
    shared.lastCatalog = { ms: performance.now() - started, layers: null, status: status ?? null };
    if (status && status !== 404 && status !== 503) toast(`${t('dlCatalogFailed')} (${status})`);
    return [];
  }
  const cim = window.cim || {};
  const added = [];
  if (!shared.panel && cim.panels) {
    const { DeptLayerPanel, mountLayerSearch } = await import('../panels/deptlayer.js');
    shared.panel = new DeptLayerPanel(cim.panels, ctx.bus);
    shared.search = mountLayerSearch(() => [...shared.layers.values()], ctx.bus);
  }
  for (const info of list?.layers || []) {
    const treeId = `deptlayer-${info.id}`;
    if (cim.tree?.get(treeId)) continue;
    const handle = makeLayer(ctx, info);
    if (cim.tree) {
      handle.group = cim.tree.departmentGroup(info.department, info.department_name || info.department);
      cim.tree.add(handle);
    }
    added.push(handle);
  }
  shared.search?.refresh();
  shared.lastCatalog = { ms: performance.now() - started, layers: (list?.layers || []).length, status: 200 };
  publishHooks();
  return added;
}

/**
 * @param {any} ctx
 * @param {any} info an /api/layers entry
 * @returns {import('../core/layertree.js').LayerHandle}
 */
function makeLayer(ctx, info) {
  const layer = new DeptLayer(ctx, info);
  shared.layers.set(layer.treeId, layer);
  ensureHandler(ctx.viewer);
  publishHooks();
  layer.setShow(true);
  return {
    id: layer.treeId,
    kind: 'deptlayer',
    label: String(info.name),
    object: layer,
    getShow: () => layer.show,
    setShow: (on) => layer.setShow(on),
    getOpacity: () => layer.opacity,
    setOpacity: (v) => layer.setOpacity(v),
  };
}

/** One click handler for every department layer. @param {any} viewer */
function ensureHandler(viewer) {
  if (shared.handler) return;
  /** @type {any} */
  const Cesium = window.Cesium;
  shared.handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
  shared.handler.setInputAction((/** @type {any} */ ev) => {
    // a map tool (measure, clip...) takes the click: no pick (it may draw a full frame)
    if (/** @type {any} */ (window).cim?.tools?.capturesClicks()) return;
    const picked = viewer.scene.pick(ev.position);
    const id = picked?.id;
    if (id?.layerPick !== 'deptlayer') return;
    const layer = shared.layers.get(`deptlayer-${id.layer}`);
    if (layer) layer.pick(id.fid);
  }, Cesium.ScreenSpaceEventType.LEFT_CLICK);
}

/**
 * @typedef {object} TileGraphics what one drawn tile put on the map
 * @property {number[]} fids every feature id of the tile
 * @property {any[]} primitives its line/polygon batches
 */

export class DeptLayer {
  /**
   * @param {any} ctx {viewer, bus}
   * @param {any} info the /api/layers entry
   */
  constructor(ctx, info) {
    /** @type {any} */
    const Cesium = window.Cesium;
    this.Cesium = Cesium;
    this.viewer = ctx.viewer;
    this.bus = ctx.bus;
    this.info = info;
    this.id = Number(info.id);
    this.treeId = `deptlayer-${info.id}`;
    this.name = String(info.name);
    this.style = info.style || {};
    this.tiled = info.serve === 'tiles';
    this.show = false;
    this.opacity = Number.isFinite(Number(this.style.opacity)) ? Number(this.style.opacity) : 0.9;
    const scene = this.viewer.scene;
    this.icon = iconUrl(this.style.point?.icon);
    // one blend pass, not CesiumJS's default opaque + translucent pair, which draws every
    // point and glyph twice a frame (CesiumJS: "can improve performance by up to 2x")
    this.points = scene.primitives.add(
      this.icon ? new Cesium.BillboardCollection({ scene, blendOption: Cesium.BlendOption.TRANSLUCENT }) : new Cesium.PointPrimitiveCollection({ blendOption: this.pointBlend() }),
    );
    this.labels = scene.primitives.add(new Cesium.LabelCollection({ scene, blendOption: Cesium.BlendOption.TRANSLUCENT }));
    /** @type {Map<number, any>} fid → its point (billboard) */
    this.pointsById = new Map();
    /** @type {Map<number, any>} fid → its label */
    this.labelsById = new Map();
    /** @type {Map<number, {lon: number, lat: number}>} fid → where its point/label is */
    this.placed = new Map();
    this.owners = new FeatureOwners();
    /** @type {Map<string, any>} tile key → its GeoJSON (LRU: oldest first) */
    this.cache = new Map();
    /** @type {Map<string, TileGraphics>} tiles drawn */
    this.drawn = new Map();
    /** @type {Map<string, Promise<void>>} */
    this.pending = new Map();
    /** @type {Map<number, any>} fid → feature, for the tiles drawn */
    this.features = new Map();
    /** @type {Map<string, any>} */
    this.colors = new Map();
    this.tilesInfo = null;
    this.loadedAt = null;
    this.shownAt = null;
    this.stats = { requests: 0, features: 0, lastSelect: 0, drawMs: 0, heightMs: 0 };
    this.updateQueued = false;
    /** tiles the last selection wanted and did not have */
    this.wanted = 0;
    /** @type {any} */
    this.removeCameraListener = null;
    this.coarseHeights = false;
    /**
     * Drawn tiles whose points took their heights while the globe was still loading:
     * re-taken when it has loaded. A coarse terrain tile is far off the ground (a level-5
     * tile's flat triangles lie ~5 km under a city), so a height taken from it is wrong,
     * not missing, and would stay wrong.
     * @type {Set<string>}
     */
    this.staleHeights = new Set();
    /** @type {Set<string>} tiles the last selection went through */
    this.visited = new Set();
    /** @type {Map<number, {text: string, at: number[], pos: any}>} features that may be labelled */
    this.labelCands = new Map();
    this.labelsDirty = false;
    this.tileArrived = false;
    /** @type {(lon: number, lat: number) => number} ground height for the points being drawn */
    this.exactHeight = (/** @type {number} */ lon, /** @type {number} */ lat) => this.groundHeight(lon, lat);
    this.heightFn = this.exactHeight;
  }

  // --- on / off, opacity, legend -------------------------------------------------------------

  /** @param {boolean} on */
  setShow(on) {
    if (on === this.show) return;
    this.show = on;
    this.points.show = on;
    this.labels.show = on;
    if (on) {
      this.shownAt = performance.now();
      this.loadedAt = null;
      this.setLegend();
      const camera = this.viewer.camera;
      camera.percentageChanged = Math.min(camera.percentageChanged, 0.2);
      const onMove = () => this.scheduleUpdate();
      const a = camera.changed.addEventListener(onMove);
      const b = camera.moveEnd.addEventListener(onMove);
      const c = this.viewer.scene.globe.tileLoadProgressEvent.addEventListener((/** @type {number} */ n) => {
        if (n === 0 && this.staleHeights.size) this.refreshHeights();
      });
      this.removeCameraListener = () => {
        a();
        b();
        c();
      };
      this.scheduleUpdate();
    } else {
      this.removeCameraListener?.();
      this.removeCameraListener = null;
      // nothing stays on the map while the layer is off: tiles are dropped (kept in the cache)
      for (const key of [...this.drawn.keys()]) this.undraw(key);
      window.cim?.legend?.clear(this.treeId);
      if (shared.panel?.layerId === this.id) shared.panel.close();
    }
    this.viewer.scene.requestRender();
  }

  /** The dots' blending: opaque at full opacity, else translucent (never both passes). */
  pointBlend() {
    return this.opacity >= 1 ? this.Cesium.BlendOption.OPAQUE : this.Cesium.BlendOption.TRANSLUCENT;
  }

  /** @param {number} value 0..1 */
  setOpacity(value) {
    this.opacity = value;
    if (!this.icon) this.points.blendOption = this.pointBlend();
    for (const [fid, p] of this.pointsById) p.color = this.featureColor(this.features.get(fid)?.properties);
    for (const g of this.drawn.values()) for (const prim of g.primitives) this.recolor(prim);
    this.viewer.scene.requestRender();
  }

  /** @param {any} prim a batch whose instances carry their fid */
  recolor(prim) {
    if (!prim.ready || !prim.fids) return;
    const Cesium = this.Cesium;
    for (const fid of prim.fids) {
      const attrs = prim.getGeometryInstanceAttributes({ layerPick: 'deptlayer', layer: this.id, fid });
      if (!attrs) continue;
      const color = this.featureColor(this.features.get(fid)?.properties);
      attrs.color = Cesium.ColorGeometryInstanceAttribute.toValue(color, attrs.color);
    }
  }

  setLegend() {
    if (!this.show) return;
    window.cim?.legend?.set(this.treeId, legendEntry({ name: this.name, style: this.style }));
  }

  /**
   * @param {Record<string, any> | null | undefined} props
   * @returns {any} a Cesium colour with the layer's opacity
   */
  featureColor(props) {
    const css = classColor(this.style, props);
    const key = `${css}|${this.opacity}`;
    let c = this.colors.get(key);
    if (!c) {
      // an icon is drawn as it is (tinted only when the style colours by an attribute)
      const base = this.icon && !this.style.by ? this.Cesium.Color.WHITE : this.Cesium.Color.fromCssColorString(css);
      this.colors.set(key, (c = base.withAlpha(this.opacity)));
    }
    return c;
  }

  // --- what to load ------------------------------------------------------------------------------

  scheduleUpdate() {
    if (this.updateQueued || !this.show) return;
    this.updateQueued = true;
    setTimeout(() => {
      this.updateQueued = false;
      this.update();
    }, 60);
  }

  /** Load and draw what the view needs (the whole layer, or its tiles in view). */
  update() {
    if (!this.show) return;
    if (!this.tiled) {
      this.ensureTile('all', () => getJson(relative(this.info.links?.features || `/api/layers/${this.id}/features`)));
      this.refreshLabels();
      return;
    }
    if (!this.tilesInfo) {
      this.tilesInfo = getJson(relative(this.info.links?.tiles || `/api/layers/${this.id}/tiles.json`)).then(
        (json) => {
          this.tilesInfo = json;
          this.scheduleUpdate();
        },
        (err) => {
          this.tilesInfo = null;
          this.fail(err);
        },
      );
      return;
    }
    if (this.tilesInfo instanceof Promise) return;
    const started = performance.now();
    const { draw, request, visited } = this.select();
    this.visited = visited;
    this.stats.lastSelect = performance.now() - started;
    const wanted = new Set(draw);
    for (const key of [...this.drawn.keys()]) if (!wanted.has(key)) this.undraw(key);
    for (const key of draw) this.drawTile(key);
    for (const key of request.slice(0, PARALLEL * 2)) {
      const [z, x, y] = parseKey(key);
      const url = relative(String(this.tilesInfo.tiles).replace('{z}', String(z)).replace('{x}', String(x)).replace('{y}', String(y)));
      this.ensureTile(key, () => getJson(url));
    }
    this.wanted = request.length;
    if (!request.length && !this.pending.size && this.loadedAt === null) this.markLoaded();
    this.refreshLabels();
  }

  /** The tiles to draw and to request for the camera's view. */
  select() {
    const Cesium = this.Cesium;
    const bounds = this.tilesInfo?.bounds || this.info.bbox;
    if (!bounds) return { draw: [], request: [], visited: new Set() };
    const scene = this.viewer.scene;
    const rect = this.viewer.camera.computeViewRectangle(scene.globe.ellipsoid);
    const view = rect
      ? [Cesium.Math.toDegrees(rect.west), Cesium.Math.toDegrees(rect.south), Cesium.Math.toDegrees(rect.east), Cesium.Math.toDegrees(rect.north)]
      : bounds;
    // a view across the antimeridian: keep the layer's bounds
    const area = intersect(bounds, view[0] <= view[2] ? view : bounds);
    const camera = this.viewer.camera.positionWC;
    const carto = new Cesium.Cartographic();
    const centre = new Cesium.Cartesian3();
    const loaded = new Map();
    for (const [key, json] of this.cache) loaded.set(key, { complete: json.complete !== false });
    const refine = (/** @type {number} */ z, /** @type {number} */ x, /** @type {number} */ y) => {
      const [w, s, e, n] = tileRect(z, x, y);
      const a = intersect([w, s, e, n], area) || [w, s, e, n];
      carto.longitude = Cesium.Math.toRadians(Math.min(Math.max(Cesium.Math.toDegrees(Cesium.Cartographic.fromCartesian(camera).longitude), a[0]), a[2]));
      carto.latitude = Cesium.Math.toRadians(Math.min(Math.max(Cesium.Math.toDegrees(Cesium.Cartographic.fromCartesian(camera).latitude), a[1]), a[3]));
      carto.height = 0;
      Cesium.Cartographic.toCartesian(carto, scene.globe.ellipsoid, centre);
      const distance = Math.max(Cesium.Cartesian3.distance(camera, centre), 1);
      const width = (e - w) * 111320 * Math.cos(Cesium.Math.toRadians((s + n) / 2));
      return width > REFINE_RATIO * distance;
    };
    return selectTiles({ area, start: levelFor(bounds), loaded, refine });
  }

  /**
   * Fetch a tile's data once (the cache keeps it).
   * @param {string} key
   * @param {() => Promise<any>} load
   */
  ensureTile(key, load) {
    if (this.cache.has(key)) {
      if (key === 'all') this.drawTile('all');
      if (key === 'all' && this.loadedAt === null) this.markLoaded();
      return;
    }
    // the first tile goes alone: the server builds the layer's tile index on it, and
    // parallel first requests would each build it
    const parallel = this.tileArrived || key === 'all' ? PARALLEL : 1;
    if (this.pending.has(key) || this.pending.size >= parallel) return;
    this.stats.requests += 1;
    const p = load().then(
      (json) => {
        this.pending.delete(key);
        this.tileArrived = true;
        this.cache.set(key, json);
        while (this.cache.size > CACHE_TILES) {
          // never a tile the last selection went through (it would be asked for again)
          const oldest = [...this.cache.keys()].find((k) => !this.drawn.has(k) && !this.visited.has(k) && k !== key);
          if (oldest === undefined) break;
          this.cache.delete(oldest);
        }
        if (key === 'all') {
          if (this.show) this.drawTile('all');
          this.refreshLabels();
          this.markLoaded();
        } else {
          this.scheduleUpdate();
        }
      },
      (err) => {
        this.pending.delete(key);
        this.fail(err);
      },
    );
    this.pending.set(key, p);
  }

  /** @param {any} err */
  fail(err) {
    const status = /** @type {any} */ (err)?.status;
    toast(`${t('dlLoadFailed')}: ${this.name}${status ? ` (${status})` : ''}`);
    this.bus.emit('layer:error', { id: this.treeId, kind: 'deptlayer', error: err });
  }

  markLoaded() {
    if (this.shownAt === null) return;
    this.loadedAt = performance.now();
    this.bus.emit('deptlayer:loaded', { id: this.treeId, ms: this.loadedAt - this.shownAt });
  }

  // --- drawing --------------------------------------------------------------------------------------

  /** @param {string} key draw a cached tile (once) */
  drawTile(key) {
    if (this.drawn.has(key) || !this.show) return;
    const json = this.cache.get(key);
    if (!json) return;
    const started = performance.now();
    // a tile moves to the end of the LRU when it is drawn
    this.cache.delete(key);
    this.cache.set(key, json);
    const features = json.features || [];
    const fids = features.map((/** @type {any} */ f) => Number(f.id));
    const mine = new Set(this.owners.add(key, fids));
    const own = features.filter((/** @type {any} */ f) => mine.has(Number(f.id)));
    for (const f of own) this.features.set(Number(f.id), f);
    const z = key === 'all' ? MAX_ZOOM : parseKey(key)[0];
    /** @type {TileGraphics} */
    const g = { fids, primitives: [] };
    this.drawn.set(key, g);
    // a coarse tile is seen from afar: its points take the ground height from a grid
    this.heightFn = z < EXACT_HEIGHT_LEVEL ? this.heightGrid(keyRect(key)) : this.exactHeight;
    this.drawFeatures(g, own, z >= LABEL_LEVEL);
    this.heightFn = this.exactHeight;
    this.markHeights(key);
    this.stats.features = this.owners.size;
    this.stats.drawMs += performance.now() - started;
    this.viewer.scene.requestRender();
  }

  /**
   * @param {TileGraphics} g
   * @param {any[]} features
   * @param {boolean} labels whether labels are made (close enough to read)
   */
  drawFeatures(g, features, labels) {
    const lines = [];
    const polygons = [];
    const extruded = [];
    const extrude = this.style.polygon?.extrude;
    for (const f of features) {
      const fid = Number(f.id);
      const parts = splitGeometry(f.geometry);
      const pickId = { layerPick: 'deptlayer', layer: this.id, fid };
      const color = this.featureColor(f.properties);
      for (const p of parts.points.slice(0, 1)) this.addPoint(fid, p, color, pickId);
      for (const line of parts.lines) if (line.length >= 2) lines.push({ fid, line, color, pickId });
      for (const poly of parts.polygons) {
        if (!poly[0] || poly[0].length < 4) continue;
        if (extrude) extruded.push({ fid, poly, color, pickId, height: Number(f.properties?.[extrude.attribute]) * Number(extrude.scale ?? 1) });
        else polygons.push({ fid, poly, color, pickId });
      }
      if (labels && this.style.label?.attribute) this.labelCandidate(f, parts);
    }
    if (lines.length) g.primitives.push(this.lineBatch(lines));
    if (polygons.length) g.primitives.push(this.polygonBatch(polygons));
    if (extruded.length) g.primitives.push(this.extrudedBatch(extruded));
    if (this.style.polygon?.outline !== false && polygons.length && !extrude) {
      const rings = polygons.map((p) => ({ ...p, line: p.poly[0], color: this.outlineColor(p.color) }));
      g.primitives.push(this.lineBatch(rings, 1.5));
    }
  }

  /** @param {any} color an outline: the fill colour, opaque and darker */
  outlineColor(color) {
    return this.Cesium.Color.multiplyByScalar(color, 0.7, new this.Cesium.Color()).withAlpha(Math.min(1, this.opacity + 0.1));
  }

  /**
   * Ground height at a place (what the terrain loaded so far says; 0 on the ellipsoid).
   * @param {number} lon
   * @param {number} lat
   */
  groundHeight(lon, lat) {
    const Cesium = this.Cesium;
    const t0 = performance.now();
    const h = this.viewer.scene.globe.getHeight(Cesium.Cartographic.fromDegrees(lon, lat));
    this.stats.heightMs += performance.now() - t0;
    if (h === undefined) {
      this.coarseHeights = true;
      return 0;
    }
    return h;
  }

  /**
   * @param {number} fid
   * @param {number[]} p [lon, lat]
   * @param {any} color
   * @param {any} pickId
   */
  addPoint(fid, p, color, pickId) {
    if (this.pointsById.has(fid)) return;
    const Cesium = this.Cesium;
    const [lon, lat] = p;
    const position = Cesium.Cartesian3.fromDegrees(lon, lat, this.heightFn(lon, lat));
    const size = Number(this.style.point?.size) || 10;
    const point = this.icon
      ? this.points.add({
          position,
          image: this.icon,
          width: size,
          height: size,
          color,
          verticalOrigin: Cesium.VerticalOrigin.BOTTOM,
          // the terrain may still be coarse: a marker never hides under it
          disableDepthTestDistance: Number.POSITIVE_INFINITY,
          id: pickId,
        })
      : this.points.add({
          position,
          pixelSize: size,
          color,
          outlineColor: Cesium.Color.fromCssColorString('#0b1320').withAlpha(0.8),
          outlineWidth: 1,
          disableDepthTestDistance: Number.POSITIVE_INFINITY,
          id: pickId,
        });
    this.pointsById.set(fid, point);
    this.placed.set(fid, { lon, lat });
  }

  /**
   * @param {any} f a feature
   * @param {{points: number[][], lines: number[][][], polygons: number[][][][]}} parts
   */
  labelCandidate(f, parts) {
    const fid = Number(f.id);
    const text = f.properties?.[this.style.label.attribute];
    if (text === null || text === undefined || String(text) === '') return;
    let at = parts.points[0];
    if (!at) {
      const b = geometryBbox(f.geometry);
      if (!b) return;
      at = [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];
    }
    this.labelCands.set(fid, { text: String(text), at, pos: this.Cesium.Cartesian3.fromDegrees(at[0], at[1], 0) });
    this.labelsDirty = true;
  }

  /**
   * Labels for the features near the camera only (a label costs a layout and glyphs):
   * made when the camera comes within the label distance, dropped when it leaves.
   */
  refreshLabels() {
    if (!this.labelsDirty && this.labelCands.size === 0) return;
    this.labelsDirty = false;
    const Cesium = this.Cesium;
    const camera = this.viewer.camera.positionWC;
    const range = (Number(this.style.label?.max_distance) || 2000) * 1.2;
    const carto = Cesium.Cartographic.fromCartesian(camera);
    // the candidates' positions are on the ellipsoid: allow for the camera's height
    const limit = range * range + (carto ? carto.height * carto.height : 0);
    // the nearest candidates within reach get labels; the others lose theirs
    const near = [];
    for (const [fid, c] of this.labelCands) {
      const d = Cesium.Cartesian3.distanceSquared(camera, c.pos);
      if (d <= limit) near.push({ fid, d });
    }
    near.sort((a, b) => a.d - b.d);
    const keep = new Set(near.slice(0, MAX_LABELS).map((n) => n.fid));
    for (const [fid, label] of this.labelsById) {
      if (keep.has(fid)) continue;
      this.labels.remove(label);
      this.labelsById.delete(fid);
    }
    for (const fid of keep) {
      const c = this.labelCands.get(fid);
      if (c && !this.labelsById.has(fid)) this.addLabel(fid, c);
    }
    this.viewer.scene.requestRender();
  }

  /**
   * @param {number} fid
   * @param {{text: string, at: number[]}} c
   */
  addLabel(fid, c) {
    const Cesium = this.Cesium;
    const { text, at } = c;
    const lab = this.style.label;
    const label = this.labels.add({
      position: Cesium.Cartesian3.fromDegrees(at[0], at[1], this.groundHeight(at[0], at[1])),
      text, // a label is text: Cesium draws it, never parses it
      font: `${Number(lab.size) || 14}px sans-serif`,
      fillColor: Cesium.Color.fromCssColorString(lab.color || '#ffffff'),
      outlineColor: Cesium.Color.fromCssColorString('#0b1320'),
      outlineWidth: 3,
      style: Cesium.LabelStyle.FILL_AND_OUTLINE,
      verticalOrigin: Cesium.VerticalOrigin.BOTTOM,
      pixelOffset: new Cesium.Cartesian2(0, -(Number(this.style.point?.size) || 10) - 2),
      distanceDisplayCondition: new Cesium.DistanceDisplayCondition(0, Number(lab.max_distance) || 2000),
      disableDepthTestDistance: Number.POSITIVE_INFINITY,
      id: { layerPick: 'deptlayer', layer: this.id, fid },
    });
    this.labelsById.set(fid, label);
    if (!this.placed.has(fid)) this.placed.set(fid, { lon: at[0], lat: at[1] });
    this.markHeights(this.owners.owner.get(fid));
  }

  /**
   * One GroundPolylinePrimitive for many lines (per-instance colours).
   * @param {{fid: number, line: number[][], color: any, pickId: any}[]} items
   * @param {number} [width]
   */
  lineBatch(items, width) {
    const Cesium = this.Cesium;
    const w = width ?? (Number(this.style.line?.width) || 3);
    const instances = items.map(
      (it) =>
        new Cesium.GeometryInstance({
          geometry: new Cesium.GroundPolylineGeometry({ positions: Cesium.Cartesian3.fromDegreesArray(it.line.flatMap((c) => [c[0], c[1]])), width: w }),
          attributes: { color: Cesium.ColorGeometryInstanceAttribute.fromColor(it.color) },
          id: it.pickId,
        }),
    );
    const prim = new Cesium.GroundPolylinePrimitive({
      geometryInstances: instances,
      appearance: new Cesium.PolylineColorAppearance(),
      asynchronous: true,
    });
    prim.fids = items.map((it) => it.fid);
    return this.viewer.scene.groundPrimitives.add(prim);
  }

  /**
   * One GroundPrimitive for many polygons (per-instance colours), draped on the terrain.
   * @param {{fid: number, poly: number[][][], color: any, pickId: any}[]} items
   */
  polygonBatch(items) {
    const Cesium = this.Cesium;
    const instances = items.map(
      (it) =>
        new Cesium.GeometryInstance({
          geometry: new Cesium.PolygonGeometry({ polygonHierarchy: hierarchy(Cesium, it.poly) }),
          attributes: { color: Cesium.ColorGeometryInstanceAttribute.fromColor(it.color) },
          id: it.pickId,
        }),
    );
    const prim = new Cesium.GroundPrimitive({
      geometryInstances: instances,
      appearance: new Cesium.PerInstanceColorAppearance({ flat: true, translucent: true }),
      classificationType: Cesium.ClassificationType.TERRAIN,
      asynchronous: true,
    });
    prim.fids = items.map((it) => it.fid);
    return this.viewer.scene.groundPrimitives.add(prim);
  }

  /**
   * One Primitive of polygons extruded by an attribute (metres × scale) from the ground.
   * @param {{fid: number, poly: number[][][], color: any, pickId: any, height: number}[]} items
   */
  extrudedBatch(items) {
    const Cesium = this.Cesium;
    const instances = items.map((it) => {
      const [lon, lat] = it.poly[0][0];
      const base = this.groundHeight(lon, lat);
      const h = Number.isFinite(it.height) && it.height > 0 ? it.height : 0.5;
      return new Cesium.GeometryInstance({
        geometry: new Cesium.PolygonGeometry({ polygonHierarchy: hierarchy(Cesium, it.poly), height: base, extrudedHeight: base + h }),
        attributes: { color: Cesium.ColorGeometryInstanceAttribute.fromColor(it.color) },
        id: it.pickId,
      });
    });
    const prim = new Cesium.Primitive({
      geometryInstances: instances,
      appearance: new Cesium.PerInstanceColorAppearance({ translucent: true, closed: true }),
      asynchronous: true,
    });
    prim.fids = items.map((it) => it.fid);
    return this.viewer.scene.primitives.add(prim);
  }

  /** @param {string} key take a tile off the map (its features another tile holds stay) */
  undraw(key) {
    const g = this.drawn.get(key);
    if (!g) return;
    this.drawn.delete(key);
    this.staleHeights.delete(key);
    for (const prim of g.primitives) {
      if (this.viewer.scene.groundPrimitives.contains(prim)) this.viewer.scene.groundPrimitives.remove(prim);
      else this.viewer.scene.primitives.remove(prim);
    }
    const { dropped, moved } = this.owners.remove(key, g.fids);
    for (const fid of dropped) this.dropFeature(fid);
    for (const [other, fids] of moved) {
      const target = this.drawn.get(other);
      const json = this.cache.get(other);
      if (!target || !json) continue;
      // lines and polygons drawn by the tile that went are redrawn by the one that holds them
      const want = new Set(fids.filter((fid) => !this.pointsById.has(fid)));
      if (!want.size) continue;
      const features = (json.features || []).filter((/** @type {any} */ f) => want.has(Number(f.id)));
      for (const f of features) this.features.set(Number(f.id), f);
      this.drawFeatures(target, features, parseKey(other)[0] >= LABEL_LEVEL);
    }
    this.stats.features = this.owners.size;
  }

  /** @param {number} fid */
  dropFeature(fid) {
    const p = this.pointsById.get(fid);
    if (p) this.points.remove(p);
    this.pointsById.delete(fid);
    const l = this.labelsById.get(fid);
    if (l) this.labels.remove(l);
    this.labelsById.delete(fid);
    this.labelCands.delete(fid);
    this.placed.delete(fid);
    this.features.delete(fid);
  }

  /**
   * Ground heights over a rectangle from a 17 × 17 grid of samples, interpolated
   * bilinearly (a level-12 tile: a sample every ~300 m; the terrain between samples is
   * off by metres, invisible from where such a tile is drawn, and the points are never
   * hidden under it).
   * @param {number[]} rect [w, s, e, n]
   * @returns {(lon: number, lat: number) => number}
   */
  heightGrid(rect) {
    return gridSampler(rect, HEIGHT_GRID, (lon, lat) => this.groundHeight(lon, lat));
  }

  /** @param {string | undefined} key a tile drawn (or labelled) now: are its heights final? */
  markHeights(key) {
    if (key !== undefined && (this.coarseHeights || !this.viewer.scene.globe.tilesLoaded)) this.staleHeights.add(key);
  }

  /**
   * Points and labels of the tiles drawn while the terrain was still loading: put them
   * on the ground it has now (only those tiles: a street view holds thousands of points).
   */
  refreshHeights() {
    const keys = [...this.staleHeights];
    this.staleHeights.clear();
    const Cesium = this.Cesium;
    for (const key of keys) {
      const g = this.drawn.get(key);
      if (!g) continue;
      this.coarseHeights = false;
      const z = key === 'all' ? MAX_ZOOM : parseKey(key)[0];
      const height = z < EXACT_HEIGHT_LEVEL ? this.heightGrid(keyRect(key)) : this.exactHeight;
      for (const fid of g.fids) {
        const at = this.placed.get(fid);
        if (!at || this.owners.owner.get(fid) !== key) continue;
        const pos = Cesium.Cartesian3.fromDegrees(at.lon, at.lat, height(at.lon, at.lat));
        const p = this.pointsById.get(fid);
        if (p) p.position = pos;
        const l = this.labelsById.get(fid);
        if (l) l.position = pos;
      }
      // still loading (a finer level), or a place without terrain yet: once more later
      this.markHeights(key);
    }
    this.viewer.scene.requestRender();
  }

  // --- picking, search, fly to, test hooks ----------------------------------------------------------

  /** @param {number} fid open a feature's attributes (all of them, from the server) */
  async pick(fid) {
    if (!shared.panel) return;
    shared.panel.loading(this, fid);
    try {
      const feature = await getJson(relative(`/api/layers/${this.id}/features/${fid}`));
      shared.panel.show(this, feature);
      this.bus.emit('deptlayer:select', { layer: this.id, fid });
    } catch (err) {
      shared.panel.failed(this, fid, /** @type {any} */ (err).status);
    }
  }

  /**
   * Features whose attributes contain the text (the server's `q=`).
   * @param {string} q
   * @param {number} [limit]
   */
  async search(q, limit = 20) {
    const url = relative(`/api/layers/${this.id}/features?q=${encodeURIComponent(q)}&limit=${limit}`);
    return getJson(url);
  }

  /** @param {any} feature fly to a feature and show it */
  flyTo(feature) {
    const Cesium = this.Cesium;
    const b = geometryBbox(feature.geometry);
    if (!b) return;
    const lon = (b[0] + b[2]) / 2;
    const lat = (b[1] + b[3]) / 2;
    const radius = Math.max(30, Math.hypot((b[2] - b[0]) * 111320 * Math.cos((lat * Math.PI) / 180), (b[3] - b[1]) * 111320) / 2);
    const centre = Cesium.Cartesian3.fromDegrees(lon, lat, this.groundHeight(lon, lat));
    this.viewer.camera.flyToBoundingSphere(new Cesium.BoundingSphere(centre, radius), {
      offset: new Cesium.HeadingPitchRange(0, Cesium.Math.toRadians(-45), radius * 6 + 200),
      duration: 1.2,
    });
    shared.panel?.show(this, feature);
  }

  /**
   * Where a feature's point or label is drawn: lon, lat, height and the screen position
   * (CSS pixels), or null (test hook).
   * @param {number} fid
   */
  where(fid) {
    const Cesium = this.Cesium;
    const obj = this.pointsById.get(fid) || this.labelsById.get(fid);
    if (!obj) return null;
    const carto = Cesium.Cartographic.fromCartesian(obj.position);
    const screen = Cesium.SceneTransforms.worldToWindowCoordinates(this.viewer.scene, obj.position);
    return {
      lon: Cesium.Math.toDegrees(carto.longitude),
      lat: Cesium.Math.toDegrees(carto.latitude),
      h: carto.height,
      x: screen ? screen.x : null,
      y: screen ? screen.y : null,
      color: obj.color ? obj.color.toCssColorString() : null,
      show: obj.show && this.points.show,
    };
  }

  /** Test and bench hook: what is drawn now. */
  state() {
    return {
      show: this.show,
      opacity: this.opacity,
      tiled: this.tiled,
      drawnTiles: [...this.drawn.keys()],
      pending: this.pending.size,
      // drawn and settled: nothing pending, nothing more wanted, no update queued
      settled: this.pending.size === 0 && this.wanted === 0 && !this.updateQueued,
      cached: this.cache.size,
      features: this.owners.size,
      points: this.pointsById.size,
      labels: this.labelsById.size,
      primitives: [...this.drawn.values()].reduce((n, g) => n + g.primitives.length, 0),
      loadedMs: this.loadedAt !== null && this.shownAt !== null ? this.loadedAt - this.shownAt : null,
      requests: this.stats.requests,
      lastSelectMs: this.stats.lastSelect,
      drawMs: Math.round(this.stats.drawMs),
      staleHeights: this.staleHeights.size,
      heightMs: Math.round(this.stats.heightMs),
    };
  }
}

/**
 * A GeoJSON polygon's rings as a Cesium PolygonHierarchy (outer ring, then holes).
 * @param {any} Cesium
 * @param {number[][][]} rings
 */
function hierarchy(Cesium, rings) {
  const ring = (/** @type {number[][]} */ r) => Cesium.Cartesian3.fromDegreesArray(r.slice(0, -1).flatMap((c) => [c[0], c[1]]));
  return new Cesium.PolygonHierarchy(
    ring(rings[0]),
    rings.slice(1).map((h) => new Cesium.PolygonHierarchy(ring(h))),
  );
}
