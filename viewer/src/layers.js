// City layers from the manifest: terrain, orthophoto, L2 and L3 tilesets, the layer
// panel (toggles; live layers register later through registerLayer) and the loading
// indicator.

import { t, onLangChange } from './i18n.js';
import { el, fetchJson, resolveTemplate, toast } from './util.js';

const Cesium = window.Cesium;

/** Tileset options tuned for a city of many small building tiles. */
export const TILESET_OPTIONS = {
  maximumScreenSpaceError: 16,
  dynamicScreenSpaceError: true,
  foveatedScreenSpaceError: true,
  cullRequestsWhileMoving: true,
  cullRequestsWhileMovingMultiplier: 60,
  preloadFlightDestinations: true,
  skipLevelOfDetail: false,
  shadows: Cesium.ShadowMode.DISABLED,
  cacheBytes: 256 * 1024 * 1024,
  maximumCacheOverflowBytes: 256 * 1024 * 1024,
};

const registry = [];

/**
 * Add a toggle to the layer panel.
 * @param {{id: string, labelKey?: string, label?: string, get: () => boolean,
 *          set: (on: boolean) => void}} layer
 */
export function registerLayer(layer) {
  registry.push(layer);
  renderLayerPanel();
}

/** Visible state of every registered layer, by id. */
export function layerStates() {
  return Object.fromEntries(registry.map((l) => [l.id, l.get()]));
}

/** Switch a registered layer on or off. */
export function setLayer(id, on) {
  const layer = registry.find((l) => l.id === id);
  if (!layer) return false;
  layer.set(Boolean(on));
  renderLayerPanel();
  return true;
}

let onLayerChange = () => {};

/** Called with (id, on) after the user toggles a layer. */
export function setLayerChangeHandler(fn) {
  onLayerChange = fn;
}

function renderLayerPanel() {
  const list = document.getElementById('layerList');
  list.replaceChildren(
    ...registry.map((layer) => {
      const box = el('input', { attrs: { type: 'checkbox', id: `layer-${layer.id}` } });
      box.checked = layer.get();
      box.addEventListener('change', () => {
        layer.set(box.checked);
        onLayerChange(layer.id, box.checked);
      });
      const label = el('label', {
        text: layer.labelKey ? t(layer.labelKey) : layer.label,
        attrs: { for: `layer-${layer.id}` },
      });
      return el('li', { attrs: { 'data-layer': layer.id } }, [box, label]);
    }),
  );
}

onLangChange(renderLayerPanel);

/** Terrain from terrain/layer.json (quantized-mesh with vertex normals). */
async function addTerrain(viewer, url) {
  const folder = url.replace(/layer\.json(\?.*)?$/, '');
  const provider = await Cesium.CesiumTerrainProvider.fromUrl(folder, {
    requestVertexNormals: true,
  });
  const flat = new Cesium.EllipsoidTerrainProvider();
  viewer.terrainProvider = provider;
  viewer.scene.globe.enableLighting = true;
  registerLayer({
    id: 'terrain',
    labelKey: 'layerTerrain',
    get: () => viewer.terrainProvider === provider,
    set: (on) => {
      viewer.terrainProvider = on ? provider : flat;
      viewer.scene.requestRender();
    },
  });
  return provider;
}

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Cesium credits are HTML: escape data text before it becomes one. */
function escapeText(text) {
  return String(text).replace(/[&<>"']/g, (ch) => ESCAPES[ch]);
}

/** Orthophoto tiles described by imagery/tilejson.json. */
async function addImagery(viewer, info, dataBase) {
  const tjUrl = new URL(info.url, dataBase).href;
  const tj = await fetchJson(tjUrl);
  const template = resolveTemplate((tj.tiles || [])[0] || '{z}/{x}/{y}.png', tjUrl);
  // row order: TileJSON "scheme" (xyz | tms); the manifest may call it tile_order
  const order = [tj.scheme, info.tile_order, info.scheme].map((v) => String(v || '').toLowerCase());
  const tms = order.find((v) => v === 'xyz' || v === 'tms') === 'tms';
  const url = tms ? template.replace('{y}', '{reverseY}') : template;
  // tiling scheme: geographic (EPSG:4326) or web mercator (the TileJSON default)
  const projection = [tj.tiling_scheme, tj.crs, tj.projection, info.tiling_scheme, info.scheme, info.crs]
    .map((v) => String(v || ''))
    .join(' ');
  const tilingScheme = /4326|geographic|wgs84/i.test(projection)
    ? new Cesium.GeographicTilingScheme()
    : new Cesium.WebMercatorTilingScheme();
  const bounds = tj.bounds || info.bounds;
  const provider = new Cesium.UrlTemplateImageryProvider({
    url,
    tilingScheme,
    minimumLevel: Number.isInteger(tj.minzoom) ? tj.minzoom : 0,
    maximumLevel: Number.isInteger(tj.maxzoom) ? tj.maxzoom : undefined,
    rectangle: Array.isArray(bounds) ? Cesium.Rectangle.fromDegrees(...bounds) : undefined,
    tileWidth: tj.tileSize || tj.tile_size || info.tile_size || 256,
    tileHeight: tj.tileSize || tj.tile_size || info.tile_size || 256,
    credit: tj.attribution ? new Cesium.Credit(escapeText(tj.attribution)) : undefined,
  });
  const layer = viewer.imageryLayers.addImageryProvider(provider);
  registerLayer({
    id: 'imagery',
    labelKey: 'layerImagery',
    get: () => layer.show,
    set: (on) => {
      layer.show = on;
      viewer.scene.requestRender();
    },
  });
  return layer;
}

/** A 3D Tiles tileset with a panel toggle. */
async function addTileset(viewer, id, labelKey, url, options = {}) {
  const tileset = await Cesium.Cesium3DTileset.fromUrl(url, { ...TILESET_OPTIONS, ...options });
  viewer.scene.primitives.add(tileset);
  registerLayer({
    id,
    labelKey,
    get: () => tileset.show,
    set: (on) => {
      tileset.show = on;
      viewer.scene.requestRender();
    },
  });
  return tileset;
}

/**
 * Load every layer the manifest lists. A layer that fails is reported and skipped.
 * @returns {Promise<{terrain?, imagery?, l2?, l3?}>}
 */
export async function loadLayers(viewer, manifest, dataBase, { sseScale = 1 } = {}) {
  const layers = manifest.layers || {};
  const out = {};
  const abs = (rel) => new URL(rel, dataBase).href;
  const attempt = async (name, fn) => {
    try {
      out[name] = await fn();
    } catch (err) {
      console.warn(`layer ${name} failed to load`, err);
      toast(`${t('loadFailed')}: ${name}`);
    }
  };
  // terrain first: the globe and the buildings' placement depend on it
  if (layers.terrain?.url) await attempt('terrain', () => addTerrain(viewer, abs(layers.terrain.url)));
  if (layers.imagery?.url) await attempt('imagery', () => addImagery(viewer, layers.imagery, dataBase));
  const sse = (value) => value * sseScale;
  if (layers.l2?.url) {
    await attempt('l2', () =>
      addTileset(viewer, 'l2', 'layerL2', abs(layers.l2.url), {
        maximumScreenSpaceError: sse(TILESET_OPTIONS.maximumScreenSpaceError),
      }),
    );
  }
  if (layers.l3?.url) {
    await attempt('l3', () =>
      addTileset(viewer, 'l3', 'layerL3', abs(layers.l3.url), { maximumScreenSpaceError: sse(8) }),
    );
  }
  return out;
}

/** Show a loading indicator while terrain, imagery or tiles stream in. */
export function trackLoading(viewer, tilesets) {
  const box = document.getElementById('loading');
  const text = document.getElementById('loadingText');
  const pending = { globe: 0 };
  const update = () => {
    const total = Object.values(pending).reduce((a, b) => a + b, 0);
    box.hidden = total === 0;
    text.textContent = `${t('loading')}… ${total}`;
    document.documentElement.dataset.loading = String(total);
  };
  viewer.scene.globe.tileLoadProgressEvent.addEventListener((queued) => {
    pending.globe = queued;
    update();
  });
  for (const [name, tileset] of Object.entries(tilesets)) {
    if (!tileset?.loadProgress) continue;
    tileset.loadProgress.addEventListener((requests, processing) => {
      pending[name] = requests + processing;
      update();
    });
    tileset.allTilesLoaded.addEventListener(() => {
      pending[name] = 0;
      update();
    });
  }
  onLangChange(update);
  update();
}
