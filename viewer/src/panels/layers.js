// @ts-check
// The layer tree in the side panel: a heading per group, a toggle and (for layers that
// have one) an opacity slider per layer. Ids: #layer-<id> (checkbox), #opacity-<id>.

import { t } from '../i18n.js';
import { el } from '../util.js';

/**
 * @param {import('../core/layertree.js').LayerTree} tree
 * @param {HTMLElement} container the list element
 * @param {import('../core/bus.js').Bus} bus
 * @returns {() => void} re-render (after a language switch)
 */
export function mountLayerTree(tree, container, bus) {
  const render = () => {
    const items = [];
    for (const group of tree.grouped()) {
      const title = group.spec.labelKey ? t(group.spec.labelKey) : group.spec.label || group.id;
      items.push(el('li', { text: title, cls: 'group', attrs: { 'data-group': group.id } }));
      for (const layer of group.layers) items.push(layerItem(tree, layer, bus));
    }
    container.replaceChildren(...items);
  };
  bus.on('layer:add', render);
  // update in place: re-rendering would drop a slider in the middle of a drag
  bus.on('layer:change', ({ id, show, opacity }) => {
    const box = /** @type {HTMLInputElement | null} */ (document.getElementById(`layer-${id}`));
    if (box) box.checked = show;
    const slider = /** @type {HTMLInputElement | null} */ (document.getElementById(`opacity-${id}`));
    if (slider && opacity !== null) slider.value = String(Math.round(opacity * 100));
  });
  render();
  return render;
}

/**
 * @param {import('../core/layertree.js').LayerTree} tree
 * @param {import('../core/layertree.js').LayerHandle} layer
 * @param {import('../core/bus.js').Bus} bus
 */
function layerItem(tree, layer, bus) {
  const box = /** @type {HTMLInputElement} */ (el('input', { attrs: { type: 'checkbox', id: `layer-${layer.id}` } }));
  box.checked = layer.getShow();
  box.addEventListener('change', () => {
    tree.setShow(layer.id, box.checked);
    bus.emit('layer:toggled', { id: layer.id, show: box.checked });
  });
  const name = layer.labelKey ? t(layer.labelKey) : layer.label || layer.id;
  const children = [box, el('label', { text: name, attrs: { for: `layer-${layer.id}` } })];
  if (layer.getOpacity) {
    const slider = /** @type {HTMLInputElement} */ (
      el('input', {
        cls: 'opacity',
        attrs: {
          type: 'range',
          min: '0',
          max: '100',
          step: '5',
          id: `opacity-${layer.id}`,
          title: t('opacity'),
          'aria-label': `${name} ${t('opacity')}`,
        },
      })
    );
    slider.value = String(Math.round(layer.getOpacity() * 100));
    slider.addEventListener('input', () => tree.setOpacity(layer.id, Number(slider.value) / 100));
    children.push(slider);
  }
  return el('li', { attrs: { 'data-layer': layer.id } }, children);
}
