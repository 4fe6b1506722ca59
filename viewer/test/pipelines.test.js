import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROLE_COLOURS, attributeRows, groundState, queryUrl, rolesOf, seeWhy, translucency } from '../src/layers/pipelines.js';

test('attribute rows leave out empty and no-data values and round to centimetres', () => {
  const rows = attributeRows({ id: 'J1', kind: 'pipe', size: 'DN300', start_depth: 1.2345, depth: -9999, owner: '', ground: NaN });
  assert.deepEqual(rows, [
    ['编号 id', 'J1'],
    ['类别 kind', 'pipe'],
    ['管径/断面 size', 'DN300'],
    ['起点埋深 start depth (m)', '1.23'],
  ]);
});

test('attribute text stays text (the panel inserts it with textContent)', () => {
  const rows = attributeRows({ id: '<img src=x onerror=alert(1)>' });
  assert.equal(rows[0][1], '<img src=x onerror=alert(1)>');
});

test('burst roles: the burst pipe wins over isolated, valves and cut-off pipes', () => {
  const roles = rolesOf('burst', { segment: 'W3', valves: ['V1', 'V2'], isolated: ['W2', 'W3'], cut_off: ['W5'] });
  assert.equal(roles.get('W3'), 'burst');
  assert.equal(roles.get('W2'), 'isolated');
  assert.equal(roles.get('V1'), 'valve');
  assert.equal(roles.get('W5'), 'cut_off');
  assert.equal(roles.size, 5);
  for (const role of roles.values()) assert.ok(ROLE_COLOURS[role], role);
});

test('connected and clearance roles', () => {
  const down = rolesOf('downstream', { segment: 'R1', segments: ['R2', 'R3'] });
  assert.deepEqual([...down.entries()], [['R2', 'downstream'], ['R3', 'downstream'], ['R1', 'selected']]);
  const clear = rolesOf('clearance', { violations: [{ a: 'W5', b: 'building:B1' }, { a: 'W1', b: 'G1' }] });
  assert.deepEqual([...clear.keys()].sort(), ['G1', 'W1', 'W5']);
  assert.equal(rolesOf('burst', null).size, 0);
});

test('query URLs escape the id', () => {
  assert.equal(queryUrl('burst', 'a/b c'), 'api/pipelines/segments/a%2Fb%20c/burst');
  assert.equal(queryUrl('upstream', 'R1'), 'api/pipelines/segments/R1/connected?direction=upstream');
  assert.equal(queryUrl('clearance', 'R1'), 'api/pipelines/clearance?segment=R1');
});

test('underground translucency is see-through near, opaque far', () => {
  const t = translucency(true);
  assert.ok(t.enabled && t.nearAlpha < 0.5 && t.farAlpha === 1 && t.near < t.far);
  assert.equal(translucency(false).enabled, false);
});

test('the pipes are drawn only when something reveals them under the terrain', () => {
  /** @type {import('../src/layers/pipelines.js').GroundState} */
  const opaque = {
    underground: false,
    globeShown: true,
    translucent: false,
    depthTest: true,
    clipped: false,
    cameraUnderground: false,
    realTerrain: true,
    scene3D: true,
  };
  assert.equal(seeWhy(opaque), null);
  const reveal = {
    underground: true,
    globeShown: false,
    translucent: true,
    depthTest: false,
    clipped: true,
    cameraUnderground: true,
    realTerrain: false,
    scene3D: false,
  };
  for (const [key, value] of Object.entries(reveal)) {
    assert.notEqual(seeWhy({ ...opaque, [key]: value }), null, key);
  }
});

test('the ground state reads the scene: an excavation, the flat ellipsoid, the camera below', () => {
  class EllipsoidTerrainProvider {}
  const Cesium = { EllipsoidTerrainProvider, SceneMode: { SCENE3D: 3 } };
  /** @type {any} */
  const globe = { show: true, translucency: { enabled: false }, depthTestAgainstTerrain: true, clippingPolygons: undefined };
  const viewer = { scene: { globe, cameraUnderground: false, mode: 3 }, terrainProvider: {} };
  assert.equal(seeWhy(groundState(Cesium, viewer, false)), null);
  globe.clippingPolygons = { enabled: true, length: 0 }; // emptied (the excavation cleared)
  assert.equal(seeWhy(groundState(Cesium, viewer, false)), null);
  globe.clippingPolygons.length = 1;
  assert.equal(seeWhy(groundState(Cesium, viewer, false)), 'globe cut');
  globe.clippingPolygons.enabled = false;
  assert.equal(seeWhy(groundState(Cesium, viewer, false)), null);
  viewer.terrainProvider = new EllipsoidTerrainProvider();
  assert.equal(seeWhy(groundState(Cesium, viewer, false)), 'flat terrain');
  viewer.terrainProvider = {};
  viewer.scene.cameraUnderground = true;
  assert.equal(seeWhy(groundState(Cesium, viewer, false)), 'camera below the surface');
  viewer.scene.cameraUnderground = false;
  assert.equal(seeWhy(groundState(Cesium, viewer, true)), 'underground');
});
