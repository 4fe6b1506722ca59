// @ts-check
// The map tools of the operation view, in toolbar order. A new tool is one module under
// tools/ exporting create(ctx) → Tool (see registry.js), added to TOOLS here.

import { applyI18n, onLangChange } from '../i18n.js';
import { mountToolbar } from '../panels/toolbar.js';
import { ToolRegistry } from './registry.js';
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
 *   interactive?: {interact: () => void, restore: () => void}}} options `interactive`: draws the frame that
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
  const ctx = { viewer, bus, tree, manifest, dataBase, registry };
  for (const module of TOOLS) {
    const tool = module.create(ctx);
    document.body.append(tool.element);
    registry.register(tool);
    if (tool.relabel) onLangChange(tool.relabel);
  }
  mountToolbar(registry, bus);
  const compass = mountCompass(viewer, registry);
  applyI18n();
  return { registry, compass };
}
