// @ts-check
// 卷帘比对: one layer on the left of a splitter, another on the right (ImageryLayer and
// Cesium3DTileset splitDirection, scene.splitPosition); the handle is dragged across
// the map. Layers not chosen are drawn on both sides as before.

import { t } from '../i18n.js';
import { el } from '../util.js';
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
  const state = { position: 0.5, left: '', right: '' };

  /** Layers that can be split: imagery layers and tilesets. */
  const splittable = () => [...tree.layers.values()].filter((l) => l.object && 'splitDirection' in l.object);
  const layerName = (/** @type {any} */ l) => (l.labelKey ? t(l.labelKey) : l.label || l.id);

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
      const obj = tree.get(id)?.object;
      if (obj) obj.splitDirection = Cesium.SplitDirection.NONE;
    }
    split = [];
  };

  const apply = () => {
    unsplit();
    for (const [id, dir] of [
      [state.left, Cesium.SplitDirection.LEFT],
      [state.right, Cesium.SplitDirection.RIGHT],
    ]) {
      const obj = id ? tree.get(String(id))?.object : null;
      if (!obj) continue;
      obj.splitDirection = dir;
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
    },
    deactivate() {
      unsplit();
      handle.hidden = true;
      viewer.scene.requestRender();
    },
    relabel: fillSelects,
    api: { state, move },
  };
}
