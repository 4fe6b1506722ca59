// The line-of-sight tool's CPU ray casting (viewer/src/tools/raycast.js): segments
// against triangles, boxes and chunked meshes, and the terrain crossing sampled coarse
// to fine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkBoxes, firstCrossing, segmentBox, segmentChunks, segmentNearPoint, segmentTriangles } from '../src/tools/raycast.js';

/** A unit cube's faces [0,1]³ as 12 triangles, shifted by (x, 0, 0). */
function cube(x = 0) {
  const positions = [];
  for (let i = 0; i < 8; i++) positions.push(x + (i & 1), (i >> 1) & 1, (i >> 2) & 1);
  // prettier-ignore
  const indices = [0, 1, 3, 0, 3, 2, 4, 5, 7, 4, 7, 6, 0, 1, 5, 0, 5, 4, 2, 3, 7, 2, 7, 6, 0, 2, 6, 0, 6, 4, 1, 3, 7, 1, 7, 5];
  return { positions, indices };
}

/** Several cubes in one mesh, each 3 m further along x. */
function cubes(n) {
  const positions = [];
  const indices = [];
  for (let k = 0; k < n; k++) {
    const c = cube(3 * k);
    indices.push(...c.indices.map((i) => i + positions.length / 3));
    positions.push(...c.positions);
  }
  return { positions: Float32Array.from(positions), indices: Uint32Array.from(indices) };
}

test('a segment meets the first face of a triangle mesh, either side, within its length', () => {
  const { positions, indices } = cube();
  // along x through the cube's middle, from x = -1 to x = 3: enters at x = 0 (t = 0.25)
  assert.ok(Math.abs(segmentTriangles([-1, 0.5, 0.5], [4, 0, 0], positions, indices) - 0.25) < 1e-9);
  // from inside: leaves through the far face (back faces count: walls are walls)
  assert.ok(Math.abs(segmentTriangles([0.5, 0.5, 0.5], [2, 0, 0], positions, indices) - 0.25) < 1e-9);
  // too short to reach it, or passing beside it
  assert.equal(segmentTriangles([-1, 0.5, 0.5], [0.5, 0, 0], positions, indices), Infinity);
  assert.equal(segmentTriangles([-1, 2, 0.5], [4, 0, 0], positions, indices), Infinity);
  // a triangle range: only the x = 1 face (triangles 10 and 11) is tested
  assert.ok(Math.abs(segmentTriangles([-1, 0.5, 0.5], [4, 0, 0], positions, indices, 1, 10, 12) - 0.5) < 1e-9);
});

test('the segment-box and segment-sphere tests', () => {
  assert.equal(segmentBox([-1, 0.5, 0.5], [4, 0, 0], [0, 0, 0], [1, 1, 1]), true);
  assert.equal(segmentBox([-1, 0.5, 0.5], [0.9, 0, 0], [0, 0, 0], [1, 1, 1]), false, 'stops short');
  assert.equal(segmentBox([-1, 1.5, 0.5], [4, 0, 0], [0, 0, 0], [1, 1, 1]), false, 'passes above');
  assert.equal(segmentBox([0.5, 0.5, 3], [0, 0, -4], [0, 0, 0], [1, 1, 1]), true, 'straight down');
  assert.equal(segmentNearPoint([0, 0, 0], [10, 0, 0], [5, 2, 0], 2.5), true);
  assert.equal(segmentNearPoint([0, 0, 0], [10, 0, 0], [5, 3, 0], 2.5), false);
  assert.equal(segmentNearPoint([0, 0, 0], [10, 0, 0], [12, 0, 0], 1.5), false, 'beyond its end');
});

test('chunked meshes give the same first hit as testing every triangle', () => {
  const { positions, indices } = cubes(20); // 240 triangles, boxes of 5 triangles
  const boxes = chunkBoxes(positions, indices, 5);
  assert.equal(boxes.length, 6 * 48);
  assert.deepEqual(Array.from(boxes.subarray(0, 6)), [0, 0, 0, 1, 1, 1]);
  const rays = [
    [[-2, 0.5, 0.5], [70, 0, 0]],
    [[30.5, 0.5, 5], [0, 0, -10]],
    [[31.5, 0.5, 5], [0, 0, -10]], // between two cubes: none
    [[-2, -1, 0.3], [64, 3, 0.2]],
    [[59, 0.2, 0.7], [-60, 0.5, 0]],
  ];
  for (const [o, d] of rays) {
    const all = segmentTriangles(o, d, positions, indices);
    assert.equal(segmentChunks(o, d, positions, indices, boxes, 5), all, JSON.stringify([o, d]));
  }
  assert.equal(segmentChunks([31.5, 0.5, 5], [0, 0, -10], positions, indices, boxes, 5), Infinity);
  assert.ok(Math.abs(segmentChunks([30.5, 0.5, 5], [0, 0, -10], positions, indices, boxes, 5) - 0.4) < 1e-6);
});

test('the terrain crossing: found between coarse samples, none over open ground', () => {
  const length = 1000;
  // a line 20 m above flat ground: no crossing, only the coarse samples taken
  const flat = firstCrossing(() => 20, length, { step: 10 });
  assert.equal(flat.t, null);
  assert.equal(flat.samples, 101);
  // a 3 m wide ridge 25 m high at 503–506 m: between the coarse samples at 500 and 510
  const ridge = (/** @type {number} */ t) => {
    const x = t * length;
    return x > 503 && x < 506 ? 20 - 25 : 20;
  };
  // with a slope bound (10 m/m) that lets such a ridge reach the line between samples
  const hit = firstCrossing(ridge, length, { step: 10, minStep: 0.5, slope: 10 });
  assert.ok(hit.t !== null && Math.abs(hit.t * length - 503) <= 0.5, String(hit.t));
  // a hill the line enters at 700 m and never leaves
  const hill = firstCrossing((t) => (t * length < 700 ? 5 : -3), length, { step: 25 });
  assert.ok(hill.t !== null && Math.abs(hill.t * length - 700) <= 0.5, String(hill.t));
  // the surface unknown (no tile loaded) is no obstacle; a start below the surface is t = 0
  assert.equal(firstCrossing(() => undefined, length).t, null);
  assert.equal(firstCrossing(() => -1, length).t, 0);
  // near the ends, where the line is close to the ground (an eye 2 m up, a target 1 m
  // up), the samples are refined, but far fewer than at the finest step everywhere
  const low = firstCrossing((t) => 2 - t, length, { step: 8, minStep: 0.5 });
  assert.equal(low.t, null);
  assert.ok(low.samples < 400, String(low.samples));
});
