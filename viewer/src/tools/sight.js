// @ts-check
// 通视 / 视域: line of sight between two picks, and a viewshed from a point.
//
// Line of sight: the segment from the observer (eye height above the first pick) to the
// second pick is cast against the terrain and the building tiles loaded, on the CPU
// (raycast.js): the terrain by its clearance sampled coarse to fine (globe.getHeight),
// the buildings against their triangles, read back once per tile and kept; the part up
// to the first surface it meets is green, the rest red. The picks themselves are CPU
// ray casts too (camera ray → terrain and buildings): no GPU pick pass on a click.
//
// Viewshed: a depth render from the observer on the GPU (viewshed.js: a point-light
// shadow map, six 90° frusta, compared with the scene's depth in a post-process
// stage): what the observer sees within the radius is tinted green, the rest red.
// Progressive: the click is answered by a reduced frame (interactive.js) with a coarse
// cube map of what it draws; the next full-quality frame, drawn once the inputs pause,
// refines it (the full-size cube map of the full detail). The share seen is then
// counted on a radial grid of ground points (`rays` × `rings`, read back from the
// refined depth render, not ray cast).

import { t } from '../i18n.js';
import { el } from '../util.js';
import { sightSegments, viewshedGrid } from './geo.js';
import { Viewshed } from './viewshed.js';
import { BuildingRaycaster, firstCrossing } from './raycast.js';
import { afterPause } from '../core/pause.js';
import { Sketch, cart, formatLength, pickPoint, raise, row, select, slider, toolPanel, vec } from './common.js';

const GREEN = '#2ecc71';
const RED = '#e74c3c';
/** the target of a sight line stands this many metres above the picked point */
const TARGET_RAISE = 1;
/** ms without a setting (radius, eye height) before the viewshed's warm-up frame */
const PREWARM_QUIET_MS = 250;

/** @param {import('./common.js').ToolContext} ctx */
export function create(ctx) {
  const Cesium = window.Cesium;
  const { viewer, registry, tree, manifest } = ctx;
  const modeSel = select('sightMode', [
    ['line', 'sightLine'],
    ['viewshed', 'sightViewshed'],
  ]);
  const eyeIn = slider('sightEye', 1, 100, 1, 2);
  const radiusIn = slider('sightRadius', 100, 1500, 50, 400);
  const result = el('p', { cls: 'result', attrs: { id: 'sightResult' } });
  const shedRows = el('div', {}, [row('sightRadiusLabel', radiusIn)]);
  /** @type {Sketch | null} */
  let sketch = null;
  /** @type {any} */
  let handler = null;
  /** @type {any} */
  let observer = null;
  let run = 0;
  /** when the radius or the eye height last moved (the warm-up waits for a pause) */
  let lastSetting = -Infinity;
  const state = {
    mode: 'line',
    visible: /** @type {boolean | null} */ (null),
    clear: 0,
    blocked: 0,
    rays: 24,
    rings: 5,
    done: 0,
    visibleCount: 0,
    total: 0,
    /** ms from the input to the end of the first frame showing the viewshed (coarse or refined) */
    completeMs: /** @type {number | null} */ (null),
    /** ms from the input to the GPU having drawn that first frame (a WebGL2 fence; null until then) */
    drawnMs: /** @type {number | null} */ (null),
    /** texels per cube face of that first frame's viewshed */
    firstSize: /** @type {number | null} */ (null),
    /** ms from the input to the end of the first frame showing the refined viewshed */
    refinedMs: /** @type {number | null} */ (null),
    /** texels per cube face of the viewshed shown (null: none), and whether it is the refined one */
    shownSize: /** @type {number | null} */ (null),
    refined: false,
    /** @type {{by: string, distance: number, length: number} | null} the last ray's first hit */
    hit: null,
    /** @type {{observer: number[], target: number[]} | null} the last sight line (ECEF) */
    line: null,
    text: '',
  };
  const green = () => Cesium.Color.fromCssColorString(GREEN);
  const red = () => Cesium.Color.fromCssColorString(RED);

  /** The building tilesets shown (their loaded tiles are what a ray can meet). */
  const tilesets = () => [...tree.layers.values()].filter((l) => l.kind === 'buildings' && l.object?.show).map((l) => l.object);

  const raycaster = new BuildingRaycaster();

  /**
   * The sight line's height above the terrain loaded at t along a→b (undefined where
   * no terrain tile is loaded).
   * @param {any} a @param {any} b
   */
  const clearance = (a, b) => {
    const p = new Cesium.Cartesian3();
    const carto = new Cesium.Cartographic();
    return (/** @type {number} */ t) => {
      Cesium.Cartesian3.lerp(a, b, t, p);
      if (!Cesium.Cartographic.fromCartesian(p, Cesium.Ellipsoid.WGS84, carto)) return undefined;
      const ground = viewer.scene.globe.getHeight(carto);
      return ground === undefined ? undefined : carto.height - ground;
    };
  };

  /**
   * The first surface the segment a→b meets, or null: the nearer of the terrain (its
   * clearance sampled coarse to fine) and the building tiles drawn (their triangles),
   * both on the CPU against the tiles loaded now.
   * @param {any} a
   * @param {any} b
   */
  const firstHit = (a, b) => {
    const length = Cesium.Cartesian3.distance(a, b);
    const ground = firstCrossing(clearance(a, b), length);
    const building = raycaster.firstHit(tilesets(), a, b, viewer.scene.frameState);
    /** @type {{by: string, t: number} | null} */
    let best = ground.t === null ? null : { by: 'terrain', t: ground.t };
    if (building && (!best || building.t < best.t)) best = { by: 'buildings', t: building.t };
    state.hit = best ? { by: best.by, distance: best.t * length, length } : null;
    return best ? Cesium.Cartesian3.lerp(a, b, best.t, new Cesium.Cartesian3()) : null;
  };

  /**
   * The surface under a canvas position: the camera's ray cast on the CPU against the
   * terrain (globe.pick) and the building tiles drawn; the GPU pick (pickPosition) only
   * when neither is met.
   * @param {any} position a Cesium.Cartesian2 (CSS pixels)
   */
  const surfaceAt = (position) => {
    const scene = viewer.scene;
    const ray = viewer.camera.getPickRay(position);
    if (!ray) return pickPoint(viewer, position);
    const ground = scene.globe.pick(ray, scene);
    const far = ground ?? Cesium.Ray.getPoint(ray, 50000);
    const hit = raycaster.firstHit(tilesets(), ray.origin, far, scene.frameState);
    return hit?.point ?? ground ?? pickPoint(viewer, position);
  };

  /** Read the drawn building tiles' triangles now, not on the next click. */
  const warm = () => {
    if (!sketch) return;
    raycaster.warm(tilesets());
    // and compile the ray casts' code (the first call of a function is interpreted), and
    // have CesiumJS build the pick structures of the terrain tiles on screen (each
    // tile's first pick tests all its triangles): rays over a grid of the canvas
    const canvas = viewer.scene.canvas;
    const [w, h] = [canvas.clientWidth, canvas.clientHeight];
    for (let i = 1; i < 6; i++) for (let j = 1; j < 5; j++) surfaceAt(new Cesium.Cartesian2((i * w) / 6, (j * h) / 5));
    const centre = surfaceAt(new Cesium.Cartesian2(w / 2, h / 2));
    const eye = viewer.camera.positionWC;
    if (centre) firstCrossing(clearance(eye, centre), Cesium.Cartesian3.distance(eye, centre));
  };
  /** @type {(() => void)[]} */
  let unwarm = [];

  /**
   * How far short of the target a hit may be and still count as the target: the
   * terrain picked on the CPU and the one drawn differ by a few decimetres, which a
   * grazing ray turns into metres along it.
   * @param {any} a
   * @param {any} b
   */
  const tolerance = (a, b) => 2 + 0.01 * Cesium.Cartesian3.distance(a, b);

  /**
   * A picked point, lifted onto the terrain the rays are cast against when it lies below
   * it (the depth buffer's ground can be decimetres under the CPU terrain).
   * @param {any} p
   */
  const onSurface = (p) => {
    const carto = Cesium.Cartographic.fromCartesian(p);
    const ground = viewer.scene.globe.getHeight(carto);
    if (ground === undefined || ground <= carto.height) return p;
    carto.height = ground;
    return Cesium.Cartographic.toCartesian(carto);
  };

  const showText = (/** @type {string} */ text) => {
    state.text = text;
    result.textContent = text;
  };

  /** @param {any} picked */
  const lineOfSight = (picked) => {
    const target = raise(onSurface(picked), TARGET_RAISE);
    const hit = firstHit(observer, target);
    state.line = { observer: vec(observer), target: vec(target) };
    const seg = sightSegments(vec(observer), vec(target), hit ? vec(hit) : null, tolerance(observer, target));
    state.visible = seg.visible;
    state.clear = Cesium.Cartesian3.distance(cart(seg.clear[0]), cart(seg.clear[1]));
    state.blocked = seg.blocked.length ? Cesium.Cartesian3.distance(cart(seg.blocked[0]), cart(seg.blocked[1])) : 0;
    sketch?.line(seg.clear.map(cart), green(), 4);
    if (seg.blocked.length) {
      sketch?.line(seg.blocked.map(cart), red(), 4);
      sketch?.point(cart(seg.blocked[0]), red(), 8);
    }
    sketch?.point(target, seg.visible ? green() : red());
    showText(
      seg.visible
        ? `${t('sightVisible')} · ${formatLength(state.clear)}`
        : `${t('sightBlocked')} · ${t('sightBlockedAfter')} ${formatLength(state.clear)}`,
    );
    if (sketch) sketch.label(target, seg.visible ? t('sightVisible') : t('sightBlocked'));
    observer = null;
  };

  /** @type {Viewshed | null} */
  let shed = null;

  /** The texels per cube face: fewer under software WebGL (each is drawn on the CPU). */
  const cubeSize = () => (window.cim?.softwareRendering ? 512 : 1024);

  /**
   * The share of the ground within the radius that the observer sees, on a radial
   * grid of ground points (1 m up), from the depth render read back.
   * @param {Viewshed} vs
   */
  const countSeen = (vs) => {
    const frame = Cesium.Transforms.eastNorthUpToFixedFrame(vs.observer);
    // the outer ring a little inside the radius: its points may rise beyond it
    const grid = viewshedGrid(0.98 * vs.radius, state.rays, state.rings);
    let seen = 0;
    let total = 0;
    for (const g of grid) {
      const flat = Cesium.Matrix4.multiplyByPoint(frame, new Cesium.Cartesian3(g.east, g.north, 0), new Cesium.Cartesian3());
      const carto = Cesium.Cartographic.fromCartesian(flat);
      const ground = viewer.scene.globe.getHeight(carto);
      if (ground === undefined) continue; // no terrain loaded there
      carto.height = ground + TARGET_RAISE;
      const v = vs.visibleAt(Cesium.Cartographic.toCartesian(carto));
      if (v === null) continue;
      total += 1;
      if (v) seen += 1;
    }
    return { seen, total };
  };

  /** The quality level of the frame about to be drawn (interactive.js; 0: full). */
  const level = () => ctx.interactive?.level ?? 0;

  /** The viewshed's renderer, made once per tool session. */
  const renderer = () => {
    if (!shed) shed = new Viewshed(viewer, { size: cubeSize(), level, visible: GREEN, hidden: RED });
    return shed;
  };

  /**
   * In viewshed mode, compile the depth render's shaders now (not on the first click).
   * Still needed after the warm-up after load (warm.js): that draws the coarse tiles only,
   * the depth render of the tiles in view compiles more. Its frame (0.3 s at the lowest
   * level under software WebGL) waits for a pause in the panel's inputs: drawn while the
   * radius or the eye height moved, it was that input's frame.
   */
  const prewarm = () => {
    if (state.mode !== 'viewshed' || shed?.prepared) return;
    afterPause(() => lastSetting, PREWARM_QUIET_MS, () => {
      if (state.mode !== 'viewshed' || !sketch || shed?.prepared) return;
      const canvas = viewer.scene.canvas;
      const centre = pickPoint(viewer, new Cesium.Cartesian2(canvas.clientWidth / 2, canvas.clientHeight / 2));
      if (!centre) return;
      // a reduced frame, like any input's (a full frame with the depth render took 15 s
      // under software WebGL, and the next input waited)
      ctx.interactive?.interact();
      renderer().prewarm(raise(centre, Number(eyeIn.value)), Number(radiusIn.value));
    });
  };

  /**
   * Call back once the GPU has drawn the commands issued so far (software WebGL draws
   * after postRender): a WebGL2 fence polled from timers; never without WebGL2.
   * @param {() => void} cb
   */
  const whenDrawn = (cb) => {
    const gl = viewer.scene.context._gl;
    if (typeof WebGL2RenderingContext === 'undefined' || !(gl instanceof WebGL2RenderingContext)) return;
    const sync = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
    if (!sync) return;
    gl.flush();
    const poll = () => {
      if (gl.getSyncParameter(sync, gl.SYNC_STATUS) !== gl.SIGNALED) return void setTimeout(poll, 4);
      gl.deleteSync(sync);
      cb();
    };
    setTimeout(poll, 0);
  };

  /**
   * Show the viewshed from the observer; time it until the first frame that shows it
   * (completeMs; drawnMs once the GPU has drawn that frame) and until the refined one
   * (refinedMs), which the share seen is counted on.
   */
  const viewshed = () => {
    const me = ++run;
    const start = performance.now();
    const vs = renderer();
    Object.assign(state, { done: 0, visibleCount: 0, total: 0, completeMs: null, drawnMs: null, firstSize: null, refinedMs: null, shownSize: null, refined: false });
    showText(t('sightComputing'));
    vs.setObserver(observer, Number(radiusIn.value));
    vs.whenShown(() => {
      if (me !== run) return;
      state.completeMs = performance.now() - start;
      state.shownSize = state.firstSize = vs.shown?.size ?? null;
      whenDrawn(() => {
        if (me === run) state.drawnMs = performance.now() - start;
      });
      vs.whenRefined(() => {
        if (me !== run) return;
        state.refinedMs = performance.now() - start;
        state.shownSize = vs.shown?.size ?? null;
        state.refined = true;
        // counting reads the depth render back (a few ms): after this frame, not in it
        setTimeout(() => {
          if (me !== run || !vs.observer) return;
          const { seen, total } = countSeen(vs);
          Object.assign(state, { done: total, visibleCount: seen, total });
          const pct = total ? Math.round((100 * seen) / total) : 0;
          showText(`${t('sightVisibleShare')} ${pct}% (${seen}/${total}) · ${Math.round(state.completeMs ?? 0)} ms`);
        }, 0);
      });
    });
  };

  /** Remove the viewshed and give the layers their shadow settings back. */
  const dropViewshed = () => {
    shed?.destroy();
    shed = null;
  };

  /** @type {any} the ground under the viewshed's observer */
  let shedGround = null;

  /** (Re)draw the viewshed from the eye height above shedGround. */
  const placeObserver = () => {
    if (!sketch || !shedGround) return;
    sketch.clear();
    observer = raise(shedGround, Number(eyeIn.value));
    sketch.point(observer, Cesium.Color.fromCssColorString('#4fc3f7'), 11);
    sketch.line([shedGround, observer], Cesium.Color.fromCssColorString('#4fc3f7'), 2);
    viewshed();
  };

  const onClick = (/** @type {any} */ e) => {
    const picked = surfaceAt(e.position);
    if (!picked || !sketch) return;
    const p = onSurface(picked);
    if (state.mode === 'viewshed') {
      shedGround = p;
      placeObserver();
      return;
    }
    if (!observer) {
      run += 1;
      sketch.clear();
      state.visible = null;
      showText('');
      observer = raise(p, Number(eyeIn.value));
      sketch.point(observer, Cesium.Color.fromCssColorString('#4fc3f7'), 11);
      sketch.line([p, observer], Cesium.Color.fromCssColorString('#4fc3f7'), 2);
    } else {
      lineOfSight(p);
    }
    viewer.scene.requestRender();
  };

  // a new radius or eye height redraws the viewshed shown (one depth render)
  const onSetting = registry.timed('sight', 'setting', () => {
    lastSetting = performance.now();
    if (state.mode === 'viewshed' && shedGround && shed?.observer) placeObserver();
  });
  radiusIn.addEventListener('input', onSetting);
  eyeIn.addEventListener('input', onSetting);

  modeSel.addEventListener('change', () => {
    state.mode = modeSel.value;
    shedRows.hidden = state.mode !== 'viewshed';
    run += 1;
    observer = null;
    shedGround = null;
    dropViewshed();
    sketch?.clear();
    showText('');
    // a reduced frame, like any input's (a full one is a second under software WebGL,
    // and the next input would wait for it)
    if (state.mode === 'viewshed') ctx.interactive?.interact();
    prewarm();
  });
  shedRows.hidden = true;

  const element = toolPanel(
    'sight',
    'toolSight',
    [row('sightModeLabel', modeSel), el('p', { cls: 'note', attrs: { 'data-i18n': 'sightHint' } }), row('sightEyeLabel', eyeIn), shedRows, result],
    () => registry.deactivate(),
  );

  return {
    id: 'sight',
    labelKey: 'toolSight',
    element,
    capturesClicks: true,
    activate() {
      sketch = new Sketch(viewer);
      // the first CPU ray cast on a tile reads its triangles back from the GPU (a few ms
      // a tile): do it now, after the panel has been drawn, and again when new tiles
      // have loaded, not on a click
      setTimeout(warm, 50);
      unwarm = tilesets().map((ts) => ts.allTilesLoaded.addEventListener(() => setTimeout(warm, 0)));
      handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
      handler.setInputAction(registry.timed('sight', 'click', onClick), Cesium.ScreenSpaceEventType.LEFT_CLICK);
      prewarm();
    },
    deactivate() {
      run += 1;
      for (const off of unwarm) off();
      unwarm = [];
      shedGround = null;
      dropViewshed();
      handler?.destroy();
      handler = null;
      observer = null;
      sketch?.destroy();
      sketch = null;
      showText('');
      viewer.scene.requestRender();
    },
    api: {
      state,
      /**
       * Whether the viewshed's observer sees a point (true/false), null outside its
       * radius or when none is shown.
       * @param {any} point a Cesium.Cartesian3
       */
      visibleAt: (point) => shed?.visibleAt(point) ?? null,
      observer: () => shed?.observer ?? null,
      /** the viewshed's cube maps drawn (coarse, full), reused and casters culled by face */
      shedStats: () => (shed ? { ...shed.stats } : null),
      setMode: (/** @type {string} */ mode) => {
        modeSel.value = mode;
        modeSel.dispatchEvent(new Event('change'));
      },
    },
    // the viewshed's depth render (a point light's shadow map) and its tint, compiled
    // after load (warm.js) from 2 m above the city centre, for the coarse tiles (the
    // tool's own prewarm compiles the rest)
    warmUps: () => {
      /** @type {Viewshed | null} */
      let warmShed = null;
      const on = () => {
        const [lon, lat, h = 0] = manifest?.centre || [0, 0, 0];
        warmShed = new Viewshed(viewer, { size: cubeSize(), visible: GREEN, hidden: RED });
        warmShed.setObserver(Cesium.Cartesian3.fromDegrees(lon, lat, h + 2), 400);
      };
      const off = () => {
        warmShed?.destroy();
        warmShed = null;
      };
      return [{ name: 'viewshed', on, off, frames: 2, last: true }];
    },
  };
}
