import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../src/core/bus.js';
import { LayerTree, clampOpacity, kindOf, layerKind, registerLayerKind } from '../src/core/layertree.js';

/** A layer handle backed by plain state. */
function handle(id, kind, extra = {}) {
  const state = { show: true, opacity: 1 };
  return {
    id,
    kind,
    state,
    getShow: () => state.show,
    setShow: (on) => (state.show = on),
    getOpacity: () => state.opacity,
    setOpacity: (v) => (state.opacity = v),
    ...extra,
  };
}

test('kindOf: explicit kind, else the default for the manifest key, else null', () => {
  assert.equal(kindOf('l2', {}), 'buildings');
  assert.equal(kindOf('l3', { url: 'x' }), 'buildings');
  assert.equal(kindOf('terrain', {}), 'terrain');
  assert.equal(kindOf('hydrants', { kind: 'department' }), 'department');
  assert.equal(kindOf('addresses', { url: 'addresses.sqlite' }), null);
});

test('clampOpacity', () => {
  assert.equal(clampOpacity(0.4), 0.4);
  assert.equal(clampOpacity(-1), 0);
  assert.equal(clampOpacity(3), 1);
  assert.equal(clampOpacity(Number.NaN), 1);
});

test('registerLayerKind refuses a module without create()', () => {
  assert.throws(() => registerLayerKind('bad', /** @type {any} */ ({})), /create/);
});

test('load: one module per kind, in load order, failures reported and skipped', async () => {
  const bus = new Bus();
  const tree = new LayerTree(bus);
  const calls = [];
  const errors = [];
  bus.on('layer:error', (e) => errors.push(e.id));
  registerLayerKind('t-ground', {
    group: 'base',
    order: 0,
    create: async (ctx, id) => {
      calls.push(id);
      return handle(id, 't-ground');
    },
  });
  registerLayerKind('t-blocks', {
    group: 'buildings',
    order: 10,
    create: async (ctx, id, info) => {
      calls.push(id);
      if (info.broken) throw new Error('no tileset');
      return handle(id, 't-blocks');
    },
  });
  assert.ok(layerKind('t-blocks'));
  const added = await tree.load(
    {
      blocks: { kind: 't-blocks' },
      broken: { kind: 't-blocks', broken: true },
      ground: { kind: 't-ground' },
      addresses: { url: 'addresses.sqlite' },
      unknown: { kind: 'not-registered' },
    },
    {},
  );
  assert.deepEqual(calls, ['ground', 'blocks', 'broken']);
  assert.deepEqual(added.map((l) => l.id), ['ground', 'blocks']);
  assert.deepEqual(errors, ['broken']);
  assert.deepEqual(
    tree.grouped().map((g) => [g.id, g.layers.map((l) => l.id)]),
    [['base', ['ground']], ['buildings', ['blocks']]],
  );
});

test('toggles and opacity reach the layer and are announced', () => {
  const bus = new Bus();
  const tree = new LayerTree(bus);
  const changes = [];
  bus.on('layer:change', (c) => changes.push(c));
  const imagery = handle('imagery', 'x', { group: 'base' });
  tree.add(imagery);
  const terrain = tree.add({ id: 'terrain', kind: 'x', group: 'base', getShow: () => true, setShow() {} });
  assert.equal(tree.setShow('imagery', false), true);
  assert.equal(imagery.state.show, false);
  assert.equal(tree.setOpacity('imagery', 1.7), true);
  assert.equal(imagery.state.opacity, 1);
  tree.setOpacity('imagery', 0.25);
  assert.deepEqual(changes.at(-1), { id: 'imagery', show: false, opacity: 0.25 });
  assert.equal(tree.setOpacity('terrain', 0.5), false, 'no opacity on terrain');
  assert.equal(tree.setShow('nope', true), false);
  assert.deepEqual(tree.states(), { imagery: false, terrain: true });
  assert.deepEqual(tree.opacities(), { imagery: 0.25 });
  assert.ok(terrain);
});

test('groups: built-in order, departments after them with their names', () => {
  const bus = new Bus();
  const tree = new LayerTree(bus);
  const water = tree.departmentGroup('water', '水务局');
  const police = tree.departmentGroup('police', '公安局');
  tree.add(handle('hydrants', 'dept', { group: water }));
  tree.add(handle('cameras', 'dept', { group: police }));
  tree.add(handle('sensors', 'live', { group: 'sensors' }));
  tree.add(handle('l2', 'b', { group: 'buildings' }));
  const groups = tree.grouped();
  assert.deepEqual(groups.map((g) => g.id), ['buildings', 'sensors', 'department:water', 'department:police']);
  assert.equal(groups[2].spec.label, '水务局');
  assert.throws(() => tree.add(handle('l2', 'b')), /already/);
});
