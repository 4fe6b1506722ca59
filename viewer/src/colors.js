// @ts-check
// Colours of the building themes: height classes and uses.

/** Height classes (metres, lower bound inclusive) and their colours. */
export const HEIGHT_CLASSES = [
  { min: 100, color: '#d73027', label: '≥ 100' },
  { min: 50, color: '#fc8d59', label: '50 – 100' },
  { min: 24, color: '#fee090', label: '24 – 50' },
  { min: 12, color: '#91bfdb', label: '12 – 24' },
  { min: -Infinity, color: '#4575b4', label: '< 12' },
];

/** Colours for common building uses (Chinese and English keys); others get a hashed colour. */
const USE_COLORS = /** @type {Record<string, string>} */ ({
  住宅: '#4e79a7', residential: '#4e79a7',
  商业: '#f28e2b', commercial: '#f28e2b',
  办公: '#76b7b2', office: '#76b7b2',
  工业: '#9c755f', industrial: '#9c755f',
  学校: '#59a14f', 教育: '#59a14f', education: '#59a14f', school: '#59a14f',
  医疗: '#e15759', 医院: '#e15759', hospital: '#e15759', health: '#e15759',
  公共: '#b07aa1', public: '#b07aa1', 政府: '#b07aa1', government: '#b07aa1',
});
const PALETTE = ['#edc948', '#ff9da7', '#bab0ac', '#8cd17d', '#86bcb6', '#d4a6c8', '#fabfd2'];
const NO_USE_COLOR = '#9aa5b1';

/** @param {string} text */
function hashColor(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

/**
 * Colour (CSS) of a building use value.
 * @param {unknown} use
 */
export function useColor(use) {
  if (!use) return NO_USE_COLOR;
  const key = String(use);
  return USE_COLORS[key] || USE_COLORS[key.toLowerCase()] || hashColor(key);
}

/**
 * Colour (CSS) of a building height in metres.
 * @param {unknown} height
 */
export function heightColor(height) {
  const h = Number(height);
  if (!Number.isFinite(h)) return NO_USE_COLOR;
  return HEIGHT_CLASSES.find((c) => h >= c.min)?.color ?? NO_USE_COLOR;
}
