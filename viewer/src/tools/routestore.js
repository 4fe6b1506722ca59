// @ts-check
// The stops of a flight route (飞行路线), kept in a storage (localStorage in the page):
// pure, so it is unit-tested without a page.

import { moveItem } from './geo.js';

/** @typedef {{name: string, v: number[]}} Stop */

/** The stops of a city's route, in a storage (localStorage in the page). */
export class RouteStore {
  /**
   * @param {string} cityKey
   * @param {{getItem: (k: string) => string | null, setItem: (k: string, v: string) => void} | null} [storage]
   */
  constructor(cityKey, storage = globalThis.localStorage ?? null) {
    this.key = `cim.route.${cityKey || 'city'}`;
    this.storage = storage;
    /** @type {Stop[]} */
    this.stops = this.read();
  }

  /** @returns {Stop[]} */
  read() {
    try {
      const items = JSON.parse(this.storage?.getItem(this.key) || '[]');
      return Array.isArray(items)
        ? items.filter((s) => s && typeof s.name === 'string' && Array.isArray(s.v) && s.v.length >= 3 && s.v.every(Number.isFinite))
        : [];
    } catch {
      return [];
    }
  }

  write() {
    try {
      this.storage?.setItem(this.key, JSON.stringify(this.stops));
    } catch {
      // storage full or disabled: the route lasts for this page
    }
  }

  /** @param {Stop} stop */
  add(stop) {
    this.stops = [...this.stops, { name: stop.name.slice(0, 40), v: stop.v.slice(0, 6) }];
    this.write();
  }

  /** @param {number} index */
  remove(index) {
    this.stops = this.stops.filter((_, i) => i !== index);
    this.write();
  }

  /**
   * @param {number} index
   * @param {number} delta -1 up, +1 down
   */
  move(index, delta) {
    this.stops = moveItem(this.stops, index, delta);
    this.write();
  }
}
