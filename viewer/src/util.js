// @ts-check
// Small DOM and fetch helpers. Data is always inserted as text, never as HTML; the few
// Cesium APIs that take HTML (credits) get escapeHtml().

import { bus } from './core/bus.js';

/**
 * Create an element with text content and attributes.
 * @param {string} tag
 * @param {{text?: unknown, cls?: string, attrs?: Record<string, string>}} [options]
 * @param {(Node | string)[]} [children]
 * @returns {HTMLElement}
 */
export function el(tag, { text, cls, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

const ESCAPES = /** @type {Record<string, string>} */ ({
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
});

/**
 * Escape text for the APIs that take HTML (Cesium credits).
 * @param {unknown} text
 * @returns {string}
 */
export function escapeHtml(text) {
  return String(text ?? '').replace(/[&<>"']/g, (ch) => ESCAPES[ch]);
}

/** An Error from fetchJson: the HTTP status (0: no answer) and the server's message. */
export class HttpError extends Error {
  /**
   * @param {string} message
   * @param {number} status
   */
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/**
 * Fetch JSON; throws an HttpError carrying .status (0 when the server did not answer,
 * which is also announced on the bus as net:error).
 * @param {string} url
 * @param {RequestInit} [options]
 * @returns {Promise<any>}
 */
export async function fetchJson(url, options = {}) {
  let resp;
  try {
    resp = await fetch(url, { headers: { Accept: 'application/json' }, ...options });
  } catch (err) {
    bus.emit('net:error', { url });
    throw new HttpError(String(/** @type {Error} */ (err)?.message || err), 0);
  }
  /** @type {any} */
  let body;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (!resp.ok) {
    if (resp.status >= 502 && resp.status <= 504) bus.emit('net:error', { url });
    throw new HttpError(body?.error?.message || `HTTP ${resp.status}`, resp.status);
  }
  return body;
}

/**
 * Resolve a path relative to a base URL, keeping {placeholders} unescaped.
 * @param {string} template
 * @param {string} baseUrl
 */
export function resolveTemplate(template, baseUrl) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(template) || template.startsWith('/')) return template;
  return baseUrl.slice(0, baseUrl.lastIndexOf('/') + 1) + template;
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;

/**
 * Show a short message at the bottom of the screen.
 * @param {string} message
 * @param {number} [ms]
 */
export function toast(message, ms = 3500) {
  const node = document.getElementById('toast');
  if (!node) return;
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.hidden = true;
  }, ms);
}

/**
 * Debounce fn by ms.
 * @template {any[]} A
 * @param {(...args: A) => void} fn
 * @param {number} ms
 * @returns {((...args: A) => void) & {cancel: () => void}}
 */
export function debounce(fn, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const run = (/** @type {A} */ ...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  run.cancel = () => clearTimeout(timer);
  return run;
}
