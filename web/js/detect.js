// detect.js - the Detect page: take an image (drop, paste or pick), send it
// to POST /api/v1/detect with the chosen model and thresholds, draw the boxes
// over the image on a canvas, list them, show the time each stage took, and
// offer the JSON or the server-annotated image (render=1) as downloads.

import { ApiError, download, getJson, request, showError } from './api.js';

// Distinct, saturated colours; a class keeps its colour (class_id modulo the list).
export const PALETTE = ['#ff3838', '#2c99a8', '#ff9d97', '#ff701f', '#ffb21d', '#cfd231', '#48f90a', '#92cc17',
  '#3ddb86', '#1a9334', '#00d4bb', '#ff37c7', '#344593', '#6473ff', '#0018ec', '#8438ff', '#520085', '#cb38ff',
  '#ff95c8', '#ff2b87'];
const STAGES = ['decode', 'letterbox', 'inference', 'postprocess', 'total'];

const $ = (id) => document.getElementById(id);
let image = null;   // {blob, name, bitmap}
let result = null;  // the last detect JSON
let busy = false;

export function classColor(classId) {
  return PALETTE[((classId % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

// Black or white, whichever reads better on the colour (#rrggbb).
function textColorOn(color) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#000' : '#fff';
}

function query() {
  const params = new URLSearchParams();
  const model = $('detect-model').value;
  if (model) params.set('model', model);
  for (const [id, key] of [['detect-conf', 'conf'], ['detect-iou', 'iou'], ['detect-max-det', 'max_det'], ['detect-classes', 'classes']]) {
    const v = $(id).value.trim();
    if (v) params.set(key, v);
  }
  return params;
}

function setBusy(on, message = '') {
  busy = on;
  $('detect-status').textContent = message;
  $('detect-run').disabled = on || !image;
  $('detect-download-json').disabled = on || !result;
  $('detect-download-image').disabled = on || !image || !result;
}

// Fits a label ("name score") into at most `maxWidth` pixels: a smaller font
// first (down to `minSize`), then the name cut short with an ellipsis (the
// score stays).  Returns {text, size, width}.
function fitLabel(ctx, name, score, size, maxWidth, minSize = 9) {
  const font = (px) => `${px}px system-ui, sans-serif`;
  const measure = (text) => ctx.measureText(text).width + 8; // 4 px of padding each side
  let text = `${name} ${score}`;
  ctx.font = font(size);
  let width = measure(text);
  if (width > maxWidth) {
    size = Math.max(minSize, Math.floor((size * (maxWidth - 8)) / (width - 8)));
    ctx.font = font(size);
    width = measure(text);
  }
  for (let keep = name.length; width > maxWidth && keep > 0;) {
    keep = Math.max(0, Math.min(keep - 1, Math.floor((keep * maxWidth) / width)));
    text = `${name.slice(0, keep)}… ${score}`;
    width = measure(text);
  }
  return { text, size, width: Math.ceil(Math.min(width, maxWidth)) };
}

// Where a w x h label goes: above the box when there is room, else just inside
// its top edge; moved left or up as needed so that it lies wholly inside the
// width x height image.
export function placeLabel(box, w, h, width, height) {
  const [x1, y1] = box;
  const x = Math.max(0, Math.min(Math.floor(x1), width - w));
  const y = Math.max(0, Math.min(Math.floor(y1 - h >= 0 ? y1 - h : y1), height - h));
  return { x, y };
}

// Draws the image, then every box, then every label (labels last, so that no
// box line crosses a label).  The labels' places, in image pixels, are kept
// in the canvas' data-labels attribute (JSON [{text, x, y, w, h, color}]).
function drawImageAndBoxes() {
  const canvas = $('detect-canvas');
  const ctx = canvas.getContext('2d');
  canvas.width = image.bitmap.width;
  canvas.height = image.bitmap.height;
  ctx.drawImage(image.bitmap, 0, 0);
  const detections = result?.detections || [];
  const line = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 300));
  const fontSize = Math.max(12, Math.round(Math.max(canvas.width, canvas.height) / 50));
  for (const d of detections) {
    const [x1, y1, x2, y2] = d.box;
    ctx.strokeStyle = classColor(d.class_id);
    ctx.lineWidth = line;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  }
  ctx.textBaseline = 'top';
  const labels = [];
  for (const d of detections) {
    const color = classColor(d.class_id);
    const fitted = fitLabel(ctx, String(d.class_name ?? d.class_id), d.score.toFixed(2), fontSize, canvas.width);
    const w = fitted.width;
    const h = Math.min(canvas.height, fitted.size + 6);
    const { x, y } = placeLabel(d.box, w, h, canvas.width, canvas.height);
    ctx.fillStyle = color;
    ctx.fillRect(x, y, w, h);
    ctx.fillStyle = textColorOn(color);
    ctx.fillText(fitted.text, x + 4, y + 3);
    labels.push({ text: fitted.text, x, y, w, h, color });
  }
  canvas.dataset.boxes = String(detections.length);
  canvas.dataset.labels = JSON.stringify(labels);
  canvas.setAttribute('aria-label', `${image.name}: ${detections.length} detections`);
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function renderTables() {
  const body = $('detect-table').tBodies[0];
  body.replaceChildren();
  const detections = result?.detections || [];
  detections.forEach((d, i) => {
    const tr = document.createElement('tr');
    const name = cell('');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = classColor(d.class_id);
    name.append(swatch, document.createTextNode(d.class_name ?? String(d.class_id)));
    name.className = 'class-name';
    tr.append(cell(String(i + 1)), name, cell(d.score.toFixed(3)), cell(d.box.map((v) => v.toFixed(1)).join(', ')));
    body.append(tr);
  });
  $('detect-count').textContent = result ? `(${detections.length})` : '';
  const timing = $('detect-timing').tBodies[0];
  timing.replaceChildren();
  const t = result?.timing_ms || {};
  const total = t.total || 0;
  for (const stage of STAGES) {
    if (typeof t[stage] !== 'number') continue;
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = stage;
    const bar = cell('');
    const fill = document.createElement('span');
    fill.className = 'bar';
    fill.style.width = `${total > 0 ? Math.min(100, (100 * t[stage]) / total) : 0}%`;
    bar.append(fill);
    bar.className = 'bar-cell';
    tr.append(th, cell(`${t[stage].toFixed(1)} ms`), bar);
    tr.dataset.stage = stage;
    timing.append(tr);
  }
}

async function runDetect() {
  if (!image || busy) return;
  showError($('detect-error'), '');
  setBusy(true, 'Detecting…');
  try {
    const response = await request(`/api/v1/detect?${query()}`, {
      method: 'POST',
      headers: { 'Content-Type': image.blob.type || 'application/octet-stream' },
      body: image.blob,
    });
    result = await response.json();
    drawImageAndBoxes();
    renderTables();
    setBusy(false, `${result.detections.length} detections with ${result.model ?? 'the default model'} in ${result.timing_ms?.total?.toFixed(0) ?? '?'} ms`);
  } catch (e) {
    result = null; // no stale boxes next to an error
    drawImageAndBoxes();
    renderTables();
    setBusy(false, '');
    showError($('detect-error'), e instanceof ApiError ? e.message : String(e));
  }
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

async function takeImage(blob, name) {
  if (!blob) return;
  if (!/^image\/(jpeg|png)$/.test(blob.type) && blob.type) {
    showError($('detect-error'), `${name} is ${blob.type}: send a JPEG or PNG image`);
    return;
  }
  try {
    const bitmap = await createImageBitmap(blob);
    image = { blob, name, bitmap };
  } catch {
    showError($('detect-error'), `${name} cannot be read as an image`);
    return;
  }
  $('detect-file-name').textContent = `${name} · ${image.bitmap.width}×${image.bitmap.height} px · ${formatBytes(blob.size)}`;
  const input = $('detect-file');
  if (blob instanceof File && input.files[0] !== blob) { // dropped or pasted: the file input names it too
    try {
      const transfer = new DataTransfer();
      transfer.items.add(blob);
      input.files = transfer.files;
    } catch { /* an older browser: the line above still names it */ }
  }
  result = null;
  drawImageAndBoxes();
  renderTables();
  await runDetect();
}

async function downloadAnnotated() {
  showError($('detect-error'), '');
  setBusy(true, 'Rendering…');
  try {
    const params = query();
    params.set('render', '1');
    const response = await request(`/api/v1/detect?${params}`, {
      method: 'POST',
      headers: { 'Content-Type': image.blob.type || 'application/octet-stream' },
      body: image.blob,
    });
    download(await response.blob(), `${image.name.replace(/\.[^.]*$/, '')}_detections.jpg`);
    setBusy(false, 'Annotated image downloaded');
  } catch (e) {
    setBusy(false, '');
    showError($('detect-error'), e.message);
  }
}

export function refreshModels() {
  return fillDetectors($('detect-model'), $('detect-error'));
}

// Fills a <select> with the ready detection models (the Detect and Streams
// pages); keeps the choice when it is still there.
export async function fillDetectors(select, errorElement) {
  try {
    const { models } = await getJson('/api/v1/models');
    const detectors = models.filter((m) => m.state === 'READY' && m.task === 'detect');
    const keep = select.value;
    select.replaceChildren();
    if (!detectors.length) select.append(new Option('(no detection model is ready)', ''));
    for (const m of detectors) select.append(new Option(`${m.name} (v${m.version})`, m.name));
    if (detectors.some((m) => m.name === keep)) select.value = keep;
  } catch (e) {
    showError(errorElement, `Cannot list the models: ${e.message}`);
  }
}

export function initDetect() {
  $('detect-file').addEventListener('change', (e) => {
    const file = e.target.files[0];
    if (file) takeImage(file, file.name);
  });
  $('detect-form').addEventListener('submit', (e) => {
    e.preventDefault();
    runDetect();
  });
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const file = e.dataTransfer.files[0];
    if (file) takeImage(file, file.name);
  });
  document.addEventListener('paste', (e) => {
    if ($('page-detect').hidden) return;
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (item) takeImage(item.getAsFile(), 'pasted image');
  });
  $('detect-download-json').addEventListener('click', () => {
    if (result) download(new Blob([JSON.stringify(result, null, 2)], { type: 'application/json' }), 'detections.json');
  });
  $('detect-download-image').addEventListener('click', downloadAnnotated);
}
