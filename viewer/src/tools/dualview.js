// @ts-check
// 多屏比对: the screen split in two, a second Cesium Viewer on the right whose camera
// follows the first one frame by frame (one way: the left view is the one steered).
// The right view shows the same city with its own choice of layers (e.g. the buildings
// against the bare orthophoto); it is destroyed, with its WebGL context, when the tool
// ends.

import { t } from '../i18n.js';
import { el, toast } from '../util.js';
import { toolPanel } from './common.js';
import { dropEntityPicks } from '../interactive.js';

/** @param {import('./common.js').ToolContext} ctx */
export function create(ctx) {
  const Cesium = window.Cesium;
  const { viewer, registry, tree, manifest, dataBase, interactive } = ctx;
  const container = el('div', { attrs: { id: 'compareContainer' } });
  container.hidden = true;
  document.body.append(container);
  const list = el('ul', { cls: 'checks', attrs: { id: 'dualLayers' } });
  /** @type {any} */
  let second = null;
  /** @type {Record<string, any>} the right view's copy of each layer */
  let copies = {};
  /** @type {(() => void) | null} */
  let unsync = null;
  /** @type {(() => void) | null} ends the right view's following of the interactive level */
  let unreduce = null;
  const state = { open: false, follows: 0 };

  /** @type {number[]} the camera last copied (position, direction) */
  let last = [];
  /**
   * Copy the left camera to the right view after each frame of the left one. Timed by
   * hand, not with registry.timed: that asks for a frame of the left view, which would
   * call this again, for ever.
   */
  const follow = () => {
    if (!second) return;
    const start = performance.now();
    const cam = viewer.camera;
    const now = [...Cesium.Cartesian3.pack(cam.positionWC, []), ...Cesium.Cartesian3.pack(cam.directionWC, [])];
    if (now.every((x, i) => x === last[i])) return;
    last = now;
    second.camera.setView({
      destination: cam.positionWC,
      orientation: { direction: cam.directionWC, up: cam.upWC },
    });
    state.follows += 1;
    const entry = { action: 'follow', handler: performance.now() - start, frame: /** @type {number | null} */ (null) };
    const list = (registry.timings.dualview ||= []);
    list.push(entry);
    if (list.length > 100) list.shift();
    const off = second.scene.postRender.addEventListener(() => {
      off();
      entry.frame = performance.now() - start;
    });
    second.scene.requestRender();
  };

  /** The right view's copy of a layer of the tree, or null for kinds it cannot copy. */
  const copyLayer = async (/** @type {any} */ layer) => {
    if (layer.kind === 'imagery' && layer.object?.imageryProvider) {
      const copy = new Cesium.ImageryLayer(layer.object.imageryProvider);
      second.imageryLayers.add(copy);
      return copy;
    }
    if (layer.kind === 'terrain') {
      second.terrainProvider = viewer.terrainProvider;
      return { terrain: true };
    }
    if (layer.kind === 'buildings') {
      const url = manifest?.layers?.[layer.id]?.url;
      if (!url) return null;
      // the left view's full-quality error (it may be drawing a reduced frame now)
      const sse = (interactive ? interactive.fullSse(layer.object) : layer.object?.maximumScreenSpaceError) ?? 16;
      const ts = await Cesium.Cesium3DTileset.fromUrl(new URL(url, dataBase).href, { maximumScreenSpaceError: sse });
      ts.modelMatrix = layer.object?.modelMatrix ?? ts.modelMatrix;
      return second?.scene.primitives.add(ts);
    }
    return null;
  };

  const setCopyShow = (/** @type {string} */ id, /** @type {boolean} */ on) => {
    const copy = copies[id];
    if (!copy || !second) return;
    if (copy.terrain) second.terrainProvider = on ? viewer.terrainProvider : new Cesium.EllipsoidTerrainProvider();
    else copy.show = on;
    second.scene.requestRender();
  };

  const renderList = () => {
    list.replaceChildren(
      ...[...tree.layers.values()]
        .filter((l) => ['imagery', 'terrain', 'buildings'].includes(l.kind))
        .map((l) => {
          const box = /** @type {HTMLInputElement} */ (el('input', { attrs: { type: 'checkbox', id: `dual-${l.id}` } }));
          box.checked = copies[l.id] ? (copies[l.id].terrain ? true : copies[l.id].show) : true;
          box.addEventListener('change', registry.timed('dualview', 'layer', () => setCopyShow(l.id, box.checked)));
          const name = l.labelKey ? t(l.labelKey) : l.label || l.id;
          return el('li', {}, [box, el('label', { text: name, attrs: { for: `dual-${l.id}` } })]);
        }),
    );
  };

  const open = registry.timed('dualview', 'open', () => {
    document.body.classList.add('dual');
    container.hidden = false;
    second = new Cesium.Viewer(container, {
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
      terrainProvider: new Cesium.EllipsoidTerrainProvider(),
      requestRenderMode: true,
      maximumRenderTimeChange: Infinity,
      msaaSamples: 1,
      useBrowserRecommendedResolution: false,
      showRenderLoopErrors: false,
      orderIndependentTranslucency: false,
      skyBox: false,
      skyAtmosphere: false,
    });
    // nothing is selected on the right view (its camera follows the left one): no pick
    // at each click on it
    dropEntityPicks(second);
    second.resolutionScale = interactive ? interactive.fullScale() : viewer.resolutionScale;
    // the right view is drawn at the left one's interactive level: its frames share the
    // GPU (software WebGL draws both on the CPU), a full one would hold the left one back
    const copied = () => Object.values(copies).filter((c) => c instanceof Cesium.Cesium3DTileset);
    unreduce = interactive ? interactive.addView(second, copied) : null;
    const scene = second.scene;
    scene.globe.baseColor = viewer.scene.globe.baseColor;
    scene.globe.depthTestAgainstTerrain = true;
    scene.globe.showGroundAtmosphere = false;
    scene.backgroundColor = viewer.scene.backgroundColor;
    if (scene.sun) scene.sun.show = false;
    if (scene.moon) scene.moon.show = false;
    scene.screenSpaceCameraController.enableInputs = false; // the left view steers
    second.clock.currentTime = viewer.clock.currentTime;
    second.clock.shouldAnimate = false;
    last = [];
    unsync = viewer.scene.postRender.addEventListener(follow);
    follow();
    state.open = true;
    viewer.scene.requestRender();
  });

  const close = () => {
    unsync?.();
    unsync = null;
    unreduce?.();
    unreduce = null;
    if (second) second.destroy();
    second = null;
    copies = {};
    container.hidden = true;
    document.body.classList.remove('dual');
    state.open = false;
    viewer.scene.requestRender();
  };

  const element = toolPanel(
    'dualview',
    'toolDualView',
    [el('p', { cls: 'note', attrs: { 'data-i18n': 'dualHint' } }), el('h3', { attrs: { 'data-i18n': 'dualLayers' } }), list],
    () => registry.deactivate(),
  );

  return {
    id: 'dualview',
    labelKey: 'toolDualView',
    element,
    async activate() {
      open();
      const own = second;
      for (const layer of tree.layers.values()) {
        try {
          const copy = await copyLayer(layer);
          if (second !== own) return; // closed meanwhile
          if (copy) copies[layer.id] = copy;
          interactive?.refresh(); // a tileset copied while reduced is reduced too
        } catch (err) {
          console.warn(`dual view: layer ${layer.id}`, err);
          toast(`${t('loadFailed')}: ${layer.labelKey ? t(layer.labelKey) : layer.id}`);
        }
      }
      renderList();
      second?.scene.requestRender();
    },
    deactivate: close,
    relabel: renderList,
    api: {
      state,
      second: () => second,
      copies: () => copies,
      setLayer: setCopyShow,
    },
  };
}
