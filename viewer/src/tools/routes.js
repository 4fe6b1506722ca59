// @ts-check
// 飞行路线: a route is a sequence of camera stops (the current view saved as a stop,
// reordered, removed), played as chained camera.flyTo flights; kept in localStorage per
// city (routestore.js).

import { t } from '../i18n.js';
import { el, toast } from '../util.js';
import { RouteStore } from './routestore.js';
import { applyView, currentView } from '../view.js';
import { button, row, slider, toolPanel } from './common.js';

/** @param {import('./common.js').ToolContext} ctx */
export function create(ctx) {
  const { viewer, registry, manifest } = ctx;
  const store = new RouteStore(manifest?.name || 'city');
  const list = el('ol', { cls: 'stops', attrs: { id: 'routeStops' } });
  const nameIn = /** @type {HTMLInputElement} */ (el('input', { attrs: { id: 'routeStopName', type: 'text', maxlength: '40', 'data-i18n-placeholder': 'routeStopName' } }));
  const speedIn = slider('routeDuration', 1, 10, 1, 3);
  const status = el('p', { cls: 'result', attrs: { id: 'routeStatus' } });
  const state = { playing: false, index: -1, stops: () => store.stops, flights: 0 };

  const render = () => {
    list.replaceChildren(
      ...store.stops.map((stop, i) => {
        const go = el('button', { text: stop.name, cls: 'link', attrs: { type: 'button' } });
        go.addEventListener('click', () => applyView(viewer, stop.v));
        const mk = (/** @type {string} */ text, /** @type {string} */ key, /** @type {() => void} */ fn) => {
          const b = el('button', { text, attrs: { type: 'button', title: t(key), 'aria-label': t(key) } });
          b.addEventListener('click', registry.timed('routes', 'edit', fn));
          return b;
        };
        return el('li', {}, [
          go,
          mk('↑', 'routeUp', () => edit(() => store.move(i, -1))),
          mk('↓', 'routeDown', () => edit(() => store.move(i, 1))),
          mk('×', 'remove', () => edit(() => store.remove(i))),
        ]);
      }),
    );
  };
  const edit = (/** @type {() => void} */ fn) => {
    stop();
    fn();
    render();
  };

  const add = registry.timed('routes', 'add', () => {
    const name = nameIn.value.trim() || `${t('routeStop')} ${store.stops.length + 1}`;
    store.add({ name, v: currentView(viewer) });
    nameIn.value = '';
    render();
  });

  const fly = (/** @type {number} */ i) => {
    if (!state.playing) return;
    if (i >= store.stops.length) {
      stop();
      status.textContent = t('routeDone');
      return;
    }
    state.index = i;
    status.textContent = `${t('routePlaying')} ${i + 1}/${store.stops.length}: ${store.stops[i].name}`;
    const [lon, lat, height, heading = 0, pitch = -45, roll = 0] = store.stops[i].v;
    const C = window.Cesium;
    viewer.camera.flyTo({
      destination: C.Cartesian3.fromDegrees(lon, lat, height),
      orientation: { heading: C.Math.toRadians(heading), pitch: C.Math.toRadians(pitch), roll: C.Math.toRadians(roll) },
      duration: Number(speedIn.value),
      complete: () => {
        state.flights += 1;
        fly(i + 1);
      },
      cancel: () => stop(),
    });
    viewer.scene.requestRender();
  };

  const play = registry.timed('routes', 'play', () => {
    if (store.stops.length < 1) {
      toast(t('routeEmpty'));
      return;
    }
    state.playing = true;
    state.flights = 0;
    fly(0);
  });

  function stop() {
    if (!state.playing) return;
    state.playing = false;
    state.index = -1;
    status.textContent = '';
    viewer.camera.cancelFlight();
  }

  const form = el('form', { cls: 'inline' }, [nameIn, el('button', { attrs: { type: 'submit', 'data-i18n': 'routeAddStop' } })]);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    add();
  });
  const element = toolPanel(
    'routes',
    'toolRoutes',
    [
      el('p', { cls: 'note', attrs: { 'data-i18n': 'routeHint' } }),
      form,
      list,
      row('routeDurationLabel', speedIn),
      el('div', { cls: 'buttons' }, [button('routePlay', play, { id: 'routePlay' }), button('routeStopPlaying', stop, { id: 'routeStopBtn' })]),
      status,
    ],
    () => registry.deactivate(),
  );
  render();

  return {
    id: 'routes',
    labelKey: 'toolRoutes',
    element,
    activate: render,
    deactivate: stop,
    relabel: render,
    api: { state, store, add, play, stop },
  };
}
