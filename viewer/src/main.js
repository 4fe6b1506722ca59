// @ts-check
// CIM unified operation view (城市运行指挥视图): the city's terrain, orthophoto and
// buildings, served by `cim serve` only. No Cesium ion, no CDN, no request to any other
// host (the server's Content-Security-Policy enforces it too).
//
// Structure: modules talk over the event bus (core/bus.js); panels open and close
// through the panel manager (core/panels.js); every layer on the map is in the layer
// tree (core/layertree.js), made by the module registered for its kind (layers/*.js).

import { applyI18n, getLang, onLangChange, setLang, t } from './i18n.js';
import { bus } from './core/bus.js';
import { PanelManager } from './core/panels.js';
import { LayerTree, registerLayerKind } from './core/layertree.js';
import { SERVER_LAYERS, registerBuiltinKinds } from './layers.js';
import { baseSse } from './layers/buildings.js';
import { Legend } from './core/legend.js';
import { Connection, httpProbe } from './core/connection.js';
import { Buildings } from './buildings.js';
import { InfoPanel } from './panels/info.js';
import { mountLayerTree } from './panels/layers.js';
import { mountLegend } from './panels/legend.js';
import { mountTheme } from './panels/theme.js';
import { mountDisplay } from './panels/display.js';
import { mountConnection } from './panels/connection.js';
import { Bookmarks, applyView, currentView, flyHome, formatHash, parseHash } from './view.js';
import { candidateLabel, reverseLookup, setupSearch } from './search.js';
import { fetchJson, toast } from './util.js';
import { setupTools } from './tools/index.js';
import { InteractiveFrames, dropEntityPicks } from './interactive.js';
import { Warmer } from './warm.js';

const Cesium = window.Cesium;

// Never talk to Cesium ion: no token, no default imagery, no geocoder, no world terrain.
Cesium.Ion.defaultAccessToken = '';
// Loopback/LAN server: allow a few more parallel tile requests than the default.
Cesium.RequestScheduler.maximumRequestsPerServer = 18;

registerBuiltinKinds();

/** Names of the built layers, for messages about them. */
const LAYER_LABELS = { terrain: 'layerTerrain', imagery: 'layerImagery', l2: 'layerL2', l3: 'layerL3' };

const panels = new PanelManager(bus);
const tree = new LayerTree(bus);
const legend = new Legend(bus);

/** The page's state and hooks, for the modules to come and for the tests. */
const cim = /** @type {any} */ ({
  ready: false,
  error: null,
  viewer: null,
  manifest: null,
  tilesets: {},
  buildings: null,
  lastFlight: null,
  bus,
  panels,
  tree,
  legend,
  registerLayerKind,
  setLayer: (/** @type {string} */ id, /** @type {boolean} */ on) => tree.setShow(id, on),
  layerStates: () => tree.states(),
});
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
    // every device pixel (a 1920 wall is not drawn at half resolution); see panels/display.js
    useBrowserRecommendedResolution: false,
    // Cesium's own error panel is in English: ours says it in the interface's language
    showRenderLoopErrors: false,
    // fewer shader programs to compile and fewer passes per frame
    orderIndependentTranslucency: false,
    // a plain night-sky background: no star box, sun, moon or atmosphere to compile and draw
    skyBox: false,
    skyAtmosphere: false,
  });
  // no entity selection nor tracking (infoBox and selectionIndicator are off): their
  // click handlers would pick before every tool's, drawing the full frame after a reduced one
  dropEntityPicks(viewer);
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
  scene.renderError.addEventListener((/** @type {any} */ _scene, /** @type {any} */ err) => {
    console.error('render error', err);
    toast(t('renderFailed'), 15000);
  });
  return viewer;
}

/** The WebGL renderer's name ('' when the browser hides it). */
function rendererName() {
  try {
    const gl = document.createElement('canvas').getContext('webgl2');
    const info = gl && gl.getExtension('WEBGL_debug_renderer_info');
    const name = gl && info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : '';
    gl?.getExtension('WEBGL_lose_context')?.loseContext();
    return String(name || '');
  } catch {
    return '';
  }
}

/** Record the renderer; only a GPU gets FXAA (software WebGL draws every pixel on the CPU). */
function detectRenderer(/** @type {any} */ viewer) {
  const name = rendererName();
  cim.renderer = name;
  cim.softwareRendering = /swiftshader|llvmpipe|softpipe|software|basic render/i.test(name);
  if (!cim.softwareRendering) viewer.scene.postProcessStages.fxaa.enabled = true;
  document.documentElement.dataset.renderer = cim.softwareRendering ? 'software' : 'gpu';
}

/**
 * Fixed mid-morning sun over the city so lighting does not follow the wall clock.
 * @param {any} viewer
 * @param {any} manifest
 */
function fixSun(viewer, manifest) {
  const lon = Number((manifest.centre || [])[0]) || 0;
  const utcHours = 10 - lon / 15; // 10:00 local solar time
  const date = Cesium.JulianDate.fromIso8601('2024-04-20T00:00:00Z');
  Cesium.JulianDate.addSeconds(date, utcHours * 3600, date);
  viewer.clock.currentTime = date;
  viewer.clock.shouldAnimate = false;
}

/**
 * @param {any} viewer
 * @param {Buildings} buildings
 * @param {any} c a search candidate
 */
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

/**
 * @param {any} viewer
 * @param {Buildings} buildings
 * @param {InfoPanel} info
 * @param {boolean} searchEnabled
 */
function setupPicking(viewer, buildings, info, searchEnabled) {
  const handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
  handler.setInputAction(async (/** @type {any} */ event) => {
    if (cim.tools?.capturesClicks()) return; // a map tool (measure, clip...) takes the click
    if (cim.clickMode) return; // a layer waits for this click (placing a new event)
    const picked = viewer.scene.pick(event.position);
    if (picked?.id?.layerPick) return; // a layer's own object (a sensor): that layer handles the click
    if (picked?.tileset?.layerPick) return; // a layer's own tileset (pipelines): likewise
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
    /** @type {string | null} */
    let label;
    try {
      const nearest = await reverseLookup(lon, lat);
      label = nearest ? candidateLabel(nearest) : null;
    } catch {
      label = null;
    }
    info.showPlace(lon, lat, label);
  }, Cesium.ScreenSpaceEventType.LEFT_CLICK);
}

/**
 * The shareable URL hash: camera, selection, theme, language, layers switched off.
 * @param {any} viewer
 * @param {Buildings} buildings
 */
function setupHash(viewer, buildings) {
  let written = '';
  const state = () => ({
    v: currentView(viewer),
    b: buildings.selectedId,
    theme: buildings.theme,
    lang: getLang(),
    off: Object.entries(tree.states())
      .filter(([, on]) => !on)
      .map(([id]) => id),
  });
  const write = () => {
    written = formatHash(state());
    if (written !== window.location.hash) window.history.replaceState(null, '', written);
  };
  const apply = (/** @type {any} */ h, /** @type {number} */ duration) => {
    if (h.lang) setLang(h.lang);
    if (h.theme) buildings.setTheme(h.theme);
    for (const id of h.off || []) tree.setShow(id, false);
    if (h.b) buildings.select(h.b);
    return h.v ? applyView(viewer, h.v, duration) : false;
  };
  viewer.camera.moveEnd.addEventListener(write);
  onLangChange(write);
  for (const name of ['building:select', 'buildings:theme', 'layer:change']) bus.on(name, write);
  window.addEventListener('hashchange', () => {
    if (window.location.hash !== written) apply(parseHash(), 1.0);
  });
  document.getElementById('shareBtn')?.addEventListener('click', async () => {
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

function setupLanguage() {
  const initial = parseHash();
  /** @type {string | null | undefined} */
  let lang = initial.lang;
  try {
    lang = lang || localStorage.getItem('cim.lang') || undefined;
  } catch {
    // no storage: default language
  }
  const btn = /** @type {HTMLButtonElement} */ (document.getElementById('langBtn'));
  btn.addEventListener('click', () => setLang(getLang() === 'zh' ? 'en' : 'zh'));
  onLangChange((code) => {
    btn.textContent = code === 'zh' ? 'English' : '中文';
    btn.lang = code === 'zh' ? 'en' : 'zh-CN';
  });
  setLang(lang || 'zh');
  return initial;
}

function setupConnection() {
  const connection = new Connection(bus, { probe: httpProbe('api/health'), interval: 10000, retry: 2000 });
  cim.connection = connection;
  const render = mountConnection(connection, bus);
  onLangChange(render);
  connection.start();
}

async function main() {
  performance.mark('cim:start');
  const initial = setupLanguage();
  panels.attachKeyboard(document);
  setupConnection();
  const layerPanel = mountLayerTree(tree, /** @type {HTMLElement} */ (document.getElementById('layerList')), bus);
  onLangChange(layerPanel);
  mountLegend(legend, /** @type {HTMLElement} */ (document.getElementById('legend')), bus);

  const viewer = createViewer();
  cim.viewer = viewer;
  detectRenderer(viewer);
  performance.mark('cim:viewer');

  let manifest;
  try {
    manifest = await fetchJson('api/manifest');
  } catch (err) {
    const status = /** @type {any} */ (err).status;
    cim.error = String(/** @type {any} */ (err).message);
    toast(status === 404 ? t('noBuild') : `${t('manifestFailed')} (${status || t('disconnected')})`, 15000);
    document.documentElement.dataset.ready = 'error';
    return;
  }
  cim.manifest = manifest;
  performance.mark('cim:manifest');
  /** @type {HTMLElement} */ (document.getElementById('cityName')).textContent = manifest.name || '';
  fixSun(viewer, manifest);
  const dataBase = new URL(manifest.server?.data_url || 'data/', document.baseURI).href;

  // frame the city at once so the first tile requests are the right ones
  flyHome(viewer, manifest, 0);
  bus.on('layer:error', ({ id, error }) => {
    console.warn(`layer ${id} failed to load`, error);
    const key = /** @type {Record<string, string>} */ (LAYER_LABELS)[id];
    toast(`${t('loadFailed')}: ${key ? t(key) : id}`);
  });
  await tree.load({ ...SERVER_LAYERS, ...manifest.layers }, { viewer, bus, manifest, dataBase, sseScale: 1 });
  const l2 = tree.get('l2')?.object || null;
  const l3 = tree.get('l3')?.object || null;
  cim.tilesets = { l2, l3 };
  performance.mark('cim:layers');
  trackLoading(viewer, { l2, l3 });

  const buildingTilesets = () =>
    [...tree.layers.values()]
      .filter((l) => l.kind === 'buildings')
      .map((l) => ({ tileset: l.object, sse: baseSse(l.id) }));
  // the frame answering a tool's input is drawn at a quality that fits 200 ms (interactive.js)
  const interactive = new InteractiveFrames(viewer, buildingTilesets);
  cim.interactive = interactive;
  cim.setPerformanceMode = mountDisplay(viewer, buildingTilesets, () => interactive.reset());

  const buildings = new Buildings(viewer, l2, [l3], bus);
  cim.buildings = buildings;
  const info = new InfoPanel(panels, bus, buildings);
  cim.info = info;
  onLangChange(() => info.refresh());
  const themeRefresh = mountTheme(buildings, legend, bus, manifest);
  onLangChange(themeRefresh);
  const searchEnabled = Boolean(manifest.server?.search ?? manifest.layers?.addresses);
  // names, ids and coordinates are searched in the buildings table even without addresses
  setupSearch(searchEnabled || Boolean(manifest.server?.buildings), (c) => flyToCandidate(viewer, buildings, c));
  setupPicking(viewer, buildings, info, searchEnabled);
  const hash = setupHash(viewer, buildings);
  new Bookmarks(viewer, manifest.name);
  const tools = setupTools({ viewer, bus, panels, tree, manifest, dataBase, interactive });
  cim.tools = tools.registry;
  cim.compass = tools.compass;
  // the tools' shaders compiled while the page is idle after load (warm.js)
  const warmer = new Warmer(viewer, tools.registry, interactive);
  interactive.onInput = () => warmer.input();
  cim.warmer = warmer;

  document.getElementById('homeBtn')?.addEventListener('click', () => flyHome(viewer, manifest));
  cim.flyHome = (duration = 1.5) => flyHome(viewer, manifest, duration);
  cim.flyToCandidate = (/** @type {any} */ c) => flyToCandidate(viewer, buildings, c);
  cim.writeHash = hash.write;

  if (!hash.apply(initial, 0)) flyHome(viewer, manifest, 0);
  applyI18n();
  cim.ready = true;
  performance.mark('cim:ready');
  document.documentElement.dataset.ready = 'true';
  viewer.scene.requestRender();
  warmer.add(tools.warmUps);
}

/**
 * Show a loading indicator while terrain, imagery or tiles stream in.
 * @param {any} viewer
 * @param {Record<string, any>} tilesets
 */
function trackLoading(viewer, tilesets) {
  const box = /** @type {HTMLElement} */ (document.getElementById('loading'));
  const text = /** @type {HTMLElement} */ (document.getElementById('loadingText'));
  /** @type {Record<string, number>} */
  const pending = { globe: 0 };
  const update = () => {
    const total = Object.values(pending).reduce((a, b) => a + b, 0);
    box.hidden = total === 0;
    text.textContent = `${t('loading')}… ${total}`;
    document.documentElement.dataset.loading = String(total);
  };
  viewer.scene.globe.tileLoadProgressEvent.addEventListener((/** @type {number} */ queued) => {
    pending.globe = queued;
    update();
  });
  for (const [name, tileset] of Object.entries(tilesets)) {
    if (!tileset?.loadProgress) continue;
    tileset.loadProgress.addEventListener((/** @type {number} */ requests, /** @type {number} */ processing) => {
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

main().catch((err) => {
  console.error('viewer failed to start', err);
  cim.error = String(err?.message || err);
  document.documentElement.dataset.ready = 'error';
  toast(t('startFailed'), 15000);
});
