// @ts-check
// The event bus: modules talk through named events instead of one callback per hook,
// so a new panel or layer kind subscribes to what it needs without touching the others.
// Event names are "area:what" (layer:change, panel:open, building:select, ...).

/**
 * @typedef {(payload: any) => void} Handler
 */

export class Bus {
  constructor() {
    /** @type {Map<string, Set<Handler>>} */
    this.handlers = new Map();
  }

  /**
   * Call handler(payload) on every emit of name; returns a function that unsubscribes.
   * @param {string} name
   * @param {Handler} handler
   * @returns {() => void}
   */
  on(name, handler) {
    let set = this.handlers.get(name);
    if (!set) this.handlers.set(name, (set = new Set()));
    set.add(handler);
    return () => this.off(name, handler);
  }

  /**
   * Call handler once, on the next emit of name.
   * @param {string} name
   * @param {Handler} handler
   * @returns {() => void}
   */
  once(name, handler) {
    const off = this.on(name, (payload) => {
      off();
      handler(payload);
    });
    return off;
  }

  /**
   * @param {string} name
   * @param {Handler} handler
   */
  off(name, handler) {
    const set = this.handlers.get(name);
    if (!set) return;
    set.delete(handler);
    if (!set.size) this.handlers.delete(name);
  }

  /**
   * Deliver payload to every handler of name, in subscription order. A handler that
   * throws is reported and does not keep the others from running.
   * @param {string} name
   * @param {any} [payload]
   * @returns {number} how many handlers ran
   */
  emit(name, payload) {
    const set = this.handlers.get(name);
    if (!set) return 0;
    let n = 0;
    for (const handler of [...set]) {
      try {
        handler(payload);
      } catch (err) {
        console.warn(`bus: a handler of ${name} failed`, err);
      }
      n += 1;
    }
    return n;
  }
}

/** The page's bus (one per page; tests create their own Bus). */
export const bus = new Bus();
