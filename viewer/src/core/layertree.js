// @ts-check
// The layer tree: every layer on the map (terrain, imagery, buildings, and later
// sensors, events and departments' layers) in groups, with a toggle and an opacity
// each. Layers come from the manifest's `layers`; each layer kind is one module
// registered with registerLayerKind, so a new kind is one new file (see
// docs/server-viewer.md, "Adding a layer kind").

/**
 * A layer on the map, as the tree sees it.
 * @typedef {object} LayerHandle
 * @property {string} id unique id (the manifest key for built layers)
 * @property {string} kind the layer kind that made it
 * @property {string} [group] group id (default: the kind's group)
 * @property {string} [labelKey] i18n key of its name
 * @property {string} [label] its name as data text (department layers), when no labelKey
 * @property {() => boolean} getShow
 * @property {(on: boolean) => void} setShow
 * @property {() => number} [getOpacity] 0..1; layers without it have no opacity slider
 * @property {(value: number) => void} [setOpacity]
 * @property {any} [object] the underlying Cesium object (tileset, imagery layer...)
 */

/**
 * What a layer kind module exports (its default export or the module namespace).
 * @typedef {object} LayerKind
 * @property {string} group the group its layers go in
 * @property {number} [order] load order: lower first (terrain before what sits on it)
 * @property {(ctx: any, id: string, info: any) => Promise<LayerHandle | null>} create
 *   build the layer from its manifest entry; ctx carries viewer, bus, manifest, dataBase
 */

/**
 * A group of layers.
 * @typedef {object} GroupSpec
 * @property {number} order
 * @property {string} [labelKey]
 * @property {string} [label]
 */

/** @type {Map<string, LayerKind>} */
const kinds = new Map();

/**
 * Register the module that makes layers of a kind.
 * @param {string} kind e.g. 'terrain', 'imagery', 'buildings', 'sensors'
 * @param {LayerKind} module
 */
export function registerLayerKind(kind, module) {
  if (typeof module?.create !== 'function') throw new TypeError(`layer kind ${kind}: no create()`);
  kinds.set(kind, module);
}

/**
 * The module registered for a kind, or undefined.
 * @param {string} kind
 */
export function layerKind(kind) {
  return kinds.get(kind);
}

/** Manifest keys whose entry carries no `kind`. */
export const DEFAULT_KINDS = Object.freeze({
  terrain: 'terrain',
  imagery: 'imagery',
  l2: 'buildings',
  l3: 'buildings',
  pipelines: 'pipelines',
});

/**
 * The kind of a manifest layer entry: its `kind`, else the default for its key, else null.
 * @param {string} key
 * @param {any} info
 * @returns {string | null}
 */
export function kindOf(key, info) {
  if (info && typeof info.kind === 'string' && info.kind) return info.kind;
  return /** @type {Record<string, string>} */ (DEFAULT_KINDS)[key] ?? null;
}

/** @type {Record<string, GroupSpec>} */
export const DEFAULT_GROUPS = {
  base: { order: 0, labelKey: 'groupBase' },
  buildings: { order: 10, labelKey: 'groupBuildings' },
  sensors: { order: 20, labelKey: 'groupSensors' },
  events: { order: 30, labelKey: 'groupEvents' },
};

/** Department groups come after the built-in ones, in the order they are defined. */
const DEPARTMENT_ORDER = 100;

/**
 * @param {number} value
 * @returns {number} value clamped to 0..1 (NaN → 1)
 */
export function clampOpacity(value) {
  const v = Number(value);
  if (!Number.isFinite(v)) return 1;
  return Math.min(1, Math.max(0, v));
}

export class LayerTree {
  /** @param {import('./bus.js').Bus} bus receives layer:add, layer:change, layer:error */
  constructor(bus) {
    this.bus = bus;
    /** @type {Map<string, LayerHandle>} */
    this.layers = new Map();
    /** @type {Map<string, GroupSpec>} */
    this.groups = new Map(Object.entries(DEFAULT_GROUPS));
  }

  /**
   * Define a group (or relabel one).
   * @param {string} id
   * @param {Partial<GroupSpec>} spec
   */
  defineGroup(id, spec) {
    const old = this.groups.get(id);
    this.groups.set(id, { order: old?.order ?? DEPARTMENT_ORDER + this.groups.size, ...old, ...spec });
  }

  /**
   * The group of a department's layers: `department:<id>`, labelled with its name.
   * @param {string} department department id
   * @param {string} [name] its display name (data text)
   * @returns {string} the group id
   */
  departmentGroup(department, name) {
    const id = `department:${department}`;
    if (!this.groups.has(id) || name) this.defineGroup(id, { label: name || department });
    return id;
  }

  /**
   * Add a layer. Its group comes from the handle, else its kind's group, else 'base'.
   * @param {LayerHandle} handle
   */
  add(handle) {
    if (!handle?.id) throw new TypeError('a layer needs an id');
    if (this.layers.has(handle.id)) throw new Error(`layer ${handle.id} is already in the tree`);
    const group = handle.group || kinds.get(handle.kind)?.group || 'base';
    if (!this.groups.has(group)) this.defineGroup(group, { label: group });
    handle.group = group;
    this.layers.set(handle.id, handle);
    this.bus.emit('layer:add', { id: handle.id, group });
    return handle;
  }

  /** @param {string} id */
  get(id) {
    return this.layers.get(id);
  }

  /**
   * Show or hide a layer.
   * @param {string} id
   * @param {boolean} on
   * @returns {boolean} false when there is no such layer
   */
  setShow(id, on) {
    const layer = this.layers.get(id);
    if (!layer) return false;
    layer.setShow(Boolean(on));
    this.changed(layer);
    return true;
  }

  /**
   * Set a layer's opacity (0..1).
   * @param {string} id
   * @param {number} value
   * @returns {boolean} false when there is no such layer or it has no opacity
   */
  setOpacity(id, value) {
    const layer = this.layers.get(id);
    if (!layer?.setOpacity) return false;
    layer.setOpacity(clampOpacity(value));
    this.changed(layer);
    return true;
  }

  /** @param {LayerHandle} layer */
  changed(layer) {
    this.bus.emit('layer:change', {
      id: layer.id,
      show: layer.getShow(),
      opacity: layer.getOpacity ? layer.getOpacity() : null,
    });
  }

  /** Visible state of every layer, by id. */
  states() {
    return Object.fromEntries([...this.layers.values()].map((l) => [l.id, l.getShow()]));
  }

  /** Opacity of every layer that has one, by id. */
  opacities() {
    return Object.fromEntries(
      [...this.layers.values()].filter((l) => l.getOpacity).map((l) => [l.id, l.getOpacity?.()]),
    );
  }

  /**
   * The groups that hold layers, in display order, each with its layers in the order
   * they were added.
   * @returns {{id: string, spec: GroupSpec, layers: LayerHandle[]}[]}
   */
  grouped() {
    /** @type {Map<string, LayerHandle[]>} */
    const byGroup = new Map();
    for (const layer of this.layers.values()) {
      const g = String(layer.group);
      if (!byGroup.has(g)) byGroup.set(g, []);
      byGroup.get(g)?.push(layer);
    }
    return [...byGroup.entries()]
      .map(([id, layers]) => ({ id, spec: this.groups.get(id) || { order: DEPARTMENT_ORDER }, layers }))
      .sort((a, b) => a.spec.order - b.spec.order);
  }

  /**
   * Create a layer for every manifest entry whose kind is registered, in the kinds'
   * load order. A layer that fails is reported (layer:error) and skipped.
   * @param {Record<string, any>} layers the manifest's `layers`
   * @param {any} ctx passed to each kind's create()
   * @returns {Promise<LayerHandle[]>} the layers added
   */
  async load(layers, ctx) {
    const entries = Object.entries(layers || {})
      .map(([id, info]) => ({ id, info, kind: kindOf(id, info) }))
      .filter((e) => e.kind !== null && kinds.has(String(e.kind)));
    const order = (/** @type {string | null} */ k) => kinds.get(String(k))?.order ?? 50;
    entries.sort((a, b) => order(a.kind) - order(b.kind));
    const added = [];
    for (const { id, info, kind } of entries) {
      try {
        const handle = await kinds.get(String(kind))?.create(ctx, id, info);
        if (!handle) continue;
        handle.kind = handle.kind || String(kind);
        added.push(this.add(handle));
      } catch (error) {
        this.bus.emit('layer:error', { id, kind, error });
      }
    }
    return added;
  }
}
