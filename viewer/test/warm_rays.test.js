// The building triangles that a tool's clicks cast rays against (src/tools/raycast.js
// BuildingRaycaster), read ahead while the GPU is idle (src/interactive.js warmRays): a
// tile's first read is a GPU readback that waits for every frame queued before it, so it
// must not come at a click, nor while the GPU draws.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { BuildingRaycaster } from '../src/tools/raycast.js';
import { InteractiveFrames } from '../src/interactive.js';

/** A primitive with its triangles on the CPU (one triangle), counted when read. */
function primitive(reads) {
  const positions = new Float32Array([0, 0, 0, 1, 0, 0, 0, 1, 0]);
  return {
    attributes: [{ semantic: 'POSITION', componentDatatype: 5126, count: 3, get typedArray() { reads.n += 1; return positions; } }],
    indices: { typedArray: new Uint16Array([0, 1, 2]) },
  };
}

/** A tile whose content has one model of `n` primitives. */
function tile(n, reads) {
  const runtimePrimitives = Array.from({ length: n }, () => ({ primitive: primitive(reads) }));
  return { content: { _model: { ready: true, sceneGraph: { _runtimeNodes: [{ runtimePrimitives }] } } } };
}

test('tiles are read once each, and no read begins after the deadline', () => {
  const reads = { n: 0 };
  const tiles = [tile(3, reads), tile(2, reads), { content: undefined }];
  const r = new BuildingRaycaster();
  assert.equal(r.warmTiles(tiles, performance.now()), false, 'the deadline passed: nothing read');
  assert.equal(r.reads, 0);
  // each read takes 3 ms here: a 5 ms slice reads one or two of the five
  const read = r.primitiveGeometry.bind(r);
  r.primitiveGeometry = (p) => {
    const end = performance.now() + 3;
    while (performance.now() < end);
    return read(p);
  };
  assert.equal(r.warmTiles(tiles, performance.now() + 5), false);
  assert.ok(r.reads >= 1 && r.reads < 5, String(r.reads));
  assert.equal(r.warmTiles(tiles), true);
  assert.equal(r.reads, 5);
  assert.ok(reads.n > 0, 'from their triangles');
  assert.equal(r.warmTiles(tiles), true, 'all read: nothing more');
  assert.equal(r.reads, 5);
});

test('the tiles drawn are those of the full selection while a reduced frame is shown', () => {
  const reads = { n: 0 };
  const full = [tile(2, reads)];
  const r = new BuildingRaycaster();
  const tileset = { _selectedTiles: [tile(1, reads)], cimFullSelection: full };
  assert.deepEqual(r.drawnTiles([tileset]), full);
  assert.equal(r.warm([tileset]), true);
  assert.equal(r.reads, 2);
});

/**
 * InteractiveFrames.warmRays on a stand-in: a scene whose postRender listeners are
 * called by hand, the GPU busy or not (busy()), tiles of the frame drawn and more.
 */
function frames() {
  /** @type {Set<() => void>} */
  const listeners = new Set();
  const self = {
    gpuBusy: true,
    raycaster: new BuildingRaycaster(),
    busy() {
      return this.gpuBusy;
    },
    viewer: {
      scene: {
        postRender: {
          addEventListener(/** @type {() => void} */ f) {
            listeners.add(f);
            return () => listeners.delete(f);
          },
        },
      },
    },
  };
  return { self, listeners, frame: () => listeners.forEach((f) => f()) };
}

test('a tool open keeps the tiles drawn and the tiles given read, only while the GPU is idle', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const reads = { n: 0 };
    const { self, listeners, frame } = frames();
    const drawn = { _selectedTiles: [tile(2, reads)] };
    const cut = [tile(3, reads)]; // drawn before the clipping planes cut it away
    const stop = InteractiveFrames.prototype.warmRays.call(self, () => [drawn], cut);
    mock.timers.tick(1000);
    assert.equal(self.raycaster.reads, 0, 'nothing is read while the GPU draws');
    self.gpuBusy = false;
    mock.timers.tick(100);
    assert.equal(self.raycaster.reads, 5, 'the GPU idle: the tiles drawn and the cut ones');
    // a later frame draws a new tile: read once the GPU is idle again
    self.gpuBusy = true;
    drawn._selectedTiles.push(tile(1, reads));
    frame();
    mock.timers.tick(500);
    assert.equal(self.raycaster.reads, 5);
    self.gpuBusy = false;
    mock.timers.tick(100);
    assert.equal(self.raycaster.reads, 6);
    // closed: nothing more
    stop();
    assert.equal(listeners.size, 0);
    drawn._selectedTiles.push(tile(1, reads));
    frame();
    mock.timers.tick(1000);
    assert.equal(self.raycaster.reads, 6);
  } finally {
    mock.timers.reset();
  }
});
