// @ts-check
// Layer kind "terrain": quantized-mesh terrain from terrain/layer.json (vertex normals).
// Switching it off puts the flat ellipsoid back and announces terrain:change, so what
// stands on the terrain (buildings) can follow it down.

/** @typedef {import('../core/layertree.js').LayerHandle} LayerHandle */

export const group = 'base';
export const order = 0;

/**
 * @param {any} ctx {viewer, bus, dataBase}
 * @param {string} id
 * @param {{url: string}} info the manifest entry
 * @returns {Promise<LayerHandle | null>}
 */
export async function create(ctx, id, info) {
  if (!info?.url) return null;
  const Cesium = window.Cesium;
  const { viewer, bus } = ctx;
  const url = new URL(info.url, ctx.dataBase).href;
  const folder = url.replace(/layer\.json(\?.*)?$/, '');
  const provider = await Cesium.CesiumTerrainProvider.fromUrl(folder, { requestVertexNormals: true });
  const flat = new Cesium.EllipsoidTerrainProvider();
  viewer.terrainProvider = provider;
  viewer.scene.globe.enableLighting = true;
  return {
    id,
    kind: 'terrain',
    labelKey: 'layerTerrain',
    object: provider,
    getShow: () => viewer.terrainProvider === provider,
    setShow: (on) => {
      if ((viewer.terrainProvider === provider) === on) return;
      viewer.terrainProvider = on ? provider : flat;
      viewer.scene.globe.enableLighting = on;
      bus.emit('terrain:change', { id, on });
      viewer.scene.requestRender();
    },
  };
}
