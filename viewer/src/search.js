// Address search box with suggestions (api/search) and reverse lookup (api/reverse).

import { t, onLangChange } from './i18n.js';
import { el, fetchJson, debounce, toast } from './util.js';

/** Text shown for a candidate: its label, the joined components, or its coordinates. */
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

/** Search one address text; resolves to the candidate list. */
export async function searchAddress(q, limit = 8) {
  const params = new URLSearchParams({ q, limit: String(limit) });
  const body = await fetchJson(`api/search?${params}`);
  return body.results || [];
}

/** Nearest address to a point, or null. */
export async function reverseLookup(lon, lat) {
  const params = new URLSearchParams({ lon: lon.toFixed(7), lat: lat.toFixed(7), limit: '1' });
  const body = await fetchJson(`api/reverse?${params}`);
  return (body.results || [])[0] || null;
}

/** Wire the search box; onChoose(candidate) flies there. */
export function setupSearch(enabled, onChoose) {
  const input = document.getElementById('searchInput');
  const list = document.getElementById('suggestions');
  let results = [];
  let active = -1;
  let seq = 0;

  const close = () => {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    active = -1;
  };
  const render = () => {
    list.replaceChildren(
      ...results.map((c, i) => {
        const li = el('li', { text: candidateLabel(c), attrs: { role: 'option', 'data-index': String(i) } });
        if (c.building_id) li.dataset.building = String(c.building_id);
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
  const choose = (i) => {
    const c = results[i];
    if (!c) return;
    input.value = candidateLabel(c);
    close();
    onChoose(c);
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
      const found = await searchAddress(q);
      if (mine !== seq) return;
      results = found;
      active = results.length ? 0 : -1;
      render();
    } catch (err) {
      if (mine !== seq) return;
      results = [];
      close();
      toast(`${t('searchFailed')}: ${err.message}`);
    }
  }, 150);

  if (!enabled) {
    input.disabled = true;
    input.dataset.i18nPlaceholder = 'searchUnavailable';
    input.placeholder = t('searchUnavailable');
    return;
  }
  input.addEventListener('input', run);
  input.addEventListener('keydown', (event) => {
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
