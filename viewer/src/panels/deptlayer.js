// @ts-check
// The department-layer feature panel (right slot, through the panel manager): a picked
// feature's attributes, every value as text (textContent: a value holding markup shows
// as that markup's characters), and the attribute search within a layer (side panel):
// a layer, a text, the matching features (the server's `q=`) → fly to one and show it.

import { t } from '../i18n.js';
import { formatLonLat } from '../format.js';
import { el, debounce } from '../util.js';
import { featureTitle, geometryBbox } from '../layers/deptlayers.js';

export const PANEL_ID = 'deptlayer';

/**
 * An attribute value as text: numbers and text as they are, objects as JSON.
 * @param {unknown} value
 * @returns {string}
 */
export function valueText(value) {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/**
 * The rows a feature shows: its id, its attributes in their order, and where it is.
 * @param {any} feature a GeoJSON feature
 * @returns {[string, string, string][]} [label, value, key]
 */
export function featureRows(feature) {
  /** @type {[string, string, string][]} */
  const rows = [[t('dlFeatureId'), String(feature?.id ?? '—'), '__id']];
  for (const [k, v] of Object.entries(feature?.properties || {})) rows.push([k, valueText(v), k]);
  const b = geometryBbox(feature?.geometry);
  if (b) rows.push([t('coordinates'), formatLonLat((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), '__where']);
  return rows;
}

export class DeptLayerPanel {
  /**
   * @param {import('../core/panels.js').PanelManager} panels
   * @param {import('../core/bus.js').Bus} bus
   */
  constructor(panels, bus) {
    this.panels = panels;
    this.bus = bus;
    /** @type {number | null} */
    this.layerId = null;
    /** @type {any} */
    this.layer = null;
    /** @type {any} */
    this.feature = null;
    this.title = el('h2', { attrs: { id: 'dlTitle' } });
    this.subtitle = el('p', { cls: 'note', attrs: { id: 'dlLayerName' } });
    const close = el('button', { text: '×', attrs: { id: 'dlClose', type: 'button', 'aria-label': 'close' } });
    close.addEventListener('click', () => this.close());
    this.body = el('tbody');
    this.element = el('aside', { cls: 'side-card', attrs: { id: 'dlPanel', 'aria-live': 'polite' } }, [
      el('header', {}, [this.title, close]),
      this.subtitle,
      el('table', { attrs: { id: 'dlTable' } }, [this.body]),
    ]);
    document.body.append(this.element);
    panels.register(PANEL_ID, {
      slot: 'right',
      element: this.element,
      onClose: () => {
        this.layerId = null;
        this.feature = null;
      },
    });
  }

  /**
   * The panel opens at once with the feature's id while its attributes load.
   * @param {any} layer
   * @param {number} fid
   */
  loading(layer, fid) {
    this.layer = layer;
    this.layerId = layer.id;
    this.feature = { id: fid, properties: {} };
    this.title.textContent = `#${fid}`;
    this.subtitle.textContent = `${layer.name} · ${t('loading')}…`;
    this.body.replaceChildren();
    this.element.dataset.state = 'loading';
    this.panels.open(PANEL_ID);
  }

  /**
   * @param {any} layer
   * @param {number} fid
   * @param {number | undefined} status
   */
  failed(layer, fid, status) {
    if (this.layerId !== layer.id || this.feature?.id !== fid) return;
    this.subtitle.textContent = `${layer.name} · ${t('dlFeatureFailed')}${status ? ` (${status})` : ''}`;
    this.element.dataset.state = 'error';
  }

  /**
   * Show a feature's attributes (text only).
   * @param {any} layer
   * @param {any} feature
   */
  show(layer, feature) {
    this.layer = layer;
    this.layerId = layer.id;
    this.feature = feature;
    this.fill();
    this.panels.open(PANEL_ID);
  }

  fill() {
    const f = this.feature;
    if (!f || !this.layer) return;
    this.title.textContent = featureTitle(this.layer.style, f.properties, f.id);
    this.subtitle.textContent = `${this.layer.name} · ${this.layer.info?.department ?? ''}`;
    this.body.replaceChildren(
      ...featureRows(f).map(([label, value, key]) =>
        el('tr', {}, [el('th', { text: label, attrs: { scope: 'row' } }), el('td', { text: value, attrs: { 'data-key': key } })]),
      ),
    );
    this.element.dataset.state = 'shown';
    this.element.dataset.layer = String(this.layer.id);
    this.element.dataset.fid = String(f.id);
  }

  close() {
    this.panels.close(PANEL_ID);
  }

  refresh() {
    if (this.feature && this.element.dataset.state === 'shown') this.fill();
  }
}

/**
 * The attribute search within a layer, in the side panel under the layer tree.
 * @param {() => any[]} layers the department layers (DeptLayer objects)
 * @param {import('../core/bus.js').Bus} _bus
 */
export function mountLayerSearch(layers, _bus) {
  const heading = el('h2', { text: t('dlSearch') });
  const select = /** @type {HTMLSelectElement} */ (el('select', { attrs: { id: 'dlSearchLayer', 'aria-label': t('dlSearchLayer') } }));
  const input = /** @type {HTMLInputElement} */ (
    el('input', { attrs: { id: 'dlSearchInput', type: 'search', autocomplete: 'off', placeholder: t('dlSearchPlaceholder') } })
  );
  const status = el('p', { cls: 'note', attrs: { id: 'dlSearchStatus' } });
  const list = el('ul', { attrs: { id: 'dlSearchResults' } });
  const section = el('section', { attrs: { id: 'dlSearchPanel' } }, [heading, select, input, status, list]);
  section.hidden = true;
  const anchor = document.getElementById('layerPanel');
  if (anchor) anchor.after(section);
  else document.getElementById('sidePanel')?.append(section);
  let composing = false;
  let seq = 0;

  const run = async () => {
    const q = input.value.trim();
    const layer = layers().find((l) => String(l.id) === select.value);
    const mine = ++seq;
    if (!q || !layer) {
      list.replaceChildren();
      status.textContent = '';
      return;
    }
    status.textContent = `${t('loading')}…`;
    let result;
    try {
      result = await layer.search(q);
    } catch (err) {
      if (mine === seq) status.textContent = `${t('dlSearchFailed')} (${/** @type {any} */ (err).status || t('disconnected')})`;
      return;
    }
    if (mine !== seq) return; // a newer search is under way
    const features = result?.features || [];
    status.textContent = features.length ? `${t('dlSearchMatches')}: ${result.numberMatched ?? features.length}` : t('dlSearchNone');
    list.replaceChildren(
      ...features.map((/** @type {any} */ f) => {
        const button = el('button', {
          text: featureTitle(layer.style, f.properties, f.id),
          cls: 'link',
          attrs: { type: 'button', 'data-fid': String(f.id), title: t('dlFlyTo') },
        });
        button.addEventListener('click', () => layer.flyTo(f));
        return el('li', {}, [button]);
      }),
    );
  };
  const later = debounce(run, 250);
  input.addEventListener('compositionstart', () => {
    composing = true;
  });
  input.addEventListener('compositionend', () => {
    composing = false;
    later();
  });
  input.addEventListener('input', (ev) => {
    if (composing || /** @type {InputEvent} */ (ev).isComposing) return;
    later();
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !composing) {
      later.cancel();
      run();
    }
  });
  select.addEventListener('change', () => run());

  const refresh = () => {
    const all = layers();
    section.hidden = all.length === 0;
    heading.textContent = t('dlSearch');
    input.placeholder = t('dlSearchPlaceholder');
    select.setAttribute('aria-label', t('dlSearchLayer'));
    const current = select.value;
    select.replaceChildren(
      ...all.map((l) => el('option', { text: `${l.name} (${l.info?.department ?? ''})`, attrs: { value: String(l.id) } })),
    );
    if (all.some((l) => String(l.id) === current)) select.value = current;
  };
  refresh();
  return { refresh, run, element: section };
}
