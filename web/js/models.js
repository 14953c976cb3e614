// models.js - the Models page: the repository's models with their version,
// state and queue, load and unload, each model's inputs/outputs/labels from
// the v2 metadata, and uploading an ONNX file as a new version (PUT
// /api/v1/models/{m}/versions/{v}) with a progress bar.  The table refreshes
// every few seconds while the page is shown; rows are rebuilt only when the
// data changed, and keyboard focus stays on the same control.

import { getJson, labelCells, postJson, showError, uploadWithProgress } from './api.js';
import { refreshModels as refreshDetectModels } from './detect.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 2000;
let timer = null;
let lastJson = '';

function button(text, id, onClick, disabled = false) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.id = id;
  b.disabled = disabled;
  b.addEventListener('click', onClick);
  return b;
}

function cell(content, className) {
  const td = document.createElement('td');
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  if (className) td.className = className;
  return td;
}

async function act(kind, name) {
  showError($('models-error'), '');
  try {
    await postJson(`/api/v1/models/${kind}`, { model: name });
  } catch (e) {
    showError($('models-error'), `${kind} ${name}: ${e.message}`);
  }
  await refresh();
  refreshDetectModels();
}

function renderRows(models) {
  const focused = document.activeElement?.id;
  const body = $('models-table').tBodies[0];
  body.replaceChildren();
  for (const m of models) {
    const tr = document.createElement('tr');
    tr.dataset.model = m.name;
    const state = document.createElement('span');
    state.className = `state state-${m.state.toLowerCase()}`;
    state.textContent = m.state;
    if (m.reason) state.title = m.reason;
    const versions = Array.isArray(m.versions) ? m.versions.join(', ') : (m.version > 0 ? String(m.version) : '—');
    const stateCell = cell(state, 'model-state');
    if (m.reason) stateCell.append(Object.assign(document.createElement('div'), { className: m.state === 'FAILED' ? 'reason failed' : 'reason', textContent: m.reason }));
    const actions = document.createElement('div');
    actions.className = 'actions';
    const ready = m.state === 'READY';
    actions.append(
      button(ready ? 'Reload' : 'Load', `load-${m.name}`, () => act('load', m.name), m.state === 'LOADING'),
      button('Unload', `unload-${m.name}`, () => act('unload', m.name), !ready),
      button('Details', `details-${m.name}`, () => showDetails(m.name), !ready),
    );
    tr.append(cell(m.name, 'model-name'), cell(versions, 'model-version'), stateCell, cell(m.task || '—'),
      cell(String(m.queue_length ?? 0)), cell(actions));
    body.append(tr);
  }
  labelCells($('models-table'));
  $('models-empty').hidden = models.length > 0;
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

export async function refresh() {
  try {
    const { models } = await getJson('/api/v1/models');
    const json = JSON.stringify(models);
    if (json !== lastJson) {
      lastJson = json;
      renderRows(models);
    }
    return models;
  } catch (e) {
    showError($('models-error'), `Cannot list the models: ${e.message}`);
    return [];
  }
}

function tensorTable(title, tensors) {
  const wrap = document.createElement('div');
  const h = document.createElement('h3');
  h.textContent = title;
  const table = document.createElement('table');
  table.innerHTML = '<thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Shape</th></tr></thead>';
  const body = table.createTBody();
  for (const t of tensors || []) {
    const tr = document.createElement('tr');
    tr.append(cell(t.name), cell(t.datatype), cell(`[${(t.shape || []).join(', ')}]`));
    body.append(tr);
  }
  const scroll = document.createElement('div');
  scroll.className = 'table-wrap';
  scroll.append(table);
  wrap.append(h, scroll);
  return wrap;
}

// Labels may come as a list or a {id: name} map, depending on the server's version.
function labelList(meta) {
  const labels = meta.labels ?? meta.parameters?.labels ?? meta.names;
  if (Array.isArray(labels)) return labels.map((name, i) => `${i}: ${name}`);
  if (labels && typeof labels === 'object') return Object.entries(labels).map(([i, name]) => `${i}: ${name}`);
  return null;
}

async function showDetails(name) {
  const panel = $('model-details');
  const body = $('model-details-body');
  $('model-details-title').textContent = name;
  panel.hidden = false;
  body.replaceChildren('Loading…');
  try {
    const meta = await getJson(`/v2/models/${encodeURIComponent(name)}`);
    const facts = document.createElement('p');
    facts.textContent = `versions ${(meta.versions || []).join(', ')} · backend ${meta.backend ?? '?'} · task ${meta.task ?? '?'} · max batch ${meta.max_batch_size ?? '?'}`;
    const labels = labelList(meta);
    const labelsBlock = document.createElement('div');
    const h = document.createElement('h3');
    h.textContent = 'Labels';
    const p = document.createElement('p');
    p.className = 'labels';
    p.textContent = labels ? labels.join(', ') : 'The server does not report labels for this model.';
    labelsBlock.append(h, p);
    body.replaceChildren(facts, tensorTable('Inputs', meta.inputs), tensorTable('Outputs', meta.outputs), labelsBlock);
  } catch (e) {
    body.replaceChildren(`Cannot read the metadata: ${e.message}`);
  }
  $('model-details-title').scrollIntoView({ block: 'nearest' });
}

// Polls until the model is READY or FAILED (or the time is up).
async function waitReady(name, timeoutMs = 120000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const m = (await refresh()).find((x) => x.name === name);
    if (m && (m.state === 'READY' || m.state === 'FAILED')) return m;
    await new Promise((r) => setTimeout(r, 500));
  }
  return null;
}

async function upload(e) {
  e.preventDefault();
  const form = $('upload-form');
  showError($('upload-error'), '');
  if (!form.checkValidity()) {
    form.reportValidity();
    showError($('upload-error'), 'Give a model name (letters, digits, _ . -), a version of 1 or more and an .onnx file.');
    return;
  }
  const name = $('upload-name').value.trim();
  const version = $('upload-version').value;
  const file = $('upload-file').files[0];
  const progress = $('upload-progress');
  progress.hidden = false;
  progress.value = 0;
  $('upload-run').disabled = true;
  $('upload-status').textContent = `Uploading ${file.name} as ${name} version ${version}…`;
  try {
    await uploadWithProgress(`/api/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`, file,
      (f) => { progress.value = Math.round(f * 100); });
    $('upload-status').textContent = `Uploaded; waiting for ${name} to become ready…`;
    let m = (await refresh()).find((x) => x.name === name);
    if (m && m.state !== 'READY' && m.state !== 'LOADING') await postJson('/api/v1/models/load', { model: name });
    m = await waitReady(name);
    $('upload-status').textContent = m ? `${name} version ${m.version} is ${m.state}${m.reason ? `: ${m.reason}` : ''}` : `${name} did not become ready in time`;
    refreshDetectModels();
  } catch (err) {
    $('upload-status').textContent = '';
    showError($('upload-error'), `Upload failed: ${err.message}`);
  } finally {
    $('upload-run').disabled = false;
  }
}

export function initModels() {
  $('upload-form').addEventListener('submit', upload);
}

export function showModels() {
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

export function hideModels() {
  clearInterval(timer);
  timer = null;
}
