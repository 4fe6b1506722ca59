// @ts-check
// 剖切: a clipping plane through the buildings (vertical at a heading, or horizontal at a
// height; its offset is dragged with a slider), a clipping box (six planes, keeping
// what is inside or cutting it out; a click places it) and 开挖, an excavation: a polygon
// drawn on the ground is cut out of the terrain (ClippingPolygonCollection on the globe)
// and the pit is shown with its walls and floor at the chosen depth.
//
// The planes are defined in the ENU frame at the city centre; each building tileset
// gets its own ClippingPlaneCollection (one cannot be shared), placed relative to the
// tileset's clipping origin.

import { t } from '../i18n.js';
import { el, toast } from '../util.js';
import { boxPlanes, horizontalPlane, toLocal, verticalPlane } from './geo.js';
import { Sketch, button, cityFrame, pickPoint, row, select, slider, toolPanel, vec } from './common.js';

/**
 * The radius (m) of the city: half the diagonal of the manifest extent, at least 500 m.
 * @param {any} manifest
 */
export function cityRadius(manifest) {
  const [w, s, e, n] = manifest?.extent || [];
  if (![w, s, e, n].every(Number.isFinite)) return 1000;
  const lat = ((s + n) / 2) * (Math.PI / 180);
  const dx = (e - w) * 111320 * Math.cos(lat);
  const dy = (n - s) * 110540;
  return Math.max(500, Math.ceil(Math.hypot(dx, dy) / 2 / 50) * 50);
}

/**
 * Resolution of the pit's signed-distance texture, as CesiumJS's ClippingPolygonCollection
 * `quality` (its side is 4096 × quality texels, at least 128, over the pit's extent).
 * CesiumJS computes the texture in one pass over every texel when the pit is dug: at its
 * default (1, 4096²) that pass took 1.4–1.9 s under software WebGL on the sample city,
 * the frame that answers the dig. 512² is 64 times less, and still resolves a 500 m pit
 * to about a metre (the texture is sampled with linear filtering).
 */
export const PIT_QUALITY = 0.125;

/**
 * The globe's clipping polygon collection the excavation digs with, made once at the
 * pit's texture resolution (an existing one is kept: its texture's size is fixed).
 * @param {any} Cesium
 * @param {any} globe
 * @returns {any} a Cesium.ClippingPolygonCollection
 */
export function pitPolygons(Cesium, globe) {
  if (!globe.clippingPolygons) globe.clippingPolygons = new Cesium.ClippingPolygonCollection({ quality: PIT_QUALITY });
  return globe.clippingPolygons;
}

/** @param {import('./common.js').ToolContext} ctx */
export function create(ctx) {
  const Cesium = window.Cesium;
  const { viewer, registry, tree, manifest } = ctx;
  const radius = cityRadius(manifest);
  const frame = cityFrame(manifest);
  const state = {
    mode: 'plane',
    orientation: 'vertical',
    heading: 90,
    offset: 0,
    box: { east: 0, north: 0, size: 200, height: 120, inside: true },
    depth: 30,
    /** @type {number[][]} excavation ring, lon/lat/height of each vertex */
    ring: [],
    excavated: false,
  };

  const modeSel = select('clipMode', [
    ['plane', 'clipPlane'],
    ['box', 'clipBox'],
    ['excavate', 'clipExcavate'],
  ]);
  const orientSel = select('clipOrientation', [
    ['vertical', 'clipVertical'],
    ['horizontal', 'clipHorizontal'],
  ]);
  const headingIn = slider('clipHeading', 0, 180, 5, state.heading);
  const offsetIn = slider('clipOffset', -radius, radius, 5, state.offset);
  const sizeIn = slider('clipBoxSize', 20, 2 * radius, 10, state.box.size);
  const heightIn = slider('clipBoxHeight', 10, 400, 10, state.box.height);
  const insideSel = select('clipBoxInside', [
    ['inside', 'clipKeepInside'],
    ['outside', 'clipCutOut'],
  ]);
  const depthIn = slider('clipDepth', 5, 100, 5, state.depth);
  const status = el('p', { cls: 'result', attrs: { id: 'clipStatus' } });
  const planeRows = el('div', {}, [row('clipOrientationLabel', orientSel), row('clipHeadingLabel', headingIn), row('clipOffsetLabel', offsetIn)]);
  const boxRows = el('div', {}, [
    el('p', { cls: 'note', attrs: { 'data-i18n': 'clipBoxHint' } }),
    row('clipBoxSizeLabel', sizeIn),
    row('clipBoxHeightLabel', heightIn),
    row('clipBoxInsideLabel', insideSel),
  ]);
  const digRows = el('div', {}, [
    el('p', { cls: 'note', attrs: { 'data-i18n': 'clipExcavateHint' } }),
    row('clipDepthLabel', depthIn),
    el('div', { cls: 'buttons' }, [button('measureFinish', () => timedDig()), button('clear', () => clearDig())]),
  ]);

  /** @type {Sketch | null} */
  let sketch = null;
  /** @type {any} */
  let handler = null;

  const tilesets = () =>
    [...tree.layers.values()].filter((l) => l.kind === 'buildings' && l.object).map((l) => l.object);

  /** Plane specs of the current mode, in the city frame. */
  const planeSpecs = () => {
    if (state.mode === 'plane') {
      const p = state.orientation === 'vertical' ? verticalPlane(state.heading, state.offset) : horizontalPlane(state.offset);
      return { planes: [p], union: true };
    }
    if (state.mode === 'box') {
      const { east, north, size, height, inside } = state.box;
      const spec = boxPlanes([size / 2, size / 2, height / 2], inside);
      // centre the box on (east, north) at half its height above the centre's ground
      const shift = [east, north, height / 2];
      spec.planes = spec.planes.map((pl) => ({
        normal: pl.normal,
        distance: pl.distance - (pl.normal[0] * shift[0] + pl.normal[1] * shift[1] + pl.normal[2] * shift[2]),
      }));
      return spec;
    }
    return null;
  };

  const applyPlanes = () => {
    setPlanes(planeSpecs());
    drawOutline();
    viewer.scene.requestRender();
  };

  /**
   * Put clipping planes (in the city frame) on every building tileset; null disables them.
   * @param {{planes: {normal: number[], distance: number}[], union: boolean} | null} spec
   */
  const setPlanes = (spec) => {
    for (const ts of tilesets()) {
      if (!spec) {
        if (ts.clippingPlanes) ts.clippingPlanes.enabled = false;
        continue;
      }
      const origin = ts.clippingPlanesOriginMatrix;
      const modelMatrix = Cesium.Matrix4.multiply(Cesium.Matrix4.inverse(origin, new Cesium.Matrix4()), frame, new Cesium.Matrix4());
      const planes = spec.planes.map((p) => new Cesium.ClippingPlane(new Cesium.Cartesian3(...p.normal), p.distance));
      if (!ts.clippingPlanes) {
        ts.clippingPlanes = new Cesium.ClippingPlaneCollection({ planes, unionClippingRegions: spec.union, modelMatrix, edgeWidth: 1.5, edgeColor: Cesium.Color.fromCssColorString('#ffd400') });
      } else {
        const cp = ts.clippingPlanes;
        cp.removeAll();
        for (const p of planes) cp.add(p);
        cp.unionClippingRegions = spec.union;
        cp.modelMatrix = modelMatrix;
        cp.enabled = true;
      }
      // build the planes' texture now: a pick pass drawn before the next frame (a click
      // at once) would otherwise find none and fail
      ts.clippingPlanes.update(viewer.scene.frameState);
    }
  };

  /**
   * The shader variants this tool switches on, for the warm-up after load (warm.js): a
   * plane (one, union), the box kept and cut out (six, intersection and union), through
   * the city centre (CesiumJS draws a tile that no plane crosses without clipping, so
   * they must cut; the warm-up's frames are not shown), and an excavation of a square
   * metre at the city centre.
   * @returns {import('../warm.js').WarmUp[]}
   */
  const warmUps = () => {
    const planes = (/** @type {string} */ name, /** @type {any} */ spec) => ({
      name: `clip ${name}`,
      on: () => setPlanes(spec),
      off: () => setPlanes(null),
    });
    const globe = viewer.scene.globe;
    const pit = {
      name: 'excavation',
      last: true,
      frames: 3, // the pit's signed-distance texture is computed over a few frames
      on: () => {
        if (!Cesium.ClippingPolygonCollection.isSupported(viewer.scene)) return;
        const [lon, lat] = manifest?.centre || [0, 0];
        const d = 0.00001;
        const positions = Cesium.Cartesian3.fromDegreesArray([lon, lat, lon + d, lat, lon + d, lat + d, lon, lat + d]);
        // the collection the tool digs with (kept, emptied, as clearDig leaves it: one
        // destroyed while its texture is still being computed breaks the next frames)
        pitPolygons(Cesium, globe).removeAll();
        globe.clippingPolygons.add(new Cesium.ClippingPolygon({ positions }));
      },
      ready: () => !globe.clippingPolygons?.length || Boolean(globe.clippingPolygons.clippingTexture),
      off: () => {
        globe.clippingPolygons?.removeAll();
      },
    };
    return [
      planes('plane', { planes: [verticalPlane(90, 0)], union: true }),
      planes('box kept', boxPlanes([100, 100, 60], true)),
      planes('box cut out', boxPlanes([100, 100, 60], false)),
      pit,
    ];
  };

  const local = (/** @type {number} */ e, /** @type {number} */ n, /** @type {number} */ u) =>
    Cesium.Matrix4.multiplyByPoint(frame, new Cesium.Cartesian3(e, n, u), new Cesium.Cartesian3());

  /** The plane's or box's outline, so the user sees where the cut is. */
  const drawOutline = () => {
    if (!sketch) return;
    sketch.clear();
    const color = Cesium.Color.fromCssColorString('#ffd400');
    if (state.mode === 'plane' && state.orientation === 'vertical') {
      const h = (state.heading * Math.PI) / 180;
      const [nx, ny] = [Math.sin(h), Math.cos(h)];
      const [tx, ty] = [-ny, nx];
      const c = [nx * state.offset, ny * state.offset];
      const corners = [
        [-radius, -50],
        [radius, -50],
        [radius, 250],
        [-radius, 250],
        [-radius, -50],
      ].map(([s, z]) => local(c[0] + s * tx, c[1] + s * ty, z));
      sketch.line(corners, color, 2);
    } else if (state.mode === 'plane') {
      const r = radius;
      sketch.line([[-r, -r], [r, -r], [r, r], [-r, r], [-r, -r]].map(([x, y]) => local(x, y, state.offset)), color, 2);
    } else if (state.mode === 'box') {
      const { east, north, size, height } = state.box;
      const s = size / 2;
      for (const z of [0, height]) {
        sketch.line([[-s, -s], [s, -s], [s, s], [-s, s], [-s, -s]].map(([x, y]) => local(east + x, north + y, z)), color, 2);
      }
    }
    drawDig();
  };

  const clearDig = () => {
    viewer.scene.globe.clippingPolygons?.removeAll();
    state.ring = [];
    state.excavated = false;
    status.textContent = '';
    drawOutline();
    viewer.scene.requestRender();
  };

  /** The pit: walls from the ground down to the floor, and the floor. */
  const drawDig = () => {
    if (!sketch || state.mode !== 'excavate') return;
    const color = Cesium.Color.fromCssColorString('#ffd400');
    const ringPos = state.ring.map(([lon, lat, h]) => Cesium.Cartesian3.fromDegrees(lon, lat, h));
    for (const p of ringPos) sketch.point(p, color, 7);
    if (!state.excavated) {
      if (ringPos.length >= 2) sketch.line(ringPos, color, 2);
      return;
    }
    const floor = Math.min(...state.ring.map((v) => v[2])) - state.depth;
    const closed = [...state.ring, state.ring[0]];
    sketch.geometry(
      [
        new Cesium.GeometryInstance({
          geometry: new Cesium.WallGeometry({
            positions: closed.map(([lon, lat, h]) => Cesium.Cartesian3.fromDegrees(lon, lat, h)),
            minimumHeights: closed.map(() => floor),
            maximumHeights: closed.map((v) => v[2]),
          }),
          attributes: { color: Cesium.ColorGeometryInstanceAttribute.fromColor(Cesium.Color.fromCssColorString('#8d6e63')) },
        }),
        new Cesium.GeometryInstance({
          geometry: new Cesium.PolygonGeometry({
            polygonHierarchy: new Cesium.PolygonHierarchy(state.ring.map(([lon, lat]) => Cesium.Cartesian3.fromDegrees(lon, lat))),
            height: floor,
          }),
          attributes: { color: Cesium.ColorGeometryInstanceAttribute.fromColor(Cesium.Color.fromCssColorString('#5d4037')) },
        }),
      ],
      false,
    );
  };

  /** Cut the drawn polygon out of the terrain. */
  const dig = () => {
    if (state.ring.length < 3) {
      toast(t('clipNeedPolygon'));
      return false;
    }
    if (!Cesium.ClippingPolygonCollection.isSupported(viewer.scene)) {
      toast(t('clipUnsupported'));
      return false;
    }
    const positions = state.ring.map(([lon, lat]) => Cesium.Cartesian3.fromDegrees(lon, lat));
    const globe = viewer.scene.globe;
    pitPolygons(Cesium, globe).removeAll();
    globe.clippingPolygons.add(new Cesium.ClippingPolygon({ positions }));
    state.excavated = true;
    status.textContent = `${t('clipExcavated')} ${state.depth} ${t('unitM')}`;
    drawOutline();
    viewer.scene.requestRender();
    return true;
  };
  const timedDig = registry.timed('clip', 'excavate', dig);

  /** Heights of the ring follow the ground (the terrain), not a roof that was clicked. */
  const groundHeight = (/** @type {any} */ carto) => viewer.scene.globe.getHeight(carto) ?? carto.height;

  /**
   * The point clicked. On the CPU (interactive.js exactPick: the terrain and the building
   * triangles, past what the clipping planes cut), as that waits for no frame: the GPU's
   * depth (pickPosition) is read back only once the frames drawn before the click are
   * done, seconds under software WebGL after an input that changed the planes, and
   * after a reduced frame with something cut it draws the full frame first. The GPU's
   * depth only for a click into a dug pit (the CPU sees the terrain's surface there, not
   * the pit) or where the CPU meets nothing.
   * @param {any} position a Cesium.Cartesian2
   */
  const clickedPoint = (position) => {
    const pit = state.mode === 'excavate' && state.excavated;
    const p = pit || !ctx.interactive ? null : ctx.interactive.exactPick(position);
    return p ?? pickPoint(viewer, position);
  };

  /** The building tilesets shown: what the clicks' rays meet. */
  const shown = () => tilesets().filter((ts) => ts.show !== false);
  /** @type {(() => void)[]} */
  let unwarm = [];

  const onClick = (/** @type {any} */ e) => {
    const p = clickedPoint(e.position);
    if (!p) return;
    if (state.mode === 'box') {
      const [east, north] = toLocal([vec(p)], vec(Cesium.Matrix4.getTranslation(frame, new Cesium.Cartesian3())))[0];
      state.box.east = east;
      state.box.north = north;
      applyPlanes();
    } else if (state.mode === 'excavate') {
      if (state.excavated) clearDig();
      const c = Cesium.Cartographic.fromCartesian(p);
      state.ring.push([Cesium.Math.toDegrees(c.longitude), Cesium.Math.toDegrees(c.latitude), groundHeight(c)]);
      drawOutline();
      viewer.scene.requestRender();
    }
  };

  const showRows = () => {
    planeRows.hidden = state.mode !== 'plane';
    boxRows.hidden = state.mode !== 'box';
    digRows.hidden = state.mode !== 'excavate';
  };
  const bind = (/** @type {HTMLElement} */ input, /** @type {string} */ action, /** @type {() => void} */ fn) =>
    input.addEventListener(input.tagName === 'SELECT' ? 'change' : 'input', registry.timed('clip', action, fn));
  bind(modeSel, 'mode', () => {
    state.mode = modeSel.value;
    showRows();
    applyPlanes();
  });
  bind(orientSel, 'orientation', () => {
    state.orientation = orientSel.value;
    offsetIn.min = state.orientation === 'vertical' ? String(-radius) : '0';
    offsetIn.max = state.orientation === 'vertical' ? String(radius) : '300';
    state.offset = Number(offsetIn.value);
    applyPlanes();
  });
  bind(headingIn, 'heading', () => {
    state.heading = Number(headingIn.value);
    applyPlanes();
  });
  bind(offsetIn, 'offset', () => {
    state.offset = Number(offsetIn.value);
    applyPlanes();
  });
  bind(sizeIn, 'box', () => {
    state.box.size = Number(sizeIn.value);
    applyPlanes();
  });
  bind(heightIn, 'box', () => {
    state.box.height = Number(heightIn.value);
    applyPlanes();
  });
  bind(insideSel, 'box', () => {
    state.box.inside = insideSel.value === 'inside';
    applyPlanes();
  });
  bind(depthIn, 'depth', () => {
    state.depth = Number(depthIn.value);
    if (state.excavated) dig();
  });
  showRows();

  const element = toolPanel('clip', 'toolClip', [row('clipModeLabel', modeSel), planeRows, boxRows, digRows, status], () =>
    registry.deactivate(),
  );

  return {
    id: 'clip',
    labelKey: 'toolClip',
    element,
    capturesClicks: true,
    activate() {
      sketch = new Sketch(viewer);
      handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
      handler.setInputAction(registry.timed('clip', 'click', onClick), Cesium.ScreenSpaceEventType.LEFT_CLICK);
      handler.setInputAction(() => state.mode === 'excavate' && !state.excavated && timedDig(), Cesium.ScreenSpaceEventType.RIGHT_CLICK);
      // the clicks' rays meet the building triangles of the tiles drawn, read ahead while
      // the GPU is idle (a read while it draws a frame waits for it: interactive.js
      // warmRays): those of every frame, and those drawn before the planes cut some away
      // (a tile cut whole is drawn again when the plane or the box moves)
      const uncut = ctx.interactive?.raycaster.drawnTiles(shown()) ?? [];
      applyPlanes();
      if (ctx.interactive) unwarm = [ctx.interactive.warmRays(shown, uncut)];
    },
    deactivate() {
      for (const off of unwarm) off();
      unwarm = [];
      handler?.destroy();
      handler = null;
      for (const ts of tilesets()) if (ts.clippingPlanes) ts.clippingPlanes.enabled = false;
      clearDig();
      sketch?.destroy();
      sketch = null;
      viewer.scene.requestRender();
    },
    api: { state, apply: applyPlanes, dig, clearDig, radius },
    warmUps,
  };
}
