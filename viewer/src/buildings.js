// @ts-check
// Buildings of the L2 tileset: an index of loaded features by id, selection with
// highlight, and thematic styling (by height, by use). What is shown about them lives
// in panels (panels/info.js, panels/theme.js); this module announces building:select
// and buildings:theme on the bus.

import { opacityOf } from './layers/buildings.js';
import { heightColor, useColor } from './colors.js';

const Cesium = window.Cesium;

const HIGHLIGHT = Cesium.Color.fromCssColorString('#ffd400');
/** buildings of a query result (setHighlight) */
const QUERY_HIGHLIGHT = Cesium.Color.fromCssColorString('#00e5ff');
const DEFAULT_COLOR = Cesium.Color.WHITE;

export { HEIGHT_CLASSES, heightColor, useColor } from './colors.js';

const PROPERTY_ORDER = ['id', 'name', 'address', 'use', 'height', 'floors', 'roof_type', 'base'];

/**
 * A feature's property ids, the usual ones first.
 * @param {any} feature
 * @returns {string[]}
 */
export function propertyIds(feature) {
  /** @type {string[]} */
  let ids;
  try {
    ids = feature.getPropertyIds() || [];
  } catch {
    ids = [];
  }
  if (!ids.length) ids = PROPERTY_ORDER.filter((k) => feature.hasProperty?.(k));
  const rank = (/** @type {string} */ k) => (PROPERTY_ORDER.includes(k) ? PROPERTY_ORDER.indexOf(k) : 99);
  return [...new Set(ids)].sort((a, b) => rank(a) - rank(b));
}

/**
 * The metadata schema's `name` of a feature's property (EXT_structural_metadata), or null.
 * @param {any} feature
 * @param {string} key
 * @returns {string | null}
 */
export function schemaName(feature, key) {
  try {
    const cls = feature?.content?.batchTable?._propertyTable?.class;
    const name = cls?.properties?.[key]?.name;
    return typeof name === 'string' && name ? name : null;
  } catch {
    return null;
  }
}

/** The building layer: index of loaded features, selection, thematic styling. */
export class Buildings {
  /**
   * @param {any} viewer the Cesium viewer
   * @param {any} tileset the L2 tileset (thematic styling applies to it)
   * @param {any[]} others further tilesets whose buildings can be picked and highlighted (L3)
   * @param {import('./core/bus.js').Bus} bus receives building:select {id},
   *   buildings:theme {theme}, buildings:loaded {id?}
   */
  constructor(viewer, tileset, others, bus) {
    this.viewer = viewer;
    this.tileset = tileset;
    this.others = others.filter(Boolean);
    this.bus = bus;
    this.pickable = new Set([tileset, ...this.others].filter(Boolean));
    /** @type {Map<string, Set<any>>} id -> Cesium3DTileFeature (one per loaded tile) */
    this.byId = new Map();
    /** @type {string | null} */
    this.selectedId = null;
    /** @type {Set<string> | null} ids of a query result, drawn in QUERY_HIGHLIGHT */
    this.highlightIds = null;
    this.theme = 'none';
    for (const ts of this.pickable) {
      ts.tileLoad.addEventListener((/** @type {any} */ tile) => this.indexContent(tile.content, true));
      ts.tileUnload.addEventListener((/** @type {any} */ tile) => this.indexContent(tile.content, false));
    }
    tileset?.allTilesLoaded.addEventListener(() => bus.emit('buildings:loaded', {}));
    this.applyStyle();
  }

  /**
   * @param {any} content
   * @param {boolean} add
   */
  indexContent(content, add) {
    if (!content) return;
    if (content.innerContents) {
      for (const inner of content.innerContents) this.indexContent(inner, add);
      return;
    }
    const n = content.featuresLength || 0;
    let selectedArrived = false;
    for (let i = 0; i < n; i++) {
      const feature = content.getFeature(i);
      const id = feature.getProperty('id');
      if (id === undefined || id === null) continue;
      const key = String(id);
      let set = this.byId.get(key);
      if (add) {
        if (!set) this.byId.set(key, (set = new Set()));
        set.add(feature);
        if (key === this.selectedId) selectedArrived = true;
      } else if (set) {
        for (const f of set) if (f.content === content || f.tileset === undefined) set.delete(f);
        if (!set.size) this.byId.delete(key);
      }
    }
    if (selectedArrived) this.bus.emit('buildings:loaded', { id: this.selectedId });
  }

  /**
   * A loaded feature for a building id, or null.
   * @param {string | number} id
   */
  feature(id) {
    const set = this.byId.get(String(id));
    if (!set) return null;
    for (const f of set) return f;
    return null;
  }

  /**
   * Building id of a picked object, or null.
   * @param {any} picked
   * @returns {string | null}
   */
  idOf(picked) {
    if (!(picked instanceof Cesium.Cesium3DTileFeature)) return null;
    if (!this.pickable.has(picked.tileset)) return null;
    const id = picked.getProperty('id');
    return id === undefined || id === null ? null : String(id);
  }

  /**
   * Select a building by id (null clears) and highlight it; announces building:select.
   * @param {string | number | null | undefined} id
   */
  select(id) {
    const next = id === null || id === undefined || id === '' ? null : String(id);
    const changed = next !== this.selectedId;
    this.selectedId = next;
    this.tileset?.makeStyleDirty();
    for (const other of this.others) other.makeStyleDirty();
    this.viewer.scene.requestRender();
    document.documentElement.dataset.selected = this.selectedId || '';
    if (changed || next) this.bus.emit('building:select', { id: this.selectedId });
  }

  /**
   * Highlight a set of building ids (a query result) on every tile; null clears.
   * @param {Iterable<string> | null} ids
   */
  setHighlight(ids) {
    this.highlightIds = ids ? new Set([...ids].map(String)) : null;
    this.tileset?.makeStyleDirty();
    this.viewer.scene.requestRender();
  }

  /**
   * Whether a feature is in the highlighted set.
   * @param {any} feature
   */
  isHighlighted(feature) {
    if (!this.highlightIds) return false;
    const id = feature.getProperty('id');
    return id !== undefined && id !== null && this.highlightIds.has(String(id));
  }

  /**
   * Thematic styling: 'none', 'height' or 'use'; announces buildings:theme.
   * @param {string} theme
   */
  setTheme(theme) {
    this.theme = ['height', 'use'].includes(theme) ? theme : 'none';
    this.applyStyle();
    this.bus.emit('buildings:theme', { theme: this.theme });
  }

  /**
   * The colour (CSS) of a feature under the current theme.
   * @param {any} feature
   */
  themeColor(feature) {
    if (this.theme === 'height') return heightColor(feature.getProperty('height'));
    if (this.theme === 'use') return useColor(feature.getProperty('use'));
    return null;
  }

  applyStyle() {
    /** @type {Map<string, any>} */
    const cache = new Map();
    const css = (/** @type {string} */ c) => {
      let color = cache.get(c);
      if (!color) cache.set(c, (color = Cesium.Color.fromCssColorString(c)));
      return color;
    };
    const isSelected = (/** @type {any} */ feature) => {
      const id = feature.getProperty('id');
      return this.selectedId !== null && id !== undefined && String(id) === this.selectedId;
    };
    if (this.tileset) {
      const tileset = this.tileset;
      const style = new Cesium.Cesium3DTileStyle();
      style.color = /** @type {any} */ ({
        evaluateColor: (/** @type {any} */ feature, /** @type {any} */ result) => {
          const themed = this.themeColor(feature);
          const base = isSelected(feature)
            ? HIGHLIGHT
            : this.isHighlighted(feature)
              ? QUERY_HIGHLIGHT
              : themed
                ? css(themed)
                : DEFAULT_COLOR;
          const out = Cesium.Color.clone(base, result);
          out.alpha = opacityOf(tileset);
          return out;
        },
      });
      tileset.colorBlendMode =
        this.theme === 'none' ? Cesium.Cesium3DTileColorBlendMode.HIGHLIGHT : Cesium.Cesium3DTileColorBlendMode.MIX;
      tileset.colorBlendAmount = 0.85;
      tileset.style = style;
    }
    // detailed models keep their own look; only the selection is tinted
    for (const other of this.others) {
      if (other.style) continue;
      const selectOnly = new Cesium.Cesium3DTileStyle();
      selectOnly.color = /** @type {any} */ ({
        evaluateColor: (/** @type {any} */ feature, /** @type {any} */ result) => {
          const out = Cesium.Color.clone(isSelected(feature) ? HIGHLIGHT : DEFAULT_COLOR, result);
          out.alpha = opacityOf(other);
          return out;
        },
      });
      other.style = selectOnly;
    }
    this.viewer.scene.requestRender();
  }

  /**
   * How many loaded buildings have each use (a building loaded in several tiles counts once).
   * @returns {Map<string, number>}
   */
  loadedUseCounts() {
    /** @type {Map<string, number>} */
    const counts = new Map();
    for (const set of this.byId.values()) {
      for (const f of set) {
        const use = f.getProperty('use') || '';
        counts.set(use, (counts.get(use) || 0) + 1);
        break;
      }
    }
    return counts;
  }
}
