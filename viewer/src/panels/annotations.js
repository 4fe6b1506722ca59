// @ts-check
// 批注: notes in the scene, saved on the server (api/annotations, the live store) and
// shared with every screen. Every annotation is drawn as a label at its position (Cesium
// labels draw text, never HTML); the panel lists them (textContent only), flies to one
// (its saved camera, else its position) and deletes the department's own. Adding needs
// the department's token (kept for the browser session only): 添加批注, click the map,
// type the text, 保存.

import { t } from '../i18n.js';
import { el, fetchJson, toast } from '../util.js';
import { button, pickPoint, row, toolPanel } from '../tools/common.js';

const TOKEN_KEY = 'cim.annotationToken';
/** label text longer than this is cut with an ellipsis (the panel shows it whole) */
const LABEL_CHARS = 40;

/**
 * The text of an annotation's map label.
 * @param {string} text
 */
export function labelText(text) {
  const one = String(text).replace(/\s+/g, ' ').trim();
  return one.length > LABEL_CHARS ? `${one.slice(0, LABEL_CHARS - 1)}…` : one;
}

/**
 * Request headers with the department token, if any.
 * @param {string} token
 * @param {boolean} [json]
 */
export function authHeaders(token, json = false) {
  /** @type {Record<string, string>} */
  const h = { Accept: 'application/json' };
  if (token) h.Authorization = `Bearer ${token}`;
  if (json) h['Content-Type'] = 'application/json';
  return h;
}

/**
 * The camera view as the server stores it.
 * @param {any} viewer
 */
export function cameraOf(viewer) {
  const deg = window.Cesium.Math.toDegrees;
  const c = viewer.camera.positionCartographic;
  const { heading, pitch, roll } = viewer.camera;
  return { lon: deg(c.longitude), lat: deg(c.latitude), height: c.height, heading: deg(heading), pitch: deg(pitch), roll: deg(roll) };
}

/** @param {import('../tools/common.js').ToolContext} ctx */
export function create(ctx) {
  const Cesium = window.Cesium;
  const { viewer, registry } = ctx;
  const labels = viewer.scene.primitives.add(new Cesium.LabelCollection());
  const points = viewer.scene.primitives.add(new Cesium.PointPrimitiveCollection());
  const token = /** @type {HTMLInputElement} */ (
    el('input', { attrs: { id: 'annoToken', type: 'password', autocomplete: 'off', 'data-i18n-placeholder': 'annoTokenPlaceholder' } })
  );
  try {
    token.value = sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    // no storage: type it again
  }
  const text = /** @type {HTMLTextAreaElement} */ (el('textarea', { attrs: { id: 'annoText', rows: '3', maxlength: '2000' } }));
  const hint = el('p', { cls: 'note', attrs: { id: 'annoHint', 'data-i18n': 'annoPick' } });
  const form = el('div', { cls: 'annoForm', attrs: { id: 'annoForm' } }, [
    row('annoText', text),
    el('div', { cls: 'buttons' }, [button('annoSave', () => save(), { id: 'annoSave' }), button('annoCancel', () => cancel())]),
  ]);
  const list = el('ul', { cls: 'annoList', attrs: { id: 'annoList' } });
  hint.hidden = true;
  form.hidden = true;
  /** @type {any[]} */
  let items = [];
  let picking = false;
  /** @type {{lon: number, lat: number, height: number} | null} */
  let pending = null;

  const draw = () => {
    labels.removeAll();
    points.removeAll();
    for (const a of items) {
      const at = Cesium.Cartesian3.fromDegrees(a.position.lon, a.position.lat, a.position.height);
      points.add({ position: at, color: Cesium.Color.fromCssColorString('#ff9f1a'), pixelSize: 10, outlineColor: Cesium.Color.BLACK, outlineWidth: 1, disableDepthTestDistance: Number.POSITIVE_INFINITY });
      labels.add({
        position: at,
        text: labelText(a.text),
        font: '14px sans-serif',
        fillColor: Cesium.Color.WHITE,
        outlineColor: Cesium.Color.BLACK,
        outlineWidth: 3,
        style: Cesium.LabelStyle.FILL_AND_OUTLINE,
        showBackground: true,
        backgroundColor: new Cesium.Color(0.35, 0.2, 0.0, 0.8),
        pixelOffset: new Cesium.Cartesian2(0, -20),
        disableDepthTestDistance: Number.POSITIVE_INFINITY,
      });
    }
    viewer.scene.requestRender();
  };

  const renderList = () => {
    if (available === false) {
      list.replaceChildren(el('li', { cls: 'empty', text: t('annoUnavailable') }));
      return;
    }
    if (!items.length) {
      list.replaceChildren(el('li', { cls: 'empty', text: t('annoNone') }));
      return;
    }
    list.replaceChildren(
      ...items.map((a) => {
        const li = el('li', { attrs: { 'data-id': String(a.id) } }, [
          el('span', { cls: 'annoTextShown', text: a.text }),
          el('span', { cls: 'annoAuthor', text: ` — ${a.author}` }),
        ]);
        li.append(button('annoFly', () => flyTo(a.id), { 'data-action': 'fly' }));
        if (a.mine) li.append(button('annoDelete', () => remove(a.id), { 'data-action': 'delete' }));
        return li;
      }),
    );
    for (const b of list.querySelectorAll('button')) b.textContent = t(b.dataset.i18n || '');
  };

  const fail = (/** @type {any} */ err) => {
    const status = err?.status;
    toast(status ? `${t('annoFailed')} (${t('httpError')} ${status})` : t('annoFailed'));
  };

  /** @type {boolean | null} whether the server has a live store (api/live/info) */
  let available = null;
  const isAvailable = async () => {
    if (available === null) {
      try {
        available = Boolean((await fetchJson('api/live/info')).available);
      } catch {
        available = false;
      }
    }
    return available;
  };

  const reload = async () => {
    if (!(await isAvailable())) {
      // no live store on this server: nothing to load, and no request that must fail
      items = [];
      list.replaceChildren(el('li', { cls: 'empty', text: t('annoUnavailable') }));
      return items;
    }
    try {
      const body = await fetchJson('api/annotations', { headers: authHeaders(token.value.trim()) });
      items = body.annotations || [];
    } catch (err) {
      // without a live store there are no annotations: say so only while the panel is open
      if (registry.active === 'annotate') fail(err);
      items = [];
    }
    draw();
    renderList();
    return items;
  };

  /**
   * @param {string} body
   * @param {{lon: number, lat: number, height: number}} position
   */
  const add = async (body, position) => {
    const key = token.value.trim();
    if (!key) {
      toast(t('annoNeedToken'));
      return null;
    }
    try {
      const resp = await fetchJson('api/annotations', {
        method: 'POST',
        headers: authHeaders(key, true),
        body: JSON.stringify({ text: body, position, camera: cameraOf(viewer) }),
      });
      toast(t('annoSaved'));
      await reload();
      return resp.annotation;
    } catch (err) {
      fail(err);
      return null;
    }
  };

  const save = async () => {
    if (!pending || !text.value.trim()) return;
    const note = await add(text.value, pending);
    if (note) cancel();
  };

  const cancel = () => {
    pending = null;
    picking = false;
    text.value = '';
    form.hidden = true;
    hint.hidden = true;
  };

  const remove = async (/** @type {number} */ id) => {
    try {
      await fetchJson(`api/annotations/${id}`, { method: 'DELETE', headers: authHeaders(token.value.trim()) });
    } catch (err) {
      fail(err);
    }
    await reload();
  };

  const flyTo = (/** @type {number} */ id) => {
    const a = items.find((n) => n.id === id);
    if (!a) return;
    const c = a.camera;
    if (c && Number.isFinite(c.lon)) {
      const rad = Cesium.Math.toRadians;
      viewer.camera.flyTo({
        destination: Cesium.Cartesian3.fromDegrees(c.lon, c.lat, c.height),
        orientation: { heading: rad(c.heading ?? 0), pitch: rad(c.pitch ?? -45), roll: rad(c.roll ?? 0) },
        duration: 1.2,
      });
      viewer.scene.requestRender();
    } else {
      window.cim?.flyToCandidate?.({ ...a.position, building_id: null, label: a.text });
    }
  };

  const onClick = registry.timed('annotate', 'click', (/** @type {any} */ event) => {
    if (!picking) return;
    const p = pickPoint(viewer, event.position);
    if (!p) return;
    const carto = Cesium.Cartographic.fromCartesian(p);
    pending = { lon: Cesium.Math.toDegrees(carto.longitude), lat: Cesium.Math.toDegrees(carto.latitude), height: carto.height };
    picking = false;
    hint.hidden = true;
    form.hidden = false;
    text.focus();
  });

  token.addEventListener('change', () => {
    try {
      sessionStorage.setItem(TOKEN_KEY, token.value.trim());
    } catch {
      // no storage
    }
    reload();
  });

  /** @type {any} */
  let handler = null;
  const element = toolPanel(
    'annotate',
    'toolAnnotate',
    [
      row('annoToken', token),
      button(
        'annoAdd',
        () => {
          if (!token.value.trim()) {
            toast(t('annoNeedToken'));
            return;
          }
          picking = true;
          hint.hidden = false;
        },
        { id: 'annoAdd' },
      ),
      hint,
      form,
      el('h3', { attrs: { 'data-i18n': 'annoList' } }),
      list,
    ],
    () => registry.deactivate(),
  );
  reload();

  return {
    id: 'annotate',
    labelKey: 'toolAnnotate',
    element,
    capturesClicks: true,
    activate() {
      handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
      handler.setInputAction(onClick, Cesium.ScreenSpaceEventType.LEFT_CLICK);
      reload();
    },
    deactivate() {
      handler?.destroy();
      handler = null;
      cancel();
    },
    relabel: renderList,
    api: {
      items: () => items,
      reload,
      add,
      flyTo,
      remove,
      /** @param {string} value */
      setToken(value) {
        token.value = value;
        token.dispatchEvent(new Event('change'));
      },
      labelTexts: () => {
        /** @type {string[]} */
        const out = [];
        for (let i = 0; i < labels.length; i++) out.push(labels.get(i).text);
        return out;
      },
    },
  };
}
