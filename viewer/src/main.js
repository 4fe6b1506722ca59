// CIM unified operation view (城市运行指挥视图): the city's terrain, orthophoto and
// buildings, served by `cim serve` only. No Cesium ion, no CDN, no request to any other
// host (the server's Content-Security-Policy enforces it too).

import { applyI18n, getLang, onLangChange, setLang, t } from './i18n.js';
import { loadLayers, layerStates, registerLayer, setLayer, setLayerChangeHandler, trackLoading } from './layers.js';
import { Buildings } from './buildings.js';
import { Bookmarks, applyView, currentView, flyHome, formatHash, parseHash } from './view.js';
import { candidateLabel, reverseLookup, setupSearch } from './search.js';
import { fetchJson, toast } from './util.js';

const Cesium = window.Cesium;

// Never talk to Cesium ion: no token, no default imagery, no geocoder, no world terrain.
Cesium.Ion.defaultAccessToken = '';
// Loopback/LAN server: allow a few more parallel tile requests than the default.
Cesium.RequestScheduler.maximumRequestsPerServer = 18;

const cim = {
  ready: false,
  error: null,
  viewer: null,
  manifest: null,
  tilesets: {},
  buildings: null,
  lastFlight: null,
  registerLayer,
  setLayer,
  layerStates,
};
window.cim = cim;

function createViewer() {
  const viewer = new Cesium.Viewer('cesiumContainer', {
    baseLayer: false,
    baseLayerPicker: false,
    geocoder: false,
    homeButton: false,
    sceneModePicker: false,
    navigationHelpButton: false,
    animation: false,
    timeline: false,
    fullscreenButton: false,
    infoBox: false,
    selectionIndicator: false,
    vrButton: false,
    projectionPicker: false,
    terrainProvider: new Cesium.EllipsoidTerrainProvider(),
    requestRenderMode: true,
    maximumRenderTimeChange: Infinity,
    msaaSamples: 1,
    // fewer shader programs to compile and fewer passes per frame
    orderIndependentTranslucency: false,
    // a plain night-sky background: no star box, sun, moon or atmosphere to compile and draw
    skyBox: false,
    skyAtmosphere: false,
  });
  const { scene } = viewer;
  scene.globe.baseColor = Cesium.Color.fromCssColorString('#1c2a38');
  scene.globe.depthTestAgainstTerrain = true;
  scene.globe.tileCacheSize = 300;
  scene.globe.preloadSiblings = false;
  scene.backgroundColor = Cesium.Color.fromCssColorString('#0b1320');
  scene.globe.showGroundAtmosphere = false;
  scene.postProcessStages.fxaa.enabled = false;
  scene.highDynamicRange = false;
  if (scene.sun) scene.sun.show = false;
  if (scene.moon) scene.moon.show = false;
  scene.screenSpaceCameraController.enableCollisionDetection = true;
  scene.screenSpaceCameraController.minimumZoomDistance = 5;
  return viewer;
}

/** The WebGL renderer's name ('' when the browser hides it). */
function rendererName() {
  try {
    const gl = document.createElement('canvas').getContext('webgl2');
    const info = gl && gl.getExtension('WEBGL_debug_renderer_info');
    const name = info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : '';
    gl?.getExtension('WEBGL_lose_context')?.loseContext();
    return String(name || '');
  } catch {
    return '';
  }
}

/**
 * Software WebGL (no GPU: virtual desktops, headless browsers) draws every pixel on
 * the CPU: render at half resolution and refine the globe less so the view stays usable.
 */
function tuneForRenderer(viewer) {
  const name = rendererName();
  cim.renderer = name;
  cim.softwareRendering = /swiftshader|llvmpipe|softpipe|software|basic render/i.test(name);
  if (cim.softwareRendering) {
    // screen-space error is measured in drawing-buffer pixels: scale it with the
    // resolution so the same tiles (and buildings) load as at full resolution
    viewer.resolutionScale = 0.5;
    viewer.scene.globe.maximumScreenSpaceError = 2 * viewer.resolutionScale * 2;
  } else {
    viewer.scene.postProcessStages.fxaa.enabled = true;
  }
  document.documentElement.dataset.renderer = cim.softwareRendering ? 'software' : 'gpu';
}

/** Fixed mid-morning sun over the city so lighting does not follow the wall clock. */
function fixSun(viewer, manifest) {
  const lon = Number((manifest.centre || [])[0]) || 0;
  const utcHours = 10 - lon / 15; // 10:00 local solar time
  const date = Cesium.JulianDate.fromIso8601('2024-04-20T00:00:00Z');
  Cesium.JulianDate.addSeconds(date, utcHours * 3600, date);
  viewer.clock.currentTime = date;
  viewer.clock.shouldAnimate = false;
}

function flyToCandidate(viewer, buildings, c) {
  const lon = Number(c.lon);
  const lat = Number(c.lat);
  if (!Number.isFinite(lon) || !Number.isFinite(lat)) return;
  const height = Number.isFinite(Number(c.height)) ? Number(c.height) : 0;
  const target = Cesium.Cartesian3.fromDegrees(lon, lat, height);
  const flight = { lon, lat, height, building: c.building_id ?? null, done: false, label: candidateLabel(c) };
  cim.lastFlight = flight;
  viewer.camera.flyToBoundingSphere(new Cesium.BoundingSphere(target, 40), {
    offset: new Cesium.HeadingPitchRange(0, Cesium.Math.toRadians(-35), 320),
    duration: 1.5,
    complete: () => {
      flight.done = true;
    },
    cancel: () => {
      flight.done = true;
    },
  });
  if (c.building_id !== undefined && c.building_id !== null && c.building_id !== '') {
    buildings.select(String(c.building_id));
  }
  viewer.scene.requestRender();
}

function setupPicking(viewer, buildings, searchEnabled) {
  const handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
  handler.setInputAction(async (event) => {
    const picked = viewer.scene.pick(event.position);
    const id = buildings.idOf(picked);
    if (id) {
      buildings.select(id);
      return;
    }
    buildings.select(null);
    if (!searchEnabled || !viewer.scene.pickPositionSupported) return;
    const position = viewer.scene.pickPosition(event.position);
    if (!position) return;
    const carto = Cesium.Cartographic.fromCartesian(position);
    const lon = Cesium.Math.toDegrees(carto.longitude);
    const lat = Cesium.Math.toDegrees(carto.latitude);
    let label = null;
    try {
      const nearest = await reverseLookup(lon, lat);
      label = nearest ? candidateLabel(nearest) : null;
    } catch {
      label = null;
    }
    buildings.showPlace(lon, lat, label);
  }, Cesium.ScreenSpaceEventType.LEFT_CLICK);
}

function setupHash(viewer, buildings) {
  let written = '';
  const state = () => ({
    v: currentView(viewer),
    b: buildings.selectedId,
    theme: buildings.theme,
    lang: getLang(),
    off: Object.entries(layerStates())
      .filter(([, on]) => !on)
      .map(([id]) => id),
  });
  const write = () => {
    written = formatHash(state());
    if (written !== window.location.hash) window.history.replaceState(null, '', written);
  };
  const apply = (h, duration) => {
    if (h.lang) setLang(h.lang);
    if (h.theme) buildings.setTheme(h.theme);
    for (const id of h.off || []) setLayer(id, false);
    if (h.b) buildings.select(h.b);
    return h.v ? applyView(viewer, h.v, duration) : false;
  };
  viewer.camera.moveEnd.addEventListener(write);
  onLangChange(write);
  buildings.onSelect = write;
  setLayerChangeHandler(write);
  window.addEventListener('hashchange', () => {
    if (window.location.hash !== written) apply(parseHash(), 1.0);
  });
  document.getElementById('shareBtn').addEventListener('click', async () => {
    write();
    try {
      await navigator.clipboard.writeText(window.location.href);
      toast(t('shareCopied'));
    } catch {
      toast(t('shareReady'));
    }
  });
  return { write, apply };
}

async function main() {
  performance.mark('cim:start');
  const initial = parseHash();
  let lang = initial.lang;
  try {
    lang = lang || localStorage.getItem('cim.lang');
  } catch {
    // no storage: default language
  }
  setLang(lang || 'zh');
  document.getElementById('langBtn').addEventListener('click', () => setLang(getLang() === 'zh' ? 'en' : 'zh'));
  onLangChange((code) => {
    const btn = document.getElementById('langBtn');
    btn.textContent = code === 'zh' ? 'English' : '中文';
    btn.lang = code === 'zh' ? 'en' : 'zh-CN';
  });
  setLang(getLang());

  const viewer = createViewer();
  cim.viewer = viewer;
  tuneForRenderer(viewer);
  performance.mark('cim:viewer');

  let manifest;
  try {
    manifest = await fetchJson('api/manifest');
  } catch (err) {
    cim.error = err.message;
    toast(err.status === 404 ? t('noBuild') : err.message, 15000);
    document.documentElement.dataset.ready = 'error';
    return;
  }
  cim.manifest = manifest;
  performance.mark('cim:manifest');
  document.getElementById('cityName').textContent = manifest.name || '';
  fixSun(viewer, manifest);
  const dataBase = new URL(manifest.server?.data_url || 'data/', document.baseURI).href;

  // frame the city at once so the first tile requests are the right ones
  flyHome(viewer, manifest, 0);
  const layers = await loadLayers(viewer, manifest, dataBase, { sseScale: viewer.resolutionScale });
  cim.tilesets = { l2: layers.l2 || null, l3: layers.l3 || null };
  performance.mark('cim:layers');
  cim.layers = layers;
  trackLoading(viewer, { l2: layers.l2, l3: layers.l3 });

  const buildings = new Buildings(viewer, layers.l2 || null, [layers.l3]);
  cim.buildings = buildings;
  const searchEnabled = Boolean(manifest.server?.search ?? manifest.layers?.addresses);
  setupSearch(searchEnabled, (c) => flyToCandidate(viewer, buildings, c));
  setupPicking(viewer, buildings, searchEnabled);
  const hash = setupHash(viewer, buildings);
  new Bookmarks(viewer, manifest.name);

  document.getElementById('themeSelect').addEventListener('change', (event) => {
    buildings.setTheme(event.target.value);
    hash.write();
  });
  document.getElementById('homeBtn').addEventListener('click', () => flyHome(viewer, manifest));
  cim.flyHome = (duration = 1.5) => flyHome(viewer, manifest, duration);
  cim.flyToCandidate = (c) => flyToCandidate(viewer, buildings, c);
  cim.writeHash = hash.write;

  if (!hash.apply(initial, 0)) flyHome(viewer, manifest, 0);
  applyI18n();
  cim.ready = true;
  performance.mark('cim:ready');
  document.documentElement.dataset.ready = 'true';
  viewer.scene.requestRender();
}

main().catch((err) => {
  console.error('viewer failed to start', err);
  cim.error = String(err?.message || err);
  document.documentElement.dataset.ready = 'error';
  toast(cim.error, 15000);
});
