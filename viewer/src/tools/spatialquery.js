// @ts-check
// 空间查询 / 组合条件 / 统计: draw a polygon (left clicks, right click ends) and/or type
// attribute conditions; the server (api/buildings/query) answers the ids and statistics
// over buildings.parquet, not only the loaded tiles. The ids are highlighted on the
// tileset through its style (Buildings.setHighlight), the statistics shown in the panel
// (panels/query.js). 全市统计 shows the whole city's statistics (api/buildings/stats).

import { t } from '../i18n.js';
import { el, toast } from '../util.js';
import { cityStats, queryBuildings, renderStats } from '../panels/query.js';
import { Sketch, button, pickPoint, row, select, toolPanel } from './common.js';

/** @param {import('./common.js').ToolContext} ctx */
export function create(ctx) {
  const Cesium = window.Cesium;
  const { viewer, registry } = ctx;
  const conditions = /** @type {HTMLInputElement} */ (
    el('input', { attrs: { id: 'queryConditions', type: 'text', 'data-i18n-placeholder': 'queryConditionsPlaceholder' } })
  );
  const predicate = select('queryPredicate', [
    ['intersects', 'queryIntersects'],
    ['within', 'queryWithin'],
    ['centroid', 'queryCentroid'],
  ]);
  const result = el('div', { cls: 'queryResult', attrs: { id: 'queryResult' } });
  /** @type {number[][]} lon/lat vertices of the polygon */
  let ring = [];
  /** @type {any[]} */
  let positions = [];
  /** @type {Sketch | null} */
  let sketch = null;
  /** @type {any} */
  let handler = null;
  let closed = false;
  /** @type {{count: number | null, ids: string[], stats: any, running: boolean}} */
  const state = { count: null, ids: [], stats: null, running: false };

  const draw = () => {
    if (!sketch) return;
    sketch.clear();
    const color = Cesium.Color.fromCssColorString('#00e5ff');
    for (const p of positions) sketch.point(p, color);
    if (positions.length >= 2) sketch.line(closed ? [...positions, positions[0]] : positions, color);
    viewer.scene.requestRender();
  };

  const highlight = (/** @type {string[] | null} */ ids) => window.cim?.buildings?.setHighlight(ids);

  const run = async () => {
    if (ring.length < 3 && !conditions.value.trim()) return null;
    state.running = true;
    result.textContent = t('queryRunning');
    try {
      const body = await queryBuildings({
        polygon: ring.length >= 3 ? ring : null,
        conditions: conditions.value,
        predicate: predicate.value,
      });
      state.count = body.count;
      state.ids = body.ids;
      state.stats = body.stats;
      highlight(body.ids);
      renderStats(result, body.stats, 'querySelection');
      return body;
    } catch (err) {
      const status = /** @type {any} */ (err)?.status;
      result.textContent = '';
      toast(status ? `${t('queryFailed')} (${t('httpError')} ${status})` : t('queryFailed'));
      return null;
    } finally {
      state.running = false;
    }
  };

  const showCity = async () => {
    try {
      const stats = await cityStats();
      state.stats = stats;
      renderStats(result, stats, 'queryCityTitle');
      return stats;
    } catch (err) {
      const status = /** @type {any} */ (err)?.status;
      toast(status ? `${t('queryFailed')} (${t('httpError')} ${status})` : t('queryFailed'));
      return null;
    }
  };

  const clear = () => {
    ring = [];
    positions = [];
    closed = false;
    state.count = null;
    state.ids = [];
    state.stats = null;
    result.replaceChildren();
    highlight(null);
    draw();
  };

  const addPoint = registry.timed('query', 'click', (/** @type {any} */ event) => {
    const p = pickPoint(viewer, event.position);
    if (!p) return;
    if (closed) clear();
    const carto = Cesium.Cartographic.fromCartesian(p);
    ring.push([Cesium.Math.toDegrees(carto.longitude), Cesium.Math.toDegrees(carto.latitude)]);
    positions.push(p);
    draw();
  });
  const finish = registry.timed('query', 'finish', () => {
    if (ring.length < 3) return;
    closed = true;
    draw();
    run();
  });

  const element = toolPanel(
    'query',
    'toolQuery',
    [
      el('p', { cls: 'note', attrs: { 'data-i18n': 'queryHint' } }),
      row('queryConditions', conditions),
      row('queryPredicate', predicate),
      el('div', { cls: 'buttons' }, [
        button('queryRun', () => run(), { id: 'queryRun' }),
        button('queryCity', () => showCity(), { id: 'queryCity' }),
        button('clear', clear, { id: 'queryClear' }),
      ]),
      result,
    ],
    () => registry.deactivate(),
  );
  conditions.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') run();
  });

  return {
    id: 'query',
    labelKey: 'toolQuery',
    element,
    capturesClicks: true,
    activate() {
      sketch = new Sketch(viewer);
      handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
      handler.setInputAction(addPoint, Cesium.ScreenSpaceEventType.LEFT_CLICK);
      handler.setInputAction(finish, Cesium.ScreenSpaceEventType.RIGHT_CLICK);
    },
    deactivate() {
      handler?.destroy();
      handler = null;
      clear();
      sketch?.destroy();
      sketch = null;
    },
    api: {
      state,
      /** @param {number[][]} lonlat a polygon's vertices (not closed) */
      setPolygon(lonlat) {
        ring = lonlat.map((p) => [Number(p[0]), Number(p[1])]);
        positions = ring.map(([lon, lat]) => Cesium.Cartesian3.fromDegrees(lon, lat, 0));
        closed = true;
        draw();
      },
      /** @param {string} text */
      setConditions(text) {
        conditions.value = text;
      },
      run,
      showCity,
      clear,
    },
  };
}
