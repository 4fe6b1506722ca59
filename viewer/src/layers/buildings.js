// @ts-check
// Layer kind "buildings": a 3D Tiles tileset of buildings (L2 blocks, L3 models), with an
// opacity (applied by the building style) and a height that follows the terrain: the
// tiles carry ellipsoidal heights that stand on the terrain, so when the terrain is
// switched off they are lowered by the city's ground height onto the ellipsoid.

/** @typedef {import('../core/layertree.js').LayerHandle} LayerHandle */

export const group = 'buildings';
export const order = 10;

/** Tileset options tuned for a city of many small building tiles. */
export function tilesetOptions() {
  return {
    maximumScreenSpaceError: 16,
    dynamicScreenSpaceError: true,
    foveatedScreenSpaceError: true,
    cullRequestsWhileMoving: true,
    cullRequestsWhileMovingMultiplier: 60,
    preloadFlightDestinations: true,
    skipLevelOfDetail: false,
    shadows: window.Cesium.ShadowMode.DISABLED,
    cacheBytes: 256 * 1024 * 1024,
    maximumCacheOverflowBytes: 256 * 1024 * 1024,
  };
}

/** Screen-space error per manifest key (L3 models refine sooner). */
const SSE = /** @type {Record<string, number>} */ ({ l2: 16, l3: 8 });

/**
 * The screen-space error of a building layer at full resolution.
 * @param {string} id the manifest key
 */
export function baseSse(id) {
  return SSE[id] ?? 16;
}

/** @type {WeakMap<object, number>} opacity of each building tileset (0..1) */
const opacities = new WeakMap();

/**
 * The opacity set on a building tileset (1 when none was set).
 * @param {object | null | undefined} tileset
 */
export function opacityOf(tileset) {
  return (tileset && opacities.get(tileset)) ?? 1;
}

/**
 * The height (metres) the buildings are lowered by when the terrain is off: the
 * ellipsoidal ground height at the city centre (manifest `centre[2]`), else 0.
 * @param {any} manifest
 * @returns {number}
 */
export function groundHeight(manifest) {
  const h = Number(manifest?.centre?.[2]);
  return Number.isFinite(h) ? h : 0;
}

/**
 * A model matrix moving a tileset down by `metres` along the vertical at the centre.
 * @param {any} manifest
 * @param {number} metres
 */
export function loweringMatrix(manifest, metres) {
  const Cesium = window.Cesium;
  const [lon, lat] = manifest?.centre || [];
  if (!metres || !Number.isFinite(lon) || !Number.isFinite(lat)) return Cesium.Matrix4.IDENTITY.clone();
  const at = Cesium.Cartesian3.fromDegrees(lon, lat, 0);
  const up = Cesium.Ellipsoid.WGS84.geodeticSurfaceNormal(at, new Cesium.Cartesian3());
  const shift = Cesium.Cartesian3.multiplyByScalar(up, -metres, new Cesium.Cartesian3());
  return Cesium.Matrix4.fromTranslation(shift);
}

/**
 * The tileset a building layer loads. When the L3 layer comes with a `stream` (one
 * hierarchy where the L3 models replace the L2 blocks of the district as the camera
 * comes close), the L2 layer loads that stream and the L3 layer nothing of its own:
 * loading both would draw the district twice.
 * @param {string} id the manifest key
 * @param {any} info the manifest entry
 * @param {any} manifest
 * @returns {string | null} the URL relative to the data folder, or null
 */
export function tilesetUrl(id, info, manifest) {
  const stream = manifest?.layers?.l3?.stream;
  if (id === 'l2' && typeof stream === 'string') return stream;
  if (id === 'l3' && typeof info?.stream === 'string' && manifest?.layers?.l2) return null;
  return info?.url || null;
}

/**
 * @param {any} ctx {viewer, bus, manifest, dataBase, sseScale}
 * @param {string} id the manifest key (l2, l3, ...)
 * @param {any} info the manifest entry ({url} of tileset.json)
 * @returns {Promise<LayerHandle | null>}
 */
export async function create(ctx, id, info) {
  const path = tilesetUrl(id, info, ctx.manifest);
  if (!path) return null;
  const Cesium = window.Cesium;
  const { viewer, bus, manifest } = ctx;
  const sse = baseSse(id) * (ctx.sseScale ?? 1);
  const url = new URL(path, ctx.dataBase).href;
  const tileset = await Cesium.Cesium3DTileset.fromUrl(url, { ...tilesetOptions(), maximumScreenSpaceError: sse });
  viewer.scene.primitives.add(tileset);
  const render = () => viewer.scene.requestRender();
  bus.on('terrain:change', ({ on }) => {
    tileset.modelMatrix = loweringMatrix(manifest, on ? 0 : groundHeight(manifest));
    render();
  });
  return {
    id,
    kind: 'buildings',
    labelKey: id === 'l3' ? 'layerL3' : id === 'l2' ? 'layerL2' : undefined,
    label: info.name || id,
    object: tileset,
    getShow: () => tileset.show,
    setShow: (on) => {
      tileset.show = on;
      render();
    },
    getOpacity: () => opacityOf(tileset),
    setOpacity: (value) => {
      opacities.set(tileset, value);
      tileset.makeStyleDirty();
      render();
    },
  };
}
