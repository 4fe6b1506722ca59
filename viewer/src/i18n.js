// Interface strings: Chinese by default, English switchable. Text only (never HTML).

const STRINGS = {
  zh: {
    title: '城市运行指挥视图',
    searchPlaceholder: '搜索地址…',
    searchNone: '未找到地址',
    searchUnavailable: '本城市无地址索引',
    searchFailed: '地址搜索失败',
    home: '全景',
    share: '分享视图',
    shareCopied: '视图链接已复制',
    shareReady: '视图链接已写入地址栏',
    layers: '图层',
    layerTerrain: '地形',
    layerImagery: '影像',
    layerL2: '建筑（L2）',
    layerL3: '精细模型（L3）',
    theme: '专题',
    themeNone: '无',
    themeHeight: '按高度',
    themeUse: '按用途',
    other: '其他',
    unknown: '未知',
    bookmarks: '视角书签',
    bookmarkName: '书签名称',
    add: '添加',
    remove: '删除',
    close: '关闭',
    loading: '加载中',
    noBuild: '尚未构建城市数据：请先运行 cim build',
    loadFailed: '图层加载失败',
    building: '建筑',
    location: '位置',
    nearestAddress: '最近地址',
    coordinates: '经纬度',
    prop_id: '编号',
    prop_name: '名称',
    prop_height: '高度',
    prop_floors: '层数',
    prop_use: '用途',
    prop_roof_type: '屋顶类型',
    prop_base: '基底高程',
    prop_address: '地址',
    metres: '米',
  },
  en: {
    title: 'City Operations View',
    searchPlaceholder: 'Search an address…',
    searchNone: 'No address found',
    searchUnavailable: 'No address index for this city',
    searchFailed: 'Address search failed',
    home: 'Home',
    share: 'Share view',
    shareCopied: 'Link to this view copied',
    shareReady: 'Link to this view is in the address bar',
    layers: 'Layers',
    layerTerrain: 'Terrain',
    layerImagery: 'Imagery',
    layerL2: 'Buildings (L2)',
    layerL3: 'Detailed models (L3)',
    theme: 'Thematic',
    themeNone: 'None',
    themeHeight: 'By height',
    themeUse: 'By use',
    other: 'Other',
    unknown: 'Unknown',
    bookmarks: 'Bookmarks',
    bookmarkName: 'Bookmark name',
    add: 'Add',
    remove: 'Delete',
    close: 'Close',
    loading: 'Loading',
    noBuild: 'The city has not been built yet: run cim build first',
    loadFailed: 'Layer failed to load',
    building: 'Building',
    location: 'Location',
    nearestAddress: 'Nearest address',
    coordinates: 'Lon / lat',
    prop_id: 'ID',
    prop_name: 'Name',
    prop_height: 'Height',
    prop_floors: 'Floors',
    prop_use: 'Use',
    prop_roof_type: 'Roof type',
    prop_base: 'Base elevation',
    prop_address: 'Address',
    metres: 'm',
  },
};

let lang = 'zh';
const listeners = [];

export const LANGUAGES = Object.keys(STRINGS);

/** The current language code ('zh' or 'en'). */
export function getLang() {
  return lang;
}

/** Translate a key; falls back to Chinese, then to the key itself. */
export function t(key) {
  return STRINGS[lang][key] ?? STRINGS.zh[key] ?? key;
}

/** Whether a key has a translation. */
export function has(key) {
  return key in STRINGS.zh;
}

/** Fill every [data-i18n], [data-i18n-placeholder] and [data-i18n-title] element. */
export function applyI18n(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = t('title');
}

/** Switch language, re-label the page and notify listeners. */
export function setLang(code) {
  lang = STRINGS[code] ? code : 'zh';
  try {
    localStorage.setItem('cim.lang', lang);
  } catch {
    // storage may be disabled; the language still switches
  }
  applyI18n();
  for (const fn of listeners) fn(lang);
}

/** Call fn(lang) after every language switch. */
export function onLangChange(fn) {
  listeners.push(fn);
}
