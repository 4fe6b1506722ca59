// @ts-check
// The connection banner: shown while the server does not answer, gone (with a short
// notice) when it answers again.

import { t } from '../i18n.js';
import { toast } from '../util.js';

/**
 * @param {import('../core/connection.js').Connection} connection
 * @param {import('../core/bus.js').Bus} bus
 */
export function mountConnection(connection, bus) {
  const banner = /** @type {HTMLElement} */ (document.getElementById('connBanner'));
  const render = () => {
    banner.textContent = t('disconnected');
    banner.hidden = connection.online;
    document.documentElement.dataset.connection = connection.online ? 'online' : 'offline';
  };
  bus.on('connection:change', ({ online }) => {
    render();
    if (online) toast(t('reconnected'));
  });
  // a request that got no answer: ask the server now rather than at the next poll
  bus.on('net:error', () => {
    connection.check();
  });
  render();
  return render;
}
