// @ts-check
// The event detail panel (right slot, through the panel manager): a case's fields, its
// deadline, the audit timeline (who, role, when, action, note) and a button per action
// the session's token may take now (from the server's `actions`), with the note, the
// department (派遣/改派) and the extension (延期申请) the action needs; performed by
// POST /api/events/<id>/transitions with If-Match. And the form that reports a case at
// a clicked place (the nearest address and the building there filled in). Text only.

import { t } from '../i18n.js';
import { formatLonLat } from '../format.js';
import { el } from '../util.js';
import { api, formatHours, formatTime, stateColor } from '../layers/events.js';
import { sessionToken } from '../layers/deptlayers.js';

export const PANEL_ID = 'event';
export const CREATE_ID = 'eventCreate';

/**
 * A state's name in the interface language (the server's Chinese label as fallback).
 * @param {string} state
 * @param {string} [label]
 */
export function stateName(state, label) {
  const key = `evState_${state}`;
  const text = t(key);
  return text === key ? label || state : text;
}

/**
 * An action's name in the interface language.
 * @param {string} action
 * @param {string} [label]
 */
export function actionName(action, label) {
  const key = `evAction_${action}`;
  const text = t(key);
  return text === key ? label || action : text;
}

/**
 * The rows of a case's fields: [label, value, key].
 * @param {any} e the detail
 * @returns {[string, string, string][]}
 */
export function detailRows(e) {
  const loc = e.location || {};
  const flags = [];
  if (e.overdue) flags.push(t('evOverdue'));
  else if (e.approaching) flags.push(t('evApproaching'));
  if (e.paused) flags.push(t('evPaused'));
  if (e.late) flags.push(t('evLate'));
  /** @type {[string, string, string][]} */
  const rows = [
    [t('evState'), stateName(e.state, e.state_label), 'state'],
    [t('evCategory'), `${e.subcategory_name || ''} (${e.subcategory || ''})`, 'subcategory'],
    [t('evDepartment'), e.department || '—', 'department'],
    [t('evAddress'), loc.address || '—', 'address'],
    [t('evBuilding'), loc.building ? `${loc.building}${loc.floor ? ` · ${loc.floor}${t('evFloor')}` : ''}` : '—', 'building'],
    [t('coordinates'), Number.isFinite(loc.lon) && Number.isFinite(loc.lat) ? formatLonLat(loc.lon, loc.lat) : '—', 'place'],
    [t('evReportedAt'), formatTime(e.reported_at), 'reported_at'],
    [t('evDeadline'), e.deadline ? `${formatTime(e.deadline)}（${t('evRemaining')} ${formatHours(e.remaining_hours)}）` : '—', 'deadline'],
    [t('evFlags'), flags.join('，') || '—', 'flags'],
    [t('evPriority'), t(`evPriority_${e.priority}`) === `evPriority_${e.priority}` ? String(e.priority) : t(`evPriority_${e.priority}`), 'priority'],
    [t('evSource'), t(`evSource_${e.source}`) === `evSource_${e.source}` ? String(e.source) : t(`evSource_${e.source}`), 'source'],
    [t('evDescription'), e.description || '—', 'description'],
  ];
  return rows;
}

export class EventPanel {
  /**
   * @param {import('../core/panels.js').PanelManager} panels
   * @param {import('../core/bus.js').Bus} bus
   * @param {any} layer the events layer
   */
  constructor(panels, bus, layer) {
    this.panels = panels;
    this.bus = bus;
    this.layer = layer;
    /** @type {number | null} */
    this.eventId = null;
    /** @type {any} */
    this.detail = null;
    this.busy = false;
    this.title = el('h2', { attrs: { id: 'evTitle' } });
    const close = el('button', { text: '×', attrs: { id: 'evClose', type: 'button', 'aria-label': 'close' } });
    close.addEventListener('click', () => panels.close(PANEL_ID));
    this.flyBtn = el('button', { text: t('evFlyTo'), attrs: { id: 'evFlyTo', type: 'button' } });
    this.flyBtn.addEventListener('click', () => {
      if (this.detail) this.layer.flyTo(this.detail.id, this.detail.location);
    });
    this.body = el('tbody');
    this.timelineTitle = el('h3', { text: t('evTimeline') });
    this.timeline = el('ol', { attrs: { id: 'evTimeline' } });
    this.actionsTitle = el('h3', { text: t('evActions') });
    this.note = /** @type {HTMLTextAreaElement} */ (el('textarea', { attrs: { id: 'evNote', rows: '2', maxlength: '4000' } }));
    // any department id may be typed; the known ones are offered
    this.departments = el('datalist', { attrs: { id: 'evDepartmentList' } });
    this.department = /** @type {HTMLInputElement} */ (
      el('input', { attrs: { id: 'evDepartment', type: 'text', list: 'evDepartmentList', maxlength: '64' } })
    );
    this.extension = /** @type {HTMLInputElement} */ (el('input', { attrs: { id: 'evExtension', type: 'text', value: '1d', maxlength: '10' } }));
    this.buttons = el('div', { cls: 'ev-actions', attrs: { id: 'evActionButtons' } });
    this.message = el('p', { cls: 'note', attrs: { id: 'evMessage', role: 'status' } });
    this.element = el('aside', { attrs: { id: 'evPanel', 'aria-live': 'polite' } }, [
      el('header', {}, [this.title, close]),
      el('table', { attrs: { id: 'evTable' } }, [this.body]),
      this.flyBtn,
      this.timelineTitle,
      this.timeline,
      this.actionsTitle,
      this.note,
      this.department,
      this.departments,
      this.extension,
      this.buttons,
      this.message,
    ]);
    document.body.append(this.element);
    panels.register(PANEL_ID, {
      slot: 'right',
      element: this.element,
      onClose: () => {
        this.eventId = null;
        this.detail = null;
      },
    });
    this.form = new CreateForm(panels, bus, layer, this);
  }

  /** @param {number} id open a case (its detail is read with the session's token) */
  async open(id) {
    this.eventId = id;
    this.message.textContent = '';
    this.panels.open(PANEL_ID);
    await this.reload();
  }

  async reload() {
    const id = this.eventId;
    if (id === null) return;
    try {
      const detail = await api(`api/events/${id}`);
      if (this.eventId !== id) return;
      this.detail = detail;
      this.render();
    } catch (err) {
      if (this.eventId === id) this.message.textContent = `${t('evLoadFailed')} (${/** @type {any} */ (err).status || t('disconnected')})`;
    }
  }

  /** @param {any} detail show a case the server just returned */
  show(detail) {
    this.eventId = detail.id;
    this.detail = detail;
    this.render();
    this.panels.open(PANEL_ID);
  }

  render() {
    const e = this.detail;
    this.timelineTitle.textContent = t('evTimeline');
    this.actionsTitle.textContent = t('evActions');
    this.flyBtn.textContent = t('evFlyTo');
    this.note.placeholder = t('evNotePlaceholder');
    if (!e) return;
    this.title.textContent = `#${e.id} ${e.subcategory_name || e.subcategory || ''}`;
    this.element.dataset.state = e.state;
    this.element.dataset.event = String(e.id);
    this.element.style.borderLeftColor = stateColor(e.state);
    this.body.replaceChildren(
      ...detailRows(e).map(([label, value, key]) =>
        el('tr', {}, [el('th', { text: label, attrs: { scope: 'row' } }), el('td', { text: value, attrs: { 'data-key': key } })]),
      ),
    );
    this.timeline.replaceChildren(
      ...(e.timeline || []).map((/** @type {any} */ r) =>
        el('li', { attrs: { 'data-action': String(r.action) } }, [
          el('span', { cls: 'when', text: formatTime(r.at) }),
          el('strong', { text: actionName(r.action, r.label) }),
          el('span', { cls: 'who', text: `${r.actor || ''}${r.role ? `（${t(`evRole_${r.role}`) === `evRole_${r.role}` ? r.role : t(`evRole_${r.role}`)}）` : ''}` }),
          el('span', { cls: 'to', text: r.to ? `→ ${stateName(r.to)}` : '' }),
          ...(r.note ? [el('div', { cls: 'note', text: r.note })] : []),
        ]),
      ),
    );
    this.renderActions(e);
  }

  /** @param {any} e */
  renderActions(e) {
    const actions = e.actions || [];
    const needs = new Set(actions.flatMap((/** @type {any} */ a) => a.needs || []));
    this.department.hidden = !needs.has('department');
    this.extension.hidden = !needs.has('extension');
    if (needs.has('department')) {
      this.department.placeholder = t('evDefaultDepartment');
      this.departments.replaceChildren(...this.layer.departments().map((/** @type {string} */ d) => el('option', { attrs: { value: d } })));
    }
    this.note.hidden = actions.length === 0;
    const buttons = actions.map((/** @type {any} */ a) => {
      const b = el('button', {
        text: actionName(a.action, a.label),
        attrs: { type: 'button', 'data-action': String(a.action), title: a.note_required ? t('evNoteRequired') : '' },
      });
      b.addEventListener('click', () => this.act(a));
      return b;
    });
    if (!buttons.length) {
      buttons.push(el('p', { cls: 'note', text: sessionToken() ? t('evNoActions') : t('evNeedToken') }));
    }
    this.buttons.replaceChildren(...buttons);
  }

  /**
   * Take an action on the case shown.
   * @param {{action: string, note_required?: boolean, needs?: string[]}} a
   */
  async act(a) {
    const e = this.detail;
    if (!e || this.busy) return;
    const note = this.note.value.trim();
    if (a.note_required && !note) {
      this.message.textContent = t('evNoteRequired');
      this.note.focus();
      return;
    }
    /** @type {Record<string, string>} */
    const body = { action: a.action };
    if (note) body.note = note;
    if (a.needs?.includes('department') && this.department.value.trim()) body.department = this.department.value.trim();
    if (a.needs?.includes('extension') && this.extension.value.trim()) body.extension = this.extension.value.trim();
    this.busy = true;
    this.message.textContent = `${actionName(a.action)}…`;
    try {
      const detail = await api(`api/events/${e.id}/transitions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'If-Match': `"v${e.version}"` },
        body: JSON.stringify(body),
      });
      this.note.value = '';
      this.message.textContent = `${actionName(a.action)}：${t('evDone')}`;
      this.show(detail);
      this.layer.applyDeltas([{ kind: 'event', ...detail, lon: detail.location?.lon, lat: detail.location?.lat, h: detail.location?.h }]);
      this.bus.emit('event:transition', { id: e.id, action: a.action, state: detail.state });
    } catch (err) {
      const status = /** @type {any} */ (err).status;
      this.message.textContent = `${t('evActionFailed')}（${status === 409 ? t('evConflict') : status === 401 || status === 403 ? t('evForbidden') : status || t('disconnected')}）`;
      await this.reload(); // the case as it is now: another may have acted first
    } finally {
      this.busy = false;
    }
  }
}

/** Reporting a case at a place clicked on the map. */
export class CreateForm {
  /**
   * @param {import('../core/panels.js').PanelManager} panels
   * @param {import('../core/bus.js').Bus} _bus
   * @param {any} layer
   * @param {EventPanel} detail
   */
  constructor(panels, _bus, layer, detail) {
    this.panels = panels;
    this.layer = layer;
    this.detail = detail;
    /** @type {{lon: number, lat: number} | null} */
    this.place = null;
    /** @type {number | null} the datastream whose alarm the case is filed from */
    this.datastream = null;
    this.title = el('h2', { text: t('evCreateTitle') });
    this.where = el('p', { cls: 'note', attrs: { id: 'evCreateWhere' } });
    this.subcategory = /** @type {HTMLSelectElement} */ (el('select', { attrs: { id: 'evCreateSub' } }));
    this.priority = /** @type {HTMLSelectElement} */ (el('select', { attrs: { id: 'evCreatePriority' } }));
    this.source = /** @type {HTMLSelectElement} */ (el('select', { attrs: { id: 'evCreateSource' } }));
    this.description = /** @type {HTMLTextAreaElement} */ (el('textarea', { attrs: { id: 'evCreateDesc', rows: '3', maxlength: '4000' } }));
    this.submit = el('button', { text: t('evCreateSubmit'), attrs: { id: 'evCreateSubmit', type: 'button' } });
    const cancel = el('button', { text: t('evCancel'), attrs: { id: 'evCreateCancel', type: 'button' } });
    this.message = el('p', { cls: 'note', attrs: { id: 'evCreateMessage', role: 'status' } });
    this.submit.addEventListener('click', () => this.send());
    cancel.addEventListener('click', () => panels.close(CREATE_ID));
    this.labels = [t('evCategory'), t('evPriority'), t('evSource'), t('evDescription')].map((text) => el('label', { text }));
    this.element = el('aside', { attrs: { id: 'evCreatePanel' } }, [
      el('header', {}, [this.title]),
      this.where,
      this.labels[0],
      this.subcategory,
      this.labels[1],
      this.priority,
      this.labels[2],
      this.source,
      this.labels[3],
      this.description,
      el('div', { cls: 'ev-actions' }, [this.submit, cancel]),
      this.message,
    ]);
    document.body.append(this.element);
    panels.register(CREATE_ID, { slot: 'right', element: this.element, onClose: () => layer.waitForClick(null) });
    this.fillOptions();
  }

  fillOptions() {
    const cats = this.layer.categories || {};
    this.subcategory.replaceChildren(
      ...(cats.categories || []).map((/** @type {any} */ c) =>
        el(
          'optgroup',
          { attrs: { label: `${c.class} · ${c.name}` } },
          (c.subcategories || []).map((/** @type {any} */ s) => el('option', { text: `${s.name} (${s.code})`, attrs: { value: s.code } })),
        ),
      ),
    );
    const opt = (/** @type {string} */ prefix, /** @type {string} */ v) => {
      const key = `${prefix}_${v}`;
      return el('option', { text: t(key) === key ? v : t(key), attrs: { value: v } });
    };
    this.priority.replaceChildren(...(cats.priorities || ['normal']).map((/** @type {string} */ v) => opt('evPriority', v)));
    this.priority.value = 'normal';
    this.source.replaceChildren(...(cats.sources || ['api']).map((/** @type {string} */ v) => opt('evSource', v)));
    this.source.value = (cats.sources || []).includes('hotline') ? 'hotline' : 'api';
  }

  /**
   * The form filled in from a sensor alarm (alarmPrefill in layers/events.js): the
   * sensor's place (with the address and building found there), category, reading.
   * @param {{datastream: number, subcategory: string | null, source: string, priority: string, lon: number | null, lat: number | null, description: string}} p
   */
  fromAlarm(p) {
    this.layer.waitForClick(null);
    this.message.textContent = '';
    this.datastream = p.datastream;
    this.element.dataset.datastream = String(p.datastream);
    if (p.subcategory) this.subcategory.value = p.subcategory;
    this.priority.value = p.priority;
    this.source.value = p.source;
    this.description.value = p.description;
    this.panels.open(CREATE_ID);
    if (p.lon === null || p.lat === null) {
      this.place = null;
      this.where.textContent = t('evClickMap'); // a sensor without a place: click where it is
      this.submit.setAttribute('disabled', '');
      this.layer.waitForClick((/** @type {number} */ lon, /** @type {number} */ lat) => this.at(lon, lat));
      return;
    }
    this.at(p.lon, p.lat);
  }

  /** Ask for a click on the map, then open the form there. */
  start() {
    this.datastream = null;
    delete this.element.dataset.datastream;
    this.message.textContent = '';
    this.layer.waitForClick((/** @type {number} */ lon, /** @type {number} */ lat) => this.at(lon, lat));
    this.where.textContent = t('evClickMap');
    this.place = null;
    this.submit.setAttribute('disabled', '');
    this.panels.open(CREATE_ID);
  }

  /**
   * The form at a place: the nearest address and the building there.
   * @param {number} lon
   * @param {number} lat
   */
  async at(lon, lat) {
    this.place = { lon, lat };
    this.submit.removeAttribute('disabled');
    this.where.textContent = formatLonLat(lon, lat);
    this.element.dataset.lon = String(lon);
    this.element.dataset.lat = String(lat);
    const q = `lon=${lon.toFixed(7)}&lat=${lat.toFixed(7)}`;
    const [rev, bld] = await Promise.allSettled([api(`api/reverse?${q}&limit=1`), api(`api/buildings/at?${q}&geometry=0`)]);
    if (this.place?.lon !== lon || this.place?.lat !== lat) return;
    const nearest = rev.status === 'fulfilled' ? (rev.value?.results || [])[0] : null;
    const address = nearest ? nearest.address || nearest.label || nearest.components?.full || '' : '';
    const building = bld.status === 'fulfilled' ? bld.value?.building?.id ?? null : null;
    const parts = [formatLonLat(lon, lat)];
    if (address) parts.push(`${t('evAddress')}：${address}`);
    parts.push(`${t('evBuilding')}：${building ?? '—'}`);
    this.where.textContent = parts.join('；');
    this.element.dataset.address = String(address || '');
    this.element.dataset.building = building === null ? '' : String(building);
  }

  async send() {
    if (!this.place) return;
    const body = {
      subcategory: this.subcategory.value,
      priority: this.priority.value,
      source: this.source.value,
      description: this.description.value.trim(),
      location: [this.place.lon, this.place.lat], // the server puts it on the roof or the ground
      ...(this.datastream !== null ? { datastream: this.datastream } : {}),
    };
    this.message.textContent = `${t('evCreateSubmit')}…`;
    try {
      const detail = await api('api/events', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      this.description.value = '';
      this.datastream = null;
      this.panels.close(CREATE_ID);
      this.detail.show(detail);
      this.layer.applyDeltas([{ kind: 'event', ...detail, lon: detail.location?.lon, lat: detail.location?.lat, h: detail.location?.h }]);
    } catch (err) {
      const status = /** @type {any} */ (err).status;
      if (status === 409 && body.datastream !== undefined && (await this.openSensorCase(body.datastream))) return;
      this.message.textContent = `${t('evCreateFailed')}（${status === 401 || status === 403 ? t('evNeedToken') : status || t('disconnected')}）`;
    }
  }

  /**
   * The datastream already has an open case (its alarm opened one, or another operator
   * did): show that case instead.
   * @param {number} ds
   * @returns {Promise<boolean>} whether it was found
   */
  async openSensorCase(ds) {
    try {
      const found = await api(`api/events?datastream=${ds}&open=1&limit=1`);
      const item = (found.items || [])[0];
      if (!item) return false;
      this.datastream = null;
      this.panels.close(CREATE_ID);
      await this.detail.open(Number(item.id));
      this.detail.message.textContent = t('evAlarmHasCase');
      return true;
    } catch {
      return false;
    }
  }

  refresh() {
    this.title.textContent = t('evCreateTitle');
    this.submit.textContent = t('evCreateSubmit');
    this.fillOptions();
  }
}
