/**
 * The stats page served at the admin listener's `/`, after HAProxy's `stats uri` page: one table
 * per service (listen address, connections now, queued, total, refused, bytes) and one row per
 * backend (admin state, health and why, last check, connections, failures, bytes) with buttons that
 * drain, enable or put a backend in maintenance through the JSON API; then one table per TLS
 * passthrough listener (inspections by result and route) and per kernel service (slots and nft
 * counters per backend).
 *
 * One self-contained document: inline CSS and JS, no external asset, so it works on a host with no
 * Internet access. It holds no data: the script fetches `/stats` every 2 s with the token, which it
 * reads from the URL fragment (`/#token=…`, never sent to the server) or asks for in a form, and
 * keeps in memory only. Every value from the API reaches the DOM through `textContent` or
 * `dataset`, never `innerHTML`, so a backend name cannot inject markup.
 */

const STYLE = `
body { font: 13px/1.35 system-ui, sans-serif; margin: 1em 1.5em; color: #222; background: #fff; }
h1 { font-size: 18px; margin: 0 0 .2em; }
#status { color: #555; margin-bottom: 1em; }
#status.error { color: #b00; font-weight: bold; }
form#login { margin: 1em 0; }
table { border-collapse: collapse; margin: 0 0 1.5em; min-width: 70em; }
caption { text-align: left; font-weight: bold; font-size: 14px; padding: .3em .5em; background: #4c5c8c; color: #fff; }
caption span { font-weight: normal; margin-left: 1.5em; }
th, td { border: 1px solid #aaa; padding: .2em .5em; text-align: right; white-space: nowrap; }
th { background: #dde2f0; text-align: center; }
td.name, td.reason, td.check { text-align: left; }
td.reason, td.check { white-space: normal; max-width: 22em; }
tr.up td { background: #c8f0c0; }
tr.down td { background: #f4a0a0; }
tr.draining td { background: #b0d0f8; }
tr.maintenance td { background: #d8c8a8; }
tr.total td { background: #eee; font-weight: bold; }
button { font: inherit; padding: 0 .5em; margin: 0 .1em; }
`;

const SCRIPT = `
'use strict';
const REFRESH_MS = 2000;
const ACTIONS = [['drain', 'draining'], ['enable', 'active'], ['maint', 'maintenance']];
let token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
let timer;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}
function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}
function ago(iso) {
  if (!iso) return '';
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return seconds < 60 ? seconds + 's ago' : seconds < 3600 ? Math.floor(seconds / 60) + 'm ago' : Math.floor(seconds / 3600) + 'h ago';
}
function address(listen) {
  return listen.host.includes(':') ? '[' + listen.host + ']:' + listen.port : listen.host + ':' + listen.port;
}
function setStatus(text, error) {
  const status = document.getElementById('status');
  status.textContent = text;
  status.className = error ? 'error' : '';
}
function headers() {
  return token ? { authorization: 'Bearer ' + token } : {};
}

const COLUMNS = ['backend', 'address', 'state', 'health', 'since', 'last check', 'slow start', 'current', 'total', 'failures', 'bytes up', 'bytes down', 'actions'];

function backendRow(service, backend) {
  const row = el('tr', undefined, backend.state === 'active' ? backend.health : backend.state);
  row.dataset.backend = backend.name;
  const check = backend.lastCheck;
  const checkText = check ? (check.ok ? 'pass' : 'fail') + ' (' + check.source + ', ' + check.durationMs + ' ms' + (check.detail ? ', ' + check.detail : '') + ') ' + ago(check.at) : 'none';
  const cells = [
    [backend.name + (backend.backup ? ' (backup)' : ''), 'name'],
    [backend.address, 'address'],
    [backend.state, 'state'],
    [backend.health, 'health'],
    [backend.reason + (backend.since ? ', ' + ago(backend.since) : ''), 'reason'],
    [checkText, 'check'],
    [backend.slowStart < 1 ? Math.round(backend.slowStart * 100) + '% (slow start)' : '', 'slow'],
    [backend.current, 'current'],
    [backend.total, 'total'],
    [backend.failures, 'failures'],
    [bytes(backend.bytesUp), 'up'],
    [bytes(backend.bytesDown), 'down'],
  ];
  for (const [text, className] of cells) row.append(el('td', text, className));
  const actions = el('td', undefined, 'actions');
  for (const [label, state] of ACTIONS) {
    const button = el('button', label);
    button.type = 'button';
    button.dataset.action = state;
    button.disabled = backend.state === state;
    button.addEventListener('click', () => setState(service.name, backend.name, state));
    actions.append(button);
  }
  row.append(actions);
  return row;
}

/** A table marked data-KEY=VALUE, captioned with its name and the caption's spans, with a head row of columns. */
function headedTable(key, value, spans, columns) {
  const table = el('table');
  table.dataset[key] = value;
  const caption = el('caption', value);
  caption.append(...spans);
  table.append(caption);
  const head = el('tr');
  for (const name of columns) head.append(el('th', name));
  const thead = el('thead');
  thead.append(head);
  table.append(thead);
  return table;
}

function serviceTable(service) {
  const queue = el('span', service.queued + ' queued, ' + service.refused + ' refused', 'queue');
  queue.dataset.queued = String(service.queued);
  const spans = [el('span', 'listen ' + address(service.listen)), el('span', 'health check ' + (service.healthCheck ? service.healthCheck.type : 'none')), queue];
  const table = headedTable('service', service.name, spans, COLUMNS);
  const body = el('tbody');
  for (const backend of service.backends) body.append(backendRow(service, backend));
  const total = el('tr', undefined, 'total');
  total.dataset.total = '';
  const sums = ['total', '', '', '', '', '', '', service.current, service.total, '', bytes(service.bytesUp), bytes(service.bytesDown), ''];
  sums.forEach((text, i) => total.append(el('td', text, i === 0 ? 'name' : '')));
  body.append(total);
  table.append(body);
  return table;
}

/** A TLS passthrough listener: its address, clients being inspected, inspections by result and route. */
function listenerTable(listener) {
  const inspecting = el('span', listener.inspecting + ' being inspected', 'inspecting');
  inspecting.dataset.inspecting = String(listener.inspecting);
  const spans = [el('span', 'listen ' + address(listener.listen)), el('span', 'TLS passthrough by SNI'), inspecting];
  const table = headedTable('listener', listener.owner, spans, ['result', 'route taken', 'clients']);
  for (const entry of listener.inspections.filter((each) => each.count > 0)) {
    const row = el('tr');
    row.dataset.result = entry.result;
    row.dataset.route = entry.route;
    row.append(el('td', entry.result, 'name'), el('td', entry.route, 'name'), el('td', entry.count, 'count'));
    table.append(row);
  }
  return table;
}

/**
 * A kernel service (mode: nat or dsr): its table and slots, and per backend its slots and, for NAT,
 * the packets and bytes nft counted, for DSR the flows pinned to it (the director counts no bytes).
 */
function kernelTable(service) {
  const dsr = service.mode === 'dsr';
  const flows = dsr ? (service.pins === undefined ? '' : ', ' + service.pins + ' pins') : (service.conntrack === undefined ? '' : ', ' + service.conntrack + ' flows');
  const spans = [el('span', service.mode + ' in the kernel, table ' + service.table), el('span', service.slots + ' slots' + flows)];
  const columns = ['backend', 'address', 'state', 'health', 'slots', ...(dsr ? ['pins'] : ['packets', 'bytes'])];
  const table = headedTable('kernel', service.service, spans, columns);
  for (const backend of service.backends) {
    const row = el('tr', undefined, backend.state === 'active' ? backend.health : backend.state);
    row.dataset.backend = backend.name;
    row.append(el('td', backend.name, 'name'), el('td', backend.address), el('td', backend.state, 'state'), el('td', backend.health, 'health'), el('td', backend.slots, 'slots'));
    if (dsr) row.append(el('td', backend.pins === undefined ? '-' : backend.pins, 'pins'));
    else row.append(el('td', backend.packets), el('td', bytes(backend.bytes)));
    table.append(row);
  }
  return table;
}

async function refresh() {
  clearTimeout(timer);
  try {
    const response = await fetch('stats', { headers: headers(), cache: 'no-store' });
    if (response.status === 401) {
      document.getElementById('login').hidden = false;
      setStatus(token ? 'wrong token' : 'this admin API needs a token', true);
      return;
    }
    if (!response.ok) throw new Error('GET /stats: HTTP ' + response.status);
    const { services, listeners = [], kernel = [] } = await response.json();
    document.getElementById('login').hidden = true;
    document.getElementById('services').replaceChildren(...services.map(serviceTable), ...listeners.map(listenerTable), ...kernel.map(kernelTable));
    setStatus('updated ' + new Date().toLocaleTimeString() + ', every ' + REFRESH_MS / 1000 + ' s', false);
  } catch (error) {
    setStatus('cannot reach the admin API: ' + error.message, true);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

async function setState(service, backend, state) {
  const path = 'services/' + encodeURIComponent(service) + '/backends/' + encodeURIComponent(backend) + '/state';
  try {
    const response = await fetch(path, { method: 'POST', headers: { ...headers(), 'content-type': 'application/json' }, body: JSON.stringify({ state }) });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      setStatus(service + '/' + backend + ': ' + ((body.error && body.error.message) || 'HTTP ' + response.status), true);
      return;
    }
  } catch (error) {
    setStatus('cannot reach the admin API: ' + error.message, true);
    return;
  }
  await refresh();
}

document.getElementById('login').addEventListener('submit', (event) => {
  event.preventDefault();
  token = document.getElementById('token').value.trim();
  refresh();
});
refresh();
`;

/** The page, complete: nothing else is fetched to render it. */
export const STATS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>l4lb statistics</title>
<style>${STYLE}</style>
</head>
<body>
<h1>l4lb statistics</h1>
<div id="status">loading…</div>
<form id="login" hidden>
<label>Admin token <input id="token" type="password" autocomplete="off" size="40"></label>
<button type="submit">Show</button>
</form>
<div id="services"></div>
<script>${SCRIPT}</script>
</body>
</html>
`;

/**
 * The page's headers: a Content-Security-Policy that allows only its own inline style and script
 * and fetches to this origin (so even an injected value could load nothing), no caching, no framing.
 */
export const STATS_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-length': String(Buffer.byteLength(STATS_PAGE_HTML)),
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};
