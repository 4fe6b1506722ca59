// @ts-check
// Interactive quality: while the user works a tool, the frame that answers each input is
// drawn at a level of quality sized so it takes at most a budget of time, and the full
// quality frame follows once the input stops. Pure logic (no Cesium): the levels, and a
// controller that learns what a frame costs at each level and picks the best one that
// fits the budget.
//
// Measured on the sample city under software WebGL (SwiftShader, 2 shared cores): a frame
// costs 1.5–3 s and is bound by the building triangles (about 740 k), not by pixels —
// a quarter of the resolution saves little, drawing only the coarse building tiles
// saves nearly all. So the levels lower the resolution first (what a GPU on a 1920
// wall needs) and then the building detail.

/**
 * A level of quality, relative to the full one.
 * @typedef {object} Level
 * @property {number} scale multiplies the resolution scale
 * @property {number} sse multiplies the building tilesets' maximum screen-space error
 */

/** @type {readonly Level[]} best first; level 0 is the full quality */
export const LEVELS = Object.freeze([
  { scale: 1, sse: 1 },
  { scale: 0.5, sse: 1 },
  { scale: 0.5, sse: 8 },
  { scale: 0.25, sse: 64 },
  { scale: 0.25, sse: 1024 },
]);

/** Frame time (ms) an interactive frame should fit in: 200 ms response, less the wait. */
export const BUDGET_MS = 120;

/** ms without input before the full-quality frame is drawn (fast full frames). */
export const IDLE_MS = 300;

/** The longest wait for the full-quality frame (slow full frames). */
export const MAX_IDLE_MS = 1500;

/** Weight of a new measurement in a level's running estimate. */
const WEIGHT = 0.5;

export class QualityController {
  /**
   * @param {{budgetMs?: number, levels?: readonly Level[]}} [options]
   */
  constructor({ budgetMs = BUDGET_MS, levels = LEVELS } = {}) {
    this.budgetMs = budgetMs;
    this.levels = levels;
    /** @type {(number | null)[]} running estimate of a frame's ms at each level */
    this.estimates = levels.map(() => null);
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
    const old = this.estimates[level];
    this.estimates[level] = old === null ? ms : old + WEIGHT * (ms - old);
    // far under the budget: the better level may fit now (the load or the view changed,
    // or it was skipped untried), unless it was measured far over; it is tried at the
    // next input and measured again
    const better = level > 0 ? this.estimates[level - 1] : undefined;
    if (level > 0 && ms < 0.4 * this.budgetMs && (better === null || (better ?? Infinity) <= 2.5 * this.budgetMs)) {
      this.estimates[level - 1] = Math.min(better ?? this.budgetMs, this.budgetMs);
    }
    this.level = this.choose();
  }

  /**
   * The best level whose estimate fits the budget. A level not measured yet is tried,
   * except right after one far over the budget: a frame 4^k times the budget skips the
   * k − 1 untried levels after it (each level costs a few times less).
   */
  choose() {
    const last = this.levels.length - 1;
    for (let i = 0; i < last; i++) {
      const ms = this.estimates[i];
      if (ms === null || ms <= this.budgetMs) return i;
      const skip = Math.floor(Math.log2(ms / this.budgetMs) / 2) - 1;
      for (let k = 0; k < skip && i + 1 < last && this.estimates[i + 1] === null; k++) i += 1;
    }
    return last;
  }

  /**
   * How long the inputs must stop before the full-quality frame is drawn: IDLE_MS, or
   * the full frame's own time when it is longer (up to MAX_IDLE_MS). An input that comes
   * while the GPU draws a full frame waits for it, so on a machine where one takes
   * seconds the full frame waits for a real pause.
   */
  idleMs() {
    return Math.min(MAX_IDLE_MS, Math.max(IDLE_MS, this.estimates[0] ?? 0));
  }
}
