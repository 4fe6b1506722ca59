// @ts-check
// How attribute values and names are shown: units, rounding, and coded values
// (roof types, uses) by their name in the chosen language. Returns text, never HTML.

import { codeName, has, t } from './i18n.js';

/** Attributes whose values are codes with names in the i18n table. */
export const CODED = new Set(['roof_type', 'use']);

/** Attributes in metres. */
const METRES = new Set(['height', 'base']);

/**
 * The text of an attribute value.
 * @param {string} key attribute id
 * @param {unknown} value
 * @returns {string}
 */
export function formatValue(key, value) {
  if (value === undefined || value === null || value === '') return '—';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return '—';
    if (METRES.has(key)) return `${value.toFixed(1)} ${t('metres')}`;
    return Number.isInteger(value) ? String(value) : value.toFixed(2);
  }
  if (typeof value === 'bigint') return String(value);
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    return Array.from(/** @type {ArrayLike<unknown>} */ (value)).map(String).join(', ');
  }
  if (typeof value === 'object') return JSON.stringify(value);
  if (CODED.has(key)) return codeName(key, value);
  return String(value);
}

/**
 * The label of an attribute: the interface's name for the known ones, else the name the
 * tile's metadata schema gives it, else its id.
 * @param {string} key attribute id
 * @param {string | null | undefined} [schemaName] the schema's `name` of the property
 * @returns {string}
 */
export function propertyLabel(key, schemaName) {
  if (has(`prop_${key}`)) return t(`prop_${key}`);
  if (schemaName) return String(schemaName);
  return key;
}

/**
 * Longitude and latitude as text (6 decimals: about 0.1 m).
 * @param {number} lon
 * @param {number} lat
 */
export function formatLonLat(lon, lat) {
  return `${lon.toFixed(6)}, ${lat.toFixed(6)}`;
}
