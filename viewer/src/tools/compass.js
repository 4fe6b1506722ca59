// @ts-check
// The compass and rotation controls (旋转): a needle that follows the camera's heading
// (a click turns the view back to north), and buttons that rotate the view around the
// point at the centre of the screen and tilt it. Always on screen, not a toolbar tool.

import { t } from '../i18n.js';
import { el } from '../util.js';

const STEP_HEADING = 15;
const STEP_PITCH = 10;
const MIN_PITCH = -89;
const MAX_PITCH = -5;

/**
 * The camera's new heading and pitch (degrees) after a rotation or a tilt, pitch kept
 * between looking straight down and just above the horizon.
 * @param {number} heading
 * @param {number} pitch
 * @param {number} dHeading
 * @param {number} dPitch
 */
export function turn(heading, pitch, dHeading, dPitch) {
  return {
    heading: (((heading + dHeading) % 360) + 360) % 360,
    pitch: Math.min(MAX_PITCH, Math.max(MIN_PITCH, pitch + dPitch)),
  };
}

/**
 * @param {any} viewer
 * @param {import('./registry.js').ToolRegistry} registry
 */
export function mountCompass(viewer, registry) {
  const Cesium = window.Cesium;
  // the dial turns against the heading so that its N points to the north on screen
  const dial = el('span', { cls: 'dial', attrs: { 'aria-hidden': 'true' } }, [el('span', { cls: 'needle' }), el('span', { cls: 'n', text: 'N' })]);
  const north = el('button', { cls: 'rose', attrs: { id: 'compassNorth', type: 'button', 'data-i18n-title': 'compassNorth', 'aria-label': t('compassNorth') } }, [dial]);
  const btn = (/** @type {string} */ id, /** @type {string} */ text, /** @type {string} */ key) =>
    el('button', { text, attrs: { id, type: 'button', 'data-i18n-title': key, 'aria-label': t(key) } });
  const left = btn('rotateLeft', '⟲', 'rotateLeft');
  const right = btn('rotateRight', '⟳', 'rotateRight');
  const up = btn('tiltUp', '▲', 'tiltUp');
  const down = btn('tiltDown', '▼', 'tiltDown');
  const box = el('div', { attrs: { id: 'compass' } }, [up, el('div', { cls: 'mid' }, [left, north, right]), down]);
  document.body.append(box);

  /**
   * Turn the view around the point at the screen's centre (or in place over the sky).
   * @param {number} dHeading
   * @param {number} dPitch
   * @param {number | null} [heading] an absolute heading instead (reset north)
   */
  const rotate = (dHeading, dPitch, heading = null) => {
    const cam = viewer.camera;
    const canvas = viewer.scene.canvas;
    // the pivot on the terrain (CPU, ~1 ms): a depth-buffer pick would draw a pass
    const ray = cam.getPickRay(new Cesium.Cartesian2(canvas.clientWidth / 2, canvas.clientHeight / 2));
    const centre = ray ? viewer.scene.globe.pick(ray, viewer.scene) : null;
    const now = turn(Cesium.Math.toDegrees(cam.heading), Cesium.Math.toDegrees(cam.pitch), dHeading, dPitch);
    const h = Cesium.Math.toRadians(heading ?? now.heading);
    const p = Cesium.Math.toRadians(now.pitch);
    if (centre) {
      const range = Cesium.Cartesian3.distance(cam.positionWC, centre);
      cam.lookAt(centre, new Cesium.HeadingPitchRange(h, p, range));
      cam.lookAtTransform(Cesium.Matrix4.IDENTITY);
    } else {
      cam.setView({ orientation: { heading: h, pitch: p, roll: 0 } });
    }
    viewer.scene.requestRender();
  };
  const timed = (/** @type {string} */ action, /** @type {() => void} */ fn) => registry.timed('compass', action, fn);
  north.addEventListener('click', timed('north', () => rotate(0, 0, 0)));
  left.addEventListener('click', timed('rotate', () => rotate(-STEP_HEADING, 0)));
  right.addEventListener('click', timed('rotate', () => rotate(STEP_HEADING, 0)));
  up.addEventListener('click', timed('tilt', () => rotate(0, STEP_PITCH)));
  down.addEventListener('click', timed('tilt', () => rotate(0, -STEP_PITCH)));

  let shown = NaN;
  viewer.scene.postRender.addEventListener(() => {
    const deg = Math.round(Cesium.Math.toDegrees(viewer.camera.heading)) % 360;
    if (deg === shown) return;
    shown = deg;
    dial.style.transform = `rotate(${-deg}deg)`;
    box.dataset.heading = String(deg);
  });
  return { rotate, element: box };
}
