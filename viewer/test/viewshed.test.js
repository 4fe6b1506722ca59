// The viewshed's depth render read back on the CPU (viewer/src/tools/viewshed.js): which
// cube face and texel a direction falls on, the depth packing, the slope-scaled margin;
// and the progressive viewshed: which cube map a frame shows and when it is drawn.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CUBE_FACES,
  chooseCube,
  coarseSize,
  cubeTexel,
  depthTolerance,
  mustDraw,
  sameCasters,
  texelAngle,
  unpackDepth,
} from '../src/tools/viewshed.js';

test('each axis direction falls on the centre of its own face', () => {
  CUBE_FACES.forEach((f, i) => {
    assert.deepEqual(cubeTexel(f.dir, 512), { face: i, x: 256, y: 256 });
    // a long vector in the same direction: the same texel
    const far = /** @type {[number, number, number]} */ (f.dir.map((v) => v * 1000));
    assert.deepEqual(cubeTexel(far, 512), { face: i, x: 256, y: 256 });
  });
});

test('off-axis directions: right and up of the face move the texel right and up', () => {
  const f = CUBE_FACES[3]; // +X
  const d = f.dir.map((v, k) => v + 0.5 * f.right[k] + 0.25 * f.up[k]);
  const { face, x, y } = cubeTexel(/** @type {[number, number, number]} */ (d), 400);
  assert.equal(face, 3);
  assert.equal(x, Math.floor(((0.5 + 1) / 2) * 400));
  assert.equal(y, Math.floor(((0.25 + 1) / 2) * 400));
  // 45° exactly between two faces stays on the edge of one of them, never outside
  const edge = cubeTexel([1, 1, 0], 64);
  assert.ok(edge.x >= 0 && edge.x < 64 && edge.y >= 0 && edge.y < 64);
});

test('every face is a right-handed frame (right = direction × up, as Matrix4.computeView expects)', () => {
  for (const f of CUBE_FACES) {
    const [u, r] = [f.up, f.right];
    const cross = [u[1] * r[2] - u[2] * r[1], u[2] * r[0] - u[0] * r[2], u[0] * r[1] - u[1] * r[0]];
    assert.deepEqual(cross.map((v) => v + 0), f.dir.map((v) => v + 0)); // up × right = direction
  }
});

test('czm_packDepth bytes unpack to the depth', () => {
  // czm_packDepth in JavaScript: fract of the scaled depth, minus the next channel's share
  const pack = (/** @type {number} */ depth) => {
    const enc = [1, 255, 65025, 16581375].map((s) => (s * depth) % 1);
    const out = [enc[0] - enc[1] / 255, enc[1] - enc[2] / 255, enc[2] - enc[3] / 255, enc[3]];
    return out.map((v) => Math.round(v * 255));
  };
  for (const depth of [0, 0.1, 0.25, 0.5, 0.731, 0.99]) {
    const [r, g, b, a] = pack(depth);
    assert.ok(Math.abs(unpackDepth(r, g, b, a) - depth) < 1e-4, `${depth}`);
  }
  assert.ok(unpackDepth(255, 255, 255, 255) > 1, 'the clear colour (white) is beyond the radius');
});

test('the margin grows with distance and at grazing angles, within bounds', () => {
  const a = texelAngle(1024);
  assert.ok(Math.abs(a - (1.5 * Math.PI) / 2 / 1024) < 1e-12);
  assert.ok(depthTolerance(100, a, 1) < depthTolerance(400, a, 1));
  assert.ok(depthTolerance(100, a, 1) < depthTolerance(100, a, 0.2));
  // below a cosine of 0.05 the margin stops growing
  assert.equal(depthTolerance(100, a, 0.01), depthTolerance(100, a, 0.05));
  assert.equal(depthTolerance(100, a, -0.5), depthTolerance(100, a, 0.5));
  assert.ok(depthTolerance(0, a, 1) === 1);
});

test('the coarse cube map is a quarter of the texels per side, at least 64, never above the full size', () => {
  assert.equal(coarseSize(512), 128);
  assert.equal(coarseSize(1024), 256);
  assert.equal(coarseSize(128), 64);
  assert.equal(coarseSize(32), 32);
});

test('casters compare as the same commands in the same order', () => {
  const [a, b, c] = [{}, {}, {}];
  assert.ok(sameCasters([a, b], [a, b]));
  assert.ok(sameCasters([], []));
  assert.ok(!sameCasters([a, b], [b, a]));
  assert.ok(!sameCasters([a, b], [a, b, c]));
  // equal-looking but other commands (a tile reloaded): not the same
  assert.ok(!sameCasters([a], [{}]));
});

test('a reduced frame shows the coarse cube until the full one holds this observer from a full frame', () => {
  assert.equal(chooseCube({ fullFrame: true, full: undefined, key: 1 }), 'full');
  assert.equal(chooseCube({ fullFrame: false, full: undefined, key: 1 }), 'coarse');
  // the full map holds an earlier observer: coarse
  assert.equal(chooseCube({ fullFrame: false, full: { key: 1, full: true, casters: [] }, key: 2 }), 'coarse');
  // refined for this observer: kept while the user works (reduced frames)
  assert.equal(chooseCube({ fullFrame: false, full: { key: 2, full: true, casters: [] }, key: 2 }), 'full');
  // drawn for this observer but in a reduced frame (a single map): not refined, coarse
  assert.equal(chooseCube({ fullFrame: false, full: { key: 2, full: false, casters: [] }, key: 2 }), 'coarse');
});

test('a cube map is drawn for a new observer, to refine it, or when its casters changed; else reused', () => {
  const [a, b] = [{}, {}];
  const now = (/** @type {boolean} */ fullFrame, /** @type {any[]} */ casters = [a, b]) => ({ key: 3, fullFrame, casters });
  // nothing drawn yet, or another observer's
  assert.ok(mustDraw(undefined, now(false)));
  assert.ok(mustDraw({ key: 2, full: true, casters: [a, b] }, now(true)));
  // the same observer and casters: reused, in reduced and full frames
  assert.ok(!mustDraw({ key: 3, full: false, casters: [a, b] }, now(false)));
  assert.ok(!mustDraw({ key: 3, full: true, casters: [a, b] }, now(true)));
  // drawn in a reduced frame: the full frame refines it
  assert.ok(mustDraw({ key: 3, full: false, casters: [a, b] }, now(true)));
  // tiles loaded (other casters): drawn again
  assert.ok(mustDraw({ key: 3, full: true, casters: [a] }, now(true)));
  assert.ok(mustDraw({ key: 3, full: false, casters: [a] }, now(false)));
  // but a refined map is kept in a reduced frame, whose casters are the coarse tiles
  assert.ok(!mustDraw({ key: 3, full: true, casters: [a, b] }, now(false, [a])));
});
