// @ts-check
// Interactive quality: while the user works a tool, the frame that answers each input is
// drawn at a level of quality sized so it takes at most a budget of time, and the full
// quality frame follows once the input stops. Pure logic (no Cesium): the levels, a
// controller that learns what a frame costs at each level and picks the best one that
// fits the budget, and the bounds of a frame's time from what the GPU fences tell.
//
// Measured on the sample city under software WebGL (SwiftShader, 2 shared cores): a frame
// costs 0.8–3 s and is bound by the building triangles (about 740 k), not by pixels —
// a quarter of the resolution saves little, drawing only the coarse building tiles
// saves nearly all. So the levels lower the resolution first (what a GPU on a 1920
// wall needs) and then the building detail.

/**
 * A level of quality, relative to the full one.
 * @typedef {object} Level
 * @property {number} scale multiplies the resolution scale
 * @property {number} sse multiplies the building tilesets' maximum screen-space error
 * @property {number} [globe] multiplies the terrain's maximum screen-space error (1)
 * @property {number} [shadows] multiplies the sun's shadow map size, while shadows are on (1)
 * @property {1 | 4} [cascades] the sun's shadow map's cascades, while shadows are on (4):
 *   one is drawn by a shadow map of its own (interactive.js), whose shaders are warmed
 */

/**
 * Best first; level 0 is the full quality. The two lowest also coarsen the terrain (a
 * frame whose camera turned, the compass or a flight, draws the globe tiles of a new
 * view: 0.1–0.3 s of a frame under SwiftShader without any building) and the sun's
 * shadow map. Its four cascades each draw every caster whose bounds reach them, and the
 * root building tiles of the two lowest levels span the whole city: counted on the sample
 * city at the lowest level, a frame drew 207 k indices without shadows and 1.02 M with
 * them (0.45–0.8 s against 0.1–0.16 s at load 5), whatever the map's size or distance.
 * So the two lowest draw the sun's shadows with one cascade (a second, coarse shadow
 * map: the caster drawn once), and the full frame brings back the four.
 * @type {readonly Level[]}
 */
export const LEVELS = Object.freeze([
  { scale: 1, sse: 1, globe: 1, shadows: 1, cascades: 4 },
  { scale: 0.5, sse: 1, globe: 1, shadows: 1, cascades: 4 },
  { scale: 0.5, sse: 8, globe: 1, shadows: 0.5, cascades: 4 },
  { scale: 0.25, sse: 64, globe: 2, shadows: 0.25, cascades: 1 },
  { scale: 0.25, sse: 1024, globe: 4, shadows: 0.25, cascades: 1 },
]);

/**
 * A level's frame time as a share of the full one's, for a level not measured yet: it is
 * estimated from the nearest level measured (the full frames drawn while the home view
 * loads seed them all, so the first input is drawn at a level that fits instead of
 * stepping down over the first inputs). Cautious figures from the sample city under
 * SwiftShader, where ½ resolution saved ~20 % and the root tiles at ¼ ~95 %.
 * @type {readonly number[]}
 */
export const PRIOR = Object.freeze([1, 0.8, 0.4, 0.15, 0.05]);

/** Frame time (ms) an interactive frame should fit in: 200 ms response, less the wait. */
export const BUDGET_MS = 120;

/** ms without input before the full-quality frame is drawn (fast full frames). */
export const IDLE_MS = 300;

/**
 * The longest wait for the full-quality frame (slow full frames). An input that comes
 * while the GPU draws a full frame waits for it (software WebGL cannot stop a frame), so
 * the full frame waits for a real pause: REST_FACTOR times its own time, up to this.
 */
export const MAX_IDLE_MS = 4000;

/** The pause before the full frame, in full frames' times (see MAX_IDLE_MS). */
export const REST_FACTOR = 2;

/**
 * The longest the full-quality frame is held back after the last input while another
 * input looks likely (holdFull, and the frames of tiles loading: deferFull), and how
 * often a held frame looks again.
 */
export const MAX_HOLD_MS = 10000;
export const HOLD_CHECK_MS = 250;

/**
 * Whether the full-quality frame due now is held back: only when a full frame does not
 * fit the budget (an input that comes while one is drawn waits for all of it: software
 * WebGL cannot stop a frame), another input looks likely (the pointer rests on a tool's
 * control, the compass, or a tool's text field has the focus: the next click or key is
 * coming) and the last input is less than MAX_HOLD_MS ago (the full picture comes then
 * anyway).
 * @param {{sinceInputMs: number, likely: boolean, fullMs: number | null}} now
 *   fullMs: the full frame's estimated time (null: not measured)
 * @param {number} budgetMs
 * @returns {boolean}
 */
export function holdFull({ sinceInputMs, likely, fullMs }, budgetMs) {
  if (!likely || fullMs === null || fullMs <= budgetMs) return false;
  return sinceInputMs < MAX_HOLD_MS;
}

/**
 * Whether a full-quality frame that CesiumJS asks for on its own (building or terrain
 * tiles that finished loading, a load-progress event), not an input nor a script, is put
 * off now. An input that comes while such a frame is drawn waits for all of it (2–4 s
 * under software WebGL), and tiles keep arriving for seconds after a view changed or a
 * full frame was drawn (the pause's, a pick's). So, while a full frame does not fit the
 * budget, such a frame waits for the pause that the full frame after an input waits for
 * (idleMs), and longer while another input looks likely (holdFull, up to MAX_HOLD_MS);
 * the tiles keep loading meanwhile. Not for longer while a tool is merely open: the
 * frames of the tiles would then come all together, one after the other, at the end of
 * the hold, whatever the user is doing then. A reduced level's frames are never put off
 * (they are cheap: interactive.js draws them).
 * @param {{sinceInputMs: number, idleMs: number, likely: boolean, fullMs: number | null}} now
 *   idleMs: the pause before an input's full frame (QualityController.idleMs()); likely:
 *   another input looks likely (see holdFull); fullMs: the full frame's estimated time
 *   (null: not measured)
 * @param {number} budgetMs
 * @returns {boolean}
 */
export function deferFull({ sinceInputMs, idleMs, likely, fullMs }, budgetMs) {
  if (fullMs === null || fullMs <= budgetMs) return false;
  if (sinceInputMs < idleMs) return true;
  return holdFull({ sinceInputMs, likely, fullMs }, budgetMs);
}

/** Weight of a new measurement in a level's running estimate. */
const WEIGHT = 0.5;

/**
 * A better level is tried again only when its measurement, scaled by how much faster
 * the level below has become, fits this share of the budget: frames at one level vary
 * by a third from one to the next (30-60 ms at level 3 on the sample city), and a merely
 * lucky frame made level 2's 160-180 ms look like 115 (the swipe's drags then answered
 * in 180-250 ms).
 */
export const RETRY_SHARE = 0.75;

export class QualityController {
  /**
   * @param {{budgetMs?: number, levels?: readonly Level[], prior?: readonly number[]}} [options]
   */
  constructor({ budgetMs = BUDGET_MS, levels = LEVELS, prior = PRIOR } = {}) {
    this.budgetMs = budgetMs;
    this.levels = levels;
    this.prior = levels.map((_, i) => prior[i] ?? prior[prior.length - 1]);
    /** @type {(number | null)[]} running estimate of a frame's ms at each level (measured) */
    this.estimates = levels.map(() => null);
    /** @type {boolean[]} the estimate is a guess (see record): the next frame replaces it */
    this.guessed = levels.map(() => false);
    /** @type {(number | null)[]} the level below's estimate when this one was measured */
    this.reference = levels.map(() => null);
    /** the level the next interactive frame is drawn at */
    this.level = 0;
  }

  /**
   * Record the time a frame took at a level, and choose the level for the next one.
   * @param {number} level
   * @param {number} ms from the start of the frame to the GPU having drawn it
   */
  record(level, ms) {
    if (!(level >= 0 && level < this.levels.length) || !Number.isFinite(ms) || ms < 0) return;
    const old = this.guessed[level] ? null : this.estimates[level];
    const estimate = old === null ? ms : old + WEIGHT * (ms - old);
    this.estimates[level] = estimate;
    this.guessed[level] = false;
    // what the level below costs as this one is measured: the yardstick of a later retry
    const below = this.estimates[level + 1];
    if (below !== undefined) this.reference[level] = this.guessed[level + 1] ? null : below;
    if (level > 0) this.retry(level, ms, estimate);
    this.level = this.choose();
  }

  /**
   * After a frame far under the budget at ``level``: the better level may fit now (the
   * load or the view changed). Unless it was measured far over, it is tried again at the
   * next input when its measurement, as much faster as ``level``'s running estimate now
   * is than when it was measured, fits with RETRY_SHARE to spare; that guess is its
   * estimate until its next frame replaces it. The running estimates, not the one
   * frame: frames at a level vary by a third (16-135 ms at level 3 on the sample city),
   * and one lucky frame made level 2's 160-180 ms look like 45-115 (the drags and clicks
   * after it then answered in 180-650 ms). Not from the priors' shares either (level 2
   * is 4-5 times level 3 there, not 2.7).
   * @param {number} level
   * @param {number} ms the frame just recorded
   * @param {number} estimate ``level``'s running estimate with it
   */
  retry(level, ms, estimate) {
    const better = this.estimates[level - 1];
    if (better === null || this.guessed[level - 1] || better > 2.5 * this.budgetMs) return;
    const reference = this.reference[level - 1];
    if (reference === null || reference <= 0) {
      this.reference[level - 1] = estimate; // measured before this level was: from now on
      return;
    }
    if (ms >= 0.4 * this.budgetMs) return;
    const scaled = better * Math.min(1, estimate / reference);
    if (scaled <= RETRY_SHARE * this.budgetMs) {
      this.estimates[level - 1] = scaled;
      this.guessed[level - 1] = true;
    }
  }

  /**
   * A level's estimated frame time: its measurement (or guess, see record), else the
   * nearest measured level's scaled by their prior shares; null when nothing was
   * measured.
   * @param {number} level
   * @returns {number | null}
   */
  estimate(level) {
    const own = this.estimates[level];
    if (own !== null) return own;
    for (let d = 1; d < this.levels.length; d++) {
      for (const j of [level + d, level - d]) {
        const ms = this.estimates[j];
        if (ms !== null && ms !== undefined && !this.guessed[j]) return (ms * this.prior[level]) / this.prior[j];
      }
    }
    return null;
  }

  /**
   * Whether a level is being tried: not measured, or its estimate a guess (see record).
   * Its next frame is recorded even when its fence tells little (untriedMs).
   * @param {number} level
   * @returns {boolean}
   */
  untried(level) {
    return this.estimates[level] === null || this.guessed[level];
  }

  /** The best level whose estimate fits the budget (level 0 before any is measured). */
  choose() {
    const last = this.levels.length - 1;
    for (let i = 0; i < last; i++) {
      const ms = this.estimate(i);
      if (ms === null || ms <= this.budgetMs) return i;
    }
    return last;
  }

  /**
   * How long the inputs must stop before the full-quality frame is drawn: IDLE_MS, or
   * REST_FACTOR full frames when that is longer (up to MAX_IDLE_MS).
   */
  idleMs() {
    return Math.min(MAX_IDLE_MS, Math.max(IDLE_MS, REST_FACTOR * (this.estimate(0) ?? 0)));
  }
}

/**
 * What a frame's fence tells of its own time. The fence is polled from timers, which
 * run late while the page is busy (a synchronous pick waits for the GPU, a tile is
 * decoded): it is only known to have signalled between the last poll that found it
 * unsignalled and now. A frame that started before the frame ahead of it was known to
 * be drawn was queued behind it: the GPU may then have drawn both as one batch (software
 * WebGL does), so its own time is only known to be at most its whole wait, and at least
 * the time the GPU spent after the frame ahead was drawn (frames are drawn in order).
 * @param {{start: number, checked: number, now: number, prevHi: number}} t
 *   start: the frame's start; checked: the last poll that found it unsignalled (or its
 *   start); now: the poll that found it signalled; prevHi: when the frame before was
 *   known to be drawn (0 when none is known)
 * @returns {{lo: number, hi: number, queued: boolean}} the bounds of its own time
 */
export function frameBounds({ start, checked, now, prevHi }) {
  const hi = now - start;
  const queued = prevHi > start;
  const lo = Math.max(0, Math.min(hi, checked - Math.max(start, prevHi)));
  return { lo, hi, queued };
}

/**
 * The figure to record from a frame's bounds, or null when they say too little: the
 * upper bound when it fits the budget anyway (a frame that fits is known to) or is close to
 * the lower one (not for a queued frame: its wait), the lower bound when even that is over
 * the budget (a frame known to be over it), else nothing.
 * @param {{lo: number, hi: number, queued?: boolean}} bounds
 * @param {number} budgetMs
 * @returns {number | null}
 */
export function usableMs({ lo, hi, queued = false }, budgetMs) {
  if (hi <= budgetMs) return hi;
  // a queued frame's upper bound is its whole wait: only the lower bound is its own
  if (!queued && hi - lo <= Math.max(20, 0.25 * hi)) return hi;
  if (lo > budgetMs) return lo;
  return null;
}

/**
 * The figure to record for a frame whose bounds say too little (usableMs answered null)
 * at a reduced level with no measurement of its own: one estimated from another level
 * (tried because a frame of the level below was far under the budget, see record) or
 * never measured (interactive.js measure). Its upper bound, over the budget, at most twice
 * the budget: a level tried and possibly too slow is not kept for the next input. Without it such a level was kept
 * input after input, its frames never recorded (drawn back to back with a follow-up
 * frame, their fences polled late): the clipping tool's excavation clicks, at level 2,
 * took 150–220 ms under software WebGL against 30–50 ms at level 3. At most twice the
 * budget, so that a later frame far under the budget at the level below tries it again
 * (a level measured over 2.5 budgets is not).
 * @param {{hi: number}} bounds see frameBounds
 * @param {number} budgetMs
 * @returns {number | null}
 */
export function untriedMs({ hi }, budgetMs) {
  return hi > budgetMs ? Math.min(hi, 2 * budgetMs) : null;
}
