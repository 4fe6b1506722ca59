// Small DOM and fetch helpers. Data is always inserted as text, never as HTML.

/** Create an element with text content and attributes. */
export function el(tag, { text, cls, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

/** Fetch JSON; throws an Error carrying .status and the server's message. */
export async function fetchJson(url, options = {}) {
  const resp = await fetch(url, { headers: { Accept: 'application/json' }, ...options });
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const err = new Error(body?.error?.message || `HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

/** Resolve a path relative to a base URL, keeping {placeholders} unescaped. */
export function resolveTemplate(template, baseUrl) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(template) || template.startsWith('/')) return template;
  return baseUrl.slice(0, baseUrl.lastIndexOf('/') + 1) + template;
}

let toastTimer = null;

/** Show a short message at the bottom of the screen. */
export function toast(message, ms = 3500) {
  const node = document.getElementById('toast');
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.hidden = true;
  }, ms);
}

/** Debounce fn by ms. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
