// Globals of the page: CesiumJS is loaded by a classic <script> (cesium/Cesium.js) and
// read as window.Cesium; its types come with the cesium npm package.
import type * as CesiumModule from 'cesium';

declare global {
  interface Window {
    Cesium: typeof CesiumModule;
    CESIUM_BASE_URL: string;
    /** the page's state and hooks (main.js), for later modules and the browser tests */
    cim: any;
  }
}

export {};
