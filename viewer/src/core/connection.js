// @ts-check
// Connection state: polls the server's health and listens for failed requests; after
// a failure it polls faster until the server answers again. Emits connection:change
// {online} so the banner (and later the live stream) can react.

/**
 * @typedef {object} ConnectionOptions
 * @property {() => Promise<boolean>} probe resolves true when the server answers
 * @property {number} [interval] ms between checks while online
 * @property {number} [retry] ms between checks while offline
 * @property {(fn: () => void, ms: number) => any} [setTimer]
 * @property {(id: any) => void} [clearTimer]
 */

export class Connection {
  /**
   * @param {import('./bus.js').Bus} bus
   * @param {ConnectionOptions} options
   */
  constructor(bus, { probe, interval = 10000, retry = 2000, setTimer, clearTimer }) {
    this.bus = bus;
    this.probe = probe;
    this.interval = interval;
    this.retry = retry;
    this.setTimer = setTimer || ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = clearTimer || ((id) => clearTimeout(id));
    this.online = true;
    this.timer = null;
    /** @type {Promise<boolean> | null} */
    this.pending = null;
    this.stopped = true;
  }

  /** Start polling. */
  start() {
    this.stopped = false;
    this.schedule();
  }

  stop() {
    this.stopped = true;
    this.clearTimer(this.timer);
    this.timer = null;
  }

  schedule() {
    this.clearTimer(this.timer);
    if (this.stopped) return;
    this.timer = this.setTimer(() => {
      this.check();
    }, this.online ? this.interval : this.retry);
  }

  /**
   * Ask the server now (one probe at a time); resolves to the new state.
   * @returns {Promise<boolean>}
   */
  check() {
    if (!this.pending) {
      this.pending = this.probe()
        .catch(() => false)
        .then((ok) => {
          this.pending = null;
          this.report(ok);
          this.schedule();
          return ok;
        });
    }
    return this.pending;
  }

  /**
   * Record the outcome of a request; a change of state is announced once.
   * @param {boolean} ok
   */
  report(ok) {
    const online = Boolean(ok);
    if (online === this.online) return;
    this.online = online;
    this.bus.emit('connection:change', { online });
    this.schedule();
  }
}

/**
 * A probe that fetches a URL and is true on any HTTP answer below 500.
 * @param {string} url
 * @param {number} [timeoutMs]
 * @returns {() => Promise<boolean>}
 */
export function httpProbe(url, timeoutMs = 4000) {
  return async () => {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeoutMs);
    try {
      const resp = await fetch(url, { cache: 'no-store', signal: ctrl.signal });
      return resp.status < 500;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  };
}
