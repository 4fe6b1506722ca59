// The shader warm-up (src/warm.js): a tool's `opening` variants are warmed as soon as its
// panel opens when the idle warm-up has not reached them (massing compare: the frame that
// first shows a scheme must find the blocks' programs compiled), unless an input comes
// first; a variant that switches on nothing the terrain draws has no fogged frame.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../src/core/bus.js';

// warm.js listens for inputs on the window and reads document.hidden
const events = new EventTarget();
globalThis.window = /** @type {any} */ (events);
globalThis.document = /** @type {any} */ ({ hidden: false });
const { Warmer, OPEN_MS } = await import('../src/warm.js');

const sleep = (/** @type {number} */ ms) => new Promise((done) => setTimeout(done, ms));

/**
 * A warmer on a scene with no tilesets nor globe; its offscreen frames are recorded, not drawn.
 * @param {any[]} queue
 */
function setup(queue) {
  const bus = new Bus();
  const registry = { active: /** @type {string | null} */ (null), bus };
  const viewer = { scene: { primitives: { length: 0, get: () => null } } };
  const warmer = new Warmer(viewer, registry, { saved: null, untimed: false });
  /** @type {string[]} */
  const frames = [];
  warmer.render = (/** @type {{fogged?: boolean}} */ { fogged = false } = {}) => {
    frames.push(fogged ? 'fogged' : 'plain');
    return 1;
  };
  warmer.queue.push(...queue);
  /** @param {string} id the tool's panel opens (tools/registry.js) */
  const open = (id) => {
    registry.active = id;
    bus.emit('tool:activate', { id });
  };
  return { warmer, registry, frames, open };
}

/**
 * A variant that notes when it is switched on and off.
 * @param {string} name
 * @param {object} [more]
 */
function variant(name, more = {}) {
  /** @type {any} */
  const v = { name, log: [], ...more };
  v.on = () => v.log.push('on');
  v.off = () => v.log.push('off');
  return v;
}

test('a tool opening warms its queued variants at once, and only its own', async () => {
  const massing = variant('massing', { opening: 'massing', fog: false });
  const clip = variant('clip plane');
  const { warmer, frames, open } = setup([variant('sketch'), massing, clip]);
  open('massing');
  assert.deepEqual(massing.log, [], 'not in the frame that opens the panel');
  await sleep(OPEN_MS + 30);
  assert.deepEqual(massing.log, ['on', 'off']);
  assert.deepEqual(frames, ['plain'], 'one frame, none fogged');
  assert.deepEqual(warmer.done.map((d) => [d.name, d.programs]), [['massing', 1]]);
  assert.deepEqual(warmer.queue.map((v) => v.name), ['sketch', 'clip plane'], 'the others wait for the idle warm-up');
  assert.deepEqual(clip.log, []);
  // opened again, or another tool: nothing more
  open('clip');
  open('massing');
  await sleep(OPEN_MS + 30);
  assert.equal(warmer.done.length, 1);
});

test('an input before the warm-up is due leaves the variant to the tool and the idle warm-up', async () => {
  const massing = variant('massing', { opening: 'massing', fog: false });
  const { warmer, open } = setup([massing]);
  open('massing');
  await sleep(5);
  events.dispatchEvent(new Event('change')); // a file chosen at once
  await sleep(OPEN_MS + 30);
  assert.deepEqual(massing.log, []);
  assert.deepEqual(warmer.queue, [massing]);
});

test('a panel closed before the warm-up is due warms nothing', async () => {
  const massing = variant('massing', { opening: 'massing', fog: false });
  const { warmer, registry, open } = setup([massing]);
  open('massing');
  registry.active = null;
  await sleep(OPEN_MS + 30);
  assert.deepEqual(massing.log, []);
  assert.deepEqual(warmer.queue, [massing]);
});

test('a variant is drawn as in fog too unless it says it has no fog', () => {
  const { warmer, frames } = setup([]);
  warmer.warm(variant('sketch'));
  assert.deepEqual(frames, ['plain', 'fogged']);
  frames.length = 0;
  warmer.warm(variant('massing', { fog: false }));
  assert.deepEqual(frames, ['plain']);
  assert.deepEqual(warmer.done.map((d) => [d.name, d.programs]), [['sketch', 2], ['massing', 1]]);
});
