// @ts-check
// 几何量算: distance (a polyline), area (a polygon on the local ENU plane), height (the
// vertical difference between two picks) and angle (at a vertex), on the ground and on
// buildings: every point is picked from the depth buffer (scene.pickPosition). Left
// click adds a point; right click (or 完成) ends the figure; the next click starts anew.

import { t } from '../i18n.js';
import { el } from '../util.js';
import { angleAt, heightDifference, horizontalLength, polygonArea, polylineLength } from './geo.js';
import { Sketch, button, formatAngle, formatArea, formatLength, pickPoint, row, select, toolPanel, vec } from './common.js';

/** Points each mode needs before it is complete (0: any number, ended by the user). */
const NEEDS = /** @type {Record<string, number>} */ ({ distance: 0, area: 0, height: 2, angle: 3 });

/**
 * The result text of a figure (empty until it has enough points).
 * @param {string} mode
 * @param {import('./geo.js').Vec3[]} pts
 */
export function resultText(mode, pts) {
  if (mode === 'distance' && pts.length >= 2) {
    return `${t('measureLength')} ${formatLength(polylineLength(pts))} · ${t('measureHorizontal')} ${formatLength(horizontalLength(pts))}`;
  }
  if (mode === 'area' && pts.length >= 3) return `${t('measureArea')} ${formatArea(polygonArea(pts))}`;
  if (mode === 'height' && pts.length >= 2) {
    const d = heightDifference(pts[0], pts[1]);
    return `${t('measureVertical')} ${formatLength(d.vertical)} · ${t('measureHorizontal')} ${formatLength(d.horizontal)} · ${t('measureSlant')} ${formatLength(d.slant)}`;
  }
  if (mode === 'angle' && pts.length >= 3) return `${t('measureAngle')} ${formatAngle(angleAt(pts[0], pts[1], pts[2]))}`;
  return '';
}

/** @param {import('./common.js').ToolContext} ctx */
export function create(ctx) {
  const Cesium = window.Cesium;
  const { viewer, registry } = ctx;
  const modeSel = select('measureMode', [
    ['distance', 'measureDistance'],
    ['area', 'measureAreaMode'],
    ['height', 'measureHeight'],
    ['angle', 'measureAngleMode'],
  ]);
  const result = el('p', { cls: 'result', attrs: { id: 'measureResult' } });
  const hint = el('p', { cls: 'note', attrs: { 'data-i18n': 'measureHint' } });
  /** @type {any[]} */
  let points = [];
  let finished = false;
  /** @type {Sketch | null} */
  let sketch = null;
  /** @type {any} */
  let handler = null;
  const state = { mode: 'distance', text: '', values: /** @type {number[]} */ ([]) };

  const draw = () => {
    if (!sketch) return;
    sketch.clear();
    const color = Cesium.Color.fromCssColorString('#ffd400');
    for (const p of points) sketch.point(p, color);
    const pts = points.map(vec);
    if (points.length >= 2) {
      const ring = state.mode === 'area' && points.length >= 3 ? [...points, points[0]] : points;
      sketch.line(ring, color);
    }
    if (state.mode === 'area' && points.length >= 3) {
      const hierarchy = new Cesium.PolygonHierarchy(points);
      sketch.geometry([
        new Cesium.GeometryInstance({
          geometry: new Cesium.PolygonGeometry({ polygonHierarchy: hierarchy, perPositionHeight: true }),
          attributes: { color: Cesium.ColorGeometryInstanceAttribute.fromColor(color.withAlpha(0.35)) },
        }),
      ]);
    }
    state.text = resultText(state.mode, pts);
    result.textContent = state.text;
    if (state.text) sketch.label(points[state.mode === 'angle' ? 1 : points.length - 1], state.text.split(' · ')[0]);
    viewer.scene.requestRender();
  };

  const clear = () => {
    points = [];
    finished = false;
    state.text = '';
    result.textContent = '';
    sketch?.clear();
  };

  const add = (/** @type {any} */ position) => {
    // on the CPU (the terrain and the full-detail buildings: interactive.js exactPick),
    // which waits for no frame; the GPU's depth (read back once the frames queued before
    // the click are drawn) only where the CPU meets nothing
    const p = ctx.interactive?.exactPick(position) ?? pickPoint(viewer, position);
    if (!p) return null;
    if (finished) clear();
    points.push(p);
    const need = NEEDS[state.mode];
    if (need && points.length >= need) finished = true;
    draw();
    return p;
  };

  /** The building tilesets shown. */
  const tilesets = () => [...ctx.tree.layers.values()].filter((l) => l.kind === 'buildings' && l.object?.show).map((l) => l.object);
  const warm = () => {
    if (handler) ctx.interactive?.raycaster.warm(tilesets());
  };
  /** @type {(() => void)[]} */
  let unwarm = [];

  const finish = () => {
    finished = points.length > 0;
  };

  modeSel.addEventListener('change', () => {
    state.mode = modeSel.value;
    clear();
  });

  const element = toolPanel(
    'measure',
    'toolMeasure',
    [row('measureModeLabel', modeSel), hint, result, el('div', { cls: 'buttons' }, [button('measureFinish', finish), button('clear', clear)])],
    () => registry.deactivate(),
  );

  return {
    id: 'measure',
    labelKey: 'toolMeasure',
    element,
    capturesClicks: true,
    activate() {
      sketch = new Sketch(viewer);
      handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
      handler.setInputAction(
        registry.timed('measure', 'click', (/** @type {any} */ e) => add(e.position)),
        Cesium.ScreenSpaceEventType.LEFT_CLICK,
      );
      handler.setInputAction(finish, Cesium.ScreenSpaceEventType.RIGHT_CLICK);
      // the building tiles' triangles for the clicks' rays, read now rather than at a click
      setTimeout(warm, 50);
      unwarm = tilesets().map((ts) => ts.allTilesLoaded.addEventListener(() => setTimeout(warm, 0)));
    },
    deactivate() {
      for (const off of unwarm) off();
      unwarm = [];
      handler?.destroy();
      handler = null;
      clear();
      sketch?.destroy();
      sketch = null;
      viewer.scene.requestRender();
    },
    relabel: draw,
    api: {
      state,
      setMode: (/** @type {string} */ mode) => {
        modeSel.value = mode;
        modeSel.dispatchEvent(new Event('change'));
      },
      points: () => points.map(vec),
      finish,
      clear,
    },
  };
}
