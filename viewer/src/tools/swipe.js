// @ts-check
// 卷帘比对: one layer on the left of a splitter, another on the right (ImageryLayer and
// Cesium3DTileset splitDirection, scene.splitPosition); the handle is dragged across
// the map. Layers not chosen are drawn on both sides as before.
//
// Two builds: when the server serves a second build (`cim serve --compare OTHER`, the
// manifest's server.compare), its building tilesets are offered too ("对比构建 · ..."),
// loaded from /compare/data/ when the tool first opens and shown only while chosen;
// by default the other build is on the left and this one on the right.

import { t } from '../i18n.js';
import { el, fetchJson } from '../util.js';
import { row, toolPanel } from './common.js';

/**
 * The split position (0..1) of a pointer x in an element of a width, kept off the edges.
 * @param {number} x
 * @param {number} left the element's left edge
 * @param {number} width
 */
export function splitFraction(x, left, width) {
  if (!(width > 0)) return 0.5;
  return Math.min(0.99, Math.max(0.01, (x - left) / width));
}

/** @param {import('./common.js').ToolContext} ctx */
export function create(ctx) {
  const Cesium = window.Cesium;
  const { viewer, registry, tree, bus } = ctx;
  const leftSel = /** @type {HTMLSelectElement} */ (el('select', { attrs: { id: 'swipeLeft' } }));
  const rightSel = /** @type {HTMLSelectElement} */ (el('select', { attrs: { id: 'swipeRight' } }));
  const handle = el('div', { attrs: { id: 'swipeHandle', role: 'separator', 'aria-orientation': 'vertical', tabindex: '0' } }, [
    el('span', { cls: 'grip' }),
  ]);
  handle.hidden = true;
  document.body.append(handle);
  /** @type {string[]} */
  let split = [];
  const state = { position: 0.5, left: '', right: '', otherReady: false };
  let active = false;

  /**
   * The other build's building tilesets, by choice id ('compare:l2', ...).
   * @type {Map<string, {id: string, kind: string, labelKey?: string, label: string, object: any, compare: true}>}
   */
  const others = new Map();
  /** @type {Promise<void> | null} */
  let othersLoading = null;
  /** the other build's name and build time, for its labels */
  let otherName = '';

  /** Load the other build's building tilesets once (hidden until chosen). */
  const loadOthers = () => {
    if (!ctx.manifest?.server?.compare) return Promise.resolve();
    othersLoading ||= (async () => {
      const other = await fetchJson('api/compare');
      const base = new URL(other.server?.data_url || 'compare/data/', document.baseURI).href;
      otherName = [other.name, String(other.built_at || '').slice(0, 16).replace('T', ' ')].filter(Boolean).join(' ');
      for (const [key, info] of Object.entries(other.layers || {})) {
        const url = /** @type {any} */ (info)?.url;
        if (!url || !String(url).endsWith('tileset.json')) continue;
        const tileset = await Cesium.Cesium3DTileset.fromUrl(new URL(url, base).href, { maximumScreenSpaceError: 16 });
        tileset.show = false;
        viewer.scene.primitives.add(tileset);
        const id = `compare:${key}`;
        const labelKey = key === 'l3' ? 'layerL3' : key === 'l2' ? 'layerL2' : undefined;
        others.set(id, { id, kind: 'buildings', labelKey, label: key, object: tileset, compare: true });
      }
    })().catch((err) => {
      console.warn('the build to compare with failed to load', err);
      othersLoading = null;
    });
    return othersLoading;
  };

  /** Layers that can be split: imagery layers and tilesets, then the other build's. */
  const splittable = () => [
    ...[...tree.layers.values()].filter((l) => l.object && 'splitDirection' in l.object),
    ...others.values(),
  ];
  const layerName = (/** @type {any} */ l) => {
    const name = l.labelKey ? t(l.labelKey) : l.label || l.id;
    return l.compare ? `${t('swipeOtherBuild')} · ${name}${otherName ? ` (${otherName})` : ''}` : name;
  };
  /** @param {string} id */
  const objectOf = (id) => others.get(id)?.object ?? tree.get(id)?.object;

  const fillSelects = () => {
    for (const [sel, value] of [
      [leftSel, state.left],
      [rightSel, state.right],
    ]) {
      const sel_ = /** @type {HTMLSelectElement} */ (sel);
      sel_.replaceChildren(
        el('option', { text: t('swipeNone'), attrs: { value: '' } }),
        ...splittable().map((l) => el('option', { text: layerName(l), attrs: { value: l.id } })),
      );
      sel_.value = String(value);
    }
  };

  const unsplit = () => {
    for (const id of split) {
      const obj = objectOf(id);
      if (obj) obj.splitDirection = Cesium.SplitDirection.NONE;
    }
    split = [];
    for (const o of others.values()) o.object.show = false;
  };

  const apply = () => {
    unsplit();
    for (const [id, dir] of [
      [state.left, Cesium.SplitDirection.LEFT],
      [state.right, Cesium.SplitDirection.RIGHT],
    ]) {
      const obj = id ? objectOf(String(id)) : null;
      if (!obj) continue;
      obj.splitDirection = dir;
      if (others.has(String(id))) obj.show = true;
      split.push(String(id));
    }
    viewer.scene.splitPosition = state.position;
    placeHandle();
    viewer.scene.requestRender();
  };

  const placeHandle = () => {
    const rect = viewer.scene.canvas.getBoundingClientRect();
    handle.style.left = `${rect.left + state.position * rect.width}px`;
    handle.style.top = `${rect.top}px`;
    handle.style.height = `${rect.height}px`;
  };

  const move = registry.timed('swipe', 'drag', (/** @type {number} */ clientX) => {
    const rect = viewer.scene.canvas.getBoundingClientRect();
    state.position = splitFraction(clientX, rect.left, rect.width);
    viewer.scene.splitPosition = state.position;
    placeHandle();
    viewer.scene.requestRender();
  });
  handle.addEventListener('pointerdown', (event) => {
    handle.setPointerCapture(event.pointerId);
    const onMove = (/** @type {PointerEvent} */ e) => move(e.clientX);
    const onUp = () => {
      handle.removeEventListener('pointermove', onMove);
      handle.removeEventListener('pointerup', onUp);
    };
    handle.addEventListener('pointermove', onMove);
    handle.addEventListener('pointerup', onUp);
    event.preventDefault();
  });
  handle.addEventListener('keydown', (event) => {
    const step = event.key === 'ArrowLeft' ? -0.02 : event.key === 'ArrowRight' ? 0.02 : 0;
    if (!step) return;
    const rect = viewer.scene.canvas.getBoundingClientRect();
    move(rect.left + (state.position + step) * rect.width);
  });
  const onSelect = registry.timed('swipe', 'layers', () => {
    state.left = leftSel.value;
    state.right = rightSel.value;
    apply();
  });
  leftSel.addEventListener('change', onSelect);
  rightSel.addEventListener('change', onSelect);
  window.addEventListener('resize', () => !handle.hidden && placeHandle());

  const element = toolPanel(
    'swipe',
    'toolSwipe',
    [el('p', { cls: 'note', attrs: { 'data-i18n': 'swipeHint' } }), row('swipeLeftLabel', leftSel), row('swipeRightLabel', rightSel)],
    () => registry.deactivate(),
  );
  bus.on('layer:add', () => fillSelects());

  return {
    id: 'swipe',
    labelKey: 'toolSwipe',
    element,
    activate() {
      const ids = splittable().map((l) => l.id);
      // default: the orthophoto against the buildings, else the first two layers
      state.left = ids.includes('imagery') ? 'imagery' : ids[0] || '';
      state.right = ids.find((id) => id !== state.left && tree.get(id)?.kind === 'buildings') || ids.find((id) => id !== state.left) || '';
      state.position = 0.5;
      fillSelects();
      handle.hidden = false;
      apply();
      active = true;
      // with a second build: the other build's buildings left, this build's right
      loadOthers().then(() => {
        const first = [...others.keys()][0];
        if (!active || !first || state.left.startsWith('compare:')) return;
        state.left = first;
        state.right = tree.get(first.slice('compare:'.length)) ? first.slice('compare:'.length) : state.right;
        fillSelects();
        apply();
        state.otherReady = true;
      });
    },
    deactivate() {
      active = false;
      unsplit();
      handle.hidden = true;
      viewer.scene.requestRender();
    },
    relabel: fillSelects,
    api: { state, move, other: (/** @type {string} */ id) => others.get(id)?.object ?? null },
  };
}
