// @ts-check
// The legend slot: any module (the building theme, sensors, department layers) puts
// its entries under its own source id; the legend panel shows them all.

/**
 * @typedef {{color: string, label: string, icon?: string}} LegendItem icon: an image URL shown beside the swatch
 * @typedef {{title?: string, items: LegendItem[]}} LegendEntry
 */

export class Legend {
  /** @param {import('./bus.js').Bus} bus receives legend:change */
  constructor(bus) {
    this.bus = bus;
    /** @type {Map<string, LegendEntry>} */
    this.entries = new Map();
  }

  /**
   * Set (or replace) a source's entries; an empty list removes the source.
   * @param {string} source
   * @param {LegendEntry} entry
   */
  set(source, entry) {
    if (!entry?.items?.length) {
      this.clear(source);
      return;
    }
    this.entries.set(source, { title: entry.title, items: entry.items.map((i) => ({ ...i })) });
    this.bus.emit('legend:change', { source });
  }

  /** @param {string} source */
  clear(source) {
    if (this.entries.delete(source)) this.bus.emit('legend:change', { source });
  }

  /** Every source's entries, in the order they were first set. */
  list() {
    return [...this.entries.entries()].map(([source, entry]) => ({ source, ...entry }));
  }
}
