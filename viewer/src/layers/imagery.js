// @ts-check
// Layer kind "imagery": the orthophoto tile pyramid described by imagery/tilejson.json,
// with an opacity (the imagery layer's alpha).

import { escapeHtml, fetchJson, resolveTemplate } from '../util.js';

/** @typedef {import('../core/layertree.js').LayerHandle} LayerHandle */

export const group = 'base';
export const order = 1;

/**
 * Tile row order and tiling scheme of a TileJSON and its manifest entry.
 * @param {any} tj the TileJSON
 * @param {any} info the manifest entry
 * @returns {{tms: boolean, geographic: boolean}}
 */
export function tileScheme(tj, info) {
  // row order: TileJSON "scheme" (xyz | tms); the manifest may call it tile_order
  const order = [tj.scheme, info.tile_order, info.scheme].map((v) => String(v || '').toLowerCase());
  const tms = order.find((v) => v === 'xyz' || v === 'tms') === 'tms';
  // tiling scheme: geographic (EPSG:4326) or web mercator (the TileJSON default)
  const projection = [tj.tiling_scheme, tj.crs, tj.projection, info.tiling_scheme, info.scheme, info.crs]
    .map((v) => String(v || ''))
    .join(' ');
  return { tms, geographic: /4326|geographic|wgs84/i.test(projection) };
}

/**
 * @param {any} ctx {viewer, dataBase}
 * @param {string} id
 * @param {any} info the manifest entry ({url} of the TileJSON)
 * @returns {Promise<LayerHandle | null>}
 */
export async function create(ctx, id, info) {
  if (!info?.url) return null;
  const Cesium = window.Cesium;
  const { viewer } = ctx;
  const tjUrl = new URL(info.url, ctx.dataBase).href;
  const tj = await fetchJson(tjUrl);
  const template = resolveTemplate((tj.tiles || [])[0] || '{z}/{x}/{y}.png', tjUrl);
  const { tms, geographic } = tileScheme(tj, info);
  const bounds = tj.bounds || info.bounds;
  const size = tj.tileSize || tj.tile_size || info.tile_size || 256;
  const provider = new Cesium.UrlTemplateImageryProvider({
    url: tms ? template.replace('{y}', '{reverseY}') : template,
    tilingScheme: geographic ? new Cesium.GeographicTilingScheme() : new Cesium.WebMercatorTilingScheme(),
    minimumLevel: Number.isInteger(tj.minzoom) ? tj.minzoom : 0,
    maximumLevel: Number.isInteger(tj.maxzoom) ? tj.maxzoom : undefined,
    rectangle: Array.isArray(bounds) ? Cesium.Rectangle.fromDegrees(...bounds) : undefined,
    tileWidth: size,
    tileHeight: size,
    // Cesium credits are HTML: the attribution is data text
    credit: tj.attribution ? new Cesium.Credit(escapeHtml(tj.attribution)) : undefined,
  });
  const layer = viewer.imageryLayers.addImageryProvider(provider);
  const render = () => viewer.scene.requestRender();
  return {
    id,
    kind: 'imagery',
    labelKey: 'layerImagery',
    object: layer,
    getShow: () => layer.show,
    setShow: (on) => {
      layer.show = on;
      render();
    },
    getOpacity: () => layer.alpha,
    setOpacity: (value) => {
      layer.alpha = value;
      render();
    },
  };
}
