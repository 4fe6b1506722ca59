// @ts-check
/**
 * Work put off until the inputs pause: a warm-up whose frame, drawn while a slider
 * moves, would be that input's frame (the viewshed's depth render: 0.3 s at the
 * lowest level under software WebGL).
 */

/**
 * Call `fire` once `quietMs` have passed without an input: checked when the time is
 * up, and put off again from the latest input while they keep coming.
 * @param {() => number} lastInput when the latest input came (the clock's ms; -Infinity: none)
 * @param {number} quietMs
 * @param {() => void} fire
 * @param {{ now?: () => number, later?: (cb: () => void, ms: number) => unknown }} [clock]
 *   the time and the timer (default: performance.now, setTimeout)
 */
export function afterPause(lastInput, quietMs, fire, clock = {}) {
  const now = clock.now ?? (() => performance.now());
  const later = clock.later ?? ((cb, ms) => setTimeout(cb, ms));
  const check = () => {
    const since = now() - lastInput();
    if (since >= quietMs) fire();
    else later(check, quietMs - since);
  };
  later(check, quietMs);
}
