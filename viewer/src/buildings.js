// Buildings of the L2 tileset: an index of loaded features by id, selection with
// highlight, the info panel, and thematic styling (by height, by use) with a legend.

import { t, has, onLangChange } from './i18n.js';
import { el } from './util.js';

const Cesium = window.Cesium;

const HIGHLIGHT = Cesium.Color.fromCssColorString('#ffd400');
const DEFAULT_COLOR = Cesium.Color.WHITE;

/** Height classes (metres, lower bound inclusive) and their colours. */
export const HEIGHT_CLASSES = [
  { min: 100, color: '#d73027', label: '≥ 100' },
  { min: 50, color: '#fc8d59', label: '50 – 100' },
  { min: 24, color: '#fee090', label: '24 – 50' },
  { min: 12, color: '#91bfdb', label: '12 – 24' },
  { min: -Infinity, color: '#4575b4', label: '< 12' },
];

/** Colours for common building uses (Chinese and English keys); others get a hashed colour. */
const USE_COLORS = {
  住宅: '#4e79a7', residential: '#4e79a7',
  商业: '#f28e2b', commercial: '#f28e2b',
  办公: '#76b7b2', office: '#76b7b2',
  工业: '#9c755f', industrial: '#9c755f',
  学校: '#59a14f', 教育: '#59a14f', education: '#59a14f', school: '#59a14f',
  医疗: '#e15759', 医院: '#e15759', hospital: '#e15759', health: '#e15759',
  公共: '#b07aa1', public: '#b07aa1', 政府: '#b07aa1', government: '#b07aa1',
};
const PALETTE = ['#edc948', '#ff9da7', '#bab0ac', '#8cd17d', '#86bcb6', '#d4a6c8', '#fabfd2'];
const NO_USE_COLOR = '#9aa5b1';

function hashColor(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

/** Colour (CSS) of a building use value. */
export function useColor(use) {
  if (!use) return NO_USE_COLOR;
  return USE_COLORS[use] || USE_COLORS[String(use).toLowerCase()] || hashColor(String(use));
}

/** Colour (CSS) of a building height in metres. */
export function heightColor(height) {
  const h = Number(height);
  if (!Number.isFinite(h)) return NO_USE_COLOR;
  return HEIGHT_CLASSES.find((c) => h >= c.min).color;
}

const PROPERTY_ORDER = ['id', 'name', 'address', 'use', 'height', 'floors', 'roof_type', 'base'];

function propertyIds(feature) {
  let ids = [];
  try {
    ids = feature.getPropertyIds() || [];
  } catch {
    ids = [];
  }
  if (!ids.length) ids = PROPERTY_ORDER.filter((k) => feature.hasProperty?.(k));
  const rank = (k) => (PROPERTY_ORDER.includes(k) ? PROPERTY_ORDER.indexOf(k) : 99);
  return [...new Set(ids)].sort((a, b) => rank(a) - rank(b));
}

function formatValue(key, value) {
  if (value === undefined || value === null || value === '') return '—';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return '—';
    if (key === 'height' || key === 'base') return `${value.toFixed(1)} ${t('metres')}`;
    return Number.isInteger(value) ? String(value) : value.toFixed(2);
  }
  if (Array.isArray(value) || ArrayBuffer.isView(value)) return Array.from(value).join(', ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** The building layer: selection, info panel, thematic styling. */
export class Buildings {
  /**
   * @param viewer the Cesium viewer
   * @param tileset the L2 tileset (thematic styling applies to it)
   * @param others further tilesets whose buildings can be picked and highlighted (L3)
   */
  constructor(viewer, tileset, others = []) {
    this.viewer = viewer;
    this.tileset = tileset;
    this.others = others.filter(Boolean);
    this.pickable = new Set([tileset, ...this.others].filter(Boolean));
    this.byId = new Map(); // id -> Set of Cesium3DTileFeature (one per loaded tile)
    this.selectedId = null;
    this.theme = 'none';
    this.onSelect = () => {};
    this.panel = document.getElementById('infoPanel');
    document.getElementById('infoClose').addEventListener('click', () => this.select(null));
    if (tileset) {
      tileset.tileLoad.addEventListener((tile) => this.indexContent(tile.content, true));
      tileset.tileUnload.addEventListener((tile) => this.indexContent(tile.content, false));
      tileset.allTilesLoaded.addEventListener(() => {
        if (this.theme === 'use') this.renderLegend();
        if (this.selectedId && this.panel.hidden === false && !this.panelFeature) {
          this.showInfo(this.selectedId);
        }
      });
      this.applyStyle();
    }
    for (const other of this.others) {
      other.tileLoad.addEventListener((tile) => this.indexContent(tile.content, true));
      other.tileUnload.addEventListener((tile) => this.indexContent(tile.content, false));
    }
    onLangChange(() => {
      this.renderLegend();
      if (this.selectedId) this.showInfo(this.selectedId);
    });
  }

  indexContent(content, add) {
    if (!content) return;
    if (content.innerContents) {
      for (const inner of content.innerContents) this.indexContent(inner, add);
      return;
    }
    const n = content.featuresLength || 0;
    for (let i = 0; i < n; i++) {
      const feature = content.getFeature(i);
      const id = feature.getProperty('id');
      if (id === undefined || id === null) continue;
      const key = String(id);
      let set = this.byId.get(key);
      if (add) {
        if (!set) this.byId.set(key, (set = new Set()));
        set.add(feature);
      } else if (set) {
        for (const f of set) if (f.content === content || f.tileset === undefined) set.delete(f);
        if (!set.size) this.byId.delete(key);
      }
    }
    if (add && this.selectedId && this.byId.has(this.selectedId) && !this.panelFeature) {
      this.showInfo(this.selectedId);
    }
  }

  /** A loaded feature for a building id, or null. */
  feature(id) {
    const set = this.byId.get(String(id));
    if (!set) return null;
    for (const f of set) return f;
    return null;
  }

  /** Building id of a picked object, or null. */
  idOf(picked) {
    if (!(picked instanceof Cesium.Cesium3DTileFeature)) return null;
    if (!this.pickable.has(picked.tileset)) return null;
    const id = picked.getProperty('id');
    return id === undefined || id === null ? null : String(id);
  }

  /** Select a building by id (null clears), highlight it and show its metadata. */
  select(id) {
    this.selectedId = id === null || id === undefined ? null : String(id);
    this.panelFeature = null;
    this.tileset?.makeStyleDirty();
    for (const other of this.others) other.makeStyleDirty();
    this.viewer.scene.requestRender();
    if (this.selectedId) this.showInfo(this.selectedId);
    else this.panel.hidden = true;
    document.documentElement.dataset.selected = this.selectedId || '';
    this.onSelect(this.selectedId);
  }

  /** Fill the info panel for a building (text only). */
  showInfo(id) {
    const feature = this.feature(id);
    const title = document.getElementById('infoTitle');
    const body = document.querySelector('#infoTable tbody');
    this.panelFeature = feature;
    const rows = [];
    if (feature) {
      for (const key of propertyIds(feature)) {
        const label = has(`prop_${key}`) ? t(`prop_${key}`) : key;
        rows.push(el('tr', {}, [
          el('th', { text: label, attrs: { scope: 'row' } }),
          el('td', { text: formatValue(key, feature.getProperty(key)), attrs: { 'data-key': key } }),
        ]));
      }
      const name = feature.getProperty('name');
      title.textContent = name ? String(name) : `${t('building')} ${id}`;
    } else {
      title.textContent = `${t('building')} ${id}`;
      rows.push(el('tr', {}, [
        el('th', { text: t('prop_id'), attrs: { scope: 'row' } }),
        el('td', { text: id, attrs: { 'data-key': 'id' } }),
      ]));
    }
    body.replaceChildren(...rows);
    this.panel.hidden = false;
  }

  /** Info panel for a place without a building (e.g. a click on the ground). */
  showPlace(lon, lat, address) {
    this.select(null);
    document.getElementById('infoTitle').textContent = t('location');
    const rows = [
      el('tr', {}, [
        el('th', { text: t('coordinates'), attrs: { scope: 'row' } }),
        el('td', { text: `${lon.toFixed(6)}, ${lat.toFixed(6)}` }),
      ]),
    ];
    if (address) {
      rows.push(el('tr', {}, [
        el('th', { text: t('nearestAddress'), attrs: { scope: 'row' } }),
        el('td', { text: address }),
      ]));
    }
    document.querySelector('#infoTable tbody').replaceChildren(...rows);
    this.panel.hidden = false;
  }

  /** Thematic styling: 'none', 'height' or 'use'. */
  setTheme(theme) {
    this.theme = ['height', 'use'].includes(theme) ? theme : 'none';
    document.getElementById('themeSelect').value = this.theme;
    this.applyStyle();
    this.renderLegend();
  }

  applyStyle() {
    if (!this.tileset) return;
    const cache = new Map();
    const css = (c) => {
      let color = cache.get(c);
      if (!color) cache.set(c, (color = Cesium.Color.fromCssColorString(c)));
      return color;
    };
    const style = new Cesium.Cesium3DTileStyle();
    style.color = {
      evaluateColor: (feature, result) => {
        const id = feature.getProperty('id');
        if (this.selectedId !== null && id !== undefined && String(id) === this.selectedId) {
          return Cesium.Color.clone(HIGHLIGHT, result);
        }
        if (this.theme === 'height') {
          return Cesium.Color.clone(css(heightColor(feature.getProperty('height'))), result);
        }
        if (this.theme === 'use') {
          return Cesium.Color.clone(css(useColor(feature.getProperty('use'))), result);
        }
        return Cesium.Color.clone(DEFAULT_COLOR, result);
      },
    };
    this.tileset.colorBlendMode =
      this.theme === 'none' ? Cesium.Cesium3DTileColorBlendMode.HIGHLIGHT : Cesium.Cesium3DTileColorBlendMode.MIX;
    this.tileset.colorBlendAmount = 0.85;
    this.tileset.style = style;
    // detailed models keep their own look; only the selection is tinted
    for (const other of this.others) {
      if (other.style) continue;
      const selectOnly = new Cesium.Cesium3DTileStyle();
      selectOnly.color = {
        evaluateColor: (feature, result) => {
          const id = feature.getProperty('id');
          const hit = this.selectedId !== null && id !== undefined && String(id) === this.selectedId;
          return Cesium.Color.clone(hit ? HIGHLIGHT : DEFAULT_COLOR, result);
        },
      };
      other.style = selectOnly;
    }
    this.viewer.scene.requestRender();
  }

  renderLegend() {
    const legend = document.getElementById('legend');
    const item = (color, label) => {
      const swatch = el('span', { cls: 'swatch' });
      swatch.style.background = color;
      return el('li', {}, [swatch, el('span', { text: label })]);
    };
    if (this.theme === 'height') {
      legend.replaceChildren(
        ...HEIGHT_CLASSES.map((c) => item(c.color, `${c.label} ${t('metres')}`)),
      );
    } else if (this.theme === 'use') {
      const counts = new Map();
      for (const set of this.byId.values()) {
        for (const f of set) {
          const use = f.getProperty('use') || '';
          counts.set(use, (counts.get(use) || 0) + 1);
          break;
        }
      }
      const uses = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
      legend.replaceChildren(
        ...uses.map(([use, n]) => item(useColor(use), `${use || t('unknown')} (${n})`)),
      );
    } else {
      legend.replaceChildren();
    }
  }
}
