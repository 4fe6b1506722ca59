// @ts-check
// Interactive frames: the frame that answers a tool's input is drawn at the level of
// quality the controller (core/quality.js) has learnt fits its budget, and the full
// quality frame is drawn once the inputs pause (controller.idleMs()). Each frame's time is measured
// up to the GPU having drawn it (a WebGL2 fence polled without blocking: software WebGL
// draws long after postRender), for the controller.
//
// A reduced frame leaves out building tiles and pixels, so picks made while one is on the
// screen would fall through missing buildings or hit a neighbour: scene.pickPosition is
// answered exactly on the CPU (terrain and the full building detail, less what the
// buildings' clipping planes cut; while the terrain is cut, which the CPU does not see,
// the full frame is drawn first), scene.pick draws the full frame first (wrapPicks), and
// CPU ray casts (raycast.js) use the tiles of the last full frame.
//
// CesiumJS's Viewer picks at every click and double click (entity selection and
// tracking, which this page does not use): dropEntityPicks takes those handlers off, so
// a click after a reduced frame does not wait for a full one before the tool's handler.
//
// CesiumJS also draws a frame on its own whenever tiles finish loading (a tileset's or
// the terrain's load progress): at the full quality, after the full frame of a pause or a
// pick, that is one full frame after another while the tiles of the view arrive, and an
// input that comes meanwhile waits for the one being drawn (software WebGL cannot stop a
// frame). Such frames are put off until the inputs pause, as the full frame after an
// input is (core/quality.js deferFull), the tiles loading meanwhile; frames asked for by
// an input, a script or a tool are drawn as before (wrapRender). While the dual view's
// right side is drawn beside this view (addView), such a frame of either view also waits
// until the GPU has drawn the frames before it (busy()), so an input finds at most one
// frame ahead of its own; the right side's frame drawn with this one's
// counts in the time the level is chosen from (measure()).

import { HOLD_CHECK_MS, QualityController, deferFull, frameBounds, holdFull, untriedMs, usableMs } from './core/quality.js';
import { BuildingRaycaster } from './tools/raycast.js';

/** ms between polls of a frame's fence. */
const POLL_MS = 4;

/** The reduced frame's depth is taken when nearer than this share of the exact pick. */
const NEARER = 0.98;

/** How far a pick ray that meets no terrain looks for buildings (m). */
const FAR_M = 50000;

/** A frame whose fence has not signalled after this long is given up. */
const GIVE_UP_MS = 20000;

/** ms of tile reads at a time while the GPU is idle, and between checks while it is not (warmRays). */
const RAY_SLICE_MS = 32;
const RAY_WAIT_MS = 50;

/** Where a control under the pointer, or a text field with the focus, is a tool's input. */
const INPUT_AREAS = '.toolPanel, #compass';
const CONTROLS = 'button, input, select, textarea, label, summary, [role="button"], [role="slider"]';
const TEXT_FIELDS = 'input:not([type]), input[type="text"], input[type="search"], input[type="number"], textarea';

/**
 * Whether another input to a tool looks likely now: the pointer rests on a control of a
 * tool's panel or of the compass (a button just clicked, a slider), or a text field of a
 * tool's panel has the focus (a name being typed). Pointer over the map does not count:
 * a tool that takes map clicks needs the full detail to aim at.
 */
export class InputWatch {
  /** @param {Document} [doc] */
  constructor(doc = document) {
    this.doc = doc;
    /** @type {EventTarget | null} the element under the pointer */
    this.over = null;
    doc.addEventListener('pointerover', (e) => { this.over = e.target; }, { capture: true, passive: true });
    // the pointer left the page
    doc.addEventListener('pointerout', (e) => { if (!e.relatedTarget) this.over = null; }, { capture: true, passive: true });
  }

  likely() {
    const over = this.over;
    if (over instanceof Element && over.isConnected) {
      const control = over.closest(CONTROLS);
      if (control?.closest(INPUT_AREAS) && !control.matches(':disabled')) return true;
    }
    const focus = this.doc.activeElement;
    return Boolean(focus?.matches(TEXT_FIELDS) && focus.closest(INPUT_AREAS));
  }
}

export class InteractiveFrames {
  /**
   * @param {any} viewer the Cesium viewer
   * @param {() => {tileset: any}[]} tilesets the building tilesets (their full-quality
   *   error is the one set on them when an interaction starts)
   * @param {{controller?: QualityController, watch?: {likely: () => boolean}}} [options]
   *   watch: whether another input looks likely (the full frame is held back meanwhile)
   */
  constructor(viewer, tilesets, { controller = new QualityController(), watch = new InputWatch() } = {}) {
    this.viewer = viewer;
    this.tilesets = tilesets;
    this.controller = controller;
    this.watch = watch;
    /** when the last input came (performance.now()) */
    this.lastInput = -Infinity;
    /**
     * @type {{scale: number, sse: Map<any, number>, views: Map<any, number>, viewGlobes: Map<any, number>, globe?: number, shadowSize?: number, shadowMap?: any} | null}
     *   the full quality while reduced (the resolution scale of this view and of the other
     *   views, the building tilesets' errors, the terrain's error of this view and of the
     *   other views, the sun's shadow map and its size)
     */
    this.saved = null;
    /** @type {any} the one-cascade shadow map of the low levels (made at first use) */
    this.previewMap = null;
    /** @type {Map<any, () => any[]>} other views drawn beside this one (the dual view's) */
    this.views = new Map();
    /** the frames being drawn are not timed (a warm-up, see warm.js) */
    this.untimed = false;
    /** @type {(() => void) | null} called at each input (the warm-up waits for a pause) */
    this.onInput = null;
    /** the level the current settings draw at (0: full) */
    this.level = 0;
    /** the level of the last frame drawn (picks read its depth) */
    this.onScreen = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
    /** @type {{level: number, ms: number, views?: number}[]} the latest frames measured (views: the other views' frames counted in), for the tests */
    this.frames = [];
    /**
     * reduced levels set, full quality restored, picks answered exactly, full frames drawn
     * for a pick, checks that held the full frame back, full frames of tiles loading put
     * off, frames of tiles loading (of this view or another) that waited for busy()
     */
    this.stats = { interactive: 0, restored: 0, exactPicks: 0, fullForPick: 0, held: 0, deferred: 0, waited: 0 };
    /** a frame CesiumJS asked for on its own is being put off (deferFull) */
    this.deferred = false;
    /** a frame CesiumJS asked for on its own waits for the frames on the GPU (busy()) */
    this.waiting = false;
    /** @type {(Fenced & {level: number, timed: boolean, open: boolean})[]} this view's frames not drawn yet, in order */
    this.pending = [];
    /** @type {Fenced[]} the other views' own frames not drawn yet */
    this.others = [];
    /** starts polling the fences (measure()) */
    this.pollFences = () => {};
    this.raycaster = new BuildingRaycaster();
    /** the camera is moving (an input's flight or rotation): a reduced level is held */
    this.moving = false;
    viewer.camera.moveStart.addEventListener(() => {
      this.moving = true;
    });
    viewer.camera.moveEnd.addEventListener(() => {
      this.moving = false;
      if (this.saved) this.schedule();
    });
    this.measure();
    this.wrapPicks();
    this.wrapRender();
  }

  /**
   * An input that draws nothing itself (a tool's panel opened): the frames of tiles
   * loading wait for a pause after it, as after a tool's input (deferFull).
   */
  noteInput() {
    this.lastInput = performance.now();
  }

  /**
   * Whether a full-quality frame CesiumJS asks for on its own is put off now (see
   * core/quality.js deferFull); never at a reduced level, nor in a warm-up frame, nor
   * while another view is drawn beside this one (the dual view's: its camera follows this
   * one's from this scene's frames, so a frame put off here would hold both back).
   * @returns {boolean}
   */
  deferNow() {
    if (this.saved || this.untimed || this.views.size) return false;
    const { controller } = this;
    const now = {
      sinceInputMs: performance.now() - this.lastInput,
      idleMs: controller.idleMs(),
      likely: this.watch.likely(),
      fullMs: controller.estimate(0),
    };
    return deferFull(now, controller.budgetMs);
  }

  /**
   * Put off the full-quality frames CesiumJS asks for on its own (tiles loaded) until the
   * inputs pause (deferNow), and, while another view is drawn beside this one, any frame
   * it asks for on its own while the GPU still has frames to draw
   * (busy(): software WebGL draws a frame long after its postRender, and one queued
   * behind it would hold back an input that comes meanwhile; the dual view's two scenes,
   * whose tiles keep loading for seconds, queued frame after frame). A render
   * request made outside a frame (an input, a tool, a script, restore()) or by a
   * postRender listener (a tool's follow-up frame) is drawn; one made while a frame is
   * updated and drawn up to its postRender is CesiumJS's own (its afterRender callbacks: a
   * tileset's or the terrain's load progress). A frame put off keeps its tiles loading
   * (CesiumJS updates the tilesets without drawing) and is drawn once deferNow() and
   * busy() say so, checked at every animation frame.
   */
  wrapRender() {
    const { scene } = this.viewer;
    const gate = (/** @type {boolean} */ asked) => {
      if (!asked && this.deferNow()) {
        if (!this.deferred) this.stats.deferred += 1;
        this.deferred = true;
        this.waiting = false;
        return false;
      }
      if (!asked && this.views.size && this.busy()) {
        if (!this.waiting) this.stats.waited += 1;
        this.waiting = true;
        this.deferred = false;
        return false;
      }
      this.deferred = false;
      this.waiting = false;
      return true;
    };
    gateRender(scene, () => this.deferred || this.waiting, gate, () => this.untimed, () => {
      this.deferred = false;
      this.waiting = false;
    });
  }

  /** An input: draw the next frame at the controller's level, the full quality after a pause. */
  interact() {
    this.onInput?.();
    this.lastInput = performance.now();
    const level = this.controller.level;
    if (level > 0) this.apply(level);
    else if (this.saved) this.restore(); // the full level fits again
    this.schedule();
  }

  /**
   * Restore the full quality after a pause; not while the camera moves (each frame of a
   * flight the input started would be a full one: moveEnd schedules it again), nor while
   * another input looks likely (holdFull: the input would wait for the whole full frame).
   * @param {number} [ms] the pause (the controller's idleMs())
   */
  schedule(ms = this.controller.idleMs()) {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.moving || !this.saved) return;
      const now = { sinceInputMs: performance.now() - this.lastInput, likely: this.watch.likely(), fullMs: this.controller.estimate(0) };
      if (holdFull(now, this.controller.budgetMs)) {
        this.stats.held += 1;
        this.schedule(HOLD_CHECK_MS);
        return;
      }
      this.restore();
    }, ms);
  }

  /**
   * Draw at a level (the full quality is saved first, and put back by restore()).
   * @param {number} level
   */
  apply(level) {
    const { viewer } = this;
    const { scale, sse, globe = 1, shadows = 1, cascades = 4 } = this.controller.levels[level];
    if (!this.saved) {
      const saved = new Map();
      for (const tileset of this.reducible()) {
        saved.set(tileset, tileset.maximumScreenSpaceError);
        // the tiles the last full frame drew: what rays are cast against meanwhile
        // (kept from before when no full frame was drawn since: the last one was reduced)
        tileset.cimFullSelection ??= [...(tileset._selectedTiles ?? [])];
        wrapTilesetPick(tileset);
      }
      this.saved = { scale: viewer.resolutionScale, sse: saved, views: new Map(), viewGlobes: new Map(), globe: viewer.scene.globe?.maximumScreenSpaceError };
      // likewise the terrain tiles of the last full frame, for globe.pick
      const surface = viewer.scene.globe?._surface;
      if (surface?._tilesRenderedThisFrame) {
        surface.cimFullTiles ??= new Set(surface._tilesRenderedThisFrame);
        wrapGlobePick(viewer.scene.globe);
      }
    }
    // the other views follow the level (their frames share the GPU with this one's: a
    // full frame of the dual view's right side would hold the left one's back), their
    // terrain coarsened as this one's; their tilesets may have loaded since the level was
    // first set
    for (const [other, tilesets] of this.views) {
      if (!this.saved.views.has(other)) this.saved.views.set(other, other.resolutionScale);
      other.resolutionScale = /** @type {number} */ (this.saved.views.get(other)) * scale;
      const otherGlobe = other.scene.globe;
      if (otherGlobe) {
        if (!this.saved.viewGlobes.has(other)) this.saved.viewGlobes.set(other, otherGlobe.maximumScreenSpaceError);
        otherGlobe.maximumScreenSpaceError = /** @type {number} */ (this.saved.viewGlobes.get(other)) * globe;
      }
      for (const tileset of tilesets()) {
        if (tileset && !this.saved.sse.has(tileset)) this.saved.sse.set(tileset, tileset.maximumScreenSpaceError);
      }
      other.scene.requestRender();
    }
    viewer.resolutionScale = this.saved.scale * scale;
    for (const [tileset, full] of this.saved.sse) if (!tileset.isDestroyed?.()) tileset.maximumScreenSpaceError = full * sse;
    if (this.saved.globe !== undefined) viewer.scene.globe.maximumScreenSpaceError = this.saved.globe * globe;
    // the sun's shadow map, while shadows are on (its size is kept from when they were);
    // one cascade at the low levels: a shadow map of its own, swapped in (CesiumJS sees the
    // change and derives the receivers' commands again, with programs the warm-up compiled)
    const current = viewer.scene.shadowMap;
    if (current?.enabled) {
      const full = (this.saved.shadowMap ??= current);
      this.saved.shadowSize ??= full.size;
      const map = cascades === 1 ? this.shadowPreview(full) : full;
      if (map !== current) {
        map.enabled = true;
        viewer.scene.shadowMap = map;
      }
      const size = Math.max(256, Math.round(/** @type {number} */ (this.saved.shadowSize) * shadows));
      if (map.size !== size) map.size = size;
    }
    if (this.level !== level) this.stats.interactive += 1;
    this.level = level;
  }

  /**
   * The tilesets whose detail a reduced level lowers: the building tilesets, and every
   * other 3D tileset of the scene (the pipelines: under the ground, and at their full
   * detail they were most of a lowest-level frame, ~100 of 170 ms on the sample city
   * under SwiftShader).
   * @returns {any[]}
   */
  reducible() {
    const found = new Set(this.tilesets().map((t) => t.tileset).filter(Boolean));
    const Tileset = window.Cesium?.Cesium3DTileset;
    const { primitives } = this.viewer.scene;
    for (let i = 0; Tileset && i < primitives.length; i++) {
      const p = primitives.get(i);
      if (p instanceof Tileset) found.add(p);
    }
    return [...found];
  }

  /** Set the current level again (a view or tileset was added while reduced). */
  refresh() {
    if (this.saved && this.level > 0) this.apply(this.level);
  }

  /** The resolution scale of the full quality (the viewer's unless reduced now). */
  fullScale() {
    return this.saved ? this.saved.scale : this.viewer.resolutionScale;
  }

  /**
   * A building tileset's maximum screen-space error at the full quality.
   * @param {any} tileset
   * @returns {number | undefined}
   */
  fullSse(tileset) {
    return this.saved?.sse.get(tileset) ?? tileset?.maximumScreenSpaceError;
  }

  /** Put back the full quality and draw it. */
  restore() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (!this.saved) return;
    this.setFull();
    // the full selection stays for the rays until a full frame has been drawn
    const views = this.saved.views;
    this.saved = null;
    this.level = 0;
    this.stats.restored += 1;
    this.viewer.scene.requestRender();
    for (const other of views.keys()) if (!other.isDestroyed?.()) other.scene.requestRender();
  }

  /**
   * Another view drawn beside this one (the dual view's right side): its resolution,
   * terrain and building tilesets follow this view's level; its frames count in the time
   * of this view's frame they are drawn with (measure()), and a frame it asks for on its
   * own (its tiles loaded) waits while the GPU has frames to draw (busy()), as this
   * view's do.
   * @param {any} other a Cesium viewer
   * @param {() => any[]} tilesets its building tilesets
   * @returns {() => void} removes it (before it is destroyed), its settings put back
   */
  addView(other, tilesets) {
    this.views.set(other, tilesets);
    const unmeasure = this.measureView(other);
    let waiting = false;
    const ungate = gateRender(
      other.scene,
      () => waiting,
      (asked) => {
        if (asked || !this.busy()) {
          waiting = false;
          return true;
        }
        if (!waiting) this.stats.waited += 1;
        waiting = true;
        return false;
      },
      () => false,
      () => {
        waiting = false;
      },
    );
    return () => {
      unmeasure();
      ungate();
      const gl = other.scene.context?._gl;
      this.others = this.others.filter((f) => {
        if (f.syncs[0]?.gl !== gl) return true;
        release(f);
        return false;
      });
      for (const frame of this.pending) {
        for (const fence of frame.syncs.filter((f) => f.gl === gl)) gl.deleteSync(fence.sync);
        frame.syncs = frame.syncs.filter((f) => f.gl !== gl);
      }
      if (this.saved?.views.has(other)) {
        other.resolutionScale = this.saved.views.get(other);
        this.saved.views.delete(other);
      }
      if (this.saved?.viewGlobes.has(other)) {
        other.scene.globe.maximumScreenSpaceError = this.saved.viewGlobes.get(other);
        this.saved.viewGlobes.delete(other);
      }
      for (const tileset of tilesets()) {
        if (tileset && this.saved?.sse.has(tileset)) {
          tileset.maximumScreenSpaceError = this.saved.sse.get(tileset);
          this.saved.sse.delete(tileset);
        }
      }
      this.views.delete(other);
    };
  }

  /** Put back the full quality and draw it now (synchronously). */
  drawFull() {
    this.restore();
    this.viewer.resize();
    this.viewer.render();
    this.stats.fullForPick += 1;
  }

  /** The saved full-quality settings on the viewer and tilesets (still saved). */
  setFull() {
    if (!this.saved) return;
    this.viewer.resolutionScale = this.saved.scale;
    for (const [tileset, full] of this.saved.sse) if (!tileset.isDestroyed?.()) tileset.maximumScreenSpaceError = full;
    if (this.saved.globe !== undefined) this.viewer.scene.globe.maximumScreenSpaceError = this.saved.globe;
    const { scene } = this.viewer;
    const full = this.saved.shadowMap;
    if (full && scene.shadowMap !== full) {
      // the full map back, on or off as the preview was left (the tool may have closed)
      full.enabled = scene.shadowMap.enabled;
      scene.shadowMap = full;
    }
    const map = scene.shadowMap;
    if (map && this.saved.shadowSize !== undefined && map.size !== this.saved.shadowSize) map.size = this.saved.shadowSize;
    for (const [other, scale] of this.saved.views) if (!other.isDestroyed?.()) other.resolutionScale = scale;
    for (const [other, sse] of this.saved.viewGlobes) if (!other.isDestroyed?.()) other.scene.globe.maximumScreenSpaceError = sse;
  }

  /**
   * The one-cascade shadow map of the low levels, with the settings of the full one.
   * @param {any} full the sun's shadow map of the full quality
   * @returns {any} a Cesium ShadowMap
   */
  shadowPreview(full) {
    const { scene } = this.viewer;
    // CesiumJS's ShadowMap constructor is not in its public types
    const Cesium = /** @type {any} */ (window.Cesium);
    this.previewMap ??= new Cesium.ShadowMap({
      context: scene.context,
      lightCamera: scene._shadowMapCamera,
      numberOfCascades: 1,
      size: Math.max(256, Math.round(full.size / 4)),
    });
    const map = this.previewMap;
    map.softShadows = false;
    map.maximumDistance = full.maximumDistance;
    map.darkness = full.darkness;
    return map;
  }

  /**
   * Forget the saved settings: the display mode changed them (call before it does).
   */
  reset() {
    this.restore();
  }

  /**
   * Time every frame from its start to the GPU having drawn it and feed the controller.
   * The fences are polled from timers, which run late while the page is busy (a
   * synchronous pick waits for the GPU): a frame is then only known to have been drawn
   * between two polls; and a frame queued behind another one tells only that it took at
   * most its whole wait. It is recorded only when those bounds tell whether it fits
   * (core/quality.js frameBounds, usableMs), or at a reduced level not measured yet when
   * its upper bound is over the budget (untriedMs). Warm-up frames (untimed) are not recorded.
   * The frames the other views (addView) draw in the same animation frame, after this
   * one's (the dual view's right side following this camera), are part of its time: an
   * input is answered once both are drawn, so the level is chosen for the pair.
   */
  measure() {
    const { scene } = this.viewer;
    const gl = scene.context?._gl;
    const fences = typeof WebGL2RenderingContext !== 'undefined' && gl instanceof WebGL2RenderingContext;
    let start = 0;
    /** when the last frame drawn was known to be done */
    let prevHi = 0;
    /** the last poll that found the oldest frame not drawn yet */
    let checked = 0;
    const pending = this.pending;
    const poll = () => {
      // the other views' own frames (tiles loading there): only for busy()
      this.others = this.others.filter((f) => {
        if (!signalled(f) && performance.now() - f.start < GIVE_UP_MS) return true;
        release(f);
        return false;
      });
      while (pending.length) {
        const frame = pending[0];
        const now = performance.now();
        const status = signalled(frame);
        if (!status && now - frame.start < GIVE_UP_MS) {
          checked = now;
          break;
        }
        pending.shift();
        release(frame);
        if (!status) continue;
        const bounds = frameBounds({ start: frame.start, checked, now, prevHi });
        prevHi = now;
        const { budgetMs } = this.controller;
        let ms = frame.timed ? usableMs(bounds, budgetMs) : null;
        // a reduced level being tried (not measured, or a guess): its bounds over the budget are taken
        if (ms === null && frame.timed && frame.level > 0 && this.controller.untried(frame.level)) ms = untriedMs(bounds, budgetMs);
        if (ms === null) continue;
        this.controller.record(frame.level, ms);
        this.frames.push({ level: frame.level, ms: Math.round(ms), views: frame.syncs.length - 1 });
        if (this.frames.length > 50) this.frames.shift();
      }
      if (pending.length || this.others.length) setTimeout(poll, POLL_MS);
    };
    this.pollFences = () => {
      if (pending.length + this.others.length === 1) {
        checked = performance.now();
        setTimeout(poll, 0);
      }
    };
    scene.preRender.addEventListener(() => {
      start = performance.now();
    });
    scene.postRender.addEventListener(() => {
      this.onScreen = this.level;
      if (this.level === 0) {
        for (const tileset of this.reducible()) delete tileset.cimFullSelection;
        if (scene.globe?._surface) delete scene.globe._surface.cimFullTiles;
      }
      if (!fences) return;
      const sync = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
      if (!sync) return;
      gl.flush();
      const frame = { start, level: this.level, timed: !this.untimed, syncs: [{ gl, sync }], open: true };
      pending.push(frame);
      // the other views draw in the same animation frame, before any timer runs
      setTimeout(() => {
        frame.open = false;
      }, 0);
      this.pollFences();
    });
  }

  /**
   * Fence another view's frames (addView): a frame drawn in the same animation frame as
   * one of this view's, before its fences were first polled, counts in that frame's time;
   * the others (its own, tiles loading there) only keep busy() true until drawn.
   * @param {any} other a Cesium viewer
   * @returns {() => void} stops
   */
  measureView(other) {
    const gl = other.scene.context?._gl;
    if (!(typeof WebGL2RenderingContext !== 'undefined' && gl instanceof WebGL2RenderingContext)) return () => {};
    return other.scene.postRender.addEventListener(() => {
      const sync = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
      if (!sync) return;
      gl.flush();
      const last = this.pending.at(-1);
      if (last?.open) last.syncs.push({ gl, sync });
      else {
        this.others.push({ syncs: [{ gl, sync }], start: performance.now() });
        this.pollFences();
      }
    });
  }

  /**
   * Whether the GPU has frames of this view or of the other views still to draw: a
   * frame CesiumJS asks for on its own (tiles loaded) waits until they are drawn instead
   * of queueing behind them (an input that came meanwhile would wait for both).
   * @returns {boolean}
   */
  busy() {
    const waiting = (/** @type {Fenced} */ f) => !signalled(f) && performance.now() - f.start < GIVE_UP_MS;
    return this.pending.some(waiting) || this.others.some(waiting);
  }

  /**
   * Keep the triangles that a tool's clicks cast rays against (exactPick, raycast.js)
   * read while the tool is open: the tiles of every frame drawn, and `tiles` (those drawn
   * before the tool cut some away: a tile its clipping planes cut whole is not drawn,
   * and is drawn again when they move), read in slices of RAY_SLICE_MS once the GPU has
   * drawn the frames before (busy()). A tile's first read is a GPU readback, which waits
   * until the GPU has drawn every frame queued before it (a full-quality one: 0.5–2 s
   * under software WebGL); read at a click, that wait was the click's (the clipping box's
   * first click, on tiles its plane had cut: 0.6–3.7 s). Read while the GPU is idle, a
   * tile costs a few ms.
   * @param {() => any[]} tilesets the tilesets whose drawn tiles are kept read
   * @param {any[]} [tiles] more tiles to read (Cesium3DTile)
   * @returns {() => void} stops
   */
  warmRays(tilesets, tiles = []) {
    /** @type {ReturnType<typeof setTimeout> | null} */
    let timer = null;
    let stopped = false;
    let extra = tiles;
    const step = () => {
      timer = null;
      if (stopped) return;
      if (this.busy()) {
        timer = setTimeout(step, RAY_WAIT_MS);
        return;
      }
      const until = performance.now() + RAY_SLICE_MS;
      if (extra.length && this.raycaster.warmTiles(extra, until)) extra = [];
      if (extra.length || !this.raycaster.warm(tilesets(), until)) timer = setTimeout(step, 0);
    };
    const soon = () => {
      if (!stopped && timer === null) timer = setTimeout(step, 0);
    };
    // a frame may have selected tiles not read yet
    const off = this.viewer.scene.postRender.addEventListener(soon);
    soon();
    return () => {
      stopped = true;
      off();
      if (timer !== null) clearTimeout(timer);
      timer = null;
      extra = [];
    };
  }

  /**
   * While reduced, pick with the full building detail: scene.pick draws its own pass
   * (with the full screen-space errors put back for it); scene.pickPosition would read
   * the reduced frame's depth (missing buildings, coarse pixels), so the point is found
   * exactly instead: the nearest of the terrain along the camera ray (globe.pick) and the
   * building triangles of the full selection (BuildingRaycaster); the reduced depth only
   * when something else (another layer, a drawing) stands clearly in front of both.
   */
  wrapPicks() {
    const { scene } = this.viewer;
    const Cesium = window.Cesium;
    const pick = scene.pick.bind(scene);
    const pickPosition = scene.pickPosition.bind(scene);
    scene.pick = (/** @type {any[]} */ ...args) => {
      // a pick pass has the drawing buffer's pixels: at a reduced resolution one is several
      // of the screen's, too coarse to tell a roof from the street next to it; the full
      // frame is drawn first then (a pick while a reduced frame is shown is rare: the map
      // tools pick positions, below)
      if (this.saved && this.saved.scale !== this.viewer.resolutionScale) this.drawFull();
      if (!this.saved) return pick(...args);
      const reduced = new Map([...this.saved.sse.keys()].map((t) => [t, t.maximumScreenSpaceError]));
      for (const [tileset, sse] of this.saved.sse) tileset.maximumScreenSpaceError = sse;
      try {
        return pick(...args);
      } finally {
        for (const [tileset, sse] of reduced) tileset.maximumScreenSpaceError = sse;
      }
    };
    scene.pickPosition = (/** @type {any} */ windowPosition, /** @type {any} */ result) => {
      if ((this.saved || this.onScreen > 0) && this.clipped()) {
        // the CPU does not see these cuts (an excavation pit, walls and floor drawn in
        // it): the full frame is drawn and its depth read. A building tileset's clipping
        // planes (a cut building, the clipping box) are not among them: the rays skip
        // what they cut (raycast.js clipSpans)
        this.drawFull();
        return pickPosition(windowPosition, result);
      }
      const depth = pickPosition(windowPosition, result);
      if (!this.saved && this.onScreen === 0) return depth;
      const exact = this.exactPick(windowPosition);
      const { Cartesian3 } = Cesium;
      if (!exact) return depth;
      const origin = scene.camera.positionWC;
      if (depth && Cartesian3.distance(origin, depth) < NEARER * Cartesian3.distance(origin, exact)) return depth;
      this.stats.exactPicks += 1;
      return result ? Cartesian3.clone(exact, result) : exact;
    };
  }

  /**
   * Whether something the exact pick cannot follow is cut now: clipping planes or
   * polygons on the terrain, clipping polygons on a building tileset (a tileset's
   * clipping planes it follows).
   */
  clipped() {
    const on = (/** @type {any} */ c) => Boolean(c && c.enabled !== false && c.length > 0);
    const { globe } = this.viewer.scene;
    if (on(globe.clippingPlanes) || on(globe.clippingPolygons)) return true;
    return this.tilesets().some(({ tileset }) => tileset && on(tileset.clippingPolygons));
  }

  /**
   * The point under a window position on the terrain or the full-detail buildings shown,
   * less what their clipping planes cut: on the CPU, without waiting for the GPU (no
   * pixel read back; the first ray through a tile reads its triangles back once).
   * @param {any} windowPosition
   * @returns {any} a Cesium.Cartesian3, or undefined
   */
  exactPick(windowPosition) {
    const { scene } = this.viewer;
    const { Cartesian3 } = window.Cesium;
    const ray = scene.camera.getPickRay(windowPosition);
    if (!ray) return undefined;
    const ground = scene.globe.show ? scene.globe.pick(ray, scene) : undefined;
    const reach = ground ? Cartesian3.distance(ray.origin, ground) * 1.001 : FAR_M;
    const end = Cartesian3.add(ray.origin, Cartesian3.multiplyByScalar(ray.direction, reach, new Cartesian3()), new Cartesian3());
    // a hidden tileset keeps the selection of the last frame it was drawn in
    const tilesets = this.tilesets().map((t) => t.tileset).filter((t) => t && t.show !== false);
    const hit = this.raycaster.firstHit(tilesets, ray.origin, end, scene.frameState);
    return hit ? hit.point : ground;
  }
}

/**
 * Take CesiumJS's Viewer default click handlers off (select the entity clicked, track the
 * one double-clicked): each is a scene.pick, which after a reduced frame draws the full
 * one first (wrapPicks) and holds the tools' own handlers back that long. The page
 * selects buildings itself (main.js setupPicking) and tracks no entity.
 * @param {any} viewer a Cesium Viewer
 */
export function dropEntityPicks(viewer) {
  const { ScreenSpaceEventType } = window.Cesium;
  const handler = viewer.screenSpaceEventHandler;
  handler.removeInputAction(ScreenSpaceEventType.LEFT_CLICK);
  handler.removeInputAction(ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
}

/**
 * Wrap a scene's render so that a frame CesiumJS asks for on its own can be put off: a
 * render request made outside a frame (an input, a tool, a script) or by a postRender
 * listener after this one's is the page's ("asked"); one made while a frame is updated
 * and drawn, up to its postRender, is CesiumJS's own (see InteractiveFrames.wrapRender).
 * @param {any} scene a Cesium scene
 * @param {() => boolean} held a frame is being put off (looked at again at each animation frame)
 * @param {(asked: boolean) => boolean} gate whether the frame due is drawn now (asked: the
 *   page asked for one since the last frame)
 * @param {() => boolean} untimed this frame is not gated (a warm-up frame, warm.js)
 * @param {() => void} drawn a frame is being drawn (at its preRender)
 * @returns {() => void} takes the wrapping off
 */
function gateRender(scene, held, gate, untimed, drawn) {
  const render = scene.render.bind(scene);
  const request = scene.requestRender.bind(scene);
  /** scene.render is running, before its postRender */
  let inFrame = false;
  /** a render was asked for from outside a frame since the last frame drawn */
  let asked = false;
  scene.requestRender = () => {
    if (!inFrame) asked = true;
    request();
  };
  scene.render = (/** @type {any} */ time) => {
    if (!untimed() && (scene._renderRequested || held())) scene._renderRequested = gate(asked);
    inFrame = true;
    try {
      return render(time);
    } finally {
      inFrame = false;
    }
  };
  const offPre = scene.preRender.addEventListener(() => {
    if (untimed()) return;
    asked = false;
    drawn();
  });
  // the listeners after this one (the tools') ask for follow-up frames of their own
  const offPost = scene.postRender.addEventListener(() => {
    inFrame = false;
  });
  return () => {
    offPre();
    offPost();
    delete scene.render;
    delete scene.requestRender;
  };
}

/**
 * A frame's fences: its own and those of the frames other views drew with it.
 * @typedef {{start: number, syncs: {gl: any, sync: any}[]}} Fenced
 */

/**
 * Whether every fence of a frame has signalled (not blocking).
 * @param {Fenced} frame
 */
function signalled(frame) {
  return frame.syncs.every(({ gl, sync }) => gl.getSyncParameter(sync, gl.SYNC_STATUS) === gl.SIGNALED);
}

/**
 * Delete a frame's fences.
 * @param {Fenced} frame
 */
function release(frame) {
  for (const { gl, sync } of frame.syncs) gl.deleteSync(sync);
}

/** @type {WeakSet<object>} tilesets whose pick is wrapped */
const wrapped = new WeakSet();

/**
 * CesiumJS's CPU pick of a tileset (tileset.pick(ray)) tests the tiles selected for the
 * last frame: while that was a reduced one, it tests the full selection instead.
 * @param {any} tileset
 */
function wrapTilesetPick(tileset) {
  if (wrapped.has(tileset) || typeof tileset.pick !== 'function') return;
  wrapped.add(tileset);
  const pick = tileset.pick.bind(tileset);
  tileset.pick = (/** @type {any[]} */ ...args) => {
    const full = tileset.cimFullSelection;
    if (!full) return pick(...args);
    const drawn = tileset._selectedTiles;
    tileset._selectedTiles = full;
    try {
      return pick(...args);
    } finally {
      tileset._selectedTiles = drawn;
    }
  };
}

/**
 * CesiumJS's CPU pick of the terrain (globe.pick) tests the tiles rendered in the last
 * frame: while that was a reduced one (coarser terrain), it tests the last full frame's.
 * @param {any} globe
 */
function wrapGlobePick(globe) {
  if (wrapped.has(globe) || typeof globe.pickWorldCoordinates !== 'function') return;
  wrapped.add(globe);
  const pick = globe.pickWorldCoordinates.bind(globe);
  globe.pickWorldCoordinates = (/** @type {any[]} */ ...args) => {
    const surface = globe._surface;
    const full = surface?.cimFullTiles;
    if (!full) return pick(...args);
    const drawn = surface._tilesRenderedThisFrame;
    surface._tilesRenderedThisFrame = full;
    try {
      return pick(...args);
    } finally {
      surface._tilesRenderedThisFrame = drawn;
    }
  };
}
