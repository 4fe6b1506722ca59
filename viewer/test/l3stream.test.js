// The L3 stream: the L2 layer loads the one hierarchy, the L3 layer nothing of its own.
import test from 'node:test';
import assert from 'node:assert/strict';
import { tilesetUrl } from '../src/layers/buildings.js';

const manifest = {
  layers: {
    l2: { url: 'tiles/l2/tileset.json' },
    l3: { url: 'tiles/l3/tileset.json', stream: 'tiles/l3/city.json' },
  },
};

test('with an L3 stream, L2 loads the stream and L3 loads nothing', () => {
  assert.equal(tilesetUrl('l2', manifest.layers.l2, manifest), 'tiles/l3/city.json');
  assert.equal(tilesetUrl('l3', manifest.layers.l3, manifest), null);
});

test('without L3, or L3 alone, each layer loads its own tileset', () => {
  const l2only = { layers: { l2: { url: 'tiles/l2/tileset.json' } } };
  assert.equal(tilesetUrl('l2', l2only.layers.l2, l2only), 'tiles/l2/tileset.json');
  const l3only = { layers: { l3: manifest.layers.l3 } };
  assert.equal(tilesetUrl('l3', l3only.layers.l3, l3only), 'tiles/l3/tileset.json');
});
