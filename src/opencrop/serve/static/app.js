// opencrop web page: upload a photo, pick ratios, preview and download each crop. Plain JS, no dependencies.
'use strict';

const PRESETS = ['16:9', '4:3', '3:2', '1:1', '4:5', '2:3', '9:16', '21:9'];
const DEFAULT_ON = new Set(['16:9', '1:1', '9:16']);
const COLOURS = ['#22c55e', '#ef4444', '#3b82f6', '#eab308', '#a855f7', '#06b6d4', '#f97316', '#ec4899'];
const MAX_RATIOS = 16;
const SVG = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);
const state = { file: null, focus: null, run: 0, urls: [], natural: null };

// ---- ratios -------------------------------------------------------------------------------------------------
function addChip(ratio, pressed) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'chip';
  b.textContent = ratio;
  b.dataset.ratio = ratio;
  b.setAttribute('aria-pressed', String(pressed));
  b.addEventListener('click', () => {
    b.setAttribute('aria-pressed', String(b.getAttribute('aria-pressed') !== 'true'));
    update();
  });
  $('ratios').appendChild(b);
  return b;
}

function selectedRatios() {
  return [...document.querySelectorAll('#ratios .chip[aria-pressed="true"]')].map((b) => b.dataset.ratio);
}

function parseRatio(text) {
  const s = text.trim().replace(/\s+/g, '');
  let m = s.match(/^(\d+(?:\.\d+)?)[:x/](\d+(?:\.\d+)?)$/i);
  if (m && Number(m[1]) > 0 && Number(m[2]) > 0) return `${Number(m[1])}:${Number(m[2])}`;
  m = s.match(/^\d+(?:\.\d+)?$/);
  if (m && Number(s) > 0) return `${Number(s)}:1`;
  return null;
}

function addCustomRatio() {
  const input = $('custom-ratio');
  const err = $('ratio-error');
  const r = parseRatio(input.value);
  if (!r) {
    err.textContent = `“${input.value}” is not a ratio: write W:H such as 1.91:1, or a number such as 1.5.`;
    err.hidden = false;
    return;
  }
  err.hidden = true;
  const existing = document.querySelector(`#ratios .chip[data-ratio="${r}"]`);
  if (existing) existing.setAttribute('aria-pressed', 'true');
  else addChip(r, true);
  input.value = '';
  update();
}

// ---- file --------------------------------------------------------------------------------------------------
function setFile(file) {
  if (!file) return;
  state.file = file;
  state.focus = null;
  state.run++;  // any request still running belongs to the old photo
  clearResults();
  hideError();
  setBusy(false);
  $('file-name').textContent = `${file.name} · ${(file.size / 1e6).toFixed(2)} MB`;
  $('file-name').hidden = false;
  const url = URL.createObjectURL(file);
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = url;
  state.natural = null;
  const img = $('photo');
  img.hidden = false;
  $('original-caption').textContent = 'Loading the preview…';
  img.onload = () => {
    state.natural = { w: img.naturalWidth, h: img.naturalHeight };
    setViewBox(img.naturalWidth, img.naturalHeight);
    $('original-caption').textContent = `${img.naturalWidth} × ${img.naturalHeight} px · click to set a focus point`;
  };
  img.onerror = () => {
    img.hidden = true;
    $('original-caption').textContent = 'This browser cannot show this file; the server may still read it.';
  };
  img.src = url;
  $('original').hidden = false;
  drawOverlay(null);
  setStatus('Pick the ratios you want, then press Crop.');
  update();
}

// ---- overlay -----------------------------------------------------------------------------------------------
function setViewBox(w, h) {
  $('overlay').setAttribute('viewBox', `0 0 ${w} ${h}`);
  $('overlay').setAttribute('preserveAspectRatio', 'none');
}

function drawOverlay(result) {
  const svg = $('overlay');
  svg.replaceChildren();
  const w = result ? result.width : state.natural && state.natural.w;
  if (!w) return;
  if (result) setViewBox(result.width, result.height);
  const font = Math.max(10, w / 34);
  const tags = [];  // label corners already used: boxes sharing a corner get their labels stacked
  (result ? result.crops : []).forEach((c, i) => {
    const [x1, y1, x2, y2] = c.box;
    const colour = COLOURS[i % COLOURS.length];
    const rect = document.createElementNS(SVG, 'rect');
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, stroke: colour, class: 'box' }).forEach(([k, v]) => rect.setAttribute(k, v));
    svg.appendChild(rect);
    const stack = tags.filter(([tx, ty]) => Math.abs(tx - x1) < font * 4 && Math.abs(ty - y1) < font * 1.5).length;
    tags.push([x1, y1]);
    const ty = y1 + stack * font * 1.45;
    const tagW = font * (0.62 * c.ratio.length + 0.8);
    const bg = document.createElementNS(SVG, 'rect');
    Object.entries({ x: x1, y: ty, width: tagW, height: font * 1.4, class: 'tag' }).forEach(([k, v]) => bg.setAttribute(k, v));
    bg.style.fill = colour;
    svg.appendChild(bg);
    const t = document.createElementNS(SVG, 'text');
    Object.entries({ x: x1 + font * 0.4, y: ty + font * 1.05 }).forEach(([k, v]) => t.setAttribute(k, v));
    t.style.fontSize = `${font}px`;
    t.textContent = c.ratio;
    svg.appendChild(t);
  });
  if (state.focus) {
    const dot = document.createElementNS(SVG, 'circle');
    Object.entries({ cx: state.focus.x, cy: state.focus.y, r: Math.max(4, w / 90) }).forEach(([k, v]) => dot.setAttribute(k, v));
    svg.appendChild(dot);
  }
}

function setFocus(event) {
  const img = $('photo');
  if (!state.natural || img.hidden) return;
  const r = img.getBoundingClientRect();
  state.focus = {
    x: Math.round(((event.clientX - r.left) / r.width) * state.natural.w),
    y: Math.round(((event.clientY - r.top) / r.height) * state.natural.h),
  };
  $('focus-text').textContent = `x ${state.focus.x}, y ${state.focus.y} (pixels of the photo)`;
  $('clear-focus').disabled = false;
  drawOverlay(state.lastResult || null);
}

function clearFocus() {
  state.focus = null;
  $('focus-text').textContent = 'none';
  $('clear-focus').disabled = true;
  drawOverlay(state.lastResult || null);
}

// ---- status, errors, busy ----------------------------------------------------------------------------------
function setStatus(text) { $('status').textContent = text; }
function showError(text) { $('error-text').textContent = text; $('error').hidden = false; }
function hideError() { $('error').hidden = true; $('error-text').textContent = ''; }

function setBusy(busy, label) {
  document.body.classList.toggle('busy', busy);
  $('results').setAttribute('aria-busy', String(busy));
  $('go-label').textContent = busy ? (label || 'Cropping…') : 'Crop';
  update();
}

function clearResults() {
  $('results').replaceChildren();
  state.urls.forEach((u) => URL.revokeObjectURL(u));
  state.urls = [];
  state.lastResult = null;
  drawOverlay(null);
}

function update() {
  const busy = document.body.classList.contains('busy');
  const n = selectedRatios().length;
  $('go').disabled = busy || !state.file || n === 0 || n > MAX_RATIOS;
}

// ---- requests ----------------------------------------------------------------------------------------------
function query(extra) {
  const q = new URLSearchParams();
  Object.entries(extra).forEach(([k, v]) => [].concat(v).forEach((x) => q.append(k, x)));
  if (state.focus) q.set('focus', `${state.focus.x},${state.focus.y}`);
  const model = $('model').value;
  if (model) q.set('model', model);
  return q.toString();
}

async function errorOf(res) {
  let text = '';
  try { text = await res.text(); } catch (e) { /* keep the status */ }
  try { return JSON.parse(text).error || `HTTP ${res.status}`; } catch (e) { return `HTTP ${res.status} ${text.slice(0, 200)}`; }
}

class ServerError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function post(url, body) {
  try {
    return await fetch(url, { method: 'POST', body });
  } catch (e) {
    throw new Error('cannot reach the opencrop server (is it still running?)');
  }
}

function stem(name) { return (name.replace(/\.[^.]*$/, '') || 'photo').replace(/[^\w.-]+/g, '_'); }

function makeCard(c, i, result) {
  const card = $('card-template').content.firstElementChild.cloneNode(true);
  const [x1, y1, x2, y2] = c.box;
  card.dataset.ratio = c.ratio;
  card.querySelector('.swatch').style.background = COLOURS[i % COLOURS.length];
  card.querySelector('.card-title').textContent = c.ratio;
  card.querySelector('.card-size').textContent = `${x2 - x1} × ${y2 - y1} px`;
  card.querySelector('.card-meta').textContent = `box ${x1},${y1} → ${x2},${y2} of ${result.width} × ${result.height} · score ${c.score.toFixed(3)}`;
  if (c.warning) {
    card.querySelector('.card-warning').textContent = c.warning;
    card.querySelector('.card-warning').hidden = false;
  }
  $('results').appendChild(card);
  return card;
}

async function loadCrop(run, c, card, fmt) {
  const ext = { jpeg: 'jpg', png: 'png', webp: 'webp' }[fmt];
  const res = await post(`/crop?${query({ ratio: c.ratio, format: fmt })}`, state.file);
  if (run !== state.run) return;
  const preview = card.querySelector('.preview');
  if (!res.ok) {
    const msg = await errorOf(res);
    if (run !== state.run) return;
    preview.replaceChildren();
    card.querySelector('.card-error').textContent = `Could not render this crop: ${msg}`;
    card.querySelector('.card-error').hidden = false;
    return;
  }
  const blob = await res.blob();
  if (run !== state.run) return;
  const url = URL.createObjectURL(blob);
  state.urls.push(url);
  const img = document.createElement('img');
  img.alt = `Crop ${c.ratio}`;
  img.src = url;
  preview.replaceChildren(img);
  const a = card.querySelector('.download');
  a.href = url;
  a.download = `${stem(state.file.name)}_${c.ratio.replace(/[:/]/g, 'x')}.${ext}`;
  a.textContent = `Download ${ext.toUpperCase()} · ${(blob.size / 1e3).toFixed(0)} kB`;
  a.removeAttribute('aria-disabled');
}

async function inTurns(jobs, width) {
  let next = 0;
  const lane = async () => { while (next < jobs.length) await jobs[next++](); };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, lane));
}

async function crop(event) {
  event.preventDefault();
  const ratios = selectedRatios();
  if (!state.file || !ratios.length) return;
  const run = ++state.run;
  const fmt = $('format').value;
  clearResults();
  hideError();
  setBusy(true, 'Finding the best crops…');
  setStatus(`Cropping ${state.file.name} to ${ratios.join(', ')}…`);
  try {
    const form = new FormData();
    form.append('image', state.file, state.file.name);
    const res = await post(`/crop?${query({ ratio: ratios })}`, form);
    if (run !== state.run) return;
    if (!res.ok) throw new ServerError(res.status, await errorOf(res));
    const result = await res.json();
    if (run !== state.run) return;
    state.lastResult = result;
    drawOverlay(result);
    const cards = result.crops.map((c, i) => makeCard(c, i, result));
    const notes = result.notes && result.notes.length ? ` Notes: ${result.notes.join('; ')}.` : '';
    setStatus(`${result.crops.length} crop${result.crops.length === 1 ? '' : 's'} of ${result.width} × ${result.height} px (model ${result.model}); rendering…${notes}`);
    setBusy(true, 'Rendering crops…');
    await inTurns(result.crops.map((c, i) => () => loadCrop(run, c, cards[i], fmt)), 2);
    if (run !== state.run) return;
    setStatus(`${result.crops.length} crop${result.crops.length === 1 ? '' : 's'} of ${result.width} × ${result.height} px (model ${result.model}).${notes}`);
  } catch (e) {
    if (run !== state.run) return;
    clearResults();
    showError(e.message);
    if (e.status === 413 || e.status === 422) $('original').hidden = true;  // the server cannot read this file
    setStatus(e.status === 503 ? 'The server is busy: try again in a moment.' : 'Fix the problem above and try again.');
  } finally {
    if (run === state.run) setBusy(false);
  }
}

// ---- start -------------------------------------------------------------------------------------------------
function init() {
  PRESETS.forEach((r) => addChip(r, DEFAULT_ON.has(r)));
  $('add-ratio').addEventListener('click', addCustomRatio);
  $('custom-ratio').addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); addCustomRatio(); } });
  $('file').addEventListener('change', (e) => setFile(e.target.files[0]));
  $('controls').addEventListener('submit', crop);
  $('photo').addEventListener('click', setFocus);
  $('clear-focus').addEventListener('click', clearFocus);
  const drop = $('drop');
  ['dragenter', 'dragover'].forEach((t) => window.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add('over'); }));
  ['dragleave', 'drop'].forEach((t) => window.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove('over'); }));
  window.addEventListener('drop', (e) => { if (e.dataTransfer && e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]); });
  fetch('/healthz').then((r) => r.json()).then((h) => {
    if (h.models && h.models.length > 1) {
      h.models.forEach((m) => { const o = document.createElement('option'); o.value = o.textContent = m; $('model').appendChild(o); });
      $('model-row').hidden = false;
    }
  }).catch(() => { /* the page still works with the default model */ });
  update();
}

document.addEventListener('DOMContentLoaded', init);
