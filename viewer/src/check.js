// @ts-check
// Runs after cesium/Cesium.js: say so on the page when CesiumJS is not installed.
if (!window.Cesium) {
  document.addEventListener('DOMContentLoaded', () => {
    const box = document.getElementById('toast');
    if (!box) return;
    box.textContent =
      'CesiumJS 未安装 / CesiumJS is not installed: npm ci --prefix viewer';
    box.hidden = false;
    document.documentElement.dataset.ready = 'error';
  });
}
