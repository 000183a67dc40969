/**
 * What the configuration reference (docs/reference/configuration.md) says about each key beyond
 * what the schema knows. The schema gives the key paths, their types, bounds, enums and the modes
 * they apply to; this gives the meaning, the default (from DEFAULTS, never written twice), limits
 * only code checks, and an example. test/reference.test.ts fails when a key of the schema has no
 * entry here, or an entry names no key: the reference cannot fall behind the schema.
 */
import { DEFAULTS, DNS_DEFAULTS, HEALTH_DEFAULTS, formatDuration } from '../config/index.js';
import { DEFAULT_EXPECTED_STATUS, DEFAULT_HTTP_PATH, DEFAULT_PGSQL_USER } from '../health/index.js';
import { DEFAULT_MAX_SOURCES } from '../rules/index.js';

export interface KeyDoc {
  /** What the key does, in one or a few sentences of Markdown. */
  readonly text: string;
  /** The value an omitted key means, as written in a file; absent: no default (required or off, as `text` says). */
  readonly default?: string;
  /** The type in words where the schema's is too weak (durations, addresses, CIDR lists). */
  readonly type?: string;
  /** Limits beyond the schema's bounds, checked by `l4lb check`. */
  readonly limits?: string;
  /** A YAML fragment showing the key in place. */
  readonly example?: string;
  /** The HAProxy or nginx stream keyword it corresponds to. */
  readonly peer?: string;
}

const ms = (value: number): string => formatDuration(value);
const DURATION = 'duration: a number and a unit (`500ms`, `3s`, `30m`, `1h`)';
const ADDRESS = 'address `HOST:PORT` (`[v6]:PORT` for IPv6), or a port alone';
const CIDRS = 'list of CIDR blocks or addresses (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`), at least one';

export const CONFIG_KEYS: Readonly<Record<string, KeyDoc>> = {
  admin: {
    text: 'The admin API and stats page (see [operations.md](../operations.md#the-admin-api)). Without this key there is no admin listener at all.',
    example: 'admin: { listen: 127.0.0.1:9900, tokenFile: admin.token }',
    peer: 'HAProxy `stats socket` / `stats uri`',
  },
  'admin.listen': {
    text: 'Where the admin API listens. A port alone (`9900`) means every IPv4 address, and then a token is required. Changing it needs a restart.',
    type: `${ADDRESS}; an IP literal, not a host name`,
    example: 'admin: { listen: 127.0.0.1:9900 }',
  },
  'admin.token': {
    text: 'Every admin request must send `Authorization: Bearer <token>`, except `GET /` (the page asks for it) and, with `metricsPublic`, `GET /metrics`. Required (or `tokenFile`) when `admin.listen` is not a loopback address. Compared in constant time. Changing it takes effect on reload.',
    limits: 'at least 16 printable characters, no spaces; not together with `tokenFile`',
    example: 'admin: { listen: 0.0.0.0:9900, token: "${L4LB_ADMIN_TOKEN}" }',
  },
  'admin.tokenFile': {
    text: 'Reads the token from this file (relative to the configuration file), at start and at each reload, so it is in neither the configuration nor a command line. Its line end is dropped.',
    type: 'file name',
    example: 'admin: { listen: 0.0.0.0:9900, tokenFile: /etc/l4lb/admin.token }',
  },
  'admin.metricsPublic': {
    text: '`true`: `GET /metrics` answers without the token, so a Prometheus scraper holds no credential that can drain backends. `/stats` and state changes still need the token.',
    default: 'false',
    example: 'admin: { listen: 0.0.0.0:9900, tokenFile: admin.token, metricsPublic: true }',
  },
  workers: {
    text: 'Processes that run the proxy services. `1`: one process. `N > 1`: `l4lb run` becomes a primary that forks N workers sharing every listener; health and admin state are decided once, in the primary. `auto`: one per CPU this process may use. Read at start only: a reload that changes it warns that the change applies at the next restart.',
    default: String(DEFAULTS.workers),
    example: 'workers: auto',
    peer: 'HAProxy `nbthread`, nginx `worker_processes`',
  },
  log: {
    text: 'How l4lb writes its own log lines (JSON, one per line, on stdout). Read at start only.',
    example: 'log: { timestamp: iso, level: info }',
  },
  'log.timestamp': {
    text: '`time` of every line: epoch milliseconds (`epoch`) or ISO 8601 UTC (`iso`).',
    default: 'epoch',
  },
  'log.level': {
    text: 'The least level written: `debug` adds per-check lines; `warn` keeps only what needs attention.',
    default: 'info',
  },
  accessLog: {
    text: 'Where access lines (one per connection, at its end) go; without it, stdout with the other lines. Read at start only.',
    example: 'accessLog: { path: /var/log/l4lb/access.log }',
    peer: 'HAProxy `log` + `option tcplog`, nginx stream `access_log`',
  },
  'accessLog.path': {
    text: 'The file access lines are appended to; reopened on `SIGUSR1`, so logrotate can move it away (`postrotate kill -USR1 $(cat /run/l4lb.pid)`).',
    type: 'absolute file path',
  },
  resolvers: {
    text: 'The DNS servers that `dns:` and `srv:` backend entries are asked (port 53 unless given), like HAProxy\'s `resolvers` section. Without it, the servers of `/etc/resolv.conf` (through c-ares, which does not read `/etc/hosts`). A change applies from each entry\'s next query. See [operations.md](../operations.md) for what happens when they fail.',
    type: 'list of `IP` or `IP:PORT` (`[v6]:PORT`), at least one',
    example: 'resolvers: [127.0.0.1:8600]',
    peer: 'HAProxy `resolvers` + `nameserver`, nginx `resolver`',
  },
  listeners: {
    text: 'TLS passthrough listeners: each accepts connections, reads the first flight up to the whole ClientHello without terminating TLS, and hands the connection to the service its server name (SNI) routes to; the backend gets every byte, the ClientHello included. A name no route matches, a ClientHello without a name, a first flight that is not TLS and one not complete within `timeouts.inspect` take the `default` route; without one the client is reset (`end: sni-refused`).',
    example: 'listeners: [{ listen: 0.0.0.0:443, routes: [{ sni: db.example.com, service: pg }, { default: web }] }]',
    peer: 'nginx stream `ssl_preread` + `map $ssl_preread_server_name`; HAProxy `tcp-request inspect-delay` + `use_backend … if { req.ssl_sni … }`',
  },
  'listeners[].listen': {
    text: 'Where the listener accepts connections. It shares the address space of `services[].listen` and `admin.listen`: no two may collide. Kept across reloads and upgrades by this address, whichever listener or service owns it.',
    type: `${ADDRESS}; an IP literal`,
    example: 'listen: 0.0.0.0:443',
  },
  'listeners[].routes': {
    text: 'Where each server name goes, matched in this order: an exact name, then a `*.` wildcard, then the default route. Each name once per listener; at most one default.',
    limits: 'at least one; each names a `mode: proxy` service, which may then leave out `listen` and may not accept PROXY headers',
  },
  'listeners[].routes[].sni': {
    text: 'A server name, matched case-insensitively without a trailing dot: an exact name (`db.example.com`) or a wildcard for one whole first label (`*.example.org` matches `a.example.org`, not `a.b.example.org` nor `example.org`).',
    type: 'server name, or `*.` and a server name',
    example: 'routes: [{ sni: "*.example.org", service: web }]',
  },
  'listeners[].routes[].service': {
    text: 'The `mode: proxy` service connections with this server name go to.',
    type: 'a service name',
  },
  'listeners[].routes[].default': {
    text: 'The `mode: proxy` service for a name no route matches, a ClientHello without a server name, a first flight that is not TLS, and a ClientHello not complete within `timeouts.inspect`. Without a default route those clients are reset (`end: sni-refused`).',
    type: 'a service name',
    example: 'routes: [{ default: web }]',
  },
  'listeners[].timeouts': {
    text: 'The listener\'s timeouts; the services it routes to keep their own for the rest of the connection.',
  },
  'listeners[].timeouts.inspect': {
    text: 'How long a client may take to send its whole ClientHello; a client still short of it then takes the default route with what it sent (reset without one), counted with result `timeout`.',
    default: ms(DEFAULTS.inspectTimeout),
    type: DURATION,
    peer: 'HAProxy `tcp-request inspect-delay`, nginx `preread_timeout`',
  },
  services: {
    text: 'The services. Names are unique, and no two addresses this process listens on may collide (same port and address, or a wildcard covering the other).',
    limits: 'at least one',
  },
  'services[].mode': {
    text: '`proxy`: l4lb accepts each connection and splices it to a backend (HAProxy `mode tcp`). `dsr`: an nftables direct-server-return director (see [dsr.md](../dsr.md)). `nat`: full NAT in nftables, the kernel rewrites each packet to the Maglev slot\'s backend and back (see [kernel.md](../kernel.md)). `l4lb run` writes and updates the kernel tables of `dsr` and `nat` services.',
    default: DEFAULTS.mode,
  },
  'services[].name': {
    text: 'The service\'s name in logs, metrics, `/stats` and admin commands.',
    type: 'name: up to 63 letters, digits, `.`, `_` or `-`, starting with a letter or digit',
    limits: 'unique among services',
  },
  'services[].listen': {
    text: 'Where clients connect: one address or a list (`[0.0.0.0:6432, "[::]:6432"]` for IPv4 and IPv6). A port alone (`6432`) means every IPv4 address, as nginx `listen 6432`. A listener that cannot be bound fails the start (or the reload, which then keeps the running configuration). Each socket is kept across reloads and upgrades by its address. Required, except for a service a `listeners` route names.',
    type: `${ADDRESS}; an IP literal; or a list of them`,
    example: 'listen: 127.0.0.1:6432',
    peer: 'HAProxy `bind`, nginx `listen`',
  },
  'services[].balance': {
    text: 'How a backend is chosen: `maglev`, `ring` and `rendezvous` hash the flow key (`hashKey`), so a client keeps its backend; `roundrobin` and `leastconn` keep no affinity (see [hashing.md](../hashing.md)).',
    default: DEFAULTS.balance,
    example: 'balance: ring',
    peer: 'HAProxy `balance source` + `hash-type consistent`, `balance roundrobin|leastconn`; nginx `hash $remote_addr consistent`',
  },
  'services[].hashKey': {
    text: 'What a flow is hashed on: the client address (`source-ip`: a client keeps its backend across connections) or address and port (`source-ip-port`: connections spread, each keeps its backend); `proxy` only: `sni`, the server name a `listeners` route read (every client of one name on one backend; a connection without one is keyed on its address). Hashing balancers only.',
    default: DEFAULTS.hashKey,
  },
  'services[].flowHash': {
    text: 'How a flow key maps to a Maglev slot: `murmur3`, or `jhash`, the kernel\'s nft `jhash` mapping, so a proxy service and a DSR service with the same backends, `tableSize` and `hashSeed` choose alike. `maglev` only.',
    default: DEFAULTS.flowHash,
  },
  'services[].hashSeed': {
    text: 'Seed of the flow hash (for `dsr`: the nft `jhash … seed`). Services that must choose alike share it.',
    default: String(DEFAULTS.hashSeed),
  },
  'services[].tableSize': {
    text: 'Maglev lookup-table size M. The Maglev paper (NSDI \'16 §3.4) wants M ≫ backends: at least 100× the backends keeps imbalance under about 1%.',
    default: String(DEFAULTS.tableSize),
    limits: 'a prime, at least the number of backends; for `dsr` at most 262144 (the nft map the director loads)',
    example: 'tableSize: 251',
  },
  'services[].balanceFactor': {
    text: 'Bounded loads (Mirrokni, Thorup, Zadimoghaddam 2016): no backend takes more than `balanceFactor` × the mean load; a flow whose backend is full moves to its next candidate. Hashing balancers only. Off by default.',
    limits: 'a number greater than 1',
    example: 'balanceFactor: 1.25',
    peer: 'HAProxy `hash-balance-factor` (given there as a percentage: 125 is 1.25 here)',
  },
  'services[].healthCheck': {
    text: 'Active health checks of every backend (see [health.md](../health.md)). Without it every backend counts as up, and only failed connects (passive checks) are seen.',
    example: 'healthCheck: { type: pgsql, interval: 2s, rise: 2, fall: 3, user: monitor, database: postgres }',
    peer: 'HAProxy `check` with `option pgsql-check` etc.',
  },
  'services[].healthCheck.type': {
    text: 'The probe: `tcp` (a connect), `redis` (`PING`), `pgsql` (a startup message), `mysql` (the handshake), `http` (a request, status matched by `expect`).',
    default: HEALTH_DEFAULTS.type,
    peer: 'HAProxy `option redis-check`, `pgsql-check`, `mysql-check`, `httpchk`',
  },
  'services[].healthCheck.interval': {
    text: 'Time between probes of one backend.',
    default: ms(HEALTH_DEFAULTS.interval),
    type: DURATION,
    peer: 'HAProxy `inter`',
  },
  'services[].healthCheck.timeout': {
    text: 'How long a probe may take before it counts as failed.',
    default: 'the interval',
    type: DURATION,
    peer: 'HAProxy `timeout check`',
  },
  'services[].healthCheck.rise': {
    text: 'Consecutive passed probes that bring a down backend up.',
    default: String(HEALTH_DEFAULTS.rise),
    peer: 'HAProxy `rise`',
  },
  'services[].healthCheck.fall': {
    text: 'Consecutive failed probes that take an up backend down.',
    default: String(HEALTH_DEFAULTS.fall),
    peer: 'HAProxy `fall`',
  },
  'services[].healthCheck.initial': {
    text: 'Health at start and for a backend added by a reload: `up` or `fully-up` serve at once, `down` or `fully-down` wait for `rise` passed probes.',
    default: HEALTH_DEFAULTS.initial,
    peer: 'HAProxy `init-state`',
  },
  'services[].healthCheck.path': {
    text: '`http` only: the request path.',
    default: DEFAULT_HTTP_PATH,
    example: 'healthCheck: { type: http, path: /healthz, expect: 2xx }',
  },
  'services[].healthCheck.host': {
    text: '`http` only: the `Host` header.',
    default: "the backend's address, and its port unless 80",
  },
  'services[].healthCheck.expect': {
    text: '`http` only: the statuses that pass: a status (`200`), a class (`"2xx"`), a range (`"200-299"`, `"2xx-3xx"`) or a list of these.',
    default: String(DEFAULT_EXPECTED_STATUS),
    example: 'healthCheck: { type: http, path: /ready, expect: "2xx-3xx" }',
    peer: 'HAProxy `http-check expect status` / `rstatus`',
  },
  'services[].healthCheck.user': {
    text: '`pgsql` only: the user named in the startup message (a server that answers with an authentication request passes: it is up and speaking the protocol).',
    default: DEFAULT_PGSQL_USER,
  },
  'services[].healthCheck.database': {
    text: '`pgsql` only: the database named in the startup message.',
    default: 'none (the server then uses the user name)',
  },
  'services[].onDown': {
    text: 'What happens to the established connections of a backend that goes down: `keep` lets them run, `close` resets them so clients reconnect to a healthy backend at once (kernel modes: `nat` sends its flows to a TCP reset at their next client packet, `dsr` deletes their pins).',
    default: `${HEALTH_DEFAULTS.onDown} (mode: proxy); ${DEFAULTS.kernelOnDown} (mode: nat, dsr)`,
    limits: 'needs `healthCheck`',
    peer: 'HAProxy `on-marked-down shutdown-sessions`',
  },
  'services[].maxConnections': {
    text: 'Open connections for the service; beyond it new ones wait up to `timeouts.queue` for a slot, then are refused.',
    default: String(DEFAULTS.maxConnections),
    peer: 'HAProxy `maxconn` (frontend); the wait is `timeout queue`',
  },
  'services[].retries': {
    text: 'Connect failures retried on the picker\'s next distinct candidate (another backend, not the same one again).',
    default: String(DEFAULTS.retries),
    peer: 'HAProxy `retries` + `option redispatch`',
  },
  'services[].timeouts': {
    text: 'Each timeout may be given alone; the others keep their defaults.',
    example: 'timeouts: { connect: 3s, idle: 30m, queue: 5s, drain: 30s }',
  },
  'services[].timeouts.connect': {
    text: 'To establish a backend connection; a timeout counts as a failed connect (retried, and seen by passive health).',
    default: ms(DEFAULTS.timeouts.connect),
    type: DURATION,
    peer: 'HAProxy `timeout connect`',
  },
  'services[].timeouts.idle': {
    text: 'A connection with no bytes either way for this long is closed.',
    default: ms(DEFAULTS.timeouts.idle),
    type: DURATION,
    peer: 'HAProxy `timeout client`/`timeout server`/`timeout tunnel` (one value here, for both sides)',
  },
  'services[].timeouts.queue': {
    text: 'How long a connection waits for a free slot under `maxConnections` before it is refused.',
    default: ms(DEFAULTS.timeouts.queue),
    type: DURATION,
    peer: 'HAProxy `timeout queue`',
  },
  'services[].timeouts.drain': {
    text: 'On `SIGTERM`/`SIGINT`, how long open connections may finish before they are cut.',
    default: ms(DEFAULTS.timeouts.drain),
    type: DURATION,
    peer: 'HAProxy `hard-stop-after`',
  },
  'services[].timeouts.proxyHeader': {
    text: 'How long a trusted peer has to send its PROXY header. Only with `proxyProtocol.accept`.',
    default: ms(DEFAULTS.proxyHeaderTimeout),
    type: DURATION,
    peer: 'HAProxy `timeout client` during `accept-proxy`',
  },
  'services[].backends': {
    text: 'The backends. Hashing uses a backend\'s name, never its position, so reordering the list moves no client.',
    limits: 'at least one; at least one that is not a backup',
  },
  'services[].backends[].name': {
    text: 'The backend\'s identity for hashing, logs, metrics and admin commands.',
    type: 'name, as a service name',
    limits: 'unique within the service',
  },
  'services[].backends[].address': {
    text: 'Where to connect (`proxy`: an IP literal or a host name, resolved at start and at each reload; `dsr`: an IPv4 address, its port left out or equal to the VIP\'s, since the director does not rewrite ports; `nat`: an IP literal of the VIP\'s family with a port, which may differ from the VIP\'s).',
    type: ADDRESS,
    example: 'backends: [{ name: pg1, address: 10.0.0.11:5432 }]',
  },
  'services[].backends[].dns': {
    text: 'A backend entry that stands for every A and AAAA record of this name: each address becomes a backend named `ADDRESS:PORT`, so a reordered answer moves no client and an added or removed address moves only its own clients. Asked again when the answer\'s TTL runs out (at least every second, at most every `refresh`); a failed or empty answer keeps the last good set. A name that does not resolve at start is not fatal: the service serves from whatever resolves later. Not with `workers` other than 1. On `mode: nat` and `mode: dsr` services a changed answer is one nft transaction of the moved slots, and an address the kernel cannot use (another family than the VIP\'s; for dsr, not IPv4) is skipped and logged once ([kernel.md](../kernel.md#backends-from-dns)).',
    type: 'DNS name',
    example: 'backends: [{ dns: pg.service.consul, port: 5432, refresh: 10s }]',
    peer: 'HAProxy `server-template` with `resolvers`, nginx `server … resolve`',
  },
  'services[].backends[].srv': {
    text: 'A backend entry that stands for every SRV record of this name: each target and port becomes a backend named `TARGET:PORT`, with the record\'s weight (clamped to 1–1000); records of a higher priority number are backups. Asked every `refresh` (Node\'s resolver reports no SRV TTL).',
    type: 'DNS name of SRV records (`_service._tcp.domain`)',
    example: 'backends: [{ srv: _postgresql._tcp.db.example }]',
    peer: 'HAProxy `server-template … _srv._tcp…`',
  },
  'services[].backends[].port': {
    text: 'With `dns:`: the port of every address the name resolves to (`srv:` takes each record\'s port). On a `mode: dsr` service it must be the VIP\'s port (the director does not rewrite ports; an SRV record on another port is skipped).',
    limits: 'required with `dns`',
  },
  'services[].backends[].refresh': {
    text: 'With `dns:` or `srv:`: the longest time between two queries of the name.',
    default: ms(DNS_DEFAULTS.refresh),
    type: DURATION,
    limits: 'from 100ms to 1h',
    peer: 'HAProxy `hold valid`, nginx `resolver … valid=`',
  },
  'services[].backends[].weight': {
    text: 'Relative share of flows.',
    default: String(DEFAULTS.weight),
    limits: 'greater than 0, at most 1000',
    peer: 'HAProxy `weight`',
  },
  'services[].backends[].maxConnections': {
    text: 'Open connections to this backend; a full backend is skipped like a failed candidate. `mode: proxy` only (on a `dns:`/`srv:` entry of a `nat` or `dsr` service it is refused: the kernel counts no connections).',
    peer: 'HAProxy `maxconn` (server)',
  },
  'services[].backends[].backup': {
    text: 'Serves only when no primary backend is usable. Not on `mode: dsr` backends, nor on their `dns:` entries.',
    default: 'false',
    peer: 'HAProxy `backup`',
  },
  'services[].backends[].slowStart': {
    text: 'Ramps a backend\'s share from 0 to full over this time after it becomes usable again. `mode: proxy` only (refused on a `dns:`/`srv:` entry of a `nat` or `dsr` service).',
    type: DURATION,
    peer: 'HAProxy `slowstart`',
  },
  'services[].backends[].state': {
    text: 'Administrative state at start: `active`, `draining` (keeps its connections, takes no new ones) or `maintenance` (takes nothing). Changed at run time by `l4lb drain|enable|maintenance` or the admin API, which also take HAProxy\'s words `ready`, `drain`, `maint`.',
    default: HEALTH_DEFAULTS.state,
    peer: 'HAProxy `disabled`, `set server … state`',
  },
  'services[].proxyProtocol': {
    text: 'PROXY protocol (haproxy.org/download/2.9/doc/proxy-protocol.txt) towards backends and from trusted peers; needs `send` and/or `accept` (see [security.md](../security.md)).',
    example: 'proxyProtocol: { send: v2, accept: [10.0.0.0/8] }',
  },
  'services[].proxyProtocol.send': {
    text: 'Every backend connection starts with a PROXY header carrying the client and destination.',
    peer: 'HAProxy `send-proxy` / `send-proxy-v2`, nginx `proxy_protocol on`',
  },
  'services[].proxyProtocol.accept': {
    text: 'Peers that must start with a PROXY header (v1 or v2); its source is then the client for hashing, rules and logs. A header from any other peer closes its connection.',
    type: CIDRS,
    peer: 'HAProxy `accept-proxy` with an ACL of trusted sources; nginx `listen … proxy_protocol` + `set_real_ip_from`',
  },
  'services[].allow': {
    text: 'Only these clients (the effective client: after a PROXY header) are served; the others are closed at accept and counted.',
    type: CIDRS,
    peer: 'HAProxy `tcp-request connection reject unless { src … }`, nginx `allow`',
  },
  'services[].deny': {
    text: 'These clients are refused; deny wins over allow.',
    type: CIDRS,
    peer: 'nginx `deny`',
  },
  'services[].limits': {
    text: 'Per-source limits; needs `perSourceConnections` and/or `perSourceRate`.',
    example: 'limits: { perSourceConnections: 50, perSourceRate: 20/s }',
    peer: 'HAProxy stick tables (`sc_conn_cur`, `sc_conn_rate`), nginx `limit_conn`',
  },
  'services[].limits.perSourceConnections': {
    text: 'Open connections from one source (an IPv4 address, an IPv6 /64).',
  },
  'services[].limits.perSourceRate': {
    text: 'New connections from one source: bursts of N, N per second or per minute (a token bucket).',
    type: '`"N/s"` or `"N/m"`',
  },
  'services[].limits.maxSources': {
    text: 'Sources the limiter tracks at most, so its memory is bounded; an idle source is forgotten first, one with open connections never.',
    default: String(DEFAULT_MAX_SOURCES),
  },
  'services[].vip': {
    text: 'The virtual address clients connect to, on the director\'s packet path (not a local socket). A `nat` VIP may be a local address (`127.0.0.1:8000` serves local clients through the output hook).',
    type: '`ADDRESS:PORT`: IPv4 for `dsr`; IPv4 or `[v6]:PORT` for `nat`',
    example: 'vip: 192.0.2.10:80',
  },
  'services[].snat': {
    text: 'mode: nat: the source address the kernel gives packets it sends to a backend, so replies come back through this host. Without it: `masquerade`, the address of the interface the packet leaves by.',
    default: 'masquerade',
    type: 'an IP literal of the VIP\'s family',
    example: 'snat: 192.0.2.254',
    peer: 'IPVS FULLNAT local address; HAProxy `source`',
  },
  'services[].dscp': {
    text: 'The DSCP value that tells a backend which VIP a packet was for (L3 DSR, as Yahoo\'s L3DSR). One value names one VIP address; services on the same VIP address may share it.',
    example: 'dscp: 10',
  },
};
