// Vigil's console: this member's view of the cluster, live. Plain browser JavaScript, no
// build step and nothing from outside this origin (see api/console.rs).
'use strict';

const STATUS_POLL_MS = 1000;
const HISTORY = 120; // samples kept per member for the sparklines (2 min at 1 s)
const EVENTS_KEPT = 300;
const EVENT_TYPES = [
  'member-joined', 'member-updated', 'member-suspect', 'member-failed', 'member-left',
  'member-removed', 'member-rejoined', 'quorum-gained', 'quorum-lost', 'leader-changed',
];

const state = {
  token: sessionStorage.getItem('vigil-admin-token') || '',
  history: new Map(), // id -> [{phi, health}]
  lastStatus: null,
  pipeline: { total: null, at: 0, rate: null },
  refreshQueued: false,
};

// --- small DOM helpers: text only, never HTML from the network --------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function ago(iso) {
  if (!iso) return 'never';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 1) return 'now';
  if (s < 90) return `${s.toFixed(1)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

// --- the status poll ---------------------------------------------------------------------

async function refresh() {
  try {
    const r = await fetch('/cluster/status', { cache: 'no-store' });
    if (!r.ok) throw new Error(`/cluster/status answered ${r.status}`);
    const s = await r.json();
    state.lastStatus = s;
    record(s);
    render(s);
    document.getElementById('error').hidden = true;
  } catch (e) {
    const box = document.getElementById('error');
    box.textContent = `This member does not answer: ${e.message}. Retrying.`;
    box.hidden = false;
  }
  refreshPipeline();
}

// A burst of events triggers one refresh, not one per event.
function refreshSoon() {
  if (state.refreshQueued) return;
  state.refreshQueued = true;
  setTimeout(() => { state.refreshQueued = false; refresh(); }, 100);
}

function record(s) {
  for (const [id, m] of Object.entries(s.membership)) {
    const h = state.history.get(id) || [];
    h.push({ phi: m.phiScore, health: m.healthScore });
    if (h.length > HISTORY) h.shift();
    state.history.set(id, h);
  }
  for (const id of state.history.keys()) if (!(id in s.membership)) state.history.delete(id);
}

function render(s) {
  document.getElementById('cluster').textContent = `cluster ${s.cluster}`;
  document.getElementById('self').textContent = `this member: ${s.self}`;
  document.getElementById('leader').textContent = `leader: ${s.leader ?? 'none'}`;
  document.getElementById('no-quorum').hidden = s.hasQuorum;
  document.body.dataset.hasQuorum = String(s.hasQuorum);
  renderSummary(s);
  renderRing(s);
  renderMembers(s);
}

function renderSummary(s) {
  const rows = [
    ['members', s.totalNodes], ['voters', s.voters],
    ['quorum', s.hasQuorum ? 'yes' : 'NO'], ['leader', s.leader ?? 'none'],
  ];
  for (const [k, v] of Object.entries(s.nodesByStatus || {})) if (v > 0) rows.push([k.toLowerCase(), v]);
  if (s.insecure) rows.push(['security', 'INSECURE (no keys)']);
  document.getElementById('summary').replaceChildren(
    ...rows.flatMap(([k, v]) => [el('span', { class: 'dim' }, k), el('span', {}, v)]));
}

function renderRing(s) {
  const ids = Object.keys(s.membership).sort();
  const r = 105;
  const pos = new Map(ids.map((id, i) => {
    const a = (2 * Math.PI * i) / Math.max(ids.length, 1) - Math.PI / 2;
    return [id, [r * Math.cos(a), r * Math.sin(a)]];
  }));
  const parts = [];
  // whom this member watches (its observer edges: it heartbeats and judges these)
  const me = pos.get(s.self);
  for (const [id, m] of Object.entries(s.membership)) {
    const b = pos.get(id);
    if (m.monitored && me && b && id !== s.self) {
      parts.push(svg('line', { class: 'edge', x1: me[0], y1: me[1], x2: b[0], y2: b[1] }));
    }
  }
  const dot = ids.length > 60 ? 3 : ids.length > 20 ? 5 : 9;
  for (const id of ids) {
    const m = s.membership[id];
    const [x, y] = pos.get(id);
    // size by health: a sick member shrinks
    const size = dot * (0.6 + 0.4 * (m.healthScore / 100));
    parts.push(svg('circle', { cx: x, cy: y, r: size, class: m.status, 'data-member-id': id },
      svg('title', {}, `${id}: ${m.status}, health ${m.healthScore}`)));
    if (id === s.leader) parts.push(svg('circle', { class: 'leader', cx: x, cy: y, r: size + 4 }));
    if (id === s.self) parts.push(svg('circle', { class: 'self', cx: x, cy: y, r: size + 8 }));
    if (ids.length <= 24) parts.push(svg('text', { x: x * 1.3, y: y * 1.22 + 3 }, id));
  }
  document.getElementById('ring').replaceChildren(...parts);
}

function spark(values, max, limit) {
  const w = 90, h = 20;
  if (values.length < 2) return svg('svg', { class: 'spark', viewBox: `0 0 ${w} ${h}` });
  const top = Math.max(max, ...values.filter(Number.isFinite));
  const pts = values.map((v, i) => {
    const x = (i / (HISTORY - 1)) * w;
    const y = h - 1 - (Math.min(Number.isFinite(v) ? v : top, top) / (top || 1)) * (h - 2);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(' ');
  const s = svg('svg', { class: 'spark', viewBox: `0 0 ${w} ${h}` }, svg('polyline', { points: pts }));
  if (limit !== undefined && limit <= top) {
    const y = h - 1 - (limit / top) * (h - 2);
    s.append(svg('line', { x1: 0, x2: w, y1: y, y2: y }));
  }
  return s;
}

function phiText(m) {
  // phi means something only for a member this node watches and hears from
  if (m.phiScore === null || m.phiScore === undefined) return '';
  if (m.monitored === false || m.status === 'FAILED' || m.status === 'LEFT') return '';
  return m.phiScore >= 1e6 ? '∞' : m.phiScore.toFixed(2);
}

function renderMembers(s) {
  const admin = Boolean(state.token);
  document.querySelectorAll('.admin-only').forEach(e => { e.hidden = !admin; });
  const rows = Object.keys(s.membership).sort().map(id => {
    const m = s.membership[id];
    const h = state.history.get(id) || [];
    const tags = Object.entries(m.tags || {}).map(([k, v]) => `${k}=${v}`).join(' ');
    let action = null;
    if (admin) {
      action = id === s.self
        ? el('button', { class: 'danger', onclick: () => adminPost('/cluster/leave', `make ${id} leave the cluster`) }, 'leave')
        : el('button', { class: 'danger', onclick: () => adminPost(`/cluster/members/${encodeURIComponent(id)}/remove`, `remove ${id} (force-leave)`) }, 'remove');
    }
    return el('tr', { 'data-member-id': id, 'data-status': m.status, class: id === s.self ? 'self' : null },
      el('td', {}, id, id === s.leader ? ' ★' : '', m.voter ? '' : el('span', { class: 'dim' }, ' (non-voter)')),
      el('td', { class: `status ${m.status}` }, m.status),
      el('td', { class: 'num' }, m.healthScore),
      el('td', { class: 'num' }, phiText(m)),
      el('td', {}, m.role),
      el('td', {}, m.zone),
      el('td', { class: 'num' }, m.generation),
      el('td', { title: m.lastHeartbeatTime || '' }, ago(m.lastHeartbeatTime)),
      el('td', { class: 'dim' }, tags),
      el('td', {}, spark(h.map(x => x.phi), 8, 8)),
      el('td', {}, spark(h.map(x => x.health), 100)),
      admin ? el('td', {}, action) : null);
  });
  document.querySelector('#members tbody').replaceChildren(...rows);
}

// --- the log pipeline, where this member is the gateway -----------------------------------

async function refreshPipeline() {
  const s = state.lastStatus;
  const section = document.getElementById('pipeline-section');
  const me = s && s.membership[s.self];
  if (!me || me.role !== 'gateway') { section.hidden = true; return; }
  section.hidden = false;
  const parts = [];
  try {
    const stats = await (await fetch('/api/logs/stats', { cache: 'no-store' })).json();
    const now = Date.now();
    if (typeof stats.total === 'number') {
      const p = state.pipeline;
      if (p.total !== null && now > p.at) p.rate = Math.max(0, (stats.total - p.total) * 1000 / (now - p.at));
      p.total = stats.total; p.at = now;
      parts.push(el('div', {}, `stored: ${stats.total}`));
      if (p.rate !== null) parts.push(el('div', {}, `stored per second: ${p.rate.toFixed(1)}`));
    }
  } catch (e) {
    parts.push(el('div', { class: 'dim' }, `stats unavailable: ${e.message}`));
  }
  try {
    const gw = await (await fetch('/api/cluster/status', { cache: 'no-store' })).json();
    const routing = gw.routing && typeof gw.routing === 'object' ? Object.entries(gw.routing) : [];
    // one table per role: producers take the writes, consumers the reads
    for (const [role, what] of [['producer', 'share of writes'], ['consumer', 'share of reads']]) {
      const rows = routing.filter(([, v]) => v && typeof v === 'object' && (v.role || 'producer') === role).map(([id, v]) =>
        el('tr', {}, el('td', {}, id),
          el('td', { class: 'num' }, v.share !== undefined ? `${(100 * v.share).toFixed(0)} %` : ''),
          el('td', {}, v.ejected ? 'ejected' : '')));
      if (rows.length) parts.push(el('table', {}, el('tr', {}, el('th', {}, role), el('th', {}, what), el('th', {}, '')), ...rows));
    }
  } catch (_) { /* the gateway's own status is optional here */ }
  document.getElementById('pipeline').replaceChildren(...parts);
}

// --- the event stream ----------------------------------------------------------------------

function connectEvents() {
  const label = document.getElementById('stream');
  const source = new EventSource('/cluster/events');
  source.onopen = () => { label.textContent = 'events: live'; label.className = ''; };
  source.onerror = () => { label.textContent = 'events: reconnecting'; label.className = 'dim'; };
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, e => {
      let data = {};
      try { data = JSON.parse(e.data); } catch (_) { /* shown without details */ }
      addEvent(type, data);
      refreshSoon();
    });
  }
}

function addEvent(type, d) {
  const at = d.at ? new Date(d.at) : new Date();
  const what = [d.nodeId, d.status, d.generation !== undefined ? `gen ${d.generation}` : null, d.leader !== undefined ? `leader ${d.leader ?? 'none'}` : null]
    .filter(x => x !== null && x !== undefined && x !== '').join('  ');
  const list = document.getElementById('events');
  list.prepend(el('li', { class: type, 'data-event': type },
    el('span', { class: 'dim' }, at.toLocaleTimeString(), '  '), el('span', { class: 'type' }, type), what));
  while (list.children.length > EVENTS_KEPT) list.lastChild.remove();
}

// --- admin ---------------------------------------------------------------------------------

async function adminPost(path, what) {
  if (!confirm(`Really ${what}?`)) return;
  const r = await fetch(path, { method: 'POST', headers: { Authorization: `Bearer ${state.token}` } });
  if (!r.ok) alert(`${what}: ${r.status} ${await r.text()}`);
  refreshSoon();
}

function setupAdmin() {
  const input = document.getElementById('token');
  const clear = document.getElementById('token-clear');
  const show = () => { clear.hidden = !state.token; input.hidden = Boolean(state.token); document.getElementById('token-set').hidden = Boolean(state.token); };
  document.getElementById('admin').addEventListener('submit', e => {
    e.preventDefault();
    state.token = input.value.trim();
    input.value = '';
    if (state.token) sessionStorage.setItem('vigil-admin-token', state.token);
    show(); refreshSoon();
  });
  clear.addEventListener('click', () => {
    state.token = ''; sessionStorage.removeItem('vigil-admin-token'); show(); refreshSoon();
  });
  show();
}

setupAdmin();
connectEvents();
refresh();
setInterval(refresh, STATUS_POLL_MS);
