// @ts-check
// Search box over everything (api/search): addresses, place (POI) and building names,
// pinyin (huayansi, hys), building ids and typed coordinates, each result marked with its
// type; choosing one flies there (search:choose {result} on the bus). Reverse lookup
// (api/reverse) of a clicked place.
// Input method editors (pinyin): nothing is searched while a composition is under way;
// the search runs once the composed characters are committed (compositionend).

import { t, onLangChange } from './i18n.js';
import { bus } from './core/bus.js';
import { el, fetchJson, debounce, toast } from './util.js';

/** The label key of each result type (api/search `type`). */
export const RESULT_TYPES = /** @type {Record<string, string>} */ ({
  address: 'searchTypeAddress',
  poi: 'searchTypePoi',
  building: 'searchTypeBuilding',
  coordinate: 'searchTypeCoordinate',
});

/**
 * The type of a result ('address' for results of servers that give none).
 * @param {any} c
 */
export function resultType(c) {
  return c && typeof c.type === 'string' && RESULT_TYPES[c.type] ? c.type : 'address';
}

/**
 * Text shown for a candidate: its label, the joined components, or its coordinates.
 * @param {any} c
 * @returns {string}
 */
export function candidateLabel(c) {
  if (c.label) return String(c.label);
  if (c.address) return String(c.address);
  const comp = c.components;
  if (comp && typeof comp === 'object') {
    if (comp.full) return String(comp.full);
    const parts = Object.values(comp).filter((v) => typeof v === 'string' || typeof v === 'number');
    if (parts.length) return parts.join('');
  }
  return `${Number(c.lon).toFixed(5)}, ${Number(c.lat).toFixed(5)}`;
}

/**
 * Search one address text; resolves to the candidate list.
 * @param {string} q
 * @param {number} [limit]
 * @returns {Promise<any[]>}
 */
export async function searchAddress(q, limit = 8) {
  const params = new URLSearchParams({ q, limit: String(limit) });
  const body = await fetchJson(`api/search?${params}`);
  return body.results || [];
}

/**
 * Nearest address to a point, or null.
 * @param {number} lon
 * @param {number} lat
 * @returns {Promise<any>}
 */
export async function reverseLookup(lon, lat) {
  const params = new URLSearchParams({ lon: lon.toFixed(7), lat: lat.toFixed(7), limit: '1' });
  const body = await fetchJson(`api/reverse?${params}`);
  return (body.results || [])[0] || null;
}

/**
 * Whether an input event belongs to an unfinished composition (pinyin and other IMEs).
 * @param {{isComposing?: boolean}} event
 * @param {boolean} composing whether compositionstart came without compositionend
 */
export function isComposing(event, composing) {
  return composing || Boolean(event.isComposing);
}

/**
 * Wire the search box; onChoose(candidate) flies there.
 * @param {boolean} enabled
 * @param {(candidate: any) => void} onChoose
 */
export function setupSearch(enabled, onChoose) {
  const input = /** @type {HTMLInputElement} */ (document.getElementById('searchInput'));
  const list = /** @type {HTMLElement} */ (document.getElementById('suggestions'));
  /** @type {any[]} */
  let results = [];
  let active = -1;
  let seq = 0;
  let composing = false;
  let searched = 0;

  const close = () => {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    active = -1;
  };
  const render = () => {
    list.replaceChildren(
      ...results.map((c, i) => {
        const type = resultType(c);
        const li = el('li', { attrs: { role: 'option', 'data-index': String(i), 'data-type': type } }, [
          el('span', { cls: `stype stype-${type}`, text: t(RESULT_TYPES[type]) }),
          el('span', { cls: 'slabel', text: candidateLabel(c) }),
        ]);
        if (c.building_id !== undefined && c.building_id !== null && c.building_id !== '') {
          li.dataset.building = String(c.building_id);
        }
        if (i === active) li.setAttribute('aria-selected', 'true');
        li.addEventListener('mousedown', (event) => {
          event.preventDefault();
          choose(i);
        });
        return li;
      }),
    );
    if (!results.length && input.value.trim()) {
      list.replaceChildren(el('li', { text: t('searchNone'), cls: 'empty' }));
    }
    list.hidden = !input.value.trim();
    input.setAttribute('aria-expanded', String(!list.hidden));
  };
  const choose = (/** @type {number} */ i) => {
    const c = results[i];
    if (!c) return;
    input.value = candidateLabel(c);
    close();
    onChoose(c);
    bus.emit('search:choose', { result: c });
  };
  const run = debounce(async () => {
    const q = input.value.trim();
    const mine = ++seq;
    if (!q) {
      results = [];
      close();
      return;
    }
    try {
      searched += 1;
      input.dataset.searches = String(searched);
      const found = await searchAddress(q);
      if (mine !== seq) return;
      results = found;
      active = results.length ? 0 : -1;
      render();
    } catch (err) {
      if (mine !== seq) return;
      results = [];
      close();
      // the server's message is not translated: say it in the interface's language
      const status = /** @type {any} */ (err)?.status;
      toast(status ? `${t('searchFailed')} (${t('httpError')} ${status})` : t('searchFailed'));
    }
  }, 150);

  if (!enabled) {
    input.disabled = true;
    input.dataset.i18nPlaceholder = 'searchUnavailable';
    input.placeholder = t('searchUnavailable');
    return;
  }
  input.addEventListener('compositionstart', () => {
    composing = true;
    run.cancel();
  });
  input.addEventListener('compositionend', () => {
    composing = false;
    run();
  });
  input.addEventListener('input', (event) => {
    if (isComposing(/** @type {InputEvent} */ (event), composing)) return;
    run();
  });
  input.addEventListener('keydown', (event) => {
    // keys that confirm or move inside the input method's candidate list are its own
    if (isComposing(event, composing) || event.keyCode === 229) return;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      if (!results.length) return;
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      active = (active + step + results.length) % results.length;
      render();
    } else if (event.key === 'Enter') {
      event.preventDefault();
      if (results.length) choose(Math.max(active, 0));
      else run();
    } else if (event.key === 'Escape') {
      close();
    }
  });
  input.addEventListener('blur', () => setTimeout(close, 150));
  input.addEventListener('focus', () => {
    if (results.length) render();
  });
  onLangChange(() => {
    if (!list.hidden) render();
  });
}
