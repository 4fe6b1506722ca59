import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../src/core/bus.js';
import { PanelManager } from '../src/core/panels.js';

function setup() {
  const bus = new Bus();
  const events = [];
  bus.on('panel:open', (p) => events.push(['open', p.id]));
  bus.on('panel:close', (p) => events.push(['close', p.id]));
  const pm = new PanelManager(bus);
  const closed = [];
  const el = {};
  for (const [id, slot] of [['info', 'right'], ['sensor', 'right'], ['events', 'left']]) {
    el[id] = { hidden: false };
    pm.register(id, { slot, element: el[id], onClose: () => closed.push(id) });
  }
  return { pm, el, events, closed };
}

test('registered panels start hidden', () => {
  const { el } = setup();
  assert.ok(Object.values(el).every((e) => e.hidden));
});

test('one visible panel per slot; closing the top shows the one below', () => {
  const { pm, el, events, closed } = setup();
  pm.open('info');
  pm.open('sensor');
  pm.open('events');
  assert.equal(el.info.hidden, true);
  assert.equal(el.sensor.hidden, false);
  assert.equal(el.events.hidden, false);
  assert.equal(pm.visible('right'), 'sensor');
  assert.ok(pm.isOpen('info') && !pm.isVisible('info'));
  pm.close('sensor');
  assert.equal(el.info.hidden, false);
  assert.equal(el.sensor.hidden, true);
  assert.deepEqual(closed, ['sensor']);
  assert.deepEqual(events, [['open', 'info'], ['open', 'sensor'], ['open', 'events'], ['close', 'sensor']]);
});

test('re-opening brings a panel to the top without a second open event', () => {
  const { pm, el, events } = setup();
  pm.open('info');
  pm.open('sensor');
  pm.open('info');
  assert.equal(pm.visible('right'), 'info');
  assert.equal(el.sensor.hidden, true);
  assert.equal(events.filter((e) => e[0] === 'open' && e[1] === 'info').length, 1);
  pm.close('info');
  assert.equal(pm.visible('right'), 'sensor');
});

test('closeTop closes in reverse opening order across slots', () => {
  const { pm } = setup();
  pm.open('info');
  pm.open('events');
  pm.open('sensor');
  assert.equal(pm.closeTop(), 'sensor');
  assert.equal(pm.closeTop(), 'events');
  assert.equal(pm.closeTop(), 'info');
  assert.equal(pm.closeTop(), null);
});

test('closing a panel that is not open is a no-op; unknown ids throw', () => {
  const { pm, closed } = setup();
  assert.equal(pm.close('info'), false);
  assert.deepEqual(closed, []);
  assert.throws(() => pm.open('nope'), /no panel nope/);
  assert.throws(() => pm.register('info', { slot: 'right', element: { hidden: true } }), /already/);
});

test('toggle opens and closes', () => {
  const { pm } = setup();
  pm.toggle('events');
  assert.ok(pm.isOpen('events'));
  pm.toggle('events');
  assert.ok(!pm.isOpen('events'));
});

test('Esc closes the top panel, except in a text field', () => {
  const { pm } = setup();
  let listener;
  pm.attachKeyboard({ addEventListener: (name, fn) => (listener = fn) });
  const key = (target, k = 'Escape') => {
    const event = { key: k, target, defaultPrevented: false, preventDefault() { this.defaultPrevented = true; } };
    listener(event);
    return event;
  };
  pm.open('info');
  pm.open('events');
  assert.equal(key({ tagName: 'INPUT', type: 'search' }).defaultPrevented, false);
  assert.ok(pm.isOpen('events'));
  assert.equal(key({ tagName: 'INPUT', type: 'checkbox' }).defaultPrevented, true);
  assert.ok(!pm.isOpen('events'));
  key({ tagName: 'DIV' }, 'Enter');
  assert.ok(pm.isOpen('info'));
  key({ tagName: 'BODY' });
  assert.ok(!pm.isOpen('info'));
  assert.equal(key({ tagName: 'BODY' }).defaultPrevented, false);
});
