import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../src/core/bus.js';

test('handlers run in subscription order with the payload', () => {
  const bus = new Bus();
  const seen = [];
  bus.on('a', (p) => seen.push(['first', p]));
  bus.on('a', (p) => seen.push(['second', p]));
  bus.on('b', () => seen.push(['other']));
  assert.equal(bus.emit('a', 42), 2);
  assert.deepEqual(seen, [['first', 42], ['second', 42]]);
});

test('off and the returned unsubscribe stop delivery', () => {
  const bus = new Bus();
  let n = 0;
  const h = () => (n += 1);
  const off = bus.on('x', h);
  bus.emit('x');
  off();
  bus.emit('x');
  assert.equal(n, 1);
  assert.equal(bus.emit('x'), 0);
});

test('once runs a single time', () => {
  const bus = new Bus();
  let n = 0;
  bus.once('x', () => (n += 1));
  bus.emit('x');
  bus.emit('x');
  assert.equal(n, 1);
});

test('a failing handler does not stop the others', (t) => {
  t.mock.method(console, 'warn', () => {});
  const bus = new Bus();
  let ran = false;
  bus.on('x', () => {
    throw new Error('boom');
  });
  bus.on('x', () => (ran = true));
  assert.equal(bus.emit('x'), 2);
  assert.ok(ran);
});

test('unsubscribing during emit does not skip the next handler', () => {
  const bus = new Bus();
  const seen = [];
  const off = bus.on('x', () => {
    seen.push(1);
    off();
  });
  bus.on('x', () => seen.push(2));
  bus.emit('x');
  bus.emit('x');
  assert.deepEqual(seen, [1, 2, 2]);
});
