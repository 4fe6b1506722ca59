import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../src/core/bus.js';
import { Connection } from '../src/core/connection.js';

/** A connection with a scripted probe and manual timers. */
function setup(answers) {
  const bus = new Bus();
  const changes = [];
  bus.on('connection:change', (c) => changes.push(c.online));
  const timers = [];
  let probes = 0;
  const conn = new Connection(bus, {
    probe: async () => {
      probes += 1;
      const a = answers.shift();
      if (a instanceof Error) throw a;
      return a;
    },
    interval: 10000,
    retry: 2000,
    setTimer: (fn, ms) => timers.push({ fn, ms }) && timers.length,
    clearTimer: () => {},
  });
  return { conn, changes, timers, probes: () => probes };
}

test('goes offline on a failed probe, polls faster, comes back once', async () => {
  const { conn, changes, timers } = setup([true, false, new Error('refused'), true, true]);
  conn.start();
  assert.equal(timers.at(-1).ms, 10000);
  assert.equal(await conn.check(), true);
  assert.deepEqual(changes, []);
  assert.equal(await conn.check(), false);
  assert.deepEqual(changes, [false]);
  assert.equal(conn.online, false);
  assert.equal(timers.at(-1).ms, 2000, 'retries faster while offline');
  assert.equal(await conn.check(), false, 'a probe that throws counts as offline');
  assert.deepEqual(changes, [false], 'announced once');
  assert.equal(await conn.check(), true);
  assert.deepEqual(changes, [false, true]);
  assert.equal(timers.at(-1).ms, 10000);
});

test('one probe at a time', async () => {
  const { conn, probes } = setup([true, true]);
  const a = conn.check();
  const b = conn.check();
  assert.equal(a, b);
  await a;
  assert.equal(probes(), 1);
});

test('the timer runs the next check', async () => {
  const { conn, timers, probes } = setup([false, true]);
  conn.start();
  timers.at(-1).fn();
  await conn.pending;
  assert.equal(probes(), 1);
  assert.equal(conn.online, false);
  conn.stop();
  const n = timers.length;
  conn.schedule();
  assert.equal(timers.length, n, 'no timer after stop');
});
