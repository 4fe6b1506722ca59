// @ts-check
// 视域 on the GPU: a depth render from the observer, compared with the scene's depth.
//
// The observer is a point light of CesiumJS's ShadowMap (isPointLight): every frame it
// is shown, the terrain and the building tiles are drawn into a cube map of six 90°
// frusta around it, each texel holding the distance of the nearest surface in that
// direction (divided by the radius, packed into RGBA by czm_packDepth). A post-process
// stage then takes each pixel of the view (its position from the depth texture), and
// tints it green when it is no farther from the observer than the nearest surface in
// its direction, red when something stands between. That is one render of 6 faces
// instead of thousands of CPU rays: the cost does not depend on the radius or how
// finely it is sampled.
//
// The map is not one of the sun's (fromLightSource false): nothing else is darkened.
// Scripts and the tests ask visibleAt(point): the cube map is read back once after it
// changed and the same comparison made on the CPU. Only what is loaded for the current
// view casts (the tiles and terrain drawn this frame).

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
 * A viewshed shown on the map: create it once, then setObserver(); destroy() removes it.
 */
export class Viewshed {
  /**
   * @param {any} viewer
   * @param {{size?: number, visible?: string, hidden?: string, opacity?: number}} [options]
   *   size: texels per cube face (default 1024)
   */
  constructor(viewer, options = {}) {
    const Cesium = /** @type {any} */ (window.Cesium);
    this.viewer = viewer;
    this.size = options.size || 1024;
    /** @type {any} */
    this.observer = null;
    this.radius = 0;
    /** @type {any} the ShadowMap */
    this.map = null;
    /** @type {Uint8Array[] | null} the faces read back */
    this.faces = null;
    /** frames drawn with the cube map since setObserver (the first one creates it) */
    this.frames = 0;
    /** @type {(() => void)[]} called after the first frame that shows the viewshed */
    this.waiting = [];
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
          shadowCube: () => this.map?._shadowMapTexture,
          observerEC: () => Cesium.Matrix4.multiplyByPoint(viewer.scene.camera.viewMatrix, this.observer || Cesium.Cartesian3.ZERO, scratch),
          // 0 while warming up: nothing is tinted
          radius: () => (this.warming ? 0 : this.radius),
          texelAngle: () => texelAngle(this.size),
          visibleColor: visible,
          hiddenColor: hidden,
        },
      }),
    );
    this.stage.enabled = false;
    // a primitive that hands the shadow map to the frame: the scene then draws its six
    // passes (the terrain and tiles cast only while this is shown, see #setCasting)
    this.hook = {
      update: (/** @type {any} */ frameState) => {
        if (!this.map || !this.observer) return;
        frameState.shadowMaps.push(this.map);
        // the stage samples the cube map: on from the frame after the one creating it
        this.stage.enabled = Boolean(this.map._shadowMapTexture);
      },
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
   * Show the viewshed from a point out to a radius.
   * @param {any} observer a Cesium.Cartesian3
   * @param {number} radius metres
   */
  setObserver(observer, radius) {
    const Cesium = /** @type {any} */ (window.Cesium);
    this.setCasting();
    if (this.map && this.radius !== radius) {
      // read every frame (the frusta's far plane, the culling sphere, the packing)
      this.map._pointLightRadius = radius;
    }
    if (!this.map) {
      const lightCamera = new Cesium.Camera(this.viewer.scene);
      this.map = new Cesium.ShadowMap({
        context: this.viewer.scene.context,
        lightCamera,
        isPointLight: true,
        pointLightRadius: radius,
        cascadesEnabled: false,
        size: this.size,
        softShadows: false,
        fromLightSource: false,
        normalOffset: false,
      });
      this.map.enabled = true;
      this.stage.enabled = false;
    }
    this.observer = Cesium.Cartesian3.clone(observer);
    this.radius = radius;
    this.warming = false;
    this.map._lightCamera.position = this.observer;
    this.faces = null;
    this.frames = 0;
    this.viewer.scene.requestRender();
  }

  /** After each frame: the cube map may have changed; tell who waits for the first one shown. */
  afterFrame() {
    if (!this.map || !this.observer) return;
    this.faces = null;
    if (!this.stage.enabled) {
      // the cube map was created in this frame: draw the next one with the stage on
      this.viewer.scene.requestRender();
      return;
    }
    this.frames += 1;
    const waiting = this.waiting.splice(0);
    for (const cb of waiting) cb();
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
   * The six faces of the cube map, read back from the GPU (cached until the next frame).
   * @returns {Uint8Array[]}
   */
  readFaces() {
    if (this.faces) return this.faces;
    const context = this.viewer.scene.context;
    const faces = this.map._passes.map((/** @type {any} */ pass) =>
      context.readPixels({ x: 0, y: 0, width: this.size, height: this.size, framebuffer: pass.framebuffer }),
    );
    this.faces = faces;
    return faces;
  }

  /**
   * Whether the observer sees a point: true, false, or null when the point is outside
   * the radius or no viewshed has been drawn yet.
   * @param {any} point a Cesium.Cartesian3
   * @returns {boolean | null}
   */
  visibleAt(point) {
    const Cesium = window.Cesium;
    if (!this.map?._shadowMapTexture || !this.observer || !this.frames || this.warming) return null;
    const d = Cesium.Cartesian3.subtract(point, this.observer, new Cesium.Cartesian3());
    const dist = Cesium.Cartesian3.magnitude(d);
    if (dist > this.radius) return null;
    if (dist < 0.5) return true;
    const { face, x, y } = cubeTexel([d.x, d.y, d.z], this.size);
    const bytes = this.readFaces()[face];
    const i = 4 * (y * this.size + x);
    const nearest = unpackDepth(bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]) * this.radius;
    // the surface's normal is not known here: take the vertical (ground points)
    const up = Cesium.Ellipsoid.WGS84.geodeticSurfaceNormal(point, new Cesium.Cartesian3());
    const cosine = Cesium.Cartesian3.dot(up, d) / dist;
    return dist <= nearest + depthTolerance(dist, texelAngle(this.size), cosine);
  }

  /**
   * Draw the depth render once from a point without showing it: the first frame of a
   * shadow map compiles a shader for every kind of thing drawn (seconds under software
   * WebGL), so this is done when the tool is opened, not on the click.
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

  /** Hide the viewshed (the shadow map stays for the next observer). */
  clear() {
    this.observer = null;
    this.warming = false;
    this.stage.enabled = false;
    this.faces = null;
    this.waiting.length = 0;
    this.viewer.scene.requestRender();
  }

  /** Remove everything and give the terrain and tilesets their shadow modes back. */
  destroy() {
    const { scene } = this.viewer;
    this.clear();
    this.offRender();
    scene.primitives.remove(this.hook);
    scene.postProcessStages.remove(this.stage);
    this.map?.destroy();
    this.map = null;
    for (const [c, mode] of this.saved) c.shadows = mode;
    this.saved.clear();
    scene.requestRender();
  }
}
