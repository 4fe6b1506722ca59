// @ts-check
// 体块比对: a planned scheme (GeoJSON footprints with heights, chosen from a file input or
// dropped on the map) extruded as blocks against the current city: overlaid in a
// translucent colour, the scheme alone (the city's buildings hidden), or the city alone.
// The scheme's figures (blocks, footprint, floor area, tallest) are shown with it.

import { t } from '../i18n.js';
import { el, toast } from '../util.js';
import { parseScheme, schemeStats } from './scheme.js';
import { Sketch, formatArea, formatLength, row, select, toolPanel } from './common.js';

const SCHEME_COLOR = '#ff8c1a';

/** @param {import('./common.js').ToolContext} ctx */
export function create(ctx) {
  const Cesium = window.Cesium;
  const { viewer, registry, tree, manifest } = ctx;
  const file = /** @type {HTMLInputElement} */ (el('input', { attrs: { id: 'massingFile', type: 'file', accept: '.geojson,.json,application/geo+json,application/json' } }));
  const modeSel = select('massingMode', [
    ['overlay', 'massingOverlay'],
    ['scheme', 'massingScheme'],
    ['current', 'massingCurrent'],
  ]);
  const stats = el('p', { cls: 'result', attrs: { id: 'massingStats' } });
  /** @type {Sketch | null} */
  let sketch = null;
  /** @type {any} */
  let primitive = null;
  /** @type {Record<string, boolean>} the buildings' visibility before the tool hid them */
  let cityShown = {};
  const state = { mode: 'overlay', blocks: /** @type {import('./scheme.js').Block[]} */ ([]), name: '', text: '', skipped: 0 };

  const buildingLayers = () => [...tree.layers.values()].filter((l) => l.kind === 'buildings');

  const groundAt = (/** @type {number[]} */ lonlat) => {
    const h = viewer.scene.globe.getHeight(Cesium.Cartographic.fromDegrees(lonlat[0], lonlat[1]));
    return h ?? Number(manifest?.centre?.[2] ?? 0);
  };

  const describe = () => {
    if (!state.blocks.length) {
      state.text = '';
    } else {
      const s = schemeStats(state.blocks);
      state.text = [
        `${t('massingBlocks')} ${s.count}`,
        `${t('massingFootprint')} ${formatArea(s.footprint)}`,
        `${t('massingFloorArea')} ${formatArea(s.floorArea)}`,
        `${t('massingTallest')} ${formatLength(s.tallest)}`,
      ].join(' · ');
    }
    stats.textContent = state.text;
  };

  const applyMode = () => {
    if (primitive) {
      primitive.show = state.mode !== 'current';
      const alpha = state.mode === 'overlay' ? 0.6 : 1;
      const color = Cesium.Color.fromCssColorString(SCHEME_COLOR).withAlpha(alpha);
      for (let i = 0; i < state.blocks.length; i++) {
        const attrs = primitive.ready ? primitive.getGeometryInstanceAttributes(i) : null;
        if (attrs) attrs.color = Cesium.ColorGeometryInstanceAttribute.toValue(color);
      }
    }
    for (const l of buildingLayers()) {
      if (!(l.id in cityShown)) cityShown[l.id] = l.getShow();
      tree.setShow(l.id, state.mode === 'scheme' ? false : cityShown[l.id]);
    }
    viewer.scene.requestRender();
  };

  /**
   * The scheme's blocks as one primitive (translucent, one colour per block).
   * @param {any[]} instances
   */
  const blocksPrimitive = (instances) =>
    new Cesium.Primitive({
      geometryInstances: instances,
      appearance: new Cesium.PerInstanceColorAppearance({ translucent: true, closed: true }),
      asynchronous: false,
      releaseGeometryInstances: false,
    });

  /**
   * The blocks' shaders, compiled after load (warm.js): a block of a square metre at the
   * city centre, drawn the way a scheme is. When the panel opens before the idle warm-up
   * reached it, it is warmed then (`opening`): the file to load is seconds away, and the
   * frame that first shows a scheme must not compile them (software WebGL compiles a
   * program in the frame that first draws it). The blocks switch on nothing the terrain
   * draws (no fogged frame).
   * @returns {import('../warm.js').WarmUp[]}
   */
  const warmUps = () => {
    /** @type {any} */
    let block = null;
    const on = () => {
      const [lon, lat] = manifest?.centre || [0, 0];
      const d = 0.00001;
      const base = groundAt([lon, lat]);
      const color = Cesium.Color.fromCssColorString(SCHEME_COLOR).withAlpha(0.6);
      block = viewer.scene.primitives.add(
        blocksPrimitive([
          new Cesium.GeometryInstance({
            id: 'scheme-warm',
            geometry: new Cesium.PolygonGeometry({
              polygonHierarchy: new Cesium.PolygonHierarchy(Cesium.Cartesian3.fromDegreesArray([lon, lat, lon + d, lat, lon + d, lat + d, lon, lat + d])),
              height: base,
              extrudedHeight: base + 1,
            }),
            attributes: { color: Cesium.ColorGeometryInstanceAttribute.fromColor(color) },
          }),
        ]),
      );
    };
    const off = () => {
      if (block) viewer.scene.primitives.remove(block);
      block = null;
    };
    return [{ name: 'massing', on, off, opening: 'massing', fog: false }];
  };

  const draw = () => {
    if (!sketch) return;
    sketch.clear();
    primitive = null;
    if (!state.blocks.length) return;
    const color = Cesium.Color.fromCssColorString(SCHEME_COLOR).withAlpha(0.6);
    const instances = state.blocks.map((b, i) => {
      const base = b.base ?? groundAt(b.ring[0]);
      const hierarchy = new Cesium.PolygonHierarchy(
        Cesium.Cartesian3.fromDegreesArray(b.ring.flat()),
        b.holes.map((h) => new Cesium.PolygonHierarchy(Cesium.Cartesian3.fromDegreesArray(h.flat()))),
      );
      return new Cesium.GeometryInstance({
        id: `scheme-${i}`,
        geometry: new Cesium.PolygonGeometry({ polygonHierarchy: hierarchy, height: base, extrudedHeight: base + b.height }),
        attributes: { color: Cesium.ColorGeometryInstanceAttribute.fromColor(color) },
      });
    });
    primitive = blocksPrimitive(instances);
    sketch.collection.add(primitive);
    // per-instance colours can be changed once the primitive has been drawn
    const off = viewer.scene.postRender.addEventListener(() => {
      off();
      applyMode();
    });
    applyMode();
  };

  /**
   * Show a scheme from a parsed GeoJSON object.
   * @param {any} geojson
   * @param {string} [name]
   */
  const load = registry.timed('massing', 'load', (geojson, name = '') => {
    let parsed;
    try {
      parsed = parseScheme(geojson);
    } catch {
      toast(t('massingInvalid'));
      return 0;
    }
    if (!parsed.blocks.length) {
      toast(t('massingEmpty'));
      return 0;
    }
    state.blocks = parsed.blocks;
    state.skipped = parsed.skipped;
    state.name = name;
    if (parsed.skipped) toast(`${t('massingSkipped')} ${parsed.skipped}`);
    describe();
    draw();
    return parsed.blocks.length;
  });

  const readFile = async (/** @type {File} */ f) => {
    let json;
    try {
      json = JSON.parse(await f.text());
    } catch {
      toast(t('massingInvalid'));
      return;
    }
    load(json, f.name);
  };
  file.addEventListener('change', () => file.files?.[0] && readFile(file.files[0]));
  modeSel.addEventListener(
    'change',
    registry.timed('massing', 'mode', () => {
      state.mode = modeSel.value;
      applyMode();
    }),
  );
  const canvas = viewer.scene.canvas;
  const onDragOver = (/** @type {DragEvent} */ e) => {
    if (registry.active !== 'massing') return;
    e.preventDefault();
  };
  const onDrop = (/** @type {DragEvent} */ e) => {
    if (registry.active !== 'massing') return;
    e.preventDefault();
    const f = e.dataTransfer?.files?.[0];
    if (f) readFile(f);
  };
  canvas.addEventListener('dragover', onDragOver);
  canvas.addEventListener('drop', onDrop);

  const element = toolPanel(
    'massing',
    'toolMassing',
    [el('p', { cls: 'note', attrs: { 'data-i18n': 'massingHint' } }), row('massingFileLabel', file), row('massingModeLabel', modeSel), stats],
    () => registry.deactivate(),
  );

  return {
    id: 'massing',
    labelKey: 'toolMassing',
    element,
    activate() {
      sketch = new Sketch(viewer);
      cityShown = {};
      draw();
    },
    deactivate() {
      for (const l of buildingLayers()) if (l.id in cityShown) tree.setShow(l.id, cityShown[l.id]);
      cityShown = {};
      sketch?.destroy();
      sketch = null;
      primitive = null;
      viewer.scene.requestRender();
    },
    relabel: describe,
    api: {
      state,
      load,
      setMode: (/** @type {string} */ mode) => {
        modeSel.value = mode;
        modeSel.dispatchEvent(new Event('change'));
      },
      primitive: () => primitive,
    },
    warmUps,
  };
}
