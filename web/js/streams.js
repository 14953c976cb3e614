// streams.js - the Streams page: a live tile per video stream (its MJPEG
// view with the boxes drawn, /api/v1/streams/{name}/live; its state, input
// and detect rates, drops, latency and last events), a form that adds a
// stream (POST /api/v1/streams) and a Remove button per tile (DELETE).
// The list refreshes every second while the page is shown.  Tiles are kept
// by stream name and only their text changes, so a refresh never reconnects
// a live view; leaving the page closes every view, since the server holds a
// connection for each viewer.  An <img> cannot send a bearer token, so with
// a token set the tile shows frame.jpg, fetched with it twice a second.

import { getJson, postJson, request, showError, token } from './api.js';
import { fillDetectors } from './detect.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 1000;
const FRAME_MS = 500;
const EVENTS_SHOWN = 5;
const EVENTS_PAGE = 50;
let timer = null;
const tiles = new Map(); // stream name -> tile (see makeTile)

function streamPath(name, rest = '') {
  return `/api/v1/streams/${encodeURIComponent(name)}${rest}`;
}

function num(value, digits = 1) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '—';
}

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

// The live view: MJPEG straight into the <img>, or frame.jpg polled through
// fetch, which can send a token: with a token, and after the live view
// failed (a server without it, or one that refused another viewer).
function startView(tile) {
  if (!token() && !tile.polling) {
    tile.img.addEventListener('error', () => {
      if (tile.polling || !tile.img.getAttribute('src')) return; // stopped on purpose
      tile.polling = true;
      startView(tile);
    }, { once: true });
    tile.img.src = streamPath(tile.name, '/live');
    return;
  }
  const poll = async () => {
    try {
      const blob = await (await request(streamPath(tile.name, '/frame.jpg'))).blob();
      if (tile.stopped) return;
      const old = tile.blobUrl;
      tile.blobUrl = URL.createObjectURL(blob);
      tile.img.src = tile.blobUrl;
      if (old) URL.revokeObjectURL(old);
    } catch { /* no frame yet: the state says why */ }
  };
  poll();
  tile.frameTimer = setInterval(poll, FRAME_MS);
}

function stopView(tile) {
  tile.stopped = true;
  tile.polling = true; // no fallback for a view closed on purpose
  clearInterval(tile.frameTimer);
  tile.img.removeAttribute('src'); // ends the MJPEG request: the server frees the viewer
  if (tile.blobUrl) URL.revokeObjectURL(tile.blobUrl);
  tile.blobUrl = null;
}

async function remove(name) {
  showError($('streams-error'), '');
  try {
    await request(streamPath(name), { method: 'DELETE' });
  } catch (e) {
    showError($('streams-error'), `Cannot remove ${name}: ${e.message}`);
  }
  await refresh();
}

function fact(list, term, field) {
  const dd = element('dd');
  dd.dataset.field = field;
  list.append(element('dt', '', term), dd);
  return dd;
}

function makeTile(name) {
  const root = element('article', 'panel tile');
  root.dataset.stream = name;
  const view = element('div', 'tile-view');
  const img = element('img');
  img.alt = `Live view of ${name}`;
  view.append(img);
  const title = element('h2', 'tile-title');
  const state = element('span', 'state');
  title.append(element('span', 'tile-name', name), ' ', state);
  const reason = element('p', 'reason failed');
  reason.hidden = true;
  const facts = element('dl', 'facts tile-facts');
  const fields = {
    input: fact(facts, 'Input', 'input'),
    detect: fact(facts, 'Detect', 'detect'),
    dropped: fact(facts, 'Dropped', 'dropped'),
    latency: fact(facts, 'Latency', 'latency'),
    cost: fact(facts, 'Per frame', 'cost'),
    source: fact(facts, 'Source', 'source'),
  };
  const events = element('ul', 'tile-events');
  events.setAttribute('aria-label', `Last events of ${name}`);
  const actions = element('div', 'actions');
  const removeButton = element('button', 'quiet', 'Remove');
  removeButton.type = 'button';
  removeButton.id = `remove-${name}`;
  removeButton.addEventListener('click', () => remove(name));
  actions.append(removeButton);
  root.append(view, title, reason, facts, element('h3', '', 'Last events'), events, actions);
  const tile = { name, root, img, state, reason, fields, events, cursor: null, recent: [], frameTimer: null, blobUrl: null, polling: false, stopped: false };
  startView(tile);
  return tile;
}

function renderTile(tile, s) {
  const st = s.stats || {};
  const dropped = st.dropped || {};
  const latency = st.latency_ms || {};
  tile.state.className = `state state-${String(s.state || 'unknown').toLowerCase()}`;
  tile.state.textContent = s.state || 'unknown';
  tile.reason.textContent = s.error || '';
  tile.reason.hidden = !s.error;
  tile.fields.input.textContent = `${num(st.input_fps)} frames/s (${st.frames_in ?? 0} frames)`;
  tile.fields.detect.textContent = `${num(st.detect_fps)} of ${num(s.detect_fps)} frames/s (${st.frames_detected ?? 0} frames)`;
  tile.fields.dropped.textContent = `rate ${dropped.rate ?? 0} · busy ${dropped.busy ?? 0} · corrupt ${dropped.corrupt ?? 0}`;
  tile.fields.latency.textContent = `p50 ${num(latency.p50, 0)} ms · p99 ${num(latency.p99, 0)} ms`;
  tile.fields.cost.textContent = `decode ${num(st.decode_ms)} ms · inference ${num(st.inference_ms)} ms`;
  const size = s.source && s.source.width ? `${s.source.width}x${s.source.height}` : 'size not known yet';
  tile.fields.source.textContent = `${size} · ${s.model || '?'} · ${st.reconnects ?? 0} reconnects`;
}

function eventText(e) {
  const when = typeof e.time === 'number' ? new Date(e.time > 1e12 ? e.time : e.time * 1000) : new Date(e.time);
  const time = Number.isNaN(when.getTime()) ? '' : `${when.toLocaleTimeString()} `;
  const score = typeof e.score === 'number' ? ` ${e.score.toFixed(2)}` : '';
  return `${time}${e.type} ${e.class_name ?? ''} #${e.track_id ?? '?'}${score}`;
}

// The stream's events since the last look (pages through ?after=), the
// newest EVENTS_SHOWN kept.
async function refreshEvents(tile) {
  if (tile.eventsBusy) return; // one look at a time, or events would be counted twice
  tile.eventsBusy = true;
  try {
    for (let page = 0; page < 10; page++) {
      const after = tile.cursor === null ? '' : `&after=${encodeURIComponent(tile.cursor)}`;
      const { events = [], next } = await getJson(`/api/v1/events?stream=${encodeURIComponent(tile.name)}${after}&limit=${EVENTS_PAGE}`);
      tile.recent = [...tile.recent, ...events].slice(-EVENTS_SHOWN);
      if (next !== undefined && next !== null) tile.cursor = next;
      if (events.length < EVENTS_PAGE) break;
    }
  } catch {
    return; /* the list's own error says what is wrong */
  } finally {
    tile.eventsBusy = false;
  }
  const items = tile.recent.slice().reverse().map((e) => {
    const li = element('li', `event event-${e.type}`, eventText(e));
    if (typeof e.snapshot === 'string' && e.snapshot.startsWith('/')) {
      const a = element('a', '', 'snapshot');
      a.href = e.snapshot;
      a.target = '_blank';
      li.append(' ', a);
    }
    return li;
  });
  if (!items.length) items.push(element('li', 'status', 'none yet'));
  tile.events.replaceChildren(...items);
}

export async function refresh() {
  let streams;
  try {
    ({ streams } = await getJson('/api/v1/streams'));
    showError($('streams-error'), '');
  } catch (e) {
    showError($('streams-error'), `Cannot list the streams: ${e.message}`);
    return;
  }
  if (!timer) return; // the page was left while the answer was on its way
  const names = new Set(streams.map((s) => s.name));
  for (const [name, tile] of tiles) {
    if (names.has(name)) continue;
    stopView(tile);
    tile.root.remove();
    tiles.delete(name);
  }
  const list = $('streams-tiles');
  for (const s of streams) {
    let tile = tiles.get(s.name);
    if (!tile) {
      tile = makeTile(s.name);
      tiles.set(s.name, tile);
      list.append(tile.root);
    }
    renderTile(tile, s);
    refreshEvents(tile);
  }
  $('streams-empty').hidden = streams.length > 0;
}

async function add(e) {
  e.preventDefault();
  const form = $('stream-form');
  showError($('stream-add-error'), '');
  if (!form.checkValidity()) {
    form.reportValidity();
    showError($('stream-add-error'), 'Give a name (letters, digits, _ . -), a URL, a model and a detect rate above 0.');
    return;
  }
  const spec = {
    name: $('stream-name').value.trim(),
    url: $('stream-url').value.trim(),
    model: $('stream-model').value,
    detect_fps: Number($('stream-fps').value),
  };
  $('stream-add').disabled = true;
  try {
    await postJson('/api/v1/streams', spec);
    $('stream-status').textContent = `Added ${spec.name}.`;
    $('stream-name').value = '';
    $('stream-url').value = '';
  } catch (err) {
    $('stream-status').textContent = '';
    showError($('stream-add-error'), `Cannot add ${spec.name}: ${err.message}`);
  } finally {
    $('stream-add').disabled = false;
  }
  await refresh();
}

export function initStreams() {
  $('stream-form').addEventListener('submit', add);
}

export function showStreams() {
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
  fillDetectors($('stream-model'), $('stream-add-error'));
  refresh();
}

export function hideStreams() {
  clearInterval(timer);
  timer = null;
  for (const tile of tiles.values()) stopView(tile);
  tiles.clear();
  $('streams-tiles').replaceChildren();
}
