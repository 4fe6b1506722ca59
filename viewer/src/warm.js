// @ts-check
// Warm-up: the shader programs a tool switches on at its first use (clipping planes and
// boxes on the building tiles, the excavation's clipped terrain, sun shadows, the massing
// blocks, the sketches' points, lines and labels) are compiled while the page is idle
// after loading, not in the frame that answers the first input: under software WebGL a
// new program costs 0.5–8 s (the sun's shadow map 16 s) on the sample city.
//
// Each variant (a tool's `warmUps()`, see tools/registry.js) is switched on, drawn in one
// or a few offscreen frames, and switched off again. The frames are drawn into a small
// framebuffer of their own, in a view of their own (the screen, the picture and the depth
// that picks read are untouched) and at a tiny drawing-buffer size, so the tiles'
// screen-space errors select only the coarse tiles: a frame costs tens of ms, not a full
// one. The programs they compiled are kept in CesiumJS's shader cache (their reference
// count is raised once), so the tool's first frame finds them compiled.
//
// A variant whose tool takes seconds to get its first input (massing compare: a file to
// choose) and whose panel opens before the idle warm-up reached it is warmed as soon as
// the panel is open (`opening`), before that input, unless an input comes first.

/**
 * A shader variant to compile ahead.
 * @typedef {object} WarmUp
 * @property {string} name for the log and the tests
 * @property {() => void} on switch it on (drawing nothing visible)
 * @property {() => void} off switch it off again
 * @property {() => boolean} [ready] drawn again (up to 4 frames) until true
 * @property {number} [frames] drawn at least this many frames (1)
 * @property {boolean} [last] warmed after the others (a long one)
 * @property {string} [opening] the id of the tool whose panel opening warms it at once
 *   when it is still queued (the tool's first input comes seconds after the panel opens)
 * @property {boolean} [fog] also drawn as in fog (true): false for a variant that switches
 *   on nothing the terrain draws (its fogged frame would compile nothing)
 */

/** Drawing-buffer size of a warm-up frame (the coarse tiles only; a 16:11 screen). */
const WIDTH = 64;
const HEIGHT = 44;

/** CesiumJS's fog function's answer in a fogged warm-up frame: some fog, none culled. */
const FOGGED = 0.5;

/** ms without input before the warm-up starts, and between its steps. */
const QUIET_MS = 1500;
const STEP_MS = 60;

/** ms after a tool's panel opens before its `opening` variants are warmed (the panel is shown first). */
export const OPEN_MS = 50;

export class Warmer {
  /**
   * @param {any} viewer
   * @param {{active: string | null, bus?: {on: (name: string, handler: (payload: any) => void) => unknown}}} registry
   *   the tools registry (nothing is warmed while a tool is open, but the `opening` variants
   *   of a tool whose panel opens: its bus's tool:activate)
   * @param {{saved: any, untimed: boolean}} interactive the interactive frames (not while reduced)
   */
  constructor(viewer, registry, interactive) {
    this.viewer = viewer;
    this.registry = registry;
    this.interactive = interactive;
    /** @type {WarmUp[]} */
    this.queue = [];
    /** @type {{name: string, ms: number, programs: number}[]} what was warmed (the tests read it) */
    this.done = [];
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
    /** @type {any} */
    this.view = null;
    /** @type {any} */
    this.framebuffer = null;
    this.lastInput = performance.now();
    /** the home view has loaded (tilesets and terrain), seen by watchLoad() */
    this.loadedOnce = false;
    this.watchLoad();
    // any input on the page postpones the next step
    for (const type of ['pointerdown', 'keydown', 'wheel', 'input', 'change']) {
      window.addEventListener(type, () => this.input(), { capture: true, passive: true });
    }
    registry.bus?.on('tool:activate', (/** @type {{id: string}} */ { id }) => this.opened(id));
  }

  /**
   * A tool's panel has opened: its `opening` variants still queued are warmed OPEN_MS
   * later, while the tool is still open and no input has come since (an input first: the
   * tool's frame compiles what it needs, and the variants wait for the idle warm-up).
   * @param {string} id
   */
  opened(id) {
    if (!this.queue.some((v) => v.opening === id)) return;
    const at = performance.now();
    setTimeout(() => {
      if (this.registry.active !== id || this.lastInput > at) return;
      const mine = this.queue.filter((v) => v.opening === id);
      this.queue = this.queue.filter((v) => v.opening !== id);
      for (const variant of mine) this.warm(variant);
      if (!this.queue.length) this.release();
    }, OPEN_MS);
  }

  /**
   * Note the first moment everything is loaded, when it happens (the terrain's and the
   * tilesets' load events): a view can start loading right after (a flight, a script),
   * before a timer would have seen it.
   */
  watchLoad() {
    const { scene } = this.viewer;
    const check = () => {
      if (this.loadedOnce || !this.allLoaded()) return;
      this.loadedOnce = true;
      for (const off of offs) off();
    };
    const offs = [scene.globe?.tileLoadProgressEvent.addEventListener(() => setTimeout(check, 0))];
    for (let i = 0; i < scene.primitives.length; i++) {
      const p = scene.primitives.get(i);
      if (p?.allTilesLoaded) offs.push(p.allTilesLoaded.addEventListener(() => setTimeout(check, 0)));
    }
    offs.splice(0, offs.length, ...offs.filter(Boolean));
  }

  /** Whether the terrain and every tileset have their tiles loaded now. */
  allLoaded() {
    const { scene } = this.viewer;
    for (let i = 0; i < scene.primitives.length; i++) {
      if (scene.primitives.get(i)?.tilesLoaded === false) return false;
    }
    return scene.globe?.tilesLoaded !== false;
  }

  /** An input: the next step waits for QUIET_MS without one. */
  input() {
    this.lastInput = performance.now();
  }

  /**
   * Warm these variants, one per idle step.
   * @param {WarmUp[]} variants
   */
  add(variants) {
    this.queue.push(...variants);
    this.queue.sort((a, b) => Number(Boolean(a.last)) - Number(Boolean(b.last)));
    this.schedule(QUIET_MS);
  }

  /** @param {number} ms */
  schedule(ms) {
    if (this.timer !== null || !this.queue.length) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.step();
    }, ms);
  }

  /**
   * Whether the page is idle: the home view has loaded once (its load is not slowed
   * down), no tool is open (the user works with it: a step compiles for up to seconds),
   * no input for QUIET_MS, no reduced frame on the screen (the full one follows the
   * inputs' pause). Tiles loading for a new view do not hold it back (the frame due is
   * still drawn), so the warm-up is mostly done before the first tool is opened.
   */
  idle() {
    if (!this.loadedOnce) this.loadedOnce = this.allLoaded();
    const quiet = performance.now() - this.lastInput >= QUIET_MS;
    const busy = this.registry.active || this.interactive.saved || document.hidden;
    // (the camera moving to a new view and its tiles loading do not count)
    return this.loadedOnce && quiet && !busy;
  }

  /** Warm the next variant if the page is idle, else wait. */
  step() {
    if (!this.queue.length) return;
    if (!this.idle()) {
      this.schedule(QUIET_MS / 3);
      return;
    }
    this.warm(/** @type {WarmUp} */ (this.queue.shift()));
    if (!this.queue.length) this.release();
    this.schedule(STEP_MS);
  }

  /**
   * Switch a variant on, draw its frames offscreen, switch it off; noted in `done`.
   * @param {WarmUp} variant
   */
  warm(variant) {
    const start = performance.now();
    let programs = 0;
    try {
      variant.on();
      for (let i = 0; i < 4; i++) {
        programs += this.render();
        if (i + 1 >= (variant.frames ?? 1) && (!variant.ready || variant.ready())) break;
      }
      // the terrain tiles in fog (the far ones of a view) draw with a program of their own
      if (variant.fog !== false) programs += this.render({ fogged: true });
    } catch (err) {
      console.warn(`warm-up ${variant.name} failed`, err);
    } finally {
      try {
        variant.off();
      } catch (err) {
        console.warn(`warm-up ${variant.name}: switching it off failed`, err);
      }
    }
    this.done.push({ name: variant.name, ms: Math.round(performance.now() - start), programs });
  }

  /**
   * Draw one frame offscreen, at WIDTH × HEIGHT, leaving the screen, the default view and
   * the tiles selected for the last frame (what CPU picks test) as they were.
   *
   * A terrain tile is drawn with the FOG variant of its programs when it is far enough
   * for the fog to show (CesiumJS decides per tile, from its distance); the coarse tiles of
   * a warm-up frame are near or around the camera, so they mostly have none, and a view's
   * far tiles compiled theirs in the first frame of the tool (the sun shadows' cast and
   * receive programs, 0.6 s on the sample city). With `fogged`, every tile is drawn as in
   * fog (CesiumJS's fog function answers a share between none and full, which culls
   * nothing), so those variants are compiled too.
   * @param {{fogged?: boolean}} [options]
   * @returns {number} the shader programs it added to the cache (kept from now on)
   */
  render({ fogged = false } = {}) {
    // CesiumJS's renderer classes (View, Framebuffer, ...) are not in its public types
    const Cesium = /** @type {any} */ (window.Cesium);
    const { scene } = this.viewer;
    const context = scene.context;
    const cache = context.shaderCache;
    if (!this.view) {
      const viewport = new Cesium.BoundingRectangle(0, 0, WIDTH, HEIGHT);
      this.view = new Cesium.View(scene, scene.camera, viewport);
      this.framebuffer = new Cesium.Framebuffer({
        context,
        colorTextures: [new Cesium.Texture({ context, width: WIDTH, height: HEIGHT })],
        depthStencilRenderbuffer: new Cesium.Renderbuffer({ context, width: WIDTH, height: HEIGHT, format: Cesium.RenderbufferFormat.DEPTH_STENCIL }),
      });
    }
    const before = new Set(Object.keys(cache._shaders));
    const tilesets = [];
    for (let i = 0; i < scene.primitives.length; i++) {
      const p = scene.primitives.get(i);
      if (p instanceof Cesium.Cesium3DTileset) tilesets.push([p, [...p._selectedTiles]]);
    }
    const surface = scene.globe?._surface;
    const rendered = surface ? new Set(surface._tilesRenderedThisFrame) : null;
    const defaultView = scene._defaultView;
    const view = scene._view;
    const framebuffer = this.framebuffer;
    const size = { drawingBufferWidth: { get: () => WIDTH, configurable: true }, drawingBufferHeight: { get: () => HEIGHT, configurable: true } };
    Object.defineProperties(context, size);
    scene._defaultView = this.view;
    // into the warm-up framebuffer, not the canvas (nothing is shown)
    scene.updateAndExecuteCommands = (/** @type {any} */ passState, /** @type {any} */ background) => {
      passState.framebuffer = framebuffer;
      return Object.getPrototypeOf(scene).updateAndExecuteCommands.call(scene, passState, background);
    };
    scene.resolveFramebuffers = (/** @type {any} */ passState) => {
      Object.getPrototypeOf(scene).resolveFramebuffers.call(scene, passState);
      scene._overlayCommandList.length = 0; // overlays would be drawn on the canvas
    };
    this.interactive.untimed = true;
    const due = scene._renderRequested;
    const fog = Cesium.Math.fog;
    if (fogged) Cesium.Math.fog = () => FOGGED;
    try {
      // (the flag itself: a request through scene.requestRender would count as one of
      // the page's, and a frame of tiles loading that interactive.js puts off would be
      // drawn after this one)
      scene._renderRequested = true;
      scene.render(this.viewer.clock.currentTime);
    } finally {
      Cesium.Math.fog = fog;
      // a frame that was due is still drawn
      if (due) scene._renderRequested = true;
      this.interactive.untimed = false;
      delete scene.updateAndExecuteCommands;
      delete scene.resolveFramebuffers;
      delete context.drawingBufferWidth;
      delete context.drawingBufferHeight;
      scene._defaultView = defaultView;
      scene._view = view;
      for (const [tileset, selected] of tilesets) {
        tileset._selectedTiles.length = 0;
        tileset._selectedTiles.push(...selected);
      }
      if (surface && rendered) {
        surface._tilesRenderedThisFrame.clear();
        for (const tile of rendered) surface._tilesRenderedThisFrame.add(tile);
      }
    }
    // keep what this frame compiled: the variant's own frames will find it (a program
    // made but not drawn, e.g. of something out of the view, is compiled here)
    let added = 0;
    for (const [keyword, entry] of Object.entries(cache._shaders)) {
      if (before.has(keyword)) continue;
      entry.count += 1;
      delete cache._shadersToRelease[keyword];
      if (entry.shaderProgram && entry.shaderProgram._program === undefined) entry.shaderProgram._bind();
      added += 1;
    }
    return added;
  }

  /** The warm-up's own view and framebuffer, once every variant is done. */
  release() {
    this.framebuffer?.destroy();
    this.framebuffer = null;
    this.view?.destroy?.();
    this.view = null;
  }
}
