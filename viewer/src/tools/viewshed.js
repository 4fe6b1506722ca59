// @ts-check
// 视域 on the GPU: a depth render from the observer, compared with the scene's depth.
//
// The observer is a point light of CesiumJS's ShadowMap (isPointLight): the terrain and
// the building tiles are drawn into a cube map of six 90° frusta around it, each texel
// holding the distance of the nearest surface in that direction (divided by the radius,
// packed into RGBA by czm_packDepth). A post-process stage then takes each pixel of the
// view (its position from the depth texture), and tints it green when it is no farther
// from the observer than the nearest surface in its direction, red when something stands
// between. That is one render of 6 faces instead of thousands of CPU rays: the cost does
// not depend on the radius or how finely it is sampled.
//
// Progressive: the frame that answers a click is usually a reduced one (interactive.js:
// fewer building tiles, a lower resolution, under software WebGL); its cube map is a
// coarse one (a quarter of the texels per side) of what that frame draws, a real viewshed
// of the observer, shown at once. The next full-quality frame (the interactive frames
// draw it once the inputs pause, without further input) draws the cube map again at its
// full size from the full detail: the refined viewshed, which visibleAt() then reads.
// The cube map is drawn only when it must be: a new observer or radius, the refinement,
// or what casts into it changed (tiles loaded, another view's selection) on a full frame;
// every other frame reuses it (CesiumJS would draw the six faces in every frame). Each
// face draws only the casters whose bounds reach into its frustum (CesiumJS draws every
// caster within the radius into all six).
//
// The map is not one of the sun's (fromLightSource false): nothing else is darkened.
// Scripts and the tests ask visibleAt(point): the cube map is read back once after it
// changed and the same comparison made on the CPU. Only what is loaded for the current
// view casts (the tiles and terrain drawn in the frame that drew the cube map).

/** @typedef {[number, number, number]} Vec3 */

/**
 * The six passes of CesiumJS's point-light shadow map (ShadowMap.js,
 * computeOmnidirectional), in pass order: view direction, up and right of each face in
 * world (ECEF) axes. Pass i renders into framebuffer i.
 * @type {{dir: Vec3, up: Vec3, right: Vec3}[]}
 */
export const CUBE_FACES = [
  { dir: [-1, 0, 0], up: [0, -1, 0], right: [0, 0, 1] },
  { dir: [0, -1, 0], up: [0, 0, -1], right: [1, 0, 0] },
  { dir: [0, 0, -1], up: [0, -1, 0], right: [-1, 0, 0] },
  { dir: [1, 0, 0], up: [0, -1, 0], right: [0, 0, -1] },
  { dir: [0, 1, 0], up: [0, 0, 1], right: [1, 0, 0] },
  { dir: [0, 0, 1], up: [0, -1, 0], right: [1, 0, 0] },
];

const dot = (/** @type {Vec3} */ a, /** @type {Vec3} */ b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

/**
 * The face and texel of the cube map that a direction falls on.
 * @param {Vec3} d a direction (need not be unit length)
 * @param {number} size the face's width in texels
 * @returns {{face: number, x: number, y: number}} x, y from the bottom-left (readPixels order)
 */
export function cubeTexel(d, size) {
  let face = 0;
  let best = -Infinity;
  CUBE_FACES.forEach((f, i) => {
    const along = dot(d, f.dir);
    if (along > best) [face, best] = [i, along];
  });
  const f = CUBE_FACES[face];
  // a 90° frustum: the tangent of the half angle is 1, so x/z and y/z are in [-1, 1]
  const toTexel = (/** @type {number} */ ndc) => Math.min(size - 1, Math.max(0, Math.floor(((ndc + 1) / 2) * size)));
  return { face, x: toTexel(dot(d, f.right) / best), y: toTexel(dot(d, f.up) / best) };
}

/**
 * A depth packed by czm_packDepth, from its four bytes (czm_unpackDepth).
 * @param {number} r
 * @param {number} g
 * @param {number} b
 * @param {number} a
 */
export function unpackDepth(r, g, b, a) {
  return (r + g / 255 + b / 65025 + a / 16581375) / 255;
}

/**
 * How much farther than the nearest surface a point may be and still count as seen:
 * a texel of the cube map covers a cone, which meets a surface seen at a grazing angle
 * over a long stretch; the same slope-scaled margin as the shader's.
 * @param {number} distance metres from the observer
 * @param {number} texelAngle radians per texel (times a safety factor)
 * @param {number} cosine of the angle between the ray and the surface normal
 */
export function depthTolerance(distance, texelAngle, cosine) {
  return 1 + (distance * texelAngle) / Math.max(Math.abs(cosine), 0.05);
}

/** Radians a texel of a 90° face spans (at its centre), times a margin of 1.5. */
export const texelAngle = (/** @type {number} */ size) => (1.5 * (Math.PI / 2)) / size;

/** The coarse cube map's texels per side, for a full size: a quarter (at least 64). */
export const coarseSize = (/** @type {number} */ size) => Math.min(size, Math.max(64, Math.round(size / 4)));

/**
 * What a cube map holds: the observer it was drawn for (key), whether it was drawn in a
 * full-quality frame, and what cast into it.
 * @typedef {{key: number, full: boolean, casters: readonly any[]}} Drawn
 */

/**
 * Whether two lists of casters are the same commands in the same order.
 * @param {readonly any[]} a
 * @param {readonly any[]} b
 */
export function sameCasters(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Which cube map a frame shows: the full-size one in a full-quality frame, and in a
 * reduced frame once it holds the current observer from a full frame (the refined
 * viewshed stays on screen while the user works); else the coarse one.
 * @param {{fullFrame: boolean, full: Drawn | undefined, key: number}} now
 * @returns {'full' | 'coarse'}
 */
export function chooseCube({ fullFrame, full, key }) {
  return fullFrame || (full?.key === key && full.full) ? 'full' : 'coarse';
}

/**
 * Whether a cube map must be drawn in this frame: it holds another observer or nothing,
 * or what casts changed (tiles loaded, the camera selected others) — except that a cube
 * drawn in a full frame is kept in a reduced one (its casters are the full detail).
 * @param {Drawn | undefined} drawn what the cube map holds
 * @param {{key: number, fullFrame: boolean, casters: readonly any[]}} now
 */
export function mustDraw(drawn, { key, fullFrame, casters }) {
  if (!drawn || drawn.key !== key) return true;
  if (drawn.full && !fullFrame) return false;
  return (fullFrame && !drawn.full) || !sameCasters(drawn.casters, casters);
}

/** The post-process: tint each pixel within the radius by whether the observer sees it. */
const FRAGMENT_SHADER = `
uniform sampler2D colorTexture;
uniform sampler2D depthTexture;
uniform samplerCube shadowCube;
uniform vec3 observerEC;
uniform float radius;
uniform float texelAngle;
uniform vec4 visibleColor;
uniform vec4 hiddenColor;
in vec2 v_textureCoordinates;

void main() {
  vec4 color = texture(colorTexture, v_textureCoordinates);
  out_FragColor = color;
  // the raw (log) depth: czm_windowToEyeCoordinates undoes the log itself
  float depthOrLogDepth = texture(depthTexture, v_textureCoordinates).r;
  if (depthOrLogDepth >= 1.0) return; // the sky
  vec4 positionEC = czm_windowToEyeCoordinates(gl_FragCoord.xy, depthOrLogDepth);
  positionEC /= positionEC.w;
  vec3 toPoint = positionEC.xyz - observerEC;
  float dist = length(toPoint);
  if (dist > radius || dist < 0.5) return;
  vec3 dirEC = toPoint / dist;
  // the surface's normal from the neighbouring pixels: a slope-scaled margin
  vec3 normalEC = normalize(cross(dFdx(positionEC.xyz), dFdy(positionEC.xyz)));
  float cosine = max(abs(dot(normalEC, dirEC)), 0.05);
  float tolerance = 1.0 + dist * texelAngle / cosine;
  vec3 dirWC = czm_inverseViewRotation * dirEC;
  float nearest = czm_unpackDepth(czm_textureCube(shadowCube, dirWC)) * radius;
  vec4 tint = dist <= nearest + tolerance ? visibleColor : hiddenColor;
  out_FragColor = vec4(mix(color.rgb, tint.rgb, tint.a), color.a);
}
`;

/**
 * The casters whose bounds reach within the radius (those without bounds too).
 * @param {readonly any[]} commands
 * @param {any} observer a Cesium.Cartesian3
 * @param {number} radius metres
 */
function withinRadius(commands, observer, radius) {
  const reach = radius * radius;
  return commands.filter((c) => !c.boundingVolume || c.boundingVolume.distanceSquaredTo(observer) <= reach);
}

/**
 * Keep in a cube face's pass only the casters whose bounds reach into its 90° frustum
 * and the radius. CesiumJS hands every caster to all six passes, and it culls none of
 * the 3D tiles' commands (their `cull` is false: the tileset culls its tiles for the
 * camera), so every building tile on screen was drawn six times, however far away.
 * @param {any} pass a ShadowMap pass (camera, commandList)
 * @param {any} observer a Cesium.Cartesian3
 * @param {number} radius metres
 * @returns {number} the casters left out
 */
function cullToFace(pass, observer, radius) {
  const { Intersect } = window.Cesium;
  const { camera, commandList } = pass;
  const volume = camera.frustum.computeCullingVolume(camera.positionWC, camera.directionWC, camera.upWC);
  const reach = radius * radius;
  let kept = 0;
  for (const command of commandList) {
    const bounds = command.boundingVolume;
    if (!bounds || (bounds.distanceSquaredTo(observer) <= reach && volume.computeVisibility(bounds) !== Intersect.OUTSIDE)) {
      commandList[kept++] = command;
    }
  }
  const dropped = commandList.length - kept;
  commandList.length = kept;
  return dropped;
}

/**
 * A viewshed shown on the map: create it once, then setObserver(); destroy() removes it.
 */
export class Viewshed {
  /**
   * @param {any} viewer
   * @param {{size?: number, coarse?: number, level?: () => number, visible?: string, hidden?: string, opacity?: number}} [options]
   *   size: texels per cube face of the refined viewshed (default 1024); coarse: of the
   *   first one, drawn in a reduced frame (default coarseSize(size)); level: the quality
   *   level of the frame about to be drawn, 0 for a full one (interactive.js; default 0)
   */
  constructor(viewer, options = {}) {
    const Cesium = /** @type {any} */ (window.Cesium);
    this.viewer = viewer;
    this.size = options.size || 1024;
    this.coarse = Math.min(this.size, options.coarse || coarseSize(this.size));
    this.level = options.level || (() => 0);
    /** @type {any} */
    this.observer = null;
    this.radius = 0;
    /** the observer's number: a new one at each setObserver (what a cube map holds is tagged with it) */
    this.key = 0;
    /** @type {Map<number, any>} the ShadowMaps (point lights) by texels per face */
    this.maps = new Map();
    /** @type {Map<any, Drawn>} what each map holds */
    this.drawn = new Map();
    /** @type {any} the map handed to the frame being drawn (the stage samples it) */
    this.current = null;
    /** whether the frame being drawn is a full-quality one */
    this.fullFrame = true;
    /** @type {{map: any, size: number, refined: boolean, drawn: Drawn} | null} what the last frame showed */
    this.shown = null;
    /** @type {Uint8Array[] | null} the faces of the map shown, read back */
    this.faces = null;
    /** @type {Drawn | null} what this.faces were read from */
    this.facesOf = null;
    /** frames drawn showing the current observer's viewshed */
    this.frames = 0;
    /** cube maps drawn (coarse, full), draws skipped (the map held it already), casters left out by the faces' frusta */
    this.stats = { coarse: 0, full: 0, reused: 0, culled: 0 };
    /** @type {(() => void)[]} called after the first frame that shows the viewshed */
    this.waiting = [];
    /** @type {(() => void)[]} called after the first frame that shows the refined one */
    this.refining = [];
    /** drawing once with nothing tinted, to compile the shaders before the first click */
    this.warming = false;
    const opacity = options.opacity ?? 0.45;
    const visible = Cesium.Color.fromCssColorString(options.visible || '#2ecc71').withAlpha(opacity);
    const hidden = Cesium.Color.fromCssColorString(options.hidden || '#e74c3c').withAlpha(opacity);
    const scratch = new Cesium.Cartesian3();
    this.stage = viewer.scene.postProcessStages.add(
      new Cesium.PostProcessStage({
        name: 'cim_viewshed',
        fragmentShader: FRAGMENT_SHADER,
        uniforms: {
          shadowCube: () => this.current?._shadowMapTexture,
          observerEC: () => Cesium.Matrix4.multiplyByPoint(viewer.scene.camera.viewMatrix, this.observer || Cesium.Cartesian3.ZERO, scratch),
          // 0 while warming up: nothing is tinted
          radius: () => (this.warming ? 0 : this.radius),
          texelAngle: () => texelAngle(this.current?.cimSize ?? this.size),
          visibleColor: visible,
          hiddenColor: hidden,
        },
      }),
    );
    this.stage.enabled = false;
    // a primitive that hands a shadow map to the frame: the scene then draws its six
    // passes (the terrain and tiles cast only while this is shown, see #setCasting),
    // unless the map holds this observer already (see #mapOf)
    this.hook = {
      update: (/** @type {any} */ frameState) => this.beforeFrame(frameState),
      isDestroyed: () => false,
      destroy: () => undefined,
    };
    viewer.scene.primitives.add(this.hook);
    this.offRender = viewer.scene.postRender.addEventListener(() => this.afterFrame());
    /** @type {Map<any, number>} what cast no shadows before (restored on destroy) */
    this.saved = new Map();
  }

  /** The terrain and building tilesets draw into the cube map (CAST or ENABLED). */
  setCasting() {
    const Cesium = window.Cesium;
    const { scene } = this.viewer;
    const casters = [scene.globe, ...this.tilesets()];
    for (const c of casters) {
      if (this.saved.has(c)) continue;
      this.saved.set(c, c.shadows);
      if (c.shadows === Cesium.ShadowMode.DISABLED) c.shadows = Cesium.ShadowMode.CAST_ONLY;
      else if (c.shadows === Cesium.ShadowMode.RECEIVE_ONLY) c.shadows = Cesium.ShadowMode.ENABLED;
    }
  }

  /** The building tilesets in the scene. */
  tilesets() {
    const Cesium = window.Cesium;
    const { primitives } = this.viewer.scene;
    const out = [];
    for (let i = 0; i < primitives.length; i++) {
      const p = primitives.get(i);
      if (p instanceof Cesium.Cesium3DTileset) out.push(p);
    }
    return out;
  }

  /**
   * The point-light shadow map of a size, made at first use. Its passes are drawn only
   * when mustDraw() says so (else each face is left as it is), each face with only the
   * casters that reach into it.
   * @param {number} size texels per face
   */
  mapOf(size) {
    const found = this.maps.get(size);
    if (found) return found;
    const Cesium = /** @type {any} */ (window.Cesium);
    const map = new Cesium.ShadowMap({
      context: this.viewer.scene.context,
      lightCamera: new Cesium.Camera(this.viewer.scene),
      isPointLight: true,
      pointLightRadius: this.radius || 1,
      cascadesEnabled: false,
      size,
      softShadows: false,
      fromLightSource: false,
      normalOffset: false,
    });
    map.enabled = true;
    map.cimSize = size;
    // Scene.executeShadowMapCastCommands fills each pass's command list, then calls
    // updatePass (which clears the face) before drawing the list: the one place to
    // leave a face as it is, or to cull its list
    const updatePass = map.updatePass.bind(map);
    let skip = false;
    map.updatePass = (/** @type {any} */ context, /** @type {number} */ j) => {
      const pass = map._passes[j];
      if (j === 0) skip = !this.beginDraw(map, withinRadius(pass.commandList, this.observer, this.radius));
      if (skip) {
        pass.commandList.length = 0;
        return;
      }
      updatePass(context, j);
      this.stats.culled += cullToFace(pass, this.observer, this.radius);
    };
    this.maps.set(size, map);
    return map;
  }

  /**
   * Before a map's six passes: whether they are drawn (and what the map then holds).
   * @param {any} map
   * @param {readonly any[]} casters the casters within the radius, this frame
   * @returns {boolean}
   */
  beginDraw(map, casters) {
    const now = { key: this.key, fullFrame: this.fullFrame, casters };
    if (!mustDraw(this.drawn.get(map), now)) {
      this.stats.reused += 1;
      return false;
    }
    this.drawn.set(map, { key: this.key, full: this.fullFrame, casters });
    if (map.cimSize === this.size) this.stats.full += 1;
    else this.stats.coarse += 1;
    return true;
  }

  /**
   * Each frame, while an observer is set: hand the frame the cube map it shows
   * (chooseCube: the full one in a full-quality frame, the coarse one in a reduced frame
   * until the full one holds this observer).
   * @param {any} frameState
   */
  beforeFrame(frameState) {
    if (!this.observer) return;
    this.fullFrame = this.level() === 0;
    const full = this.mapOf(this.size);
    const which = this.coarse < this.size ? chooseCube({ fullFrame: this.fullFrame, full: this.drawn.get(full), key: this.key }) : 'full';
    const maps = this.warming ? [...new Set([this.mapOf(this.coarse), full])] : [which === 'full' ? full : this.mapOf(this.coarse)];
    for (const map of maps) {
      // read in every frame (the frusta's far plane, the culling sphere, the packing)
      map._pointLightRadius = this.radius;
      map._lightCamera.position = this.observer;
      frameState.shadowMaps.push(map);
    }
    this.current = maps[maps.length - 1];
    // the stage samples the cube map: on from the frame after the one creating it
    this.stage.enabled = Boolean(this.current._shadowMapTexture);
  }

  /**
   * Show the viewshed from a point out to a radius.
   * @param {any} observer a Cesium.Cartesian3
   * @param {number} radius metres
   */
  setObserver(observer, radius) {
    const Cesium = /** @type {any} */ (window.Cesium);
    this.setCasting();
    this.observer = Cesium.Cartesian3.clone(observer);
    this.radius = radius;
    this.key += 1;
    this.warming = false;
    this.shown = null;
    this.frames = 0;
    this.viewer.scene.requestRender();
  }

  /** After each frame: what it showed; tell who waits for the first (refined) one shown. */
  afterFrame() {
    const map = this.current;
    if (!this.observer || !map) return;
    const drawn = this.drawn.get(map);
    if (!this.stage.enabled || drawn?.key !== this.key) {
      // the cube map was created in this frame: draw the next one with the stage on
      // (not while the observer's sphere is out of view: CesiumJS draws no pass then)
      if (!map.outOfView) this.viewer.scene.requestRender();
      return;
    }
    const shown = { map, size: map.cimSize, refined: drawn.full && map.cimSize === this.size, drawn };
    this.shown = shown;
    this.frames += 1;
    // a callback may clear() or set another observer (postRender: an exception here
    // would stop CesiumJS's render loop)
    const refining = shown.refined ? this.refining.splice(0) : [];
    for (const cb of [...this.waiting.splice(0), ...refining]) cb();
  }

  /**
   * Call back after the next frame that shows the viewshed.
   * @param {() => void} cb
   */
  whenShown(cb) {
    this.waiting.push(cb);
    this.viewer.scene.requestRender();
  }

  /**
   * Call back after the first frame that shows the refined viewshed (the full-size cube
   * map drawn in a full-quality frame), now if it is shown. It comes with the next
   * full-quality frame: the interactive frames draw one once the inputs pause.
   * @param {() => void} cb
   */
  whenRefined(cb) {
    if (this.shown?.refined && this.shown.drawn.key === this.key) cb();
    else this.refining.push(cb);
  }

  /**
   * The six faces of the cube map shown, read back from the GPU (kept until it is drawn again).
   * @returns {Uint8Array[]}
   */
  readFaces() {
    const shown = /** @type {NonNullable<Viewshed['shown']>} */ (this.shown);
    if (this.faces && this.facesOf === shown.drawn) return this.faces;
    const context = this.viewer.scene.context;
    const size = shown.size;
    const faces = shown.map._passes.map((/** @type {any} */ pass) =>
      context.readPixels({ x: 0, y: 0, width: size, height: size, framebuffer: pass.framebuffer }),
    );
    this.faces = faces;
    this.facesOf = shown.drawn;
    return faces;
  }

  /**
   * Whether the observer sees a point, by the cube map shown (the coarse one until the
   * refined one is): true, false, or null when the point is outside the radius or no
   * viewshed has been drawn yet.
   * @param {any} point a Cesium.Cartesian3
   * @returns {boolean | null}
   */
  visibleAt(point) {
    const Cesium = window.Cesium;
    if (!this.shown || !this.observer || this.warming) return null;
    const d = Cesium.Cartesian3.subtract(point, this.observer, new Cesium.Cartesian3());
    const dist = Cesium.Cartesian3.magnitude(d);
    if (dist > this.radius) return null;
    if (dist < 0.5) return true;
    const { size } = this.shown;
    const { face, x, y } = cubeTexel([d.x, d.y, d.z], size);
    const bytes = this.readFaces()[face];
    const i = 4 * (y * size + x);
    const nearest = unpackDepth(bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]) * this.radius;
    // the surface's normal is not known here: take the vertical (ground points)
    const up = Cesium.Ellipsoid.WGS84.geodeticSurfaceNormal(point, new Cesium.Cartesian3());
    const cosine = Cesium.Cartesian3.dot(up, d) / dist;
    return dist <= nearest + depthTolerance(dist, texelAngle(size), cosine);
  }

  /**
   * Draw the depth render once from a point without showing it: the first frame of a
   * shadow map compiles a shader for every kind of thing drawn (seconds under software
   * WebGL), so this is done when the tool is opened, not on the click. Both cube maps
   * are drawn (their textures made), for the tiles of the frame it comes in.
   * @param {any} point a Cesium.Cartesian3
   * @param {number} radius metres
   */
  prewarm(point, radius) {
    this.setObserver(point, radius);
    this.warming = true;
    this.whenShown(() => {
      if (this.warming) this.clear();
    });
  }

  /** Whether a cube map was made (prewarm or an observer). */
  get prepared() {
    return this.maps.size > 0;
  }

  /** Hide the viewshed (the shadow maps stay for the next observer). */
  clear() {
    this.observer = null;
    this.warming = false;
    this.stage.enabled = false;
    this.shown = null;
    this.current = null;
    this.faces = null;
    this.facesOf = null;
    this.waiting.length = 0;
    this.refining.length = 0;
    this.viewer.scene.requestRender();
  }

  /** Remove everything and give the terrain and tilesets their shadow modes back. */
  destroy() {
    const { scene } = this.viewer;
    this.clear();
    this.offRender();
    scene.primitives.remove(this.hook);
    scene.postProcessStages.remove(this.stage);
    for (const map of this.maps.values()) map.destroy();
    this.maps.clear();
    this.drawn.clear();
    for (const [c, mode] of this.saved) c.shadows = mode;
    this.saved.clear();
    scene.requestRender();
  }
}
