// @ts-check
// Runs before Cesium.js: CesiumJS loads its workers and assets from this server only
// (vendored npm libraries are served under vendor/<name>/, see vendor.json).
window.CESIUM_BASE_URL = new URL('vendor/cesium/', document.baseURI).href;
