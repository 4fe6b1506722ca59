// @ts-check
// The legend slot in the side panel: every source's entries (title, then swatches).

import { el } from '../util.js';

/**
 * @param {import('../core/legend.js').Legend} legend
 * @param {HTMLElement} container
 * @param {import('../core/bus.js').Bus} bus
 */
export function mountLegend(legend, container, bus) {
  const render = () => {
    container.replaceChildren(
      ...legend.list().map((entry) => {
        const items = entry.items.map((item) => {
          const swatch = el('span', { cls: 'swatch' });
          swatch.style.background = item.color;
          const icon = item.icon ? [el('img', { cls: 'icon', attrs: { src: item.icon, alt: '' } })] : [];
          return el('li', {}, [swatch, ...icon, el('span', { text: item.label })]);
        });
        const parts = entry.title ? [el('h3', { text: entry.title }), el('ul', {}, items)] : [el('ul', {}, items)];
        return el('section', { attrs: { 'data-source': entry.source } }, parts);
      }),
    );
  };
  bus.on('legend:change', render);
  render();
}
