// @ts-check
// The built-in layer kinds, registered with the layer tree. A new kind (sensors,
// events, department layers) is one module in layers/ plus one line here.

import { registerLayerKind } from './core/layertree.js';
import * as terrain from './layers/terrain.js';
import * as imagery from './layers/imagery.js';
import * as buildings from './layers/buildings.js';
import * as sensors from './layers/sensors.js';
import * as deptlayers from './layers/deptlayers.js';
import * as events from './layers/events.js';
import * as pipelines from './layers/pipelines.js';

/** Register terrain, imagery, buildings and sensors (idempotent). */
export function registerBuiltinKinds() {
  registerLayerKind('terrain', terrain);
  registerLayerKind('imagery', imagery);
  registerLayerKind('buildings', buildings);
  registerLayerKind('sensors', sensors);
  registerLayerKind('deptlayer', deptlayers);
  registerLayerKind('events', events);
  registerLayerKind('pipelines', pipelines);
}

/**
 * Layers the server offers beside the build's (added to the manifest's `layers`): the
 * live sensors, whose kind skips itself when the server has no live store.
 */
export const SERVER_LAYERS = Object.freeze({
  sensors: { kind: 'sensors' },
  events: { kind: 'events' },
  // the department layers /api/layers lists (deptlayers.js adds one per entry)
  deptlayers: { kind: 'deptlayer', catalog: true },
});
