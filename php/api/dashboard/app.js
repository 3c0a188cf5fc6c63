// The TaskManager dashboard: one page, four views (overview, tasks, task, types), hash routes
// (#/tasks?status=failed), data from /dashboard/api/ with the session cookie. No framework,
// nothing loaded from the network. Every change asks for confirmation first.
'use strict';

const view = document.getElementById('view');
const statusLine = document.getElementById('status');
const STATUSES = ['pending', 'claimed', 'completed', 'failed', 'cancelled'];
let refreshTimer = null;

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  };
  const response = await fetch('dashboard/api/' + path, { credentials: 'same-origin', ...options });
  if (response.status === 401) { location.reload(); throw new Error('signed out'); }
  const answer = await response.json();
  if (!answer.success) throw new Error(answer.error);
  return answer.data;
}

// Builds an element: el('td', {class: 'num'}, 'text', child, ...).
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function table(headers, rows) {
  return el('table', {},
    el('thead', {}, el('tr', {}, headers.map(h => el('th', { class: h.num ? 'num' : null }, h.label ?? h)))),
    el('tbody', {}, rows));
}

const badge = status => el('span', { class: 'badge ' + status, 'data-status': status }, status);
const show = (...nodes) => { view.replaceChildren(...nodes); };
const say = text => { statusLine.textContent = text; };

function seconds(value) {
  if (value === null || value === undefined) return '';
  if (value < 120) return Math.round(value) + ' s';
  if (value < 7200) return Math.round(value / 60) + ' min';
  return Math.round(value / 3600) + ' h';
}

// -- overview ---------------------------------------------------------------------------------

async function overview() {
  const stats = await api('stats');
  const totals = stats.totals;
  const cards = el('div', { class: 'cards' }, STATUSES.map(s =>
    el('div', { class: 'card' }, el('div', { class: 'n', id: 'total-' + s }, totals[s] ?? 0), el('div', { class: 'l' }, s))));
  const types = Object.entries(stats.types).map(([name, counts]) => {
    const queue = stats.queue[name] || {};
    return el('tr', { class: 'clickable', onclick: () => { location.hash = '#/tasks?type=' + encodeURIComponent(name); } },
      el('td', {}, name),
      STATUSES.map(s => el('td', { class: 'num', 'data-type': name, 'data-status': s }, counts[s])),
      el('td', { class: 'num' }, seconds(queue.oldest_pending_seconds)),
      el('td', { class: 'num' }, queue.expired_leases ?? 0));
  });
  const workers = stats.workers.map(w => el('tr', {},
    el('td', {}, w.worker_id), el('td', {}, w.last_claim_at ?? ''), el('td', { class: 'num' }, w.claims_last_hour),
    el('td', { class: 'num' }, w.holding)));
  show(
    el('h1', {}, 'Overview'), cards,
    el('h2', {}, 'Finished per minute, last hour'), chart(stats.throughput),
    el('h2', {}, 'By type'),
    table(['type', ...STATUSES.map(s => ({ label: s, num: true })), { label: 'oldest pending', num: true }, { label: 'expired leases', num: true }], types),
    el('h2', {}, 'Workers seen in the last hour'),
    workers.length ? table(['worker', 'last claim', { label: 'claims', num: true }, { label: 'holding', num: true }], workers)
      : el('p', { class: 'muted' }, 'No worker has claimed a task in the last hour.'));
  say('Updated ' + new Date().toLocaleTimeString() + ' · refreshes every 5 s');
  refreshTimer = setTimeout(route, 5000);
}

// Completed (green) and failed (red) tasks per minute over the last hour, summed over types,
// oldest minute on the left.
function chart(throughput) {
  const completed = new Array(60).fill(0);
  const failed = new Array(60).fill(0);
  for (const series of Object.values(throughput)) {
    series.completed_per_minute.forEach((n, i) => { completed[59 - i] += n; });
    series.failed_per_minute.forEach((n, i) => { failed[59 - i] += n; });
  }
  const max = Math.max(1, ...completed.map((n, i) => n + failed[i]));
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 600 120');
  svg.setAttribute('width', '100%');
  svg.setAttribute('height', '120');
  svg.setAttribute('id', 'throughput-chart');
  svg.setAttribute('preserveAspectRatio', 'none');
  const bar = (x, y, h, cls, title) => {
    const r = document.createElementNS(ns, 'rect');
    for (const [k, v] of Object.entries({ x, y, width: 8, height: h, class: cls })) r.setAttribute(k, v);
    const t = document.createElementNS(ns, 'title');
    t.textContent = title;
    r.append(t);
    svg.append(r);
  };
  completed.forEach((n, i) => {
    const hc = (n / max) * 110;
    const hf = (failed[i] / max) * 110;
    const label = `${59 - i} min ago: ${n} completed, ${failed[i]} failed`;
    if (n) bar(i * 10, 115 - hc, hc, 'completed', label);
    if (failed[i]) bar(i * 10, 115 - hc - hf, hf, 'failed', label);
  });
  return el('div', { class: 'chart' }, svg);
}

// -- task list --------------------------------------------------------------------------------

async function tasks(query) {
  const [types, page] = await Promise.all([api('types'), api('tasks?' + query.toString())]);
  const field = (name, input) => el('div', {}, el('label', { for: 'filter-' + name }, name), input);
  const select = (name, options) => el('select', { id: 'filter-' + name, name },
    el('option', { value: '' }, 'any'),
    options.map(o => el('option', { value: o, ...(query.get(name) === o ? { selected: '' } : {}) }, o)));
  const text = name => el('input', { id: 'filter-' + name, name, value: query.get(name) ?? '' });
  const form = el('form', { class: 'filters', id: 'task-filters', onsubmit: event => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    location.hash = '#/tasks?' + q.toString();
  } },
  field('status', select('status', STATUSES)), field('type', select('type', types.map(t => t.name))),
  field('worker', text('worker')), field('text', text('text')),
  el('button', { type: 'submit', class: 'primary', id: 'filter-apply' }, 'Filter'));

  const rows = page.map(t => el('tr', { class: 'clickable', 'data-id': t.id, onclick: () => { location.hash = '#/task/' + t.id; } },
    el('td', { class: 'num' }, t.id), el('td', {}, t.type), el('td', {}, badge(t.status)),
    el('td', { class: 'num' }, t.priority), el('td', { class: 'num' }, `${t.attempts}/${t.max_attempts}`),
    el('td', {}, t.claimed_by ?? ''), el('td', {}, t.created_at), el('td', {}, t.error_message ?? '')));
  const filtered = ['status', 'type', 'worker', 'text'].some(k => query.get(k));
  const bulk = action => el('button', { id: 'bulk-' + action, class: action === 'cancel' ? 'danger' : null, onclick: async () => {
    const filter = Object.fromEntries(['status', 'type', 'worker', 'text'].filter(k => query.get(k)).map(k => [k, query.get(k)]));
    if (!confirm(`${action} every task matching ${JSON.stringify(filter)} (up to 1000)?`)) return;
    const done = await api('bulk', { action, filter });
    await route();
    say(`${action}: ${done.changed.length} of ${done.matched} changed` + (done.skipped.length ? `, ${done.skipped.length} refused` : ''));
  } }, `${action[0].toUpperCase() + action.slice(1)} all matching`);
  const next = page.length === 50 ? el('a', { href: '#/tasks?' + withParam(query, 'before_id', page[page.length - 1].id), id: 'next-page' }, 'Older →') : null;
  show(el('h1', {}, 'Tasks'), form,
    filtered ? el('p', {}, bulk('retry'), ' ', bulk('cancel')) : null,
    page.length ? table([{ label: 'id', num: true }, 'type', 'status', { label: 'prio', num: true }, { label: 'attempts', num: true }, 'worker', 'created', 'error'], rows)
      : el('p', { class: 'muted', id: 'no-tasks' }, 'No task matches.'),
    el('p', {}, next));
  say(`${page.length} task(s) shown`);
}

function withParam(query, key, value) {
  const q = new URLSearchParams(query);
  q.set(key, value);
  return q.toString();
}

// -- one task ---------------------------------------------------------------------------------

async function task(id) {
  const { task: t, history } = await api('tasks/' + id);
  const act = (action, allowed) => allowed ? el('button', { id: 'action-' + action, class: action === 'cancel' ? 'danger' : 'primary', onclick: async () => {
    if (!confirm(`${action} task ${t.id}?`)) return;
    await api(`tasks/${t.id}/${action}`, {});
    await route();
    say(`task ${t.id}: ${action} done`);
  } }, action[0].toUpperCase() + action.slice(1)) : null;
  const row = (k, v) => el('tr', {}, el('th', {}, k), el('td', {}, v ?? ''));
  show(
    el('h1', {}, `Task ${t.id} `, badge(t.status)),
    el('p', {}, act('retry', ['failed', 'cancelled'].includes(t.status)), ' ', act('cancel', ['pending', 'claimed'].includes(t.status))),
    el('table', { id: 'task-fields' }, el('tbody', {},
      row('type', t.type), row('status', t.status), row('attempts', `${t.attempts} of ${t.max_attempts}`),
      row('priority', t.priority), row('progress', t.progress + ' %'), row('worker', t.claimed_by),
      row('claimed at', t.claimed_at), row('lease until', t.lease_expires_at), row('run at', t.run_at),
      row('created', t.created_at), row('finished', t.completed_at), row('error', t.error_message),
      row('dedupe key', t.dedupe_key))),
    el('h2', {}, 'Params'), el('pre', { id: 'task-params' }, JSON.stringify(t.params, null, 2)),
    el('h2', {}, 'Result'), el('pre', { id: 'task-result' }, JSON.stringify(t.result, null, 2)),
    el('h2', {}, 'History'),
    history.length ? el('ol', { class: 'timeline', id: 'task-history' }, history.map(h =>
      el('li', {}, el('span', { class: 'muted' }, h.created_at), ' ', el('strong', {}, h.status_change),
        h.worker_id ? ` by ${h.worker_id}` : '', h.message ? ` — ${h.message}` : '')))
      : el('p', { class: 'muted' }, 'No history (it may be turned off).'));
  say('');
}

// -- types ------------------------------------------------------------------------------------

async function types() {
  const list = await api('types');
  const rows = list.map(t => el('tr', { 'data-type': t.name },
    el('td', {}, t.name), el('td', {}, t.version), el('td', {}, t.is_active ? 'active' : 'inactive'),
    el('td', {}, t.updated_at),
    el('td', {}, el('button', { class: t.is_active ? 'danger' : 'primary', onclick: async () => {
      const action = t.is_active ? 'deactivate' : 'activate';
      if (!confirm(`${action} type ${t.name}?`)) return;
      await api(`types/${action}/${encodeURIComponent(t.name)}`, {});
      route();
    } }, t.is_active ? 'Deactivate' : 'Activate'))));
  show(el('h1', {}, 'Task types'), table(['name', 'version', 'state', 'updated', ''], rows));
  say(`${list.length} type(s)`);
}

// -- routing ----------------------------------------------------------------------------------

async function route() {
  clearTimeout(refreshTimer);
  const [path, search] = (location.hash.slice(1) || '/overview').split('?');
  const query = new URLSearchParams(search ?? '');
  const parts = path.split('/').filter(Boolean);
  for (const link of document.querySelectorAll('header nav a')) {
    link.classList.toggle('active', link.getAttribute('href') === '#/' + (parts[0] === 'task' ? 'tasks' : parts[0]));
  }
  try {
    if (parts[0] === 'tasks') await tasks(query);
    else if (parts[0] === 'task') await task(Number(parts[1]));
    else if (parts[0] === 'types') await types();
    else await overview();
  } catch (error) {
    show(el('p', { class: 'error', id: 'error' }, error.message));
  }
}

window.addEventListener('hashchange', route);
route();
