// @ts-check
// The map tools of the operation view, in toolbar order. A new tool is one module under
// tools/ exporting create(ctx) → Tool (see registry.js), added to TOOLS here.

import { applyI18n, onLangChange } from '../i18n.js';
import { mountToolbar } from '../panels/toolbar.js';
import { ToolRegistry } from './registry.js';
import { Sketch } from './common.js';
import { mountCompass } from './compass.js';
import * as measure from './measure.js';
import * as clip from './clip.js';
import * as swipe from './swipe.js';
import * as dualview from './dualview.js';
import * as massing from './massing.js';
import * as routes from './routes.js';
import * as shadows from './shadows.js';
import * as sight from './sight.js';
import * as spatialquery from './spatialquery.js';
import * as annotations from '../panels/annotations.js';
import * as locate from '../panels/locate.js';

export const TOOLS = [measure, clip, swipe, dualview, massing, routes, shadows, sight, spatialquery, annotations, locate];

/**
 * Create the registry, every tool, the toolbar and the compass.
 * @param {{viewer: any, bus: import('../core/bus.js').Bus, panels: import('../core/panels.js').PanelManager,
 *   tree: import('../core/layertree.js').LayerTree, manifest: any, dataBase: string,
 *   interactive?: import('../interactive.js').InteractiveFrames}} options `interactive`: draws the frame that
 *   answers an input at the quality that fits the response budget (interactive.js)
 */
export function setupTools({ viewer, bus, panels, tree, manifest, dataBase, interactive }) {
  const registry = new ToolRegistry(bus, panels, {
    nextFrame: (cb) => {
      const off = viewer.scene.postRender.addEventListener(() => {
        off();
        cb();
      });
      if (registry.exactFrames()) interactive?.restore();
      else interactive?.interact();
      viewer.scene.requestRender();
    },
  });
  // opening a tool is an input: CesiumJS's own full frames (tiles loaded) wait for a pause
  // after it (interactive.js deferNow)
  if (interactive) bus.on('tool:activate', () => interactive.noteInput());
  const ctx = { viewer, bus, tree, manifest, dataBase, registry, interactive };
  for (const module of TOOLS) {
    const tool = module.create(ctx);
    document.body.append(tool.element);
    registry.register(tool);
    if (tool.relabel) onLangChange(tool.relabel);
  }
  mountToolbar(registry, bus);
  // the shaders the tools switch on, compiled while the page is idle after load (warm.js)
  const warmUps = [
    sketchWarmUp(viewer, manifest),
    ...[...registry.tools.values()].flatMap((tool) => tool.warmUps?.() ?? []),
  ];
  const compass = mountCompass(viewer, registry);
  applyI18n();
  return { registry, compass, warmUps };
}

/**
 * What the tools draw their inputs with (tools/common.js Sketch: points, lines, labels,
 * and flat coloured geometry, opaque and translucent), at the city centre, for the
 * warm-up after load (warm.js).
 * @param {any} viewer
 * @param {any} manifest
 * @returns {import('../warm.js').WarmUp}
 */
export function sketchWarmUp(viewer, manifest) {
  const Cesium = window.Cesium;
  /** @type {Sketch | null} */
  let sketch = null;
  const on = () => {
    const [lon, lat, h = 0] = manifest?.centre || [0, 0, 0];
    const d = 0.00001;
    sketch = new Sketch(viewer);
    const a = Cesium.Cartesian3.fromDegrees(lon, lat, h);
    const b = Cesium.Cartesian3.fromDegrees(lon + d, lat, h);
    const color = Cesium.Color.fromCssColorString('#ffd400');
    sketch.point(a, color);
    sketch.line([a, b], color);
    sketch.label(a, '0');
    const ring = Cesium.Cartesian3.fromDegreesArray([lon, lat, lon + d, lat, lon + d, lat + d]);
    const instance = () =>
      new Cesium.GeometryInstance({
        geometry: new Cesium.PolygonGeometry({ polygonHierarchy: new Cesium.PolygonHierarchy(ring), height: h }),
        attributes: { color: Cesium.ColorGeometryInstanceAttribute.fromColor(color) },
      });
    sketch.geometry([instance()], false);
    sketch.geometry([instance()], true);
  };
  const off = () => {
    sketch?.destroy();
    sketch = null;
  };
  return { name: 'sketch', on, off };
}
