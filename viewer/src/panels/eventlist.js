// @ts-check
// The events section of the side panel: the session's department token (kept in
// sessionStorage only: it goes with every request of this tab and is gone when the tab
// closes), 新建事件 (click the map), 统计 (the 综合评价 charts), the filters (state,
// department, category, overdue), the counts by state and the cases (→ fly to, detail).

import { t } from '../i18n.js';
import { el, debounce } from '../util.js';
import { STATES, api, formatCount, stateColor } from '../layers/events.js';
import { TOKEN_KEY, sessionToken } from '../layers/deptlayers.js';
import { stateName } from './event.js';
import { isComposing } from '../search.js';

/** Cases listed at most (the map shows all the filter selects). */
export const LIST_LIMIT = 200;

/** @param {string | null} token store or forget the session's token */
export function storeToken(token) {
  try {
    if (token) globalThis.sessionStorage?.setItem(TOKEN_KEY, token);
    else globalThis.sessionStorage?.removeItem(TOKEN_KEY);
  } catch {
    // no storage: the token is not kept
  }
}

export class EventList {
  /**
   * @param {any} layer the events layer
   * @param {import('../core/bus.js').Bus} bus
   */
  constructor(layer, bus) {
    this.layer = layer;
    this.bus = bus;
    /** @type {any} */
    this.body = null;
    /** @type {Set<string>} */
    this.seenDepartments = new Set();
    /** @type {any} */
    this.me = null;
    this.seq = 0;
    this.later = debounce(() => this.load(), 800);
    this.heading = el('h2', { text: t('layerEvents') });
    this.tokenInput = /** @type {HTMLInputElement} */ (
      el('input', { attrs: { id: 'evToken', type: 'password', autocomplete: 'off', placeholder: t('evTokenPlaceholder') } })
    );
    this.tokenSave = el('button', { text: t('evTokenSave'), attrs: { id: 'evTokenSave', type: 'button' } });
    this.tokenClear = el('button', { text: t('evTokenClear'), attrs: { id: 'evTokenClear', type: 'button' } });
    this.who = el('p', { cls: 'note', attrs: { id: 'evWho' } });
    this.createBtn = el('button', { text: t('evCreate'), attrs: { id: 'evCreateBtn', type: 'button' } });
    this.statsBtn = el('button', { text: t('evStats'), attrs: { id: 'evStatsBtn', type: 'button' } });
    this.state = /** @type {HTMLSelectElement} */ (el('select', { attrs: { id: 'evFilterState' } }));
    this.department = /** @type {HTMLSelectElement} */ (el('select', { attrs: { id: 'evFilterDept' } }));
    this.category = /** @type {HTMLSelectElement} */ (el('select', { attrs: { id: 'evFilterCat' } }));
    this.overdue = /** @type {HTMLInputElement} */ (el('input', { attrs: { id: 'evFilterOverdue', type: 'checkbox' } }));
    this.overdueLabel = el('label', { text: t('evOnlyOverdue'), attrs: { for: 'evFilterOverdue' } });
    this.text = /** @type {HTMLInputElement} */ (
      el('input', { attrs: { id: 'evFilterText', type: 'search', autocomplete: 'off', maxlength: '100', placeholder: t('evSearchPlaceholder') } })
    );
    this.counts = el('ul', { attrs: { id: 'evCounts' } });
    this.total = el('p', { cls: 'note', attrs: { id: 'evTotal' } });
    this.items = el('ul', { attrs: { id: 'evList' } });
    this.section = el('section', { attrs: { id: 'evSection' } }, [
      this.heading,
      el('div', { cls: 'ev-row' }, [this.tokenInput, this.tokenSave, this.tokenClear]),
      this.who,
      el('div', { cls: 'ev-row' }, [this.createBtn, this.statsBtn]),
      el('div', { cls: 'ev-filters' }, [this.state, this.department, this.category, el('span', { cls: 'check' }, [this.overdue, this.overdueLabel])]),
      el('div', { cls: 'ev-row' }, [this.text]),
      this.counts,
      this.total,
      this.items,
    ]);
    const anchor = document.getElementById('layerPanel');
    if (anchor) anchor.after(this.section);
    else document.getElementById('sidePanel')?.append(this.section);

    this.tokenSave.addEventListener('click', () => this.setToken(this.tokenInput.value.trim() || null));
    this.tokenInput.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') this.setToken(this.tokenInput.value.trim() || null);
    });
    this.tokenClear.addEventListener('click', () => this.setToken(null));
    this.createBtn.addEventListener('click', () => this.layer.panel?.form.start());
    this.statsBtn.addEventListener('click', () => this.openStats());
    const change = () =>
      this.layer.setFilter({
        state: this.state.value,
        department: this.department.value,
        category: this.category.value,
        overdue: this.overdue.checked,
        text: this.text.value.trim(),
      });
    for (const c of [this.state, this.department, this.category, this.overdue]) c.addEventListener('change', change);
    // the text: once typing pauses, and never in the middle of a pinyin composition
    const typed = debounce(() => {
      if (this.text.value.trim() !== (this.layer.filter.text || '')) change();
    }, 400);
    let composing = false;
    this.text.addEventListener('compositionstart', () => {
      composing = true;
      typed.cancel();
    });
    this.text.addEventListener('compositionend', () => {
      composing = false;
      typed();
    });
    this.text.addEventListener('input', (event) => {
      if (!isComposing(/** @type {InputEvent} */ (event), composing)) typed();
    });
    this.fillFilters();
    this.whoAmI();
  }

  /** @param {boolean} on */
  setVisible(on) {
    this.section.hidden = !on;
  }

  /** @param {string | null} token */
  async setToken(token) {
    storeToken(token);
    this.tokenInput.value = '';
    await this.whoAmI();
    this.bus.emit('token:change', { set: Boolean(token) });
    this.layer.panel?.reload();
  }

  async whoAmI() {
    if (!sessionToken()) {
      this.me = null;
      this.who.textContent = t('evNoToken');
      this.section.dataset.department = '';
      return;
    }
    try {
      this.me = await api('api/events/me');
      const roles = (this.me.roles || []).map((/** @type {string} */ r) => (t(`evRole_${r}`) === `evRole_${r}` ? r : t(`evRole_${r}`)));
      this.who.textContent = `${this.me.name || this.me.department}：${roles.join('、') || t('evRole_handler')}`;
      this.section.dataset.department = String(this.me.department);
    } catch (err) {
      this.me = null;
      this.who.textContent = `${t('evBadToken')} (${/** @type {any} */ (err).status || t('disconnected')})`;
      this.section.dataset.department = '';
    }
  }

  fillFilters() {
    const f = this.layer.filter;
    const option = (/** @type {string} */ value, /** @type {string} */ text) => el('option', { text, attrs: { value } });
    this.state.replaceChildren(option('', t('evOpenCases')), option('all', t('evAllCases')), ...STATES.map((s) => option(s, stateName(s))));
    this.state.value = f.state;
    const depts = [...new Set([...this.layer.departments(), ...this.seenDepartments])].sort();
    this.department.replaceChildren(option('', t('evAllDepartments')), ...depts.map((d) => option(d, d)));
    this.department.value = f.department;
    const cats = this.layer.categories?.categories || [];
    this.category.replaceChildren(
      option('', t('evAllCategories')),
      ...cats.map((/** @type {any} */ c) => option(String(c.code), `${c.class} · ${c.name}`)),
    );
    this.category.value = f.category;
    this.overdue.checked = f.overdue;
    if (document.activeElement !== this.text) this.text.value = f.text || '';
    this.text.placeholder = t('evSearchPlaceholder');
  }

  /** Read the counts and the first cases of the filter. */
  async load() {
    const seq = ++this.seq;
    const { filterQuery } = await import('../layers/events.js');
    try {
      const body = await api(`api/events?${filterQuery(this.layer.filter, { limit: LIST_LIMIT })}`);
      if (seq !== this.seq) return;
      this.body = body;
      for (const item of body.items || []) if (item.department) this.seenDepartments.add(String(item.department));
      this.render();
    } catch (err) {
      if (seq === this.seq) this.total.textContent = `${t('evLoadFailed')} (${/** @type {any} */ (err).status || t('disconnected')})`;
    }
  }

  render() {
    this.heading.textContent = t('layerEvents');
    this.tokenInput.placeholder = t('evTokenPlaceholder');
    this.tokenSave.textContent = t('evTokenSave');
    this.tokenClear.textContent = t('evTokenClear');
    this.createBtn.textContent = t('evCreate');
    this.statsBtn.textContent = t('evStats');
    this.overdueLabel.textContent = t('evOnlyOverdue');
    this.fillFilters();
    const body = this.body;
    if (!body) return;
    const counts = Object.entries(body.counts || {}).filter(([, n]) => Number(n) > 0);
    this.counts.replaceChildren(
      ...counts.map(([state, n]) => {
        const swatch = el('span', { cls: 'swatch' });
        swatch.style.background = stateColor(state);
        return el('li', { attrs: { 'data-state': state } }, [swatch, el('span', { text: `${stateName(state)} ${formatCount(Number(n), body.capped)}` })]);
      }),
    );
    this.total.textContent = `${t('evTotal')} ${formatCount(body.total, body.capped)}${body.total > (body.items || []).length ? `（${t('evListed')} ${(body.items || []).length}）` : ''}`;
    this.total.title = body.capped ? t('evCapped') : '';
    this.items.replaceChildren(
      ...(body.items || []).map((/** @type {any} */ e) => {
        const button = el('button', {
          text: `#${e.id} ${e.subcategory_name || e.subcategory} · ${stateName(e.state, e.state_label)}${e.overdue ? ` · ${t('evOverdue')}` : ''}`,
          cls: e.overdue ? 'link overdue' : 'link',
          attrs: { type: 'button', 'data-event': String(e.id), title: t('evFlyTo') },
        });
        button.addEventListener('click', () => this.layer.flyTo(Number(e.id), e.location));
        return el('li', {}, [button]);
      }),
    );
  }

  async openStats() {
    const { openStats } = await import('./eventstats.js');
    openStats(window.cim?.panels, this.layer);
  }
}
