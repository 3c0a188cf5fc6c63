// The TaskManager dashboard: one page, five views (overview, tasks, task, types, schedules), hash routes
// (#/tasks?status=failed), data from /dashboard/api/ with the session cookie. No framework,
// nothing loaded from the network. Every change asks for confirmation first; a refused one is
// told in the status line.
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

// Wide tables scroll inside their own box, so on a phone the page itself never scrolls sideways;
// `optional` columns are left out at phone width (a type's state is then told by its button).
function table(headers, rows) {
  return el('div', { class: 'scroll' }, el('table', {},
    el('thead', {}, el('tr', {}, headers.map(h => el('th', { class: [h.num && 'num', h.optional && 'optional'].filter(Boolean).join(' ') || null }, h.label ?? h)))),
    el('tbody', {}, rows)));
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

async function overview(query) {
  const stats = await api('stats');
  const offered = rangesIn(stats.throughput);
  const range = offered.includes(query.get('range')) ? query.get('range') : 'hour';
  const totals = stats.totals;
  const cards = el('div', { class: 'cards' }, STATUSES.map(s =>
    el('div', { class: 'card' }, el('div', { class: 'n', id: 'total-' + s }, totals[s] ?? 0), el('div', { class: 'l' }, s))));
  const flow = stats.flow ?? {};
  const types = Object.entries(stats.types).map(([name, counts]) => {
    const queue = stats.queue[name] || {};
    return el('tr', { class: 'clickable', onclick: () => { location.hash = tasksOf(name); } },
      el('td', {}, el('a', { href: tasksOf(name) }, name), flow[name] ? [' ', flowBadge(flow[name])] : null),
      STATUSES.map(s => el('td', { class: 'num', 'data-type': name, 'data-status': s }, counts[s])),
      el('td', { class: 'num' }, seconds(queue.oldest_pending_seconds)),
      el('td', { class: 'num' }, queue.expired_leases ?? 0));
  });
  const workers = stats.workers.map(w => el('tr', {},
    el('td', {}, w.worker_id), el('td', {}, w.last_claim_at ?? ''), el('td', { class: 'num' }, w.claims_last_hour),
    el('td', { class: 'num' }, w.holding)));
  show(
    el('h1', {}, 'Overview'), cards,
    el('h2', {}, `Finished per ${RANGES[range].unit}, ${RANGES[range].label.toLowerCase()}`), chart(stats.throughput, range, offered),
    el('h2', {}, 'By type'),
    table(['type', ...STATUSES.map(s => ({ label: s, num: true })), { label: 'oldest pending', num: true }, { label: 'expired leases', num: true }], types),
    Object.keys(flow).length ? el('h2', {}, 'Paused and limited types') : '',
    Object.keys(flow).length ? flowTable(flow) : '',
    el('h2', {}, 'Workers seen in the last hour'),
    workers.length ? table(['worker', 'last claim', { label: 'claims', num: true }, { label: 'holding', num: true }], workers)
      : el('p', { class: 'muted' }, 'No worker has claimed a task in the last hour.'));
  say('Updated ' + new Date().toLocaleTimeString() + ' · refreshes every 5 s');
  refreshTimer = setTimeout(route, 5000);
}

const tasksOf = type => '#/tasks?type=' + encodeURIComponent(type);

// -- flow control -----------------------------------------------------------------------------

// A type's pause and limits in words, from a type or a stats.flow entry: "paused until …",
// "max 5 running", "10 per 60 s + 2 burst".
function flowWords(f) {
  const words = [];
  if (f.paused) words.push(f.paused_until ? 'paused until ' + f.paused_until : 'paused');
  if (f.max_running !== null && f.max_running !== undefined) words.push(`max ${f.max_running} running`);
  if (f.rate) words.push(`${f.rate.limit} per ${f.rate.per_seconds} s` + (f.rate.burst ? ` + ${f.rate.burst} burst` : ''));
  return words.join(', ');
}

const flowBadge = f => el('span', { class: 'badge ' + (f.paused ? 'paused' : 'limited'), title: flowWords(f) },
  f.paused ? 'paused' : 'limited');

// stats.flow: every paused or limited type, with what holds a lease and what started in the
// rate's window now.
function flowTable(flow) {
  const rows = Object.entries(flow).map(([name, f]) => el('tr', { 'data-flow': name },
    el('td', {}, el('a', { href: tasksOf(name) }, name)),
    el('td', { class: 'flow-state' }, f.paused ? (f.paused_until ? 'paused until ' + f.paused_until : 'paused') : 'running'),
    el('td', { class: 'num flow-running' }, f.max_running === null || f.max_running === undefined ? f.running : `${f.running} / ${f.max_running}`),
    el('td', { class: 'num flow-rate' }, f.rate ? `${f.started_in_window} / ${f.rate.limit + f.rate.burst} per ${f.rate.per_seconds} s` : '')));
  return el('div', { id: 'flow' }, table(['type', 'state', { label: 'running / max', num: true }, { label: 'started in window', num: true }], rows));
}

// Under a type's row: its limits and a timed pause, each saved after a confirmation.
function flowEditor(t, columns) {
  const input = (id, label, value, placeholder) => el('div', {}, el('label', { for: id }, label),
    el('input', { id, name: id, value: value ?? '', placeholder, inputmode: id === 'pause-until' ? null : 'numeric', size: id === 'pause-until' ? 20 : 8 }));
  const value = id => document.getElementById(id).value.trim();
  const number = id => value(id) === '' ? null : (/^\d+$/.test(value(id)) ? Number(value(id)) : value(id));
  const limits = el('form', { class: 'filters', id: 'limits-form', onsubmit: async event => {
    event.preventDefault();
    const body = { max_running: number('limits-max-running') };
    body.rate = number('limits-rate-limit') === null ? null
      : { limit: number('limits-rate-limit'), per_seconds: number('limits-rate-per'), burst: number('limits-rate-burst') ?? 0 };
    if (!confirm(`Set the limits of type ${t.name} to ${flowWords({ ...body, paused: false }) || 'none'}?`)) return;
    await act(() => api(`types/limits/${encodeURIComponent(t.name)}`, body), `type ${t.name}: limits saved`);
  } },
  input('limits-max-running', 'max running', t.max_running, 'none'),
  input('limits-rate-limit', 'rate: tasks', t.rate?.limit, 'none'),
  input('limits-rate-per', 'per seconds', t.rate?.per_seconds, '60'),
  input('limits-rate-burst', 'burst', t.rate?.burst, '0'),
  el('button', { type: 'submit', class: 'primary', id: 'limits-save' }, 'Save limits'));
  const pause = el('form', { class: 'filters', id: 'pause-form', onsubmit: async event => {
    event.preventDefault();
    const until = value('pause-until');
    if (!confirm(`Pause type ${t.name} until ${until || 'resumed'}? Claims hand out none of its tasks meanwhile.`)) return;
    await act(() => api(`types/pause/${encodeURIComponent(t.name)}`, until ? { until } : {}), `type ${t.name}: paused`);
  } },
  input('pause-until', 'pause until (UTC)', '', 'YYYY-MM-DD HH:MM:SS'),
  el('button', { type: 'submit', id: 'pause-save' }, 'Pause until'));
  return el('tr', { class: 'flow-editor', 'data-editor': t.name }, el('td', { colspan: columns }, limits, pause));
}

// Runs a change; on success shows the page again and says so, on refusal says why (the API's
// 400 names the field).
async function act(change, done) {
  try {
    await change();
  } catch (error) {
    say(error.message);
    statusLine.classList.add('error');
    return;
  }
  await route();
  say(done);
}

// The chart's time ranges: each reads one pair of series from the stats' throughput, index 0
// the most recent bucket. A range is offered only when the library's stats carry its series.
const RANGES = {
  hour: { label: 'Last hour', unit: 'minute', series: 'per_minute', buckets: 60, short: 'min' },
  day: { label: 'Last day', unit: 'hour', series: 'per_hour', buckets: 24, short: 'h' },
};
const rangesIn = throughput => Object.keys(RANGES).filter(key => key === 'hour'
  || Object.values(throughput).some(series => Array.isArray(series['completed_' + RANGES[key].series])));

// The scale's step: the smallest 1, 2 or 5 times a power of ten that covers 0..max in at most
// four steps, at least 1 (counts are whole), so the labels read as round numbers; the top is
// the first step at or above max (1 when nothing finished, so the empty chart has a scale).
function scale(max) {
  const target = Math.max(1, max);
  const power = 10 ** Math.max(0, Math.floor(Math.log10(target / 4)));
  const step = [1, 2, 5, 10].map(m => m * power).find(s => s >= target / 4);
  const top = Math.ceil(target / step) * step;
  const ticks = [];
  for (let v = 0; v <= top; v += step) ticks.push(v);
  return { ticks, top };
}

// Completed (green) and failed (red) tasks per bucket, summed over types, stacked, oldest on
// the left, with a y scale, an x axis in time ago, a legend with the range's totals and the
// range picker. The bars are SVG stretched to the width; the labels are HTML so they keep
// their size at every width.
function chart(throughput, range, offered = ['hour']) {
  const r = RANGES[range];
  const completed = new Array(r.buckets).fill(0);
  const failed = new Array(r.buckets).fill(0);
  for (const series of Object.values(throughput)) {
    (series['completed_' + r.series] ?? []).slice(0, r.buckets).forEach((n, i) => { completed[r.buckets - 1 - i] += n; });
    (series['failed_' + r.series] ?? []).slice(0, r.buckets).forEach((n, i) => { failed[r.buckets - 1 - i] += n; });
  }
  const { ticks, top } = scale(Math.max(...completed.map((n, i) => n + failed[i])));
  const ns = 'http://www.w3.org/2000/svg';
  const svgEl = (tag, attributes) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    return node;
  };
  const width = r.buckets * 10;
  const svg = svgEl('svg', { viewBox: `0 0 ${width} 100`, preserveAspectRatio: 'none', id: 'throughput-chart', role: 'img',
    'aria-label': `Tasks finished per ${r.unit}, ${r.label.toLowerCase()}` });
  for (const tick of ticks) {
    const y = 100 - (tick / top) * 100;
    svg.append(svgEl('line', { x1: 0, x2: width, y1: y, y2: y, class: tick === 0 ? 'axis' : 'grid', 'vector-effect': 'non-scaling-stroke' }));
  }
  const bar = (i, y, h, cls, title) => {
    const rect = svgEl('rect', { x: i * 10 + 1, y, width: 8, height: h, class: cls });
    const t = svgEl('title', {});
    t.textContent = title;
    rect.append(t);
    svg.append(rect);
  };
  completed.forEach((n, i) => {
    const hc = (n / top) * 100;
    const hf = (failed[i] / top) * 100;
    const ago = r.buckets - 1 - i;
    const label = `${ago ? ago + ' ' + r.short + ' ago' : 'this ' + r.unit}: ${n} completed, ${failed[i]} failed`;
    if (n) bar(i, 100 - hc, hc, 'completed', label);
    if (failed[i]) bar(i, 100 - hc - hf, hf, 'failed', label);
  });
  const at = (node, side, percent) => { node.style[side] = percent + '%'; return node; };
  const yAxis = el('div', { class: 'y-axis', id: 'chart-y' },
    ticks.map(tick => at(el('span', {}, tick), 'bottom', (tick / top) * 100)));
  const xAxis = el('div', { class: 'x-axis', id: 'chart-x' }, [0, 1, 2, 3, 4].map(k => {
    const ago = Math.round(r.buckets * (1 - k / 4));
    return at(el('span', { class: k === 0 ? 'first' : k === 4 ? 'last' : k % 2 ? 'minor' : null }, ago ? `−${ago} ${r.short}` : 'now'), 'left', k * 25);
  }));
  const sum = list => list.reduce((a, b) => a + b, 0);
  return el('figure', { class: 'chart', id: 'throughput' },
    el('div', { class: 'chart-head' },
      el('div', { class: 'legend', id: 'chart-legend' },
        el('span', { class: 'key completed' }), `completed (${sum(completed)})`,
        el('span', { class: 'key failed' }), `failed (${sum(failed)})`),
      offered.length > 1 ? el('div', { class: 'range', role: 'group', 'aria-label': 'Time range' }, offered.map(key =>
        el('a', { href: '#/overview?range=' + key, id: 'range-' + key, class: key === range ? 'active' : null,
          'aria-current': key === range ? 'true' : null }, RANGES[key].label))) : null),
    el('div', { class: 'plot' }, yAxis, svg), xAxis,
    el('figcaption', { class: 'muted' }, `Tasks finished per ${r.unit} (completed and failed, all types), ${r.label.toLowerCase()}`));
}

// -- task list --------------------------------------------------------------------------------

async function tasks(query) {
  const [types, page] = await Promise.all([api('types'), api('tasks?' + query.toString())]);
  const field = (name, input) => el('div', {}, el('label', { for: 'filter-' + name }, name), input);
  const select = (name, options) => el('select', { id: 'filter-' + name, name },
    el('option', { value: '' }, 'any'),
    options.map(o => el('option', { value: o, ...(query.get(name) === o ? { selected: '' } : {}) }, o)));
  const text = (name, placeholder) => el('input', { id: 'filter-' + name, name, value: query.get(name) ?? '', placeholder });
  const form = el('form', { class: 'filters', id: 'task-filters', onsubmit: event => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    location.hash = '#/tasks?' + q.toString();
  } },
  field('status', select('status', STATUSES)), field('type', select('type', types.map(t => t.name))),
  field('worker', text('worker')), field('params', text('params', 'text in params')),
  field('error', text('error', 'text in the error')),
  el('button', { type: 'submit', class: 'primary', id: 'filter-apply' }, 'Filter'));

  const rows = page.map(t => el('tr', { class: 'clickable', 'data-id': t.id, onclick: () => { location.hash = '#/task/' + t.id; } },
    el('td', { class: 'num' }, t.id), el('td', {}, el('a', { href: tasksOf(t.type), onclick: e => e.stopPropagation() }, t.type)), el('td', {}, badge(t.status)),
    el('td', { class: 'num' }, t.priority), el('td', { class: 'num' }, `${t.attempts}/${t.max_attempts}`),
    el('td', {}, t.claimed_by ?? ''), el('td', {}, t.created_at), el('td', { class: 'error' }, t.error_message ?? '')));
  // Bulk actions select by status, type, worker and text (params or error) only; with a
  // params or error filter they would act on more tasks than the list shows, so none is offered.
  const filtered = ['status', 'type', 'worker', 'text'].some(k => query.get(k)) && !['params', 'error'].some(k => query.get(k));
  const bulk = action => el('button', { id: 'bulk-' + action, class: action === 'cancel' ? 'danger' : null, onclick: async () => {
    const filter = Object.fromEntries(['status', 'type', 'worker', 'text'].filter(k => query.get(k)).map(k => [k, query.get(k)]));
    if (!confirm(`${action} every task matching ${JSON.stringify(filter)} (up to 1000)?`)) return;
    let done;
    await act(async () => { done = await api('bulk', { action, filter }); }, '');
    // A refusal (on a SQLite file: bulk needs a server database) is in the status line already.
    if (done) say(`${action}: ${done.changed.length} of ${done.matched} changed` + (done.skipped.length ? `, ${done.skipped.length} refused` : ''));
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
      row('type', el('a', { href: tasksOf(t.type), id: 'task-type' }, t.type)), row('status', t.status), row('attempts', `${t.attempts} of ${t.max_attempts}`),
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
  const columns = 6;
  const rows = list.map(t => el('tr', { 'data-type': t.name },
    el('td', {}, el('a', { href: tasksOf(t.name), class: 'type-tasks', title: `Tasks of type ${t.name}` }, t.name)), el('td', {}, t.version), el('td', { class: 'optional' }, t.is_active ? 'active' : 'inactive'),
    el('td', { class: 'optional flow' }, flowWords(t)),
    el('td', { class: 'optional' }, t.updated_at),
    // A type's state is told by its buttons at phone width, where the state columns are left out.
    el('td', { class: 'actions' }, el('button', { class: t.is_active ? 'danger' : 'primary', onclick: async () => {
      const action = t.is_active ? 'deactivate' : 'activate';
      if (!confirm(`${action} type ${t.name}?`)) return;
      await api(`types/${action}/${encodeURIComponent(t.name)}`, {});
      route();
    } }, t.is_active ? 'Deactivate' : 'Activate'), ' ',
    el('button', { class: 'flow-toggle' + (t.paused ? ' primary' : ''), onclick: async () => {
      const action = t.paused ? 'resume' : 'pause';
      if (!confirm(t.paused ? `Resume type ${t.name}?` : `Pause type ${t.name}? Claims hand out none of its tasks until it is resumed.`)) return;
      await act(() => api(`types/${action}/${encodeURIComponent(t.name)}`, {}), `type ${t.name}: ${action}d`);
    } }, t.paused ? 'Resume' : 'Pause'), ' ',
    el('button', { class: 'flow-edit', 'aria-expanded': 'false', onclick: event => {
      const open = document.querySelector(`tr[data-editor="${CSS.escape(t.name)}"]`);
      for (const editor of document.querySelectorAll('tr.flow-editor')) editor.remove();
      for (const button of document.querySelectorAll('button.flow-edit')) button.setAttribute('aria-expanded', 'false');
      if (open) return;
      event.currentTarget.setAttribute('aria-expanded', 'true');
      event.currentTarget.closest('tr').after(flowEditor(t, columns));
    } }, 'Limits'))));
  show(el('h1', {}, 'Task types'), table(['name', 'version', { label: 'state', optional: true }, { label: 'flow', optional: true }, { label: 'updated', optional: true }, ''], rows));
  say(`${list.length} type(s)`);
}

// -- schedules --------------------------------------------------------------------------------

async function schedules() {
  const list = await api('schedules');
  const rows = list.map(s => el('tr', { 'data-schedule': s.name },
    el('td', {}, s.name), el('td', {}, el('a', { href: tasksOf(s.type) }, s.type)),
    el('td', {}, el('code', {}, s.cron)), el('td', { class: 'optional' }, s.timezone),
    el('td', { class: 'next-run' }, s.enabled ? (s.next_run_at ?? 'never') : 'disabled'),
    el('td', { class: 'optional' }, s.last_run_at ?? ''), el('td', { class: 'optional' }, s.misfire)));
  show(el('h1', {}, 'Schedules'),
    list.length ? table(['name', 'type', 'cron', { label: 'time zone', optional: true }, 'next run (UTC)', { label: 'last run', optional: true }, { label: 'misfire', optional: true }], rows)
      : el('p', { class: 'muted', id: 'no-schedules' }, 'No schedule. Put one with taskmanager schedule put, or PUT /api/schedules/{name}.'));
  say(`${list.length} schedule(s)`);
}

// -- routing ----------------------------------------------------------------------------------

async function route() {
  clearTimeout(refreshTimer);
  statusLine.classList.remove('error');
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
    else if (parts[0] === 'schedules') await schedules();
    else await overview(query);
  } catch (error) {
    show(el('p', { class: 'error', id: 'error' }, error.message));
  }
}

window.addEventListener('hashchange', route);
route();
