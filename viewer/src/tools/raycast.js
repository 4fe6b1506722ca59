// @ts-check
// Ray casting on the CPU for the line-of-sight tool (通视), against what is loaded:
//
// - terrain: the sight line's clearance above the ground (globe.getHeight, on the tiles
//   loaded) sampled coarse to fine (firstCrossing): coarse steps, and finer ones only
//   where the terrain could reach the line between two samples;
// - buildings: the triangles of the building tiles drawn, read back from the GPU once
//   per glTF primitive and kept (BuildingRaycaster), tested in each primitive's own
//   frame after a bounding-sphere and a box test, on the parts of the ray that the
//   tileset's clipping planes leave drawn (visibleSpans: a cut building is not hit).
//
// Cesium's own CPU pick (Cesium3DTileset.pick) reads every candidate tile's vertex
// and index buffers back from the GPU and transforms every vertex on each call (about
// 100–400 ms a ray on the sample city under software WebGL), and a GPU pick pass
// (scene.pickFromRay) costs seconds there; this costs a few ms once the tiles are read.
//
// The pure helpers (segmentTriangles, segmentBox, visibleSpans, firstCrossing) run
// without Cesium and are unit-tested (viewer/test/raycast.test.js).

/** @typedef {[number, number, number]} Vec3 */

const EPS = 1e-12;

/**
 * The first triangle a segment o + t·d (t in [0, tMax]) meets, by its t (Möller–Trumbore,
 * both faces): Infinity when none.
 * @param {ArrayLike<number>} o the segment's start
 * @param {ArrayLike<number>} d the segment's vector (not normalised: t = 1 is its end)
 * @param {ArrayLike<number>} positions xyz per vertex
 * @param {ArrayLike<number>} indices three per triangle
 * @param {number} [tMax] only hits up to this t
 * @param {number} [first] the first triangle tested
 * @param {number} [last] the triangle after the last one tested (default: all)
 */
export function segmentTriangles(o, d, positions, indices, tMax = 1, first = 0, last = Infinity) {
  const [ox, oy, oz] = [o[0], o[1], o[2]];
  const [dx, dy, dz] = [d[0], d[1], d[2]];
  let best = Infinity;
  const n = 3 * Math.min(last, Math.floor(indices.length / 3));
  for (let i = 3 * first; i < n; i += 3) {
    const a = 3 * indices[i];
    const b = 3 * indices[i + 1];
    const c = 3 * indices[i + 2];
    const ax = positions[a];
    const ay = positions[a + 1];
    const az = positions[a + 2];
    const e1x = positions[b] - ax;
    const e1y = positions[b + 1] - ay;
    const e1z = positions[b + 2] - az;
    const e2x = positions[c] - ax;
    const e2y = positions[c + 1] - ay;
    const e2z = positions[c + 2] - az;
    // p = d × e2, det = e1 · p
    const px = dy * e2z - dz * e2y;
    const py = dz * e2x - dx * e2z;
    const pz = dx * e2y - dy * e2x;
    const det = e1x * px + e1y * py + e1z * pz;
    if (det > -EPS && det < EPS) continue; // parallel to the triangle
    const inv = 1 / det;
    const sx = ox - ax;
    const sy = oy - ay;
    const sz = oz - az;
    const u = (sx * px + sy * py + sz * pz) * inv;
    if (u < 0 || u > 1) continue;
    // q = s × e1
    const qx = sy * e1z - sz * e1y;
    const qy = sz * e1x - sx * e1z;
    const qz = sx * e1y - sy * e1x;
    const v = (dx * qx + dy * qy + dz * qz) * inv;
    if (v < 0 || u + v > 1) continue;
    const t = (e2x * qx + e2y * qy + e2z * qz) * inv;
    if (t >= 0 && t <= tMax && t < best) best = t;
  }
  return best;
}

/**
 * Whether the segment o + t·d, t in [0, 1], meets an axis-aligned box (slab test).
 * @param {ArrayLike<number>} o
 * @param {ArrayLike<number>} d
 * @param {ArrayLike<number>} min
 * @param {ArrayLike<number>} max
 */
export function segmentBox(o, d, min, max) {
  let t0 = 0;
  let t1 = 1;
  for (let k = 0; k < 3; k++) {
    if (Math.abs(d[k]) < EPS) {
      if (o[k] < min[k] || o[k] > max[k]) return false;
      continue;
    }
    let ta = (min[k] - o[k]) / d[k];
    let tb = (max[k] - o[k]) / d[k];
    if (ta > tb) [ta, tb] = [tb, ta];
    t0 = Math.max(t0, ta);
    t1 = Math.min(t1, tb);
    if (t0 > t1) return false;
  }
  return true;
}

/** Triangles per chunk of a primitive's bounding boxes (consecutive triangles, which in
 * the building tiles belong to one building or its neighbours). */
export const CHUNK = 64;

/**
 * The bounding box of each run of `size` consecutive triangles: six numbers per chunk
 * (min x, y, z, max x, y, z).
 * @param {ArrayLike<number>} positions xyz per vertex
 * @param {ArrayLike<number>} indices three per triangle
 * @param {number} [size] triangles per chunk
 */
export function chunkBoxes(positions, indices, size = CHUNK) {
  const triangles = Math.floor(indices.length / 3);
  const boxes = new Float64Array(6 * Math.ceil(triangles / size));
  for (let k = 0; 6 * k < boxes.length; k++) {
    const box = [Infinity, Infinity, Infinity, -Infinity, -Infinity, -Infinity];
    const end = 3 * Math.min(triangles, (k + 1) * size);
    for (let i = 3 * k * size; i < end; i++) {
      const v = 3 * indices[i];
      for (let c = 0; c < 3; c++) {
        const x = positions[v + c];
        if (x < box[c]) box[c] = x;
        if (x > box[3 + c]) box[3 + c] = x;
      }
    }
    boxes.set(box, 6 * k);
  }
  return boxes;
}

/**
 * The first triangle a segment meets (its t, Infinity when none), testing only the
 * triangles of the chunks whose box the segment passes through.
 * @param {ArrayLike<number>} o
 * @param {ArrayLike<number>} d
 * @param {ArrayLike<number>} positions
 * @param {ArrayLike<number>} indices
 * @param {Float64Array} boxes from chunkBoxes(positions, indices, size)
 * @param {number} [size]
 */
export function segmentChunks(o, d, positions, indices, boxes, size = CHUNK) {
  let best = Infinity;
  for (let k = 0; 6 * k < boxes.length; k++) {
    if (!segmentBox(o, d, boxes.subarray(6 * k, 6 * k + 3), boxes.subarray(6 * k + 3, 6 * k + 6))) continue;
    const t = segmentTriangles(o, d, positions, indices, Math.min(1, best), k * size, (k + 1) * size);
    if (t < best) best = t;
  }
  return best;
}

/**
 * The parts of a segment o + t·d (t in [0, 1]) that clipping planes leave visible, as
 * CesiumJS's clipping shader decides (getClippingFunction.js): a point's amount for a
 * plane [nx, ny, nz, w] is n·p + w, and it is cut where that is ≤ 0 — for any plane with
 * `union` (the kept region is convex: one span at most), for every plane otherwise (the
 * cut region is convex: up to two spans, before and after it). Spans are in order.
 * @param {ArrayLike<number>} o the segment's start, in the planes' frame
 * @param {ArrayLike<number>} d the segment's vector, in the planes' frame
 * @param {ArrayLike<number>[]} planes [nx, ny, nz, w] each
 * @param {boolean} union CesiumJS's unionClippingRegions
 * @returns {[number, number][]}
 */
export function visibleSpans(o, d, planes, union) {
  if (!planes.length) return [[0, 1]];
  // the convex region (kept with union, cut without) as the t of the segment inside it
  // (amount > 0 kept with union; amount ≤ 0 cut without): [lo, hi], empty when lo > hi
  let lo = -Infinity;
  let hi = Infinity;
  for (const p of planes) {
    let a0 = p[0] * o[0] + p[1] * o[1] + p[2] * o[2] + p[3]; // amount at t = 0
    let slope = p[0] * d[0] + p[1] * d[1] + p[2] * d[2]; // its change per unit t
    if (!union) [a0, slope] = [-a0, -slope]; // inside the cut region: -amount ≥ 0
    if (Math.abs(slope) < EPS) {
      if (a0 < 0 || (union && a0 === 0)) return union ? [] : [[0, 1]];
      continue;
    }
    const t = -a0 / slope; // where the amount is 0
    if (slope > 0) lo = Math.max(lo, t);
    else hi = Math.min(hi, t);
  }
  if (union) return Math.max(lo, 0) < Math.min(hi, 1) ? [[Math.max(lo, 0), Math.min(hi, 1)]] : [];
  if (lo > hi || hi < 0 || lo > 1) return [[0, 1]]; // the segment misses the cut region
  /** @type {[number, number][]} */
  const spans = [];
  if (lo > 0) spans.push([0, lo]);
  if (hi < 1) spans.push([hi, 1]);
  return spans;
}

/**
 * Whether the segment a→b passes within r of a point c.
 * @param {ArrayLike<number>} a
 * @param {ArrayLike<number>} b
 * @param {ArrayLike<number>} c
 * @param {number} r
 */
export function segmentNearPoint(a, b, c, r) {
  const d = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
  const w = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
  const dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
  const t = dd > 0 ? Math.max(0, Math.min(1, (w[0] * d[0] + w[1] * d[1] + w[2] * d[2]) / dd)) : 0;
  const x = w[0] - t * d[0];
  const y = w[1] - t * d[1];
  const z = w[2] - t * d[2];
  return x * x + y * y + z * z <= r * r;
}

/**
 * The first point of a line of the given length where it passes below a surface, as
 * its parameter t in [0, 1], or null. clearanceAt(t) is the line's height above the
 * surface there (metres; undefined or NaN where the surface is unknown: no obstacle).
 *
 * The line is sampled every `step` metres; an interval between two samples is refined
 * (halved, down to `minStep`) only when the surface could reach the line inside it:
 * with the surface rising at most `slope` metres per metre relative to the line, its
 * highest point between samples of clearances c0 and c1, h metres apart, is
 * (slope·h − c0 − c1) / 2 above the line. The crossing found is then narrowed by
 * bisection to `minStep`. The default slope, 0.5 (27°), is steeper than a city's ground;
 * narrower features than a step that rise faster are walls, i.e. buildings, cast apart.
 * @param {(t: number) => number | undefined} clearanceAt
 * @param {number} length metres
 * @param {{step?: number, minStep?: number, slope?: number, maxSamples?: number}} [options]
 * @returns {{t: number, samples: number} | {t: null, samples: number}}
 */
export function firstCrossing(clearanceAt, length, options = {}) {
  const { step = 8, minStep = 0.5, slope = 0.5, maxSamples = 2000 } = options;
  let samples = 0;
  const at = (/** @type {number} */ t) => {
    samples += 1;
    const c = clearanceAt(t);
    return c === undefined || c === null || !Number.isFinite(c) ? Infinity : c;
  };
  if (!(length > 0)) return { t: null, samples };
  const dtMin = Math.min(1, minStep / length);
  /**
   * The first t in [t0, t1] (clearances c0, c1) below the surface, or null.
   * @param {number} t0 @param {number} c0 @param {number} t1 @param {number} c1
   * @returns {number | null}
   */
  const search = (t0, c0, t1, c1) => {
    if (c0 < 0) return t0;
    const h = (t1 - t0) * length;
    if (c0 + c1 >= slope * h) return c1 < 0 ? t1 : null; // the surface cannot reach the line
    if (t1 - t0 <= dtMin || samples >= maxSamples) return c1 < 0 ? t1 : null;
    const tm = (t0 + t1) / 2;
    const cm = at(tm);
    return search(t0, c0, tm, cm) ?? search(tm, cm, t1, c1);
  };
  const n = Math.max(1, Math.ceil(length / step));
  let tPrev = 0;
  let cPrev = at(0);
  for (let i = 1; i <= n; i++) {
    const t = i / n;
    const c = at(t);
    const hit = search(tPrev, cPrev, t, c);
    if (hit !== null) return { t: narrow(at, tPrev, hit, dtMin), samples };
    [tPrev, cPrev] = [t, c];
  }
  return { t: null, samples };
}

/**
 * Bisect between t0 (or the start) and a t below the surface to within dt.
 * @param {(t: number) => number} at
 * @param {number} t0
 * @param {number} t1 below the surface
 * @param {number} dt
 */
function narrow(at, t0, t1, dt) {
  if (t1 <= t0) return t1;
  let lo = t0;
  let hi = t1;
  if (at(lo) < 0) return lo;
  while (hi - lo > dt) {
    const mid = (lo + hi) / 2;
    if (at(mid) < 0) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * @typedef {object} PrimitiveGeometry a glTF primitive's triangles in its own frame
 * @property {Float32Array} positions xyz per vertex, dequantised
 * @property {Uint8Array | Uint16Array | Uint32Array} indices
 * @property {Float64Array} boxes the chunks' boxes (chunkBoxes)
 * @property {Vec3} min
 * @property {Vec3} max
 */

/**
 * The first building surface a segment meets, on the CPU, against the building tiles
 * drawn now (each tileset's selected tiles, at full quality). Each glTF primitive's triangles are read
 * back once and kept while the primitive lives (a WeakMap: tiles unloaded are freed).
 */
export class BuildingRaycaster {
  constructor() {
    /** @type {WeakMap<object, PrimitiveGeometry | null>} */
    this.geometry = new WeakMap();
    /** primitives read back so far (for the tests and the bench) */
    this.reads = 0;
  }

  /**
   * The first hit of the segment a→b on the tilesets' drawn tiles: {t, point} (t in
   * [0, 1] along the segment; point a Cesium.Cartesian3), or null.
   * @param {any[]} tilesets Cesium3DTileset
   * @param {any} a Cesium.Cartesian3
   * @param {any} b Cesium.Cartesian3
   * @param {any} frameState the scene's frame state (for the fallback: Cesium's own pick)
   * @returns {{t: number, point: any} | null}
   */
  firstHit(tilesets, a, b, frameState) {
    const Cesium = window.Cesium;
    const { Cartesian3 } = Cesium;
    const d = Cartesian3.subtract(b, a, new Cartesian3());
    const at = (/** @type {number} */ t) => Cartesian3.add(a, Cartesian3.multiplyByScalar(d, t, new Cartesian3()), new Cartesian3());
    let best = Infinity;
    for (const ts of tilesets) {
      // only the parts of the segment the tileset's clipping planes leave drawn
      for (const [t0, t1] of clipSpans(ts, a, b)) {
        if (t0 >= best) break;
        const [sa, sb] = t0 === 0 && t1 === 1 ? [a, b] : [at(t0), at(t1)];
        let found = Infinity;
        for (const model of drawnModels(ts, sa, sb)) {
          const t = this.modelHit(model, sa, sb, frameState);
          if (t < found) found = t;
        }
        if (Number.isFinite(found)) {
          best = Math.min(best, t0 + found * (t1 - t0));
          break; // the spans are in order: a later one is farther
        }
      }
    }
    if (!Number.isFinite(best)) return null;
    return { t: best, point: at(best) };
  }

  /**
   * Read the drawn tiles' triangles now (the first read of a tile costs a GPU readback):
   * done when the tool opens, not on the first click. With `until`, reading stops once
   * performance.now() reaches it (a slice of an idle-time warm-up, see interactive.js
   * warmRays).
   * @param {any[]} tilesets
   * @param {number} [until] a performance.now() time: no read is begun after it
   * @returns {boolean} every triangle of the tiles drawn has been read
   */
  warm(tilesets, until = Infinity) {
    return this.warmTiles(this.drawnTiles(tilesets), until);
  }

  /**
   * The tiles the tilesets draw now (at full quality, see selectedTiles), a copy.
   * @param {any[]} tilesets
   * @returns {any[]}
   */
  drawnTiles(tilesets) {
    return tilesets.flatMap((ts) => [...selectedTiles(ts)]);
  }

  /**
   * Read these tiles' triangles (those not read yet), up to `until` (see warm).
   * @param {any[]} tiles Cesium3DTile (a tile unloaded since has none)
   * @param {number} [until]
   * @returns {boolean} all have been read
   */
  warmTiles(tiles, until = Infinity) {
    for (const tile of tiles) {
      for (const model of tileModels(tile)) {
        for (const node of model.sceneGraph?._runtimeNodes ?? []) {
          for (const rp of node.runtimePrimitives ?? []) {
            if (!rp.primitive || this.geometry.has(rp.primitive)) continue;
            if (performance.now() >= until) return false;
            this.primitiveGeometry(rp.primitive);
          }
        }
      }
    }
    return true;
  }

  /**
   * The segment's first t on a model's triangles (Infinity when none).
   * @param {any} model a Cesium Model (a tile's content)
   * @param {any} a
   * @param {any} b
   * @param {any} frameState
   */
  modelHit(model, a, b, frameState) {
    const Cesium = window.Cesium;
    const { Matrix4, Cartesian3 } = Cesium;
    const graph = model.sceneGraph;
    let best = Infinity;
    for (const node of graph?._runtimeNodes ?? []) {
      if (node.node?.instances) {
        // instanced models (none in the building tiles): Cesium's own pick
        const hit = model.pick?.(new Cesium.Ray(a, Cartesian3.normalize(Cartesian3.subtract(b, a, new Cartesian3()), new Cartesian3())), frameState);
        if (hit) best = Math.min(best, Cartesian3.distance(a, hit) / Cartesian3.distance(a, b));
        continue;
      }
      const world = Matrix4.multiplyTransformation(graph.computedModelMatrix, node.computedTransform, new Matrix4());
      const inverse = Matrix4.inverse(world, new Matrix4());
      const o = Matrix4.multiplyByPoint(inverse, a, new Cartesian3());
      const e = Matrix4.multiplyByPoint(inverse, b, new Cartesian3());
      const lo = [o.x, o.y, o.z];
      const ld = [e.x - o.x, e.y - o.y, e.z - o.z];
      for (const rp of node.runtimePrimitives ?? []) {
        const g = this.primitiveGeometry(rp.primitive);
        if (!g || !segmentBox(lo, ld, g.min, g.max)) continue;
        const t = segmentChunks(lo, ld, g.positions, g.indices, g.boxes);
        if (t < best) best = t;
      }
    }
    return best;
  }

  /**
   * A primitive's triangles, read once (null when it has none that can be read).
   * @param {any} primitive a ModelComponents.Primitive
   * @returns {PrimitiveGeometry | null}
   */
  primitiveGeometry(primitive) {
    if (!primitive) return null;
    if (this.geometry.has(primitive)) return this.geometry.get(primitive) ?? null;
    const g = readPrimitive(primitive);
    this.geometry.set(primitive, g);
    this.reads += 1;
    return g;
  }
}

/**
 * The spans of the segment a→b (t in [0, 1]) that a tileset's clipping planes leave
 * drawn (visibleSpans): the whole segment when it has none on.
 * @param {any} tileset
 * @param {any} a Cesium.Cartesian3
 * @param {any} b Cesium.Cartesian3
 * @returns {[number, number][]}
 */
export function clipSpans(tileset, a, b) {
  const planes = tileset.clippingPlanes;
  if (!planes || planes.enabled === false || !(planes.length > 0)) return [[0, 1]];
  const { Matrix4, Cartesian3 } = window.Cesium;
  // the planes' frame, as CesiumJS places them (Model.js: the tileset's clipping origin,
  // then the collection's model matrix)
  const frame = Matrix4.multiply(tileset.clippingPlanesOriginMatrix ?? Matrix4.IDENTITY, planes.modelMatrix ?? Matrix4.IDENTITY, new Matrix4());
  const inverse = Matrix4.inverse(frame, new Matrix4());
  const o = Matrix4.multiplyByPoint(inverse, a, new Cartesian3());
  const e = Matrix4.multiplyByPoint(inverse, b, new Cartesian3());
  const list = [];
  for (let i = 0; i < planes.length; i++) {
    const p = planes.get(i);
    list.push([p.normal.x, p.normal.y, p.normal.z, p.distance]);
  }
  return visibleSpans([o.x, o.y, o.z], [e.x - o.x, e.y - o.y, e.z - o.z], list, Boolean(planes.unionClippingRegions));
}

/**
 * The models of a tileset's tiles drawn now whose bounds the segment a→b passes through.
 * @param {any} tileset
 * @param {any} a
 * @param {any} b
 */
function* drawnModels(tileset, a, b) {
  const pa = [a.x, a.y, a.z];
  const pb = [b.x, b.y, b.z];
  for (const tile of selectedTiles(tileset)) {
    const sphere = tile.contentBoundingVolume?.boundingSphere;
    if (!sphere) continue;
    const c = sphere.center;
    if (!segmentNearPoint(pa, pb, [c.x, c.y, c.z], sphere.radius)) continue;
    yield* tileModels(tile);
  }
}

/**
 * The tiles a tileset draws at full quality: while an interactive frame draws fewer
 * (interactive.js), the full selection it saved (`cimFullSelection`), so rays still meet
 * every building on the screen.
 * @param {any} tileset
 * @returns {any[]}
 */
function selectedTiles(tileset) {
  return tileset.cimFullSelection ?? tileset._selectedTiles ?? [];
}

/**
 * The glTF models of a tile's content (composite and multiple contents included).
 * @param {any} tile
 * @returns {any[]}
 */
function tileModels(tile) {
  const content = tile.content;
  if (!content) return [];
  const inner = content.innerContents ?? [content];
  return inner.map((/** @type {any} */ c) => c._model).filter((/** @type {any} */ m) => m && m.ready && m.show !== false);
}

/**
 * A primitive's positions (dequantised, in the primitive's node frame) and indices, from
 * its CPU copies or read back from its GPU buffers (WebGL 2), as Cesium's pickModel does.
 * @param {any} primitive
 * @returns {PrimitiveGeometry | null}
 */
function readPrimitive(primitive) {
  const TRIANGLES = 4;
  if (primitive.primitiveType !== undefined && primitive.primitiveType !== TRIANGLES) return null;
  const attr = (primitive.attributes ?? []).find((/** @type {any} */ x) => x.semantic === 'POSITION');
  if (!attr || !primitive.indices) return null;
  let indices = primitive.indices.typedArray;
  if (!indices && primitive.indices.buffer) {
    const count = primitive.indices.count;
    const type = primitive.indices.indexDatatype;
    indices = type === 5121 ? new Uint8Array(count) : type === 5123 ? new Uint16Array(count) : new Uint32Array(count);
    primitive.indices.buffer.getBufferData(indices);
  }
  const quantization = attr.quantization;
  if (quantization?.octEncoded) return null; // positions are never oct-encoded
  const datatype = quantization ? quantization.componentDatatype : attr.componentDatatype;
  const Typed = TYPED_ARRAYS[datatype];
  if (!Typed) return null;
  const bytes = Typed.BYTES_PER_ELEMENT;
  const count = attr.count;
  const interleaved = !attr.typedArray && attr.byteStride !== undefined && attr.byteStride !== 3 * bytes;
  const stride = interleaved ? attr.byteStride / bytes : 3;
  const offset = interleaved ? attr.byteOffset / bytes : 0;
  let raw = attr.typedArray;
  if (!raw && attr.buffer) {
    raw = new Typed(count * stride);
    attr.buffer.getBufferData(raw, interleaved ? 0 : attr.byteOffset, 0, count * stride);
  }
  if (!raw || !indices) return null;
  // normalised integers: to [0, 1] or [-1, 1] as the shader reads them
  const scale = attr.normalized ? normalisedScale(raw) : 0;
  const step = quantization?.quantizedVolumeStepSize;
  const shift = quantization?.quantizedVolumeOffset;
  const positions = new Float32Array(3 * count);
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < 3; c++) {
      let x = raw[offset + i * stride + c];
      if (scale) x = Math.max(x * scale, -1);
      if (step && shift) x = x * step[AXES[c]] + shift[AXES[c]];
      positions[3 * i + c] = x;
    }
  }
  const boxes = chunkBoxes(positions, indices);
  const min = /** @type {Vec3} */ ([Infinity, Infinity, Infinity]);
  const max = /** @type {Vec3} */ ([-Infinity, -Infinity, -Infinity]);
  for (let k = 0; k < boxes.length; k += 6) {
    for (let c = 0; c < 3; c++) {
      min[c] = Math.min(min[c], boxes[k + c]);
      max[c] = Math.max(max[c], boxes[k + 3 + c]);
    }
  }
  return { positions, indices, boxes, min, max };
}

const AXES = /** @type {const} */ (['x', 'y', 'z']);

/** Typed arrays by WebGL component datatype. */
const TYPED_ARRAYS = /** @type {Record<number, any>} */ ({
  5120: Int8Array,
  5121: Uint8Array,
  5122: Int16Array,
  5123: Uint16Array,
  5124: Int32Array,
  5125: Uint32Array,
  5126: Float32Array,
  5130: Float64Array,
});

/**
 * 1 / the largest value of a normalised integer array's type (0 for floats: no scaling).
 * @param {ArrayLike<number>} raw
 */
function normalisedScale(raw) {
  if (raw instanceof Int8Array) return 1 / 127;
  if (raw instanceof Uint8Array) return 1 / 255;
  if (raw instanceof Int16Array) return 1 / 32767;
  if (raw instanceof Uint16Array) return 1 / 65535;
  return 0; // floats: as they are
}
