// The full-quality frames CesiumJS asks for on its own (tiles loaded) while the user works
// a tool (src/core/quality.js deferFull): put off until a real pause after the last input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUDGET_MS, MAX_HOLD_MS, QualityController, deferFull, holdFull } from '../src/core/quality.js';

const SLOW = 2500; // a full frame under software WebGL

test('a full frame of tiles loading waits for the pause after an input', () => {
  const c = new QualityController();
  c.record(0, SLOW);
  const idleMs = c.idleMs();
  assert.ok(idleMs > 1000, 'a slow full frame waits for a pause of a few of them');
  // nothing likely: until the pause an input's full frame waits for
  const quiet = { idleMs, likely: false, fullMs: c.estimate(0) };
  assert.equal(deferFull({ ...quiet, sinceInputMs: 0 }, c.budgetMs), true);
  assert.equal(deferFull({ ...quiet, sinceInputMs: idleMs - 1 }, c.budgetMs), true);
  assert.equal(deferFull({ ...quiet, sinceInputMs: idleMs }, c.budgetMs), false);
  assert.equal(deferFull({ ...quiet, sinceInputMs: 60000 }, c.budgetMs), false);
});

test('while another input looks likely, as long as the full frame after an input is held', () => {
  const likely = { idleMs: 4000, likely: true, fullMs: SLOW };
  for (const sinceInputMs of [4000, 6000, MAX_HOLD_MS - 1, MAX_HOLD_MS, 60000]) {
    const held = holdFull({ sinceInputMs, likely: true, fullMs: SLOW }, BUDGET_MS);
    assert.equal(deferFull({ ...likely, sinceInputMs }, BUDGET_MS), held, String(sinceInputMs));
  }
  assert.equal(deferFull({ ...likely, sinceInputMs: MAX_HOLD_MS - 1 }, BUDGET_MS), true);
  // the full picture comes then anyway
  assert.equal(deferFull({ ...likely, sinceInputMs: MAX_HOLD_MS }, BUDGET_MS), false);
});

test('a full frame that fits the budget (a GPU), or not measured yet, is never put off', () => {
  for (const sinceInputMs of [0, 1000, 5000]) {
    for (const likely of [false, true]) {
      assert.equal(deferFull({ sinceInputMs, idleMs: 300, likely, fullMs: BUDGET_MS }, BUDGET_MS), false);
      assert.equal(deferFull({ sinceInputMs, idleMs: 300, likely, fullMs: 15 }, BUDGET_MS), false);
      assert.equal(deferFull({ sinceInputMs, idleMs: 300, likely, fullMs: null }, BUDGET_MS), false);
    }
  }
  assert.equal(deferFull({ sinceInputMs: 0, idleMs: 300, likely: false, fullMs: BUDGET_MS + 1 }, BUDGET_MS), true);
});
