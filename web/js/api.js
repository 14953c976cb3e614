// api.js - every call to the vigil server goes through here: it adds the
// bearer token (kept in sessionStorage), asks for one when the server
// answers 401 and retries once, and turns error answers ({"error": "..."})
// into thrown ApiError with a plain message.

const TOKEN_KEY = 'vigil.token';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function authHeaders(headers = {}) {
  const t = token();
  return t ? { ...headers, Authorization: `Bearer ${t}` } : headers;
}

// Shows the token dialog; resolves true when the user gave a token.
let pendingAsk = null;
export function askToken(reason) {
  if (pendingAsk) return pendingAsk;
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  document.getElementById('token-reason').textContent = reason || 'The server answered 401 Unauthorized.';
  input.value = '';
  pendingAsk = new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      pendingAsk = null;
      const ok = dialog.returnValue === 'ok' && input.value.trim() !== '';
      if (ok) {
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        document.getElementById('token-button').hidden = false;
      }
      resolve(ok);
    }, { once: true });
    dialog.showModal();
    input.focus();
  });
  return pendingAsk;
}

// The message of an error answer: the JSON "error" field, else the text.
export async function errorMessage(response) {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === 'string') return `${response.status}: ${body.error}`;
  } catch { /* not JSON */ }
  return `${response.status} ${response.statusText}${text ? `: ${text.slice(0, 300)}` : ''}`;
}

// fetch with the token; on 401 asks for a token and retries once.
export async function request(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
    } catch (e) {
      throw new ApiError(0, `cannot reach the server (${e.message})`);
    }
    if (response.status === 401 && attempt === 0) {
      const message = await errorMessage(response);
      if (await askToken(message)) continue;
    }
    if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
    return response;
  }
}

export async function getJson(path) {
  return (await request(path)).json();
}

export async function postJson(path, body) {
  const response = await request(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return response.json();
}

// PUT with upload progress (fetch cannot report it): onProgress(fraction).
export function uploadWithProgress(path, blob, onProgress, retried = false) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', path);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    const t = token();
    if (t) xhr.setRequestHeader('Authorization', `Bearer ${t}`);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'the upload failed: cannot reach the server')));
    xhr.addEventListener('load', async () => {
      const fake = new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText });
      if (xhr.status === 401 && !retried && await askToken(await errorMessage(fake.clone()))) {
        uploadWithProgress(path, blob, onProgress, true).then(resolve, reject);
        return;
      }
      if (xhr.status < 200 || xhr.status >= 300) {
        reject(new ApiError(xhr.status, await errorMessage(fake)));
        return;
      }
      onProgress(1);
      try { resolve(xhr.responseText ? JSON.parse(xhr.responseText) : {}); } catch { resolve({}); }
    });
    xhr.send(blob);
  });
}

// Offers a Blob to the user as a download.
export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Shows or hides an error paragraph.
export function showError(element, message) {
  element.textContent = message || '';
  element.hidden = !message;
}

// Gives every body cell of the table its column's heading as data-label (the
// narrow layout shows it beside the value, where the header row is hidden).
export function labelCells(table) {
  const heads = [...table.tHead.rows[0].cells].map((c) => c.textContent.trim());
  for (const body of table.tBodies) {
    for (const row of body.rows) [...row.cells].forEach((c, i) => { c.dataset.label = heads[i] ?? ''; });
  }
}
