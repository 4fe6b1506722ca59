// @ts-check
// The info panel (right slot): the selected building's attributes, or a clicked place
// with its nearest address. Text only: every value goes in as textContent.

import { t } from '../i18n.js';
import { formatLonLat, formatValue, propertyLabel } from '../format.js';
import { propertyIds, schemaName } from '../buildings.js';
import { el } from '../util.js';

export const PANEL_ID = 'info';

/**
 * @param {string} label
 * @param {string} value
 * @param {string} [key]
 */
function row(label, value, key) {
  const attrs = key ? { 'data-key': key } : undefined;
  return el('tr', {}, [el('th', { text: label, attrs: { scope: 'row' } }), el('td', { text: value, attrs })]);
}

export class InfoPanel {
  /**
   * @param {import('../core/panels.js').PanelManager} panels
   * @param {import('../core/bus.js').Bus} bus
   * @param {import('../buildings.js').Buildings} buildings
   */
  constructor(panels, bus, buildings) {
    this.panels = panels;
    this.buildings = buildings;
    this.element = /** @type {HTMLElement} */ (document.getElementById('infoPanel'));
    this.title = /** @type {HTMLElement} */ (document.getElementById('infoTitle'));
    this.body = /** @type {HTMLElement} */ (document.querySelector('#infoTable tbody'));
    /** @type {{kind: 'building', id: string, feature: any} | {kind: 'place', lon: number, lat: number, address: string | null} | null} */
    this.shown = null;
    panels.register(PANEL_ID, {
      slot: 'right',
      element: this.element,
      onClose: () => {
        this.shown = null;
        if (buildings.selectedId) buildings.select(null);
      },
    });
    document.getElementById('infoClose')?.addEventListener('click', () => panels.close(PANEL_ID));
    bus.on('building:select', ({ id }) => {
      if (id) this.showBuilding(id);
      else if (this.shown?.kind === 'building') panels.close(PANEL_ID);
    });
    // the selected building's tile arrived after the selection: fill in its attributes
    bus.on('buildings:loaded', () => {
      const shown = this.shown;
      if (shown?.kind === 'building' && !shown.feature && buildings.feature(shown.id)) this.showBuilding(shown.id);
    });
  }

  /** Re-render what is shown (after a language switch). */
  refresh() {
    const shown = this.shown;
    if (shown?.kind === 'building') this.showBuilding(shown.id);
    else if (shown?.kind === 'place') this.showPlace(shown.lon, shown.lat, shown.address);
  }

  /**
   * Fill the panel with a building's attributes (its id alone while its tile is not loaded).
   * @param {string} id
   */
  showBuilding(id) {
    const feature = this.buildings.feature(id);
    this.shown = { kind: 'building', id, feature };
    const rows = [];
    if (feature) {
      for (const key of propertyIds(feature)) {
        rows.push(row(propertyLabel(key, schemaName(feature, key)), formatValue(key, feature.getProperty(key)), key));
      }
      const name = feature.getProperty('name');
      this.title.textContent = name ? String(name) : `${t('building')} ${id}`;
    } else {
      this.title.textContent = `${t('building')} ${id}`;
      rows.push(row(t('prop_id'), id, 'id'));
    }
    this.body.replaceChildren(...rows);
    this.panels.open(PANEL_ID);
  }

  /**
   * A place without a building (a click on the ground).
   * @param {number} lon
   * @param {number} lat
   * @param {string | null} address the nearest address, or null
   */
  showPlace(lon, lat, address) {
    if (this.buildings.selectedId) this.buildings.select(null);
    this.shown = { kind: 'place', lon, lat, address };
    this.title.textContent = t('location');
    const rows = [row(t('coordinates'), formatLonLat(lon, lat))];
    if (address) rows.push(row(t('nearestAddress'), address));
    this.body.replaceChildren(...rows);
    this.panels.open(PANEL_ID);
  }
}
