// @ts-check
// The toolbar: one button per registered map tool (tools/registry.js); a click opens the
// tool (its options panel in the `tool` slot) or closes it when it is the active one.
// Buttons: #toolbtn-<id>, aria-pressed while their tool is active.

import { el } from '../util.js';

/**
 * @param {import('../tools/registry.js').ToolRegistry} registry
 * @param {import('../core/bus.js').Bus} bus
 * @returns {HTMLElement} the toolbar
 */
export function mountToolbar(registry, bus) {
  const buttons = [...registry.tools.values()].map((tool) => {
    const b = el('button', {
      attrs: { id: `toolbtn-${tool.id}`, type: 'button', 'data-i18n': tool.labelKey, 'aria-pressed': 'false' },
    });
    b.addEventListener('click', () => registry.toggle(tool.id));
    return b;
  });
  const bar = el('nav', { attrs: { id: 'toolbar', 'data-i18n-title': 'tools', role: 'toolbar' } }, buttons);
  document.body.append(bar);
  const mark = (/** @type {string} */ id, /** @type {boolean} */ on) =>
    document.getElementById(`toolbtn-${id}`)?.setAttribute('aria-pressed', String(on));
  bus.on('tool:activate', ({ id }) => mark(id, true));
  bus.on('tool:deactivate', ({ id }) => mark(id, false));
  return bar;
}
