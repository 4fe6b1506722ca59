// The interactive quality controller (src/core/quality.js): the level the frame that
// answers an input is drawn at, learnt from the measured frame times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LEVELS, QualityController, BUDGET_MS, IDLE_MS, MAX_IDLE_MS } from '../src/core/quality.js';

test('levels go from the full quality down, in resolution then building detail', () => {
  assert.deepEqual(LEVELS[0], { scale: 1, sse: 1 });
  for (let i = 1; i < LEVELS.length; i++) {
    assert.ok(LEVELS[i].scale <= LEVELS[i - 1].scale);
    assert.ok(LEVELS[i].sse >= LEVELS[i - 1].sse);
    assert.ok(LEVELS[i].scale < LEVELS[i - 1].scale || LEVELS[i].sse > LEVELS[i - 1].sse);
  }
  assert.ok(BUDGET_MS < 200);
});

test('a fast full-quality frame keeps the full quality (a GPU)', () => {
  const c = new QualityController();
  assert.equal(c.level, 0);
  for (let i = 0; i < 5; i++) c.record(0, 12);
  assert.equal(c.level, 0);
});

test('a slow full-quality frame lowers the level before the first input', () => {
  const c = new QualityController({ budgetMs: 100 });
  c.record(0, 250); // 2.5× over: the next level is tried
  assert.equal(c.level, 1);
  const d = new QualityController({ budgetMs: 100 });
  d.record(0, 1800); // 18× over: the next level is skipped as well
  assert.equal(d.level, 2);
  const e = new QualityController({ budgetMs: 100 });
  e.record(0, 7000); // 70× over: two are skipped
  assert.equal(e.level, 3);
});

test('the level steps down until a frame fits, and stays there', () => {
  const c = new QualityController({ budgetMs: 100 });
  c.record(0, 1600);
  assert.equal(c.level, 2);
  c.record(2, 700);
  assert.equal(c.level, 3); // 7× over: the next one is tried
  c.record(3, 1700);
  assert.equal(c.level, 4);
  c.record(4, 90);
  assert.equal(c.level, 4);
  c.record(4, 95);
  assert.equal(c.level, 4);
});

test('a level that fits is chosen over worse ones; the last level when none fits', () => {
  const c = new QualityController({ budgetMs: 100 });
  c.record(0, 300);
  assert.equal(c.level, 1);
  c.record(1, 80);
  assert.equal(c.level, 1);
  const d = new QualityController({ budgetMs: 100 });
  for (let i = 0; i < LEVELS.length; i++) d.record(i, 900);
  assert.equal(d.level, LEVELS.length - 1);
});

test('a level far under the budget lets the better one be tried again, not one far over', () => {
  const c = new QualityController({ budgetMs: 100 });
  c.record(0, 220); // a little over: level 1
  c.record(1, 30); // far under: level 0 may fit now
  assert.equal(c.level, 0);
  c.record(0, 400); // it does not: back down
  assert.equal(c.level, 1);
  const d = new QualityController({ budgetMs: 100 });
  d.record(0, 2000);
  assert.equal(d.level, 2); // level 1 skipped untried
  d.record(2, 20); // far under: the skipped level is tried
  assert.equal(d.level, 1);
  d.record(1, 900);
  assert.equal(d.level, 2);
  d.record(2, 20); // level 1 was measured far over: not tried again
  assert.equal(d.level, 2);
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

test('the full-quality frame waits for a pause as long as it takes itself', () => {
  const c = new QualityController({ budgetMs: 100 });
  assert.equal(c.idleMs(), IDLE_MS);
  c.record(0, 20);
  assert.equal(c.idleMs(), IDLE_MS);
  c.record(0, 900);
  assert.equal(c.idleMs(), 460); // the running estimate: (20 + 900) / 2
  for (let i = 0; i < 8; i++) c.record(0, 5000);
  assert.equal(c.idleMs(), MAX_IDLE_MS);
});
