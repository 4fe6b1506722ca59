// @ts-check
// The panel manager: every panel (building info, sensor detail, event list...) lives in
// a slot of the screen. One panel is visible per slot; opening another stacks it on top
// and closing it shows the one below again. Esc closes the panel opened last.

/**
 * @typedef {object} PanelSpec
 * @property {string} slot where it shows ('right', 'left', 'bottom', ...)
 * @property {{hidden: boolean | string}} element its element (shown and hidden by the manager)
 * @property {() => void} [onClose] called after it was closed (e.g. clear a selection)
 * @property {() => void} [onOpen] called after it became visible
 */

/**
 * Whether a key event's target is a field where Esc belongs to the field.
 * @param {any} el
 */
function isTextField(el) {
  if (!el) return false;
  if (el.isContentEditable || el.tagName === 'TEXTAREA') return true;
  return el.tagName === 'INPUT' && ['text', 'search'].includes(String(el.type));
}

export class PanelManager {
  /**
   * @param {import('./bus.js').Bus} [bus] receives panel:open and panel:close {id, slot}
   */
  constructor(bus) {
    this.bus = bus;
    /** @type {Map<string, PanelSpec>} */
    this.panels = new Map();
    /** @type {Map<string, string[]>} slot -> open panel ids, bottom first */
    this.stacks = new Map();
    /** @type {string[]} open panel ids in the order they were opened (for Esc) */
    this.order = [];
  }

  /**
   * Register a panel (hidden until opened).
   * @param {string} id
   * @param {PanelSpec} spec
   */
  register(id, spec) {
    if (this.panels.has(id)) throw new Error(`panel ${id} is already registered`);
    this.panels.set(id, spec);
    spec.element.hidden = true;
  }

  /** @param {string} id */
  spec(id) {
    const spec = this.panels.get(id);
    if (!spec) throw new Error(`no panel ${id}`);
    return spec;
  }

  /**
   * Show a panel on top of its slot (re-opening one already open brings it to the top).
   * @param {string} id
   */
  open(id) {
    const spec = this.spec(id);
    const stack = this.stack(spec.slot);
    const was = stack.indexOf(id);
    if (was >= 0) stack.splice(was, 1);
    const below = stack[stack.length - 1];
    if (below) this.spec(below).element.hidden = true;
    stack.push(id);
    this.order = this.order.filter((p) => p !== id);
    this.order.push(id);
    spec.element.hidden = false;
    if (was < 0) {
      spec.onOpen?.();
      this.bus?.emit('panel:open', { id, slot: spec.slot });
    }
  }

  /**
   * Close a panel; the one below it in its slot shows again. Closing one that is not
   * open does nothing.
   * @param {string} id
   * @returns {boolean} whether it was open
   */
  close(id) {
    const spec = this.spec(id);
    const stack = this.stack(spec.slot);
    const at = stack.indexOf(id);
    if (at < 0) return false;
    stack.splice(at, 1);
    this.order = this.order.filter((p) => p !== id);
    spec.element.hidden = true;
    const top = stack[stack.length - 1];
    if (top) this.spec(top).element.hidden = false;
    spec.onClose?.();
    this.bus?.emit('panel:close', { id, slot: spec.slot });
    return true;
  }

  /** @param {string} id */
  toggle(id) {
    if (this.isOpen(id)) this.close(id);
    else this.open(id);
  }

  /** @param {string} id whether the panel is open (visible or stacked under another) */
  isOpen(id) {
    return this.stack(this.spec(id).slot).includes(id);
  }

  /** @param {string} id whether the panel is the visible one of its slot */
  isVisible(id) {
    return this.visible(this.spec(id).slot) === id;
  }

  /**
   * The visible panel of a slot, or null.
   * @param {string} slot
   */
  visible(slot) {
    const stack = this.stack(slot);
    return stack[stack.length - 1] ?? null;
  }

  /** Close the panel opened last (Esc); returns its id, or null when none is open. */
  closeTop() {
    const id = this.order[this.order.length - 1];
    if (!id) return null;
    this.close(id);
    return id;
  }

  /**
   * Close the panel opened last on Esc, unless the key went to a text field (the search
   * box handles its own Esc).
   * @param {{addEventListener: Function}} target usually document
   */
  attachKeyboard(target) {
    target.addEventListener('keydown', (/** @type {KeyboardEvent} */ event) => {
      if (event.key !== 'Escape' || event.defaultPrevented) return;
      if (isTextField(event.target)) return;
      if (this.closeTop()) event.preventDefault();
    });
  }

  /** @param {string} slot */
  stack(slot) {
    let stack = this.stacks.get(slot);
    if (!stack) this.stacks.set(slot, (stack = []));
    return stack;
  }
}
