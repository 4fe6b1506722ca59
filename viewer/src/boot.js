// Runs before Cesium.js: CesiumJS loads its workers and assets from this server only.
window.CESIUM_BASE_URL = new URL('cesium/', document.baseURI).href;
