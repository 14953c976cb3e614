// chart.js - a small time-series line chart drawn on a <canvas>: several
// series (each with a colour and optional dash), a shared y axis from zero
// to a rounded maximum, the last `windowSeconds` on the x axis.  Gaps (null
// values) break the line.  Sized for the device pixel ratio.  The legend is
// HTML next to the canvas (renderLegend), so that it wraps at any width.

const AXIS = '#6b7280';
const GRID = 'rgba(107,114,128,0.25)';

// 1, 2 or 5 times a power of ten, at least v.
export function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fit(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300;
  const height = canvas.clientHeight || 200;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, width, height };
}

function formatTick(v) {
  if (v === 0) return '0';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1) return v.toFixed(1).replace(/\.0$/, '');
  return v.toPrecision(2);
}

// series: [{label, color, dash: [..] | undefined, points: [{t (ms), v | null}]}]
export function drawChart(canvas, series, { now = Date.now(), windowSeconds = 120 } = {}) {
  const { ctx, width, height } = fit(canvas);
  const pad = { left: 44, right: 10, top: 10, bottom: 22 };
  const w = Math.max(10, width - pad.left - pad.right);
  const h = Math.max(10, height - pad.top - pad.bottom);
  const t0 = now - windowSeconds * 1000;
  let max = 0;
  for (const s of series) for (const p of s.points) if (p.t >= t0 && p.v !== null && p.v > max) max = p.v;
  const top = niceCeil(max);
  const x = (t) => pad.left + ((t - t0) / (windowSeconds * 1000)) * w;
  const y = (v) => pad.top + h - (v / top) * h;

  ctx.clearRect(0, 0, width, height);
  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) { // grid and y labels
    const v = (top * i) / 4;
    ctx.strokeStyle = GRID;
    ctx.beginPath();
    ctx.moveTo(pad.left, y(v));
    ctx.lineTo(pad.left + w, y(v));
    ctx.stroke();
    ctx.fillStyle = AXIS;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.fillText(formatTick(v), pad.left - 6, y(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  ctx.fillText(`last ${windowSeconds} s`, pad.left + w / 2, pad.top + h + 4);

  ctx.save();
  ctx.beginPath();
  ctx.rect(pad.left, pad.top, w, h);
  ctx.clip();
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    const visible = s.points.map((p) => (p.v === null || p.t < t0 - 5000 ? null : p));
    visible.forEach((p, i) => {
      if (!p) return;
      if (visible[i - 1]) ctx.lineTo(x(p.t), y(p.v));
      else ctx.moveTo(x(p.t), y(p.v));
    });
    ctx.stroke();
    ctx.fillStyle = s.color; // a point with no neighbour would draw nothing as a line
    visible.forEach((p, i) => {
      if (p && !visible[i - 1] && !visible[i + 1]) ctx.fillRect(x(p.t) - 2, y(p.v) - 2, 4, 4);
    });
  }
  ctx.restore();
  ctx.setLineDash([]);
}

// Fills the list with one entry per item ({label, color, dash}): a short line
// in the series' colour (dashed when the series is) and its label.
export function renderLegend(list, items) {
  const text = JSON.stringify(items.map((i) => [i.label, i.color, Boolean(i.dash)]));
  if (list.dataset.items === text) return; // unchanged: keep the nodes
  list.dataset.items = text;
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement('li');
    const key = document.createElement('span');
    key.className = item.dash ? 'key dashed' : 'key';
    key.style.borderTopColor = item.color;
    key.setAttribute('aria-hidden', 'true');
    const label = document.createElement('span');
    label.textContent = item.label;
    li.append(key, label);
    return li;
  }));
}
