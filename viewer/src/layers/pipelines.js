// @ts-check
// Layer kind "pipelines": the city below the ground (地下管线). The tileset
// tiles/pipelines carries one feature per pipe, joint, valve and well, coloured by
// utility (water blue, drainage brown, gas pink, power red...). The layer adds:
// - an underground mode: the globe turns translucent around the camera (near the
//   camera you see through the ground, far away it stays opaque) and the camera may go
//   below the surface;
// - picking: a click on a pipe opens its attributes (inserted as text, never HTML);
// - network queries on the picked pipe (server: /api/pipelines/...): burst analysis
//   (爆管分析: valves to close, pipes isolated and cut off), downstream/upstream, and
//   clearance (净距); their results are highlighted in the tiles.
// - drawn only when they can be seen: under the opaque terrain they cost a full-quality
//   frame ~45 ms under software WebGL (the sample city, 700 m away) for nothing (seeWhy,
//   checked before each frame); the layer tree's checkbox keeps the user's choice apart.

import { el } from '../util.js';

/** @typedef {import('../core/layertree.js').LayerHandle} LayerHandle */

export const group = 'pipelines';
export const order = 40;

/** Highlight colours of query results, by role. */
export const ROLE_COLOURS = Object.freeze({
  selected: '#ffffff',
  burst: '#ff1744',
  valve: '#00e5ff',
  isolated: '#ffd600',
  cut_off: '#9e9e9e',
  downstream: '#76ff03',
  upstream: '#d500f9',
  connected: '#76ff03',
  clearance: '#ff6d00',
});

/** Attribute labels (Chinese / English) in the order shown. */
export const FIELDS = Object.freeze([
  ['id', '编号 id'],
  ['kind', '类别 kind'],
  ['utility_name', '管线类型 utility'],
  ['size', '管径/断面 size'],
  ['material', '材质 material'],
  ['start', '起点 start'],
  ['end', '终点 end'],
  ['start_depth', '起点埋深 start depth (m)'],
  ['end_depth', '终点埋深 end depth (m)'],
  ['length', '长度 length (m)'],
  ['feature', '附属物 feature'],
  ['ground', '地面高程 ground (m)'],
  ['depth', '埋深 depth (m)'],
  ['laying', '埋设方式 laying'],
  ['pressure', '压力 pressure'],
  ['voltage', '电压 voltage'],
  ['holes', '孔数 holes'],
  ['owner', '权属 owner'],
  ['road', '道路 road'],
]);

const NO_DATA = -9999;

/**
 * The rows shown for a picked feature: [label, text], empty and no-data values left out,
 * numbers to centimetres.
 * @param {Record<string, unknown>} props
 * @returns {[string, string][]}
 */
export function attributeRows(props) {
  /** @type {[string, string][]} */
  const rows = [];
  for (const [key, label] of FIELDS) {
    const v = props[key];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v) || v === NO_DATA) continue;
      rows.push([label, String(Math.round(v * 100) / 100)]);
    } else {
      rows.push([label, String(v)]);
    }
  }
  return rows;
}

/**
 * Feature id → role of a query result (what to highlight, and how).
 * @param {'burst' | 'downstream' | 'upstream' | 'connected' | 'clearance'} kind
 * @param {any} result the server's answer
 * @returns {Map<string, string>}
 */
export function rolesOf(kind, result) {
  /** @type {Map<string, string>} */
  const roles = new Map();
  if (!result) return roles;
  if (kind === 'burst') {
    for (const id of result.cut_off || []) roles.set(String(id), 'cut_off');
    for (const id of result.isolated || []) roles.set(String(id), 'isolated');
    for (const id of result.valves || []) roles.set(String(id), 'valve');
    if (result.segment) roles.set(String(result.segment), 'burst');
  } else if (kind === 'clearance') {
    for (const v of result.violations || []) {
      for (const id of [v.a, v.b]) if (id && !String(id).startsWith('building:')) roles.set(String(id), 'clearance');
    }
  } else {
    for (const id of result.segments || []) roles.set(String(id), kind);
    if (result.segment) roles.set(String(result.segment), 'selected');
  }
  return roles;
}

/**
 * Globe translucency of the underground mode: see-through near the camera, opaque far.
 * @param {boolean} on
 * @returns {{enabled: boolean, near: number, nearAlpha: number, far: number, farAlpha: number}}
 */
export function translucency(on) {
  return { enabled: on, near: 300, nearAlpha: 0.25, far: 3000, farAlpha: 1.0 };
}

/**
 * @typedef {object} GroundState what decides whether the pipes under the ground can be seen
 * @property {boolean} underground the underground mode is on
 * @property {boolean} globeShown the globe (terrain and imagery) is drawn
 * @property {boolean} translucent the globe is translucent (by any means)
 * @property {boolean} depthTest things behind the terrain are hidden by it (depthTestAgainstTerrain)
 * @property {boolean} clipped the globe is cut (an excavation's polygons, clipping planes)
 * @property {boolean} cameraUnderground the camera is below the surface
 * @property {boolean} realTerrain the terrain is a real surface (not the flat ellipsoid, above
 *   which the pipes of a city higher than sea level float)
 * @property {boolean} scene3D the scene is in 3D (not 2D or Columbus view)
 */

/**
 * Why the pipes can be seen now, or null when the opaque terrain hides them all.
 * @param {GroundState} g
 * @returns {string | null}
 */
export function seeWhy(g) {
  if (g.underground) return 'underground';
  if (!g.globeShown) return 'no globe';
  if (g.translucent) return 'translucent globe';
  if (!g.depthTest) return 'no depth test against the terrain';
  if (g.clipped) return 'globe cut';
  if (g.cameraUnderground) return 'camera below the surface';
  if (!g.realTerrain) return 'flat terrain';
  if (!g.scene3D) return 'not 3D';
  return null;
}

/**
 * A collection of clipping planes or polygons that cuts something now.
 * @param {any} c
 */
function cuts(c) {
  return Boolean(c && c.enabled !== false && c.length > 0);
}

/**
 * The ground state of a Cesium viewer now (see seeWhy).
 * @param {any} Cesium
 * @param {any} viewer
 * @param {boolean} underground
 * @returns {GroundState}
 */
export function groundState(Cesium, viewer, underground) {
  const { scene } = viewer;
  const globe = scene.globe;
  return {
    underground,
    globeShown: Boolean(globe?.show),
    translucent: Boolean(globe?.translucency?.enabled),
    depthTest: Boolean(globe?.depthTestAgainstTerrain),
    clipped: cuts(globe?.clippingPolygons) || cuts(globe?.clippingPlanes),
    cameraUnderground: Boolean(scene.cameraUnderground),
    realTerrain: !(viewer.terrainProvider instanceof Cesium.EllipsoidTerrainProvider),
    scene3D: scene.mode === Cesium.SceneMode.SCENE3D,
  };
}

/** The query buttons: [kind, label]. */
export const QUERIES = Object.freeze([
  ['burst', '爆管分析 burst'],
  ['downstream', '下游 downstream'],
  ['upstream', '上游 upstream'],
  ['clearance', '净距 clearance'],
]);

/**
 * The URL of a query on a segment.
 * @param {string} kind
 * @param {string} id
 */
export function queryUrl(kind, id) {
  const seg = encodeURIComponent(id);
  if (kind === 'burst') return `api/pipelines/segments/${seg}/burst`;
  if (kind === 'clearance') return `api/pipelines/clearance?segment=${seg}`;
  return `api/pipelines/segments/${seg}/connected?direction=${kind}`;
}

class PipelinesLayer {
  /**
   * @param {any} ctx
   * @param {any} tileset
   */
  constructor(ctx, tileset) {
    this.Cesium = window.Cesium;
    this.viewer = ctx.viewer;
    this.bus = ctx.bus;
    this.tileset = tileset;
    /** @type {Map<string, string>} id → role */
    this.roles = new Map();
    /** @type {string | null} */
    this.selectedId = null;
    this.underground = false;
    /** the user's choice (the layer tree's checkbox) */
    this.userShow = true;
    /** @type {string | null} why the pipes can be seen now (null: hidden under the opaque terrain) */
    this.seen = null;
    /** @type {any} the last query's answer */
    this.lastResult = null;
    this.attrs = el('table', { cls: 'pipelines-attrs' });
    this.buttons = el('div', { cls: 'pipelines-queries' });
    this.result = el('div', { cls: 'pipelines-result' });
    this.panel = this.makePanel();
    tileset.layerPick = 'pipelines'; // the page's own click handler leaves these to us
    tileset.tileVisible.addEventListener((/** @type {any} */ tile) => this.paint(tile.content));
    const handler = new this.Cesium.ScreenSpaceEventHandler(this.viewer.scene.canvas);
    handler.setInputAction((/** @type {any} */ e) => this.onClick(e.position), this.Cesium.ScreenSpaceEventType.LEFT_CLICK);
    // tiles keep loading while hidden, so the pipes are there the moment they are revealed
    tileset.preloadWhenHidden = true;
    // after the scene's update (the camera's height against the terrain is known), before
    // its primitives are drawn: the same frame draws them or not
    this.viewer.scene.postUpdate.addEventListener(() => this.updateShow());
    this.updateShow();
  }

  /** Draw the tileset only when the user wants it and it can be seen now. */
  updateShow() {
    const scene = this.viewer.scene;
    const seen = seeWhy(groundState(this.Cesium, this.viewer, this.underground));
    const show = this.userShow && seen !== null;
    this.seen = seen;
    if (this.tileset.show === show) return;
    this.tileset.show = show;
    // a change found on a tick that draws nothing (the camera went below the surface in
    // the last frame) is drawn at the next one
    if (!scene.frameState?.newFrame) scene.requestRender();
    this.bus.emit('pipelines:visible', { shown: show, why: seen });
  }

  /** @param {boolean} on the user's choice (the layer tree) */
  setShow(on) {
    this.userShow = on;
    // hidden by the user: nothing to load
    this.tileset.preloadWhenHidden = on;
    this.panel.hidden = !on;
    this.updateShow();
    this.viewer.scene.requestRender();
  }

  makePanel() {
    const box = el('div', { cls: 'pipelines-panel', attrs: { id: 'pipelines-panel', role: 'region', 'aria-label': '地下管线' } });
    box.style.cssText =
      // beside the layer tree (top left), clear of the compass and the side panels
      'position:absolute;left:244px;top:64px;z-index:5;max-width:280px;max-height:60vh;overflow:auto;' +
      'background:rgba(20,24,30,.88);color:#eee;font:12px sans-serif;padding:8px;border-radius:6px';
    const toggle = el('input', { attrs: { type: 'checkbox', id: 'pipelines-underground' } });
    toggle.addEventListener('change', () => this.setUnderground(/** @type {HTMLInputElement} */ (toggle).checked));
    const label = el('label', { attrs: { for: 'pipelines-underground' } }, [toggle, ' 地下模式 underground']);
    for (const [kind, text] of QUERIES) {
      const b = el('button', { text, attrs: { type: 'button', 'data-query': kind } });
      b.addEventListener('click', () => this.query(kind));
      this.buttons.append(b);
    }
    this.buttons.hidden = true;
    box.append(label, this.attrs, this.buttons, this.result);
    document.body.append(box);
    return box;
  }

  /** @param {boolean} on */
  setUnderground(on) {
    const C = this.Cesium;
    const scene = this.viewer.scene;
    const t = translucency(on);
    this.underground = on;
    scene.globe.translucency.enabled = t.enabled;
    scene.globe.translucency.frontFaceAlphaByDistance = on ? new C.NearFarScalar(t.near, t.nearAlpha, t.far, t.farAlpha) : undefined;
    scene.screenSpaceCameraController.enableCollisionDetection = !on; // the camera may go below ground
    const box = /** @type {HTMLInputElement | null} */ (document.getElementById('pipelines-underground'));
    if (box) box.checked = on;
    this.bus.emit('pipelines:underground', { on });
    this.updateShow();
    scene.requestRender();
  }

  /** @param {any} position */
  onClick(position) {
    // not when a map tool takes the click (its pick would draw the full frame first while
    // a reduced one is shown: ~0.7 s before the tool's own handler), nor when the pipes
    // cannot be seen (a pick could not reach them)
    if (!this.tileset.show || !position || /** @type {any} */ (window).cim?.tools?.capturesClicks()) return;
    const picked = this.viewer.scene.pick(position);
    if (!(picked instanceof this.Cesium.Cesium3DTileFeature) || picked.tileset !== this.tileset) return;
    /** @type {Record<string, unknown>} */
    const props = {};
    for (const name of picked.getPropertyIds()) props[name] = picked.getProperty(name);
    this.show(props);
  }

  /** @param {Record<string, unknown>} props */
  show(props) {
    this.selectedId = props.id === undefined ? null : String(props.id);
    this.attrs.replaceChildren(
      ...attributeRows(props).map(([k, v]) => el('tr', {}, [el('th', { text: k }), el('td', { text: v })])),
    );
    this.buttons.hidden = props.kind !== 'pipe';
    this.result.replaceChildren();
    this.highlight(new Map(this.selectedId ? [[this.selectedId, 'selected']] : []));
    this.bus.emit('pipelines:select', { id: this.selectedId });
  }

  /**
   * Select a feature by id through the API (test hook and search).
   * @param {string} id a segment id
   */
  async select(id) {
    const resp = await fetch(new URL(`api/pipelines/segments/${encodeURIComponent(id)}`, document.baseURI));
    if (!resp.ok) return false;
    const seg = (await resp.json()).segment;
    const names = /** @type {Record<string, string>} */ ({ water: '给水', drainage: '排水', gas: '燃气', heat: '热力', power: '电力', telecom: '通信' });
    this.show({ ...seg, kind: 'pipe', utility_name: names[seg.utility] || seg.utility, width: seg.width * 1000 });
    return true;
  }

  /** @param {string} kind */
  async query(kind) {
    if (!this.selectedId) return null;
    const resp = await fetch(new URL(queryUrl(kind, this.selectedId), document.baseURI));
    const body = await resp.json();
    if (!resp.ok) {
      this.result.replaceChildren(el('div', { text: body?.error?.message || `HTTP ${resp.status}` }));
      return body;
    }
    this.lastResult = body;
    const roles = rolesOf(/** @type {any} */ (kind), body);
    this.highlight(roles);
    this.result.replaceChildren(...this.summary(kind, body));
    this.bus.emit('pipelines:query', { kind, result: body });
    return body;
  }

  /**
   * @param {string} kind
   * @param {any} body
   */
  summary(kind, body) {
    if (kind === 'burst') {
      return [
        el('div', { text: `关闭阀门 valves: ${(body.valves || []).join(', ') || '—'}` }),
        el('div', { text: `停水管段 isolated: ${(body.isolated || []).length}` }),
        el('div', { text: `受影响 cut off: ${(body.cut_off || []).length}` }),
      ];
    }
    if (kind === 'clearance') {
      return (body.violations || []).slice(0, 20).map((/** @type {any} */ v) =>
        el('div', { text: `${v.b} ${v.kind}: ${v.clearance} m < ${v.required} m` }),
      );
    }
    return [el('div', { text: `${kind}: ${(body.segments || []).length} (${body.flow})` })];
  }

  /** @param {Map<string, string>} roles */
  highlight(roles) {
    this.roles = roles;
    const tiles = this.tileset.root ? [this.tileset.root] : [];
    while (tiles.length) {
      const tile = tiles.pop();
      if (tile.content?.featuresLength) this.paint(tile.content);
      tiles.push(...(tile.children || []));
    }
    this.viewer.scene.requestRender();
  }

  /** @param {any} content colour a tile's features by their role (white: none) */
  paint(content) {
    const C = this.Cesium;
    const n = content?.featuresLength || 0;
    for (let i = 0; i < n; i++) {
      const f = content.getFeature(i);
      const role = this.roles.get(String(f.getProperty('id')));
      const want = role ? C.Color.fromCssColorString(/** @type {any} */ (ROLE_COLOURS)[role]) : C.Color.WHITE;
      if (!C.Color.equals(f.color, want)) f.color = want;
    }
  }

  /** The colour a feature is drawn with now, as CSS hex (test hook), or null. @param {string} id */
  colourOf(id) {
    const tiles = this.tileset.root ? [this.tileset.root] : [];
    while (tiles.length) {
      const tile = tiles.pop();
      const c = tile.content;
      for (let i = 0; i < (c?.featuresLength || 0); i++) {
        const f = c.getFeature(i);
        if (String(f.getProperty('id')) === id) return f.color.toCssHexString();
      }
      tiles.push(...(tile.children || []));
    }
    return null;
  }
}

/**
 * @param {any} ctx {viewer, bus, manifest, dataBase}
 * @param {string} id the manifest key
 * @param {any} info the manifest entry ({url} of tileset.json)
 * @returns {Promise<LayerHandle | null>}
 */
export async function create(ctx, id, info) {
  if (!info?.url) return null;
  const Cesium = window.Cesium;
  const url = new URL(info.url, ctx.dataBase).href;
  const tileset = await Cesium.Cesium3DTileset.fromUrl(url, { maximumScreenSpaceError: 16 });
  ctx.viewer.scene.primitives.add(tileset);
  const layer = new PipelinesLayer(ctx, tileset);
  const cim = /** @type {any} */ (window).cim;
  if (cim) cim.pipelines = layer; // test hook, like cim.deptlayers
  return {
    id,
    kind: 'pipelines',
    label: '地下管线 pipelines',
    object: tileset,
    getShow: () => layer.userShow,
    setShow: (on) => layer.setShow(on),
  };
}
