// The interactive quality controller (src/core/quality.js): the level the frame that
// answers an input is drawn at, learnt from the measured frame times, and the bounds of a
// frame's time from its fence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LEVELS, PRIOR, QualityController, BUDGET_MS, RETRY_SHARE, IDLE_MS, MAX_IDLE_MS, MAX_HOLD_MS, REST_FACTOR, frameBounds, holdFull, untriedMs, usableMs } from '../src/core/quality.js';

test('levels go from the full quality down, in resolution then building detail', () => {
  assert.deepEqual(LEVELS[0], { scale: 1, sse: 1, globe: 1, shadows: 1, cascades: 4 });
  for (let i = 1; i < LEVELS.length; i++) {
    assert.ok(LEVELS[i].scale <= LEVELS[i - 1].scale);
    assert.ok(LEVELS[i].sse >= LEVELS[i - 1].sse);
    assert.ok((LEVELS[i].globe ?? 1) >= (LEVELS[i - 1].globe ?? 1));
    assert.ok((LEVELS[i].shadows ?? 1) <= (LEVELS[i - 1].shadows ?? 1));
    assert.ok((LEVELS[i].cascades ?? 4) <= (LEVELS[i - 1].cascades ?? 4));
    assert.ok([1, 4].includes(LEVELS[i].cascades ?? 4), 'CesiumJS draws one or four cascades');
    assert.ok(LEVELS[i].scale < LEVELS[i - 1].scale || LEVELS[i].sse > LEVELS[i - 1].sse);
    assert.ok(PRIOR[i] < PRIOR[i - 1]);
  }
  assert.equal(PRIOR.length, LEVELS.length);
  assert.ok(BUDGET_MS < 200);
});

test('a fast full-quality frame keeps the full quality (a GPU)', () => {
  const c = new QualityController();
  assert.equal(c.level, 0);
  for (let i = 0; i < 5; i++) c.record(0, 12);
  assert.equal(c.level, 0);
});

test('the full frames of the load seed every level: the first input is drawn at one that fits', () => {
  const c = new QualityController({ budgetMs: 100 });
  c.record(0, 250); // ½ resolution ~200 ms, ½ and coarser tiles ~100 ms
  assert.equal(c.level, 2);
  assert.equal(c.estimate(2), 100);
  const d = new QualityController({ budgetMs: 100 });
  d.record(0, 600);
  assert.equal(d.level, 3);
  const e = new QualityController({ budgetMs: 100 });
  e.record(0, 2000); // the sample city under SwiftShader: the coarse tiles only
  assert.equal(e.level, 4);
  assert.equal(new QualityController().estimate(2), null); // nothing measured: full quality
});

test('a level measured over the budget is left for a worse one, and one that fits kept', () => {
  const c = new QualityController({ budgetMs: 100 });
  c.record(0, 600);
  assert.equal(c.level, 3);
  c.record(3, 400); // the prior was wrong for this level
  assert.equal(c.level, 4);
  c.record(4, 90);
  assert.equal(c.level, 4);
  c.record(4, 95);
  assert.equal(c.level, 4);
  const d = new QualityController({ budgetMs: 100 });
  for (let i = 0; i < LEVELS.length; i++) d.record(i, 900);
  assert.equal(d.level, LEVELS.length - 1);
});

test('a frame far under the budget lets the better level be tried again, not one far over', () => {
  const c = new QualityController({ budgetMs: 100 });
  c.record(0, 2000);
  assert.equal(c.level, 4);
  c.record(4, 30); // the level above is estimated from this one: 90 ms
  assert.equal(c.level, 3);
  c.record(3, 400); // it does not fit
  assert.equal(c.level, 4);
  c.record(4, 30); // measured far over: not tried again
  assert.equal(c.level, 4);
  const d = new QualityController({ budgetMs: 100 });
  d.record(0, 2000);
  d.record(2, 400); // far over: not tried again
  d.record(3, 150); // a little over
  assert.equal(d.level, 4);
  d.record(4, 20); // level 4's first frame: the yardstick from now on
  assert.equal(d.estimates[3], 150);
  assert.equal(d.level, 4);
  d.record(4, 8); // the load dropped: level 4's estimate goes 20 → 14 → 11 → 9.5 ms
  d.record(4, 8);
  assert.equal(d.level, 4); // level 3 would be 82.5 ms: not with a quarter to spare
  d.record(4, 8);
  assert.equal(d.estimates[3], 150 * (9.5 / 20)); // 71 ms: tried
  assert.equal(d.level, 3);
  d.record(3, 90); // its next frame replaces the guess
  assert.equal(d.estimates[3], 90);
  assert.equal(d.guessed[3], false);
});

test('a better level is tried again only with a quarter of the budget to spare', () => {
  // the swipe's drags on the sample city: level 3 at 30-60 ms, level 2 at 160-180 ms
  const c = new QualityController({ budgetMs: 120 });
  c.record(0, 2000);
  c.record(2, 160);
  c.record(3, 45);
  c.record(3, 45);
  assert.equal(c.level, 3);
  c.record(3, 32); // a lucky frame: level 2 scaled by it alone would be 114 ms
  assert.equal(c.estimates[2], 160);
  assert.equal(c.level, 3);
  c.record(3, 16); // a luckier one: 45 ms by it alone; by the running estimate 97
  assert.equal(c.estimates[2], 160);
  assert.equal(c.level, 3);
  assert.ok(160 * (27.25 / 45) > RETRY_SHARE * 120);
});

test('estimates follow the measurements; bad figures are ignored', () => {
  const c = new QualityController({ budgetMs: 100 });
  c.record(1, 200);
  c.record(1, 100);
  assert.equal(c.estimates[1], 150);
  c.record(1, Number.NaN);
  c.record(-1, 5);
  c.record(99, 5);
  c.record(1, -3);
  assert.equal(c.estimates[1], 150);
  assert.deepEqual(c.estimates.filter((x) => x !== null), [150]);
});

test('the full-quality frame waits for a pause of a few full frames', () => {
  const c = new QualityController({ budgetMs: 100 });
  assert.equal(c.idleMs(), IDLE_MS);
  c.record(0, 20);
  assert.equal(c.idleMs(), IDLE_MS); // a GPU: at once
  c.record(0, 900);
  assert.equal(c.idleMs(), REST_FACTOR * 460); // the running estimate: (20 + 900) / 2
  for (let i = 0; i < 8; i++) c.record(0, 5000);
  assert.equal(c.idleMs(), MAX_IDLE_MS);
});

test('a fence polled on time gives the frame its time', () => {
  // polled every few ms: drawn between 96 and 100 ms after its start
  const b = frameBounds({ start: 1000, checked: 1096, now: 1100, prevHi: 900 });
  assert.deepEqual([b.lo, b.hi, b.queued], [96, 100, false]);
  assert.equal(usableMs(b, 120), 100);
});

test('a frame queued behind another tells its whole wait, or the time after the one ahead', () => {
  // started while the frame before was still being drawn (done at 1500): the GPU may
  // have drawn both as one batch, so its own time is unknown; only a whole wait that
  // fits says it fits
  const q = frameBounds({ start: 1000, checked: 1596, now: 1600, prevHi: 1500 });
  assert.deepEqual([q.lo, q.hi, q.queued], [96, 600, true]);
  assert.equal(usableMs(q, 120), null);
  // but drawn 1.8 s after the frame ahead: over the budget by at least that much (the
  // full frames of a view loading, one after the other)
  const slow = frameBounds({ start: 1000, checked: 2996, now: 3000, prevHi: 1200 });
  assert.equal(usableMs(slow, 120), 1796);
  const short = frameBounds({ start: 1000, checked: 1076, now: 1080, prevHi: 1050 });
  assert.equal(usableMs(short, 120), 80);
});

test('a fence polled late (the page was busy) is recorded only when the bounds tell', () => {
  // the poll ran 3 s late (a synchronous pick waited for a full frame): the frame may
  // have taken 4 ms or 3 s, nothing is recorded
  const late = frameBounds({ start: 1000, checked: 1004, now: 4000, prevHi: 0 });
  assert.equal(usableMs(late, 120), null);
  // late, but even the upper bound fits: it fits
  const fits = frameBounds({ start: 1000, checked: 1004, now: 1090, prevHi: 0 });
  assert.equal(usableMs(fits, 120), 90);
  // late, but not drawn after 2 s: over the budget by at least that much
  const over = frameBounds({ start: 1000, checked: 3000, now: 6000, prevHi: 0 });
  assert.equal(usableMs(over, 120), 2000);
});

test('the full-quality frame is held back while another input looks likely, up to a limit', () => {
  const slow = 2500; // a full frame under software WebGL
  assert.equal(holdFull({ sinceInputMs: 3000, likely: true, fullMs: slow }, BUDGET_MS), true);
  // no input coming, a full frame that fits (a GPU), none measured, or held long enough
  assert.equal(holdFull({ sinceInputMs: 3000, likely: false, fullMs: slow }, BUDGET_MS), false);
  assert.equal(holdFull({ sinceInputMs: 3000, likely: true, fullMs: BUDGET_MS }, BUDGET_MS), false);
  assert.equal(holdFull({ sinceInputMs: 3000, likely: true, fullMs: null }, BUDGET_MS), false);
  assert.equal(holdFull({ sinceInputMs: MAX_HOLD_MS, likely: true, fullMs: slow }, BUDGET_MS), false);
  assert.ok(MAX_HOLD_MS > MAX_IDLE_MS, 'held longer than the longest pause before a full frame');
});

test('a level tried again whose frame may be over the budget is left at once', () => {
  const c = new QualityController({ budgetMs: 120 });
  c.record(0, 2000);
  c.record(2, 170);
  c.record(3, 60);
  assert.equal(c.level, 3);
  c.record(3, 20); // far under the budget: level 3's estimate 40 ms, level 2 would be 113
  assert.equal(c.level, 3);
  c.record(3, 20); // 30 ms, half of what it was when level 2 was measured: 85 ms
  assert.equal(c.estimates[2], 85);
  assert.equal(c.level, 2);
  assert.ok(c.untried(2) && !c.untried(3));
  // its frame drawn back to back with a follow-up, the fence polled late: 30-160 ms
  const bounds = frameBounds({ start: 1000, checked: 1030, now: 1160, prevHi: 900 });
  assert.equal(usableMs(bounds, 120), null);
  c.record(2, /** @type {number} */ (untriedMs(bounds, 120)));
  assert.equal(c.level, 3);
  // capped at twice the budget: a frame far under it at level 3 tries level 2 again later
  assert.equal(untriedMs({ hi: 3000 }, 120), 240);
  assert.equal(untriedMs({ hi: 100 }, 120), null);
  c.record(3, 38); // as fast as level 3 usually is: level 2 (160 ms) is not tried again
  assert.equal(c.level, 3);
  assert.equal(c.estimates[2], 160);
  c.record(3, 10); // much faster (the load dropped): 17 then 14 ms against 30 when level
  c.record(3, 10); // 2 was measured: it is tried again
  assert.equal(c.level, 2);
});
