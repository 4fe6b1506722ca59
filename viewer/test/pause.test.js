// Work put off until the inputs pause (src/core/pause.js): the viewshed's warm-up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { afterPause } from '../src/core/pause.js';

/** A clock whose timers run when the test moves the time on. */
function fakeClock() {
  let t = 0;
  /** @type {{at: number, cb: () => void}[]} */
  let timers = [];
  return {
    now: () => t,
    later: (/** @type {() => void} */ cb, /** @type {number} */ ms) => void timers.push({ at: t + ms, cb }),
    /** @param {number} ms */
    advance(ms) {
      const end = t + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const next = timers[0];
        if (!next || next.at > end) break;
        timers = timers.slice(1);
        t = next.at;
        next.cb();
      }
      t = end;
    },
    pending: () => timers.length,
  };
}

test('without an input the work is done once the quiet time is up', () => {
  const clock = fakeClock();
  let fired = 0;
  afterPause(() => -Infinity, 250, () => (fired += 1), clock);
  clock.advance(249);
  assert.equal(fired, 0);
  clock.advance(1);
  assert.equal(fired, 1);
  assert.equal(clock.pending(), 0);
});

test('inputs that keep coming put it off until they pause', () => {
  const clock = fakeClock();
  let last = -Infinity;
  /** @type {number[]} */
  const fired = [];
  afterPause(() => last, 250, () => fired.push(clock.now()), clock);
  for (let i = 0; i < 6; i++) {
    // a slider moved every 100 ms: never 250 ms without an input
    clock.advance(100);
    last = clock.now();
  }
  assert.deepEqual(fired, []);
  clock.advance(249);
  assert.deepEqual(fired, []);
  clock.advance(1);
  assert.deepEqual(fired, [600 + 250], 'the quiet time counted from the latest input');
  clock.advance(5000);
  assert.equal(fired.length, 1, 'done once');
});

test('an input just before the time is up counts', () => {
  const clock = fakeClock();
  let last = -Infinity;
  let fired = 0;
  afterPause(() => last, 250, () => (fired += 1), clock);
  clock.advance(240);
  last = clock.now();
  clock.advance(10);
  assert.equal(fired, 0);
  clock.advance(240);
  assert.equal(fired, 1);
});
