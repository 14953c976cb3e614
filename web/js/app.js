// app.js - starts the UI: shows one page at a time from the URL hash
// (#detect, #models, #streams, #server), starts and stops each page's polling, and
// wires the token button.

import { askToken } from './api.js';
import { initDetect, refreshModels } from './detect.js';
import { hideModels, initModels, showModels } from './models.js';
import { hideServer, showServer } from './server.js';
import { hideStreams, initStreams, showStreams } from './streams.js';

const PAGES = {
  detect: { show: refreshModels, hide: () => {} },
  models: { show: showModels, hide: hideModels },
  streams: { show: showStreams, hide: hideStreams },
  server: { show: showServer, hide: hideServer },
};
let current = null;

function route() {
  const wanted = location.hash.replace(/^#\/?/, '');
  const name = Object.hasOwn(PAGES, wanted) ? wanted : 'detect';
  if (name === current) return;
  if (current) PAGES[current].hide();
  for (const page of Object.keys(PAGES)) {
    document.getElementById(`page-${page}`).hidden = page !== name;
    const link = document.getElementById(`nav-${page}`);
    if (page === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const moved = current !== null;
  current = name;
  PAGES[name].show();
  if (moved) document.getElementById(`h-${name}`).focus({ preventScroll: true });
}

initDetect();
initModels();
initStreams();
document.getElementById('token-button').hidden = !sessionStorage.getItem('vigil.token');
document.getElementById('token-button').addEventListener('click', () => askToken('Change the bearer token for this tab.'));
window.addEventListener('hashchange', route);
route();
document.body.dataset.ready = '1';
