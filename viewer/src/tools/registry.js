// @ts-check
// The tools registry: every map tool (measure, clip, swipe, ...) is one module under
// tools/ that makes a Tool; the registry puts its options panel in the panel manager's
// `tool` slot, keeps one tool active at a time (opening one ends the other, Esc or its
// close button ends it) and times each tool's response to input.

/**
 * A map tool.
 * @typedef {object} Tool
 * @property {string} id e.g. 'measure'
 * @property {string} labelKey i18n key of its name (the toolbar button)
 * @property {HTMLElement} element its options panel
 * @property {() => void} activate start: set up handlers, show what it draws
 * @property {() => void} deactivate end: remove handlers and everything it drew
 * @property {() => void} [relabel] after a language switch
 * @property {boolean} [capturesClicks] while active, map clicks are its input (no
 *   building selection)
 * @property {Record<string, any>} [api] hooks for scripts and the tests
 * @property {() => boolean} [exactFrames] true while its inputs must be answered by a
 *   full-quality frame (what it reads back from the frame would be wrong on a reduced one)
 * @property {() => import('../warm.js').WarmUp[]} [warmUps] the shader variants it switches
 *   on, to compile while the page is idle after load (warm.js)
 */

/**
 * @typedef {object} Timing
 * @property {string} action what the input was (e.g. 'click', 'offset')
 * @property {number} handler ms spent in the handler
 * @property {number | null} frame ms from the input to the end of the next rendered frame
 */

/** Timings kept per tool (the latest ones). */
const MAX_TIMINGS = 100;

export class ToolRegistry {
  /**
   * @param {import('../core/bus.js').Bus} bus receives tool:activate / tool:deactivate {id}
   * @param {import('../core/panels.js').PanelManager} panels
   * @param {{now?: () => number, nextFrame?: (cb: () => void) => void}} [clock]
   *   time source and "after the next rendered frame" hook (browser: scene.postRender)
   */
  constructor(bus, panels, clock = {}) {
    this.bus = bus;
    this.panels = panels;
    this.now = clock.now || (() => performance.now());
    this.nextFrame = clock.nextFrame || null;
    /** @type {Map<string, Tool>} */
    this.tools = new Map();
    /** @type {string | null} */
    this.active = null;
    /** @type {Record<string, Timing[]>} */
    this.timings = {};
  }

  /** @param {string} id the panel id of a tool */
  static panelId(id) {
    return `tool:${id}`;
  }

  /**
   * Add a tool (its panel stays hidden until the tool is activated).
   * @param {Tool} tool
   */
  register(tool) {
    if (this.tools.has(tool.id)) throw new Error(`tool ${tool.id} is already registered`);
    this.tools.set(tool.id, tool);
    this.panels.register(ToolRegistry.panelId(tool.id), {
      slot: 'tool',
      element: tool.element,
      onOpen: () => {
        this.active = tool.id;
        tool.activate();
        this.bus.emit('tool:activate', { id: tool.id });
      },
      onClose: () => {
        if (this.active === tool.id) this.active = null;
        tool.deactivate();
        this.bus.emit('tool:deactivate', { id: tool.id });
      },
    });
    return tool;
  }

  /** @param {string} id */
  get(id) {
    return this.tools.get(id);
  }

  /**
   * Make a tool the active one, ending the one that was.
   * @param {string} id
   */
  activate(id) {
    if (!this.tools.has(id)) throw new Error(`no tool ${id}`);
    if (this.active === id) return;
    this.deactivate();
    this.panels.open(ToolRegistry.panelId(id));
  }

  /** End the active tool, if any. */
  deactivate() {
    if (this.active) this.panels.close(ToolRegistry.panelId(this.active));
  }

  /** Whether map clicks belong to the active tool (not to building selection). */
  capturesClicks() {
    return Boolean(this.active && this.tools.get(this.active)?.capturesClicks);
  }

  /** Whether the active tool needs full-quality frames now (see Tool.exactFrames). */
  exactFrames() {
    return Boolean(this.active && this.tools.get(this.active)?.exactFrames?.());
  }

  /** @param {string} id */
  toggle(id) {
    if (this.active === id) this.deactivate();
    else this.activate(id);
  }

  /**
   * Wrap an input handler so that each call is timed: the handler's own time, and the
   * time until the next frame was drawn (when a frame hook is given).
   * @template {any[]} A
   * @param {string} id the tool
   * @param {string} action what the input is
   * @param {(...args: A) => any} fn
   * @returns {(...args: A) => any}
   */
  timed(id, action, fn) {
    return (...args) => {
      const start = this.now();
      try {
        return fn(...args);
      } finally {
        /** @type {Timing} */
        const entry = { action, handler: this.now() - start, frame: null };
        const list = (this.timings[id] ||= []);
        list.push(entry);
        if (list.length > MAX_TIMINGS) list.shift();
        this.nextFrame?.(() => {
          entry.frame = this.now() - start;
        });
      }
    };
  }
}
