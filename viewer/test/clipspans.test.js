// The parts of a ray that clipping planes leave drawn (viewer/src/tools/raycast.js
// visibleSpans), which the exact picks use so that a click through a cut building meets
// what is shown behind it (the clipping box's placement after a reduced frame).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { visibleSpans } from '../src/tools/raycast.js';
import { boxPlanes, keptBy, verticalPlane } from '../src/tools/geo.js';

const asArrays = (/** @type {{normal: number[], distance: number}[]} */ planes) => planes.map((p) => [...p.normal, p.distance]);

const close = (/** @type {number[][]} */ got, /** @type {number[][]} */ want) => {
  assert.equal(got.length, want.length, JSON.stringify(got));
  got.forEach((span, i) => span.forEach((t, k) => assert.ok(Math.abs(t - want[i][k]) < 1e-9, JSON.stringify(got))));
};

test('a box kept inside: one span, where the segment crosses the box', () => {
  const { planes, union } = boxPlanes([10, 10, 10], true);
  // along x from -30 to 30 through the box: inside for x in [-10, 10]
  close(visibleSpans([-30, 0, 0], [60, 0, 0], asArrays(planes), union), [[1 / 3, 2 / 3]]);
  // beside the box: nothing drawn
  close(visibleSpans([-30, 20, 0], [60, 0, 0], asArrays(planes), union), []);
  // starting inside
  close(visibleSpans([0, 0, 0], [30, 0, 0], asArrays(planes), union), [[0, 1 / 3]]);
});

test('a box cut out: the spans before and after it, the whole segment when it misses', () => {
  const { planes, union } = boxPlanes([10, 10, 10], false);
  close(visibleSpans([-30, 0, 0], [60, 0, 0], asArrays(planes), union), [[0, 1 / 3], [2 / 3, 1]]);
  close(visibleSpans([-30, 20, 0], [60, 0, 0], asArrays(planes), union), [[0, 1]]);
  // ending inside the box: only the part before it
  close(visibleSpans([-30, 0, 0], [30, 0, 0], asArrays(planes), union), [[0, 2 / 3]]);
  // wholly inside: nothing
  close(visibleSpans([-5, 0, 0], [10, 0, 0], asArrays(planes), union), []);
});

test('one vertical plane: what lies behind it is cut', () => {
  const plane = verticalPlane(90, 5); // facing east at x = 5: x < 5 is cut
  close(visibleSpans([0, 0, 0], [10, 0, 0], asArrays([plane]), true), [[0.5, 1]]);
  close(visibleSpans([10, 0, 0], [-10, 0, 0], asArrays([plane]), true), [[0, 0.5]]);
  // parallel to the plane, on either side
  close(visibleSpans([6, -5, 0], [0, 10, 0], asArrays([plane]), true), [[0, 1]]);
  close(visibleSpans([4, -5, 0], [0, 10, 0], asArrays([plane]), true), []);
  close(visibleSpans([0, 0, 0], [1, 0, 0], [], true), [[0, 1]]);
});

test('the spans agree with the clipping rule point by point (geo.js keptBy)', () => {
  let seed = 7;
  const rand = () => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647;
  };
  for (let k = 0; k < 300; k++) {
    const inside = rand() < 0.5;
    const half = /** @type {[number, number, number]} */ ([5 + 20 * rand(), 5 + 20 * rand(), 5 + 20 * rand()]);
    const { planes, union } = k % 3 === 0 ? { planes: [verticalPlane(180 * rand(), 30 * rand() - 15)], union: true } : boxPlanes(half, inside);
    const o = [60 * rand() - 30, 60 * rand() - 30, 60 * rand() - 30];
    const d = [80 * rand() - 40, 80 * rand() - 40, 80 * rand() - 40];
    const spans = visibleSpans(o, d, asArrays(planes), union);
    for (let i = 0; i <= 200; i++) {
      const t = i / 200;
      const p = /** @type {[number, number, number]} */ ([o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]]);
      const inSpan = spans.some(([a, b]) => t > a + 1e-9 && t < b - 1e-9);
      const onEdge = spans.some(([a, b]) => Math.abs(t - a) < 1e-6 || Math.abs(t - b) < 1e-6);
      if (onEdge) continue;
      assert.equal(inSpan, keptBy(p, planes, union), `case ${k}, t ${t}: ${JSON.stringify({ spans, o, d, union })}`);
    }
    spans.forEach(([a, b], i) => {
      assert.ok(a >= 0 && b <= 1 && a < b, JSON.stringify(spans));
      if (i > 0) assert.ok(spans[i - 1][1] <= a, JSON.stringify(spans));
    });
  }
});
