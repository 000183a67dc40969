/**
 * The admin HTTP API, on node:http, loopback by default (HAProxy's stats socket and
 * Runtime API play this part there):
 *
 *   GET  /                                       the stats page (HTML, no data in it: it calls /stats; src/admin/stats-page.ts)
 *   GET  /stats                                  JSON: services, backends, health, state, counts, bytes
 *   GET  /metrics                                Prometheus text format (src/observability)
 *   POST /services/:service/backends/:backend/state   body {"state": "active"|"draining"|"maintenance"}
 *   POST /services/:service/backends/:backend/weight  body {"weight": 3}
 *   POST /services/:service/backends                  body {"name": "b4", "address": "10.0.0.4:5432", "weight"?, "backup"?, "maxConnections"?, "slowStart"?}
 *   DELETE /services/:service/backends/:backend
 *   POST /reload                                 re-reads the file as SIGHUP does; answers with the outcome
 *   POST /upgrade                                starts a new l4lb on these sockets as SIGUSR2 does; answers with the outcome
 *
 * Weight, add and remove are HAProxy's runtime API (`set server weight`, `add server`, `del
 * server`): a runtime overlay the next reload of the file replaces (src/services/backends.ts),
 * each answered with what moved (`moves`: Maglev slots, or sampled keys for ring and rendezvous).
 *
 * With the lifecycle given, /stats also carries `config` (file, sha256, loadedAt), `lastReload` and
 * `drain` (null, or connections left and the deadline while stopping). With TLS passthrough
 * listeners it carries `listeners`: each one's socket name, address, clients being inspected now
 * and inspections by result and route (what l4lb_sni_inspect_total counts). While l4lb drains, reads
 * are served to the end and state changes and reloads are refused with 503 `stopping`.
 *
 * With a token configured every request needs `Authorization: Bearer <token>`, except the stats
 * page's HTML and, with `metricsPublic`, GET /metrics (read-only, for a scraper); the comparison is
 * constant-time over SHA-256 digests (equal lengths, so timingSafeEqual never throws and the
 * token's length does not leak). Errors are JSON `{ "error": { "code", "message", "valid"? } }`
 * with 400 (bad body, or a runtime change out of range), 401 (no or wrong token), 404 (unknown
 * path, service or backend — listing the valid names), 405 (wrong method, with `Allow`), 409 (a
 * runtime change that conflicts: a name taken, no primary left, a full table), 413 (body over
 * 4 KiB), 422 (a reload or an upgrade refused: `problems`), 501 (a runtime change this runtime
 * cannot make: a cluster), 503 (stopping), 500 (a bug, never a crash).
 *
 * A client cannot hold the API (ADMIN_LIMITS, as nginx's client_header_timeout and
 * client_header_buffer_size bound a slow or fat request): its headers must arrive within 5 s and
 * the whole request within 10 s (else 408 and the connection closes), headers over 8 KiB get 431,
 * and at most 64 connections are open at once (the next ones are closed as they are accepted).
 * An idle keep-alive connection is closed after 5 s.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ADMIN_STATES, DEFAULTS, parseDuration, parseEndpoint, type AdminState, type BackendConfig } from '../config/index.js';
import type { Endpoint } from '../config/index.js';
import { BackendExistsError, LbError, ResolveError, RuntimeChangeError, UnknownBackendError, UnknownServiceError } from '../errors.js';
import { createMetrics, drainStatus, type LifecycleView, type Metrics, type StatsSource } from '../observability/index.js';
import type { Balancer } from '../proxy/index.js';
import { STATS_PAGE_HEADERS, STATS_PAGE_HTML } from './stats-page.js';

/** What the admin API drives: a runtime's stats, state changes and events (one process's balancer, or a cluster primary's). */
export interface AdminTarget extends StatsSource {
  setState: Balancer['setState'];
  changeBackends: Balancer['changeBackends'];
}

export const MAX_BODY_BYTES = 4096;

/** How long and how large an admin request may be, and how many connections may be open. */
export interface AdminLimits {
  /** Until the request's headers are in (Node's headersTimeout); then 408. */
  readonly headersTimeoutMs: number;
  /** Until the whole request is in (Node's requestTimeout); then 408. At least headersTimeoutMs. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** Bytes of the request line and headers together (Node's maxHeaderSize); over it, 431. */
  readonly maxHeaderBytes: number;
  /** Connections open at once (server.maxConnections); further ones are closed on accept. */
  readonly maxConnections: number;
}

export const ADMIN_LIMITS: AdminLimits = {
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 8 * 1024,
  maxConnections: 64,
};

export interface AdminOptions {
  readonly listen: Endpoint;
  readonly token?: string;
  /** GET /metrics answers without the token. */
  readonly metricsPublic?: boolean;
  readonly logger?: Logger;
  /** The process lifecycle: its state in /stats and /metrics, POST /reload and POST /upgrade. */
  readonly lifecycle?: LifecycleView;
  /** Overrides of ADMIN_LIMITS (tests use small ones). */
  readonly limits?: Partial<AdminLimits>;
  /** A listening socket inherited from a previous l4lb (or systemd), listened on instead of binding `listen`. */
  readonly fd?: number;
}

export interface AdminServer {
  /** The bound address (port 0 resolved). */
  address(): Endpoint;
  /** A reload may change the token; the listen address stays until restart. */
  setToken(token: string | undefined): void;
  /** A reload may open or close /metrics to scrapers without the token. */
  setMetricsPublic(open: boolean): void;
  /** The listening socket (for a handover to a new l4lb). */
  listener(): Server;
  /** Stops accepting (a new l4lb answers from now on); requests in progress are answered. */
  stopListening(): Promise<void>;
  close(): Promise<void>;
}

export type AdminErrorCode =
  | 'bad-request'
  | 'unauthorized'
  | 'not-found'
  | 'method-not-allowed'
  | 'conflict'
  | 'timeout'
  | 'too-large'
  | 'headers-too-large'
  | 'reload-refused'
  | 'upgrade-failed'
  | 'not-supported'
  | 'stopping'
  | 'internal';

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: AdminErrorCode,
    message: string,
    readonly valid?: readonly string[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Constant-time check of an Authorization header against `expected` (a SHA-256 digest). */
export function authorized(header: string | undefined, expected: Buffer): boolean {
  const token = /^Bearer ([\x21-\x7e]+)$/.exec(header ?? '')?.[1];
  const given = digest(token ?? '');
  return timingSafeEqual(given, expected) && token !== undefined;
}

function send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Keep reading (and dropping) so the answer reaches the client; the socket closes after it.
        if (!tooLarge) reject(new HttpError(413, 'too-large', `the body is over ${MAX_BODY_BYTES} bytes`));
        tooLarge = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

/** Parses `{"state": "..."}`; HttpError 400 saying what was wrong. */
export function parseStateBody(text: string): AdminState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'bad-request', `the body must be JSON such as {"state": "draining"}, got ${text.trim() === '' ? 'an empty body' : JSON.stringify(text.slice(0, 40))}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'bad-request', 'the body must be a JSON object such as {"state": "draining"}');
  }
  const keys = Object.keys(value);
  const extra = keys.filter((key) => key !== 'state');
  if (extra.length > 0) throw new HttpError(400, 'bad-request', `unknown key ${extra.map((key) => `"${key}"`).join(', ')} (expected only "state")`);
  const given = (value as { state?: unknown }).state;
  // HAProxy's runtime API words (`set server … state ready|drain|maint`) name the same states.
  const state = typeof given === 'string' && Object.hasOwn(HAPROXY_STATE_WORDS, given) ? HAPROXY_STATE_WORDS[given] : given;
  if (typeof state !== 'string' || !(ADMIN_STATES as readonly string[]).includes(state)) {
    throw new HttpError(400, 'bad-request', `"state" must be one of ${ADMIN_STATES.join(', ')} (or HAProxy's ready, drain, maint), got ${given === undefined ? 'nothing' : JSON.stringify(given)}`, ADMIN_STATES);
  }
  return state as AdminState;
}

const HAPROXY_STATE_WORDS: Readonly<Record<string, AdminState>> = { ready: 'active', drain: 'draining', maint: 'maintenance' };

/** `text` as a JSON object with only `allowed` keys; HttpError 400 naming what was wrong and showing `example`. */
function parseObjectBody(text: string, allowed: readonly string[], example: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'bad-request', `the body must be JSON such as ${example}, got ${text.trim() === '' ? 'an empty body' : JSON.stringify(text.slice(0, 40))}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'bad-request', `the body must be a JSON object such as ${example}`);
  const extra = Object.keys(value).filter((key) => !allowed.includes(key));
  if (extra.length > 0) throw new HttpError(400, 'bad-request', `unknown key ${extra.map((key) => `"${key}"`).join(', ')} (expected ${allowed.map((key) => `"${key}"`).join(', ')})`);
  return value as Record<string, unknown>;
}

/** Parses `{"weight": 3}`; HttpError 400 saying what was wrong (the range is the balancer's to check). */
export function parseWeightBody(text: string): number {
  const { weight } = parseObjectBody(text, ['weight'], '{"weight": 3}');
  if (typeof weight !== 'number') throw new HttpError(400, 'bad-request', `"weight" must be a number, got ${weight === undefined ? 'nothing' : JSON.stringify(weight)}`);
  return weight;
}

const ADD_KEYS = ['name', 'address', 'weight', 'backup', 'maxConnections', 'slowStart'];

/** Parses the body of POST /services/S/backends into a backend; HttpError 400 saying what was wrong. */
export function parseAddBody(text: string): BackendConfig {
  const body = parseObjectBody(text, ADD_KEYS, '{"name": "b4", "address": "10.0.0.4:5432"}');
  const bad = (message: string): never => {
    throw new HttpError(400, 'bad-request', message);
  };
  if (typeof body.name !== 'string') bad(`"name" must be a string, got ${body.name === undefined ? 'nothing' : JSON.stringify(body.name)}`);
  if (typeof body.address !== 'string') bad(`"address" must be a string HOST:PORT, got ${body.address === undefined ? 'nothing' : JSON.stringify(body.address)}`);
  const address = parseEndpoint(body.address as string, { host: 'ip-or-hostname', minPort: 1 });
  if (!address.ok) return bad(`"address": ${address.error}`);
  const backend: BackendConfig = { name: body.name as string, address: address.value, weight: DEFAULTS.weight };
  if (body.weight !== undefined) backend.weight = typeof body.weight === 'number' ? body.weight : bad(`"weight" must be a number, got ${JSON.stringify(body.weight)}`);
  if (body.backup !== undefined) backend.backup = typeof body.backup === 'boolean' ? body.backup : bad(`"backup" must be true or false, got ${JSON.stringify(body.backup)}`);
  if (body.maxConnections !== undefined) {
    const max = body.maxConnections;
    backend.maxConnections = typeof max === 'number' && Number.isInteger(max) && max >= 1 ? max : bad(`"maxConnections" must be a positive integer, got ${JSON.stringify(max)}`);
  }
  if (body.slowStart !== undefined) {
    const parsed = typeof body.slowStart === 'string' ? parseDuration(body.slowStart) : { ok: false as const, error: `expected a duration such as "10s", got ${JSON.stringify(body.slowStart)}` };
    backend.slowStart = parsed.ok ? parsed.value : bad(`"slowStart": ${parsed.error}`);
  }
  return backend;
}

/** A runtime change's typed refusal as the HTTP answer that says it. */
function changeRefusal(error: unknown): unknown {
  if (error instanceof UnknownServiceError || error instanceof UnknownBackendError) return new HttpError(404, 'not-found', error.message, [...error.known]);
  if (error instanceof BackendExistsError) return new HttpError(409, 'conflict', error.message);
  if (error instanceof ResolveError) return new HttpError(400, 'bad-request', error.message);
  if (error instanceof RuntimeChangeError) {
    switch (error.reason) {
      case 'bad-weight':
      case 'bad-name':
      case 'bad-address':
        return new HttpError(400, 'bad-request', error.message);
      case 'table-too-small':
      case 'no-primary':
        return new HttpError(409, 'conflict', error.message);
      case 'not-supported':
        return new HttpError(501, 'not-supported', error.message);
      default: {
        const never: never = error.reason;
        return new HttpError(500, 'internal', String(never));
      }
    }
  }
  return error;
}

const STATE_PATH = /^\/services\/([^/]+)\/backends\/([^/]+)\/state$/;
const WEIGHT_PATH = /^\/services\/([^/]+)\/backends\/([^/]+)\/weight$/;
const BACKENDS_PATH = /^\/services\/([^/]+)\/backends$/;
const BACKEND_PATH = /^\/services\/([^/]+)\/backends\/([^/]+)$/;

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'bad-request', `bad percent-encoding in the path: "${segment}"`);
  }
}

/** Throws 405 with `Allow` (RFC 9110 §15.5.6) unless `method` is `allowed` (GET also allows HEAD). */
function allow(method: string | undefined, allowed: 'GET' | 'POST' | 'DELETE'): void {
  if (method !== allowed && !(allowed === 'GET' && method === 'HEAD')) {
    throw new HttpError(405, 'method-not-allowed', `use ${allowed} for this path, not ${method ?? '?'}`, undefined, { allow: allowed === 'GET' ? 'GET, HEAD' : allowed });
  }
}

/** Throws 413 before reading a body whose Content-Length already says it is too large. */
function assertBodySize(request: IncomingMessage): void {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, 'too-large', `the body is over ${MAX_BODY_BYTES} bytes`);
}

/** What a request that never reached the router is told: its status and why. */
function clientErrorStatus(code: string | undefined): [number, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'Request Timeout'];
    default:
      return [400, 'Bad Request'];
  }
}

/**
 * Answers a request Node's parser refused (oversized headers, a timeout, malformed HTTP) with its
 * status and a JSON error, then closes the connection; a connection already reset gets nothing.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason] = clientErrorStatus(error.code);
  const code: AdminErrorCode = status === 431 ? 'headers-too-large' : status === 408 ? 'timeout' : 'bad-request';
  const message = status === 431 ? 'the request line and headers are too large' : status === 408 ? 'the request did not arrive in time' : 'malformed HTTP request';
  const body = `${JSON.stringify({ error: { code, message } })}\n`;
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/**
 * The listener's 'error' handler once it is bound: an accept error (EMFILE, ENFILE) must not
 * crash the balancer. Logs each kind (error code) the 1st, 10th, 100th… time it occurs, with the
 * count, so an error repeated on every accept cannot flood the log. O(1) per error.
 */
export function listenerError(logger: Logger | undefined): (error: NodeJS.ErrnoException) => void {
  const seen = new Map<string, { count: number; nextLogged: number }>();
  return (error) => {
    const kind = error.code ?? error.message;
    let entry = seen.get(kind);
    if (entry === undefined) {
      entry = { count: 0, nextLogged: 1 };
      seen.set(kind, entry);
    }
    entry.count++;
    if (entry.count !== entry.nextLogged) return;
    entry.nextLogged *= 10;
    logger?.error({ error: kind, count: entry.count }, 'admin API listener error');
  };
}

/** Starts the admin API; rejects with LbError (LB_ERR_LISTEN) if the address cannot be bound. */
export async function startAdmin(balancer: AdminTarget, options: AdminOptions): Promise<AdminServer> {
  let expected = options.token === undefined ? undefined : digest(options.token);
  let metricsPublic = options.metricsPublic === true;
  const lifecycle = options.lifecycle;
  const metrics: Metrics = createMetrics(balancer, lifecycle);

  /** Throws 503 while stopping: a drain serves reads only. */
  const assertRunning = async (): Promise<void> => {
    const drain = lifecycle?.drain() ?? null;
    if (drain === null) return;
    const status = drainStatus(drain, await balancer.stats(), Date.now());
    throw new HttpError(503, 'stopping', `l4lb is stopping (${status.signal}): draining ${status.connections} connection(s) until ${status.deadline}; state changes and reloads are refused, reads are served`);
  };

  const route = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = new URL(request.url ?? '/', 'http://admin').pathname;
    // Public: the page holds no data (it asks for the token and calls /stats), and /metrics when configured so.
    if (path === '/') {
      allow(request.method, 'GET');
      response.writeHead(200, STATS_PAGE_HEADERS);
      response.end(request.method === 'HEAD' ? undefined : STATS_PAGE_HTML);
      return;
    }
    const open = path === '/metrics' && metricsPublic;
    if (expected !== undefined && !open && !authorized(request.headers.authorization, expected)) {
      const why = request.headers.authorization === undefined ? 'this admin API needs "Authorization: Bearer <token>"' : 'wrong token';
      throw new HttpError(401, 'unauthorized', why, undefined, { 'www-authenticate': 'Bearer realm="l4lb"' });
    }
    if (path === '/stats') {
      allow(request.method, 'GET');
      const services = await balancer.stats();
      const kernel = balancer.kernel === undefined ? [] : await balancer.kernel();
      const listeners = balancer.listenerStats?.() ?? [];
      // Kernel services and passthrough listeners appear only when some run.
      const kernelRows = { ...(kernel.length === 0 ? {} : { kernel }), ...(listeners.length === 0 ? {} : { listeners }) };
      if (lifecycle === undefined) {
        send(response, 200, { services, ...kernelRows });
        return;
      }
      const drain = lifecycle.drain();
      send(response, 200, {
        config: lifecycle.running(),
        lastReload: lifecycle.lastReload(),
        drain: drain === null ? null : drainStatus(drain, services, Date.now()),
        services,
        ...kernelRows,
      });
      return;
    }
    if (path === '/metrics') {
      allow(request.method, 'GET');
      const text = await metrics.render();
      response.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) });
      response.end(text);
      return;
    }
    if (path === '/reload' && lifecycle !== undefined) {
      allow(request.method, 'POST');
      await assertRunning();
      const outcome = await lifecycle.reload();
      if (outcome === 'abandoned') throw new HttpError(503, 'stopping', 'l4lb began stopping before the file was read: nothing was reloaded');
      if (outcome.result === 'success') {
        send(response, 200, { reload: outcome, config: lifecycle.running() });
        return;
      }
      const message = outcome.result === 'partial' ? 'some workers refused the configuration: they keep the previous one' : 'reload refused: still running the previous configuration';
      send(response, 422, { error: { code: 'reload-refused', message, problems: outcome.problems }, reload: outcome, config: lifecycle.running() });
      return;
    }
    if (path === '/upgrade' && lifecycle !== undefined) {
      allow(request.method, 'POST');
      await assertRunning();
      const outcome = await lifecycle.upgrade();
      if (outcome.result === 'success') {
        send(response, 200, { upgrade: outcome });
        return;
      }
      const { error } = outcome;
      const status = error.failure === 'stopping' ? 503 : 422;
      send(response, status, { error: { code: status === 503 ? 'stopping' : 'upgrade-failed', message: error.problems[0] ?? error.message, problems: error.lines(), failure: error.failure, pid: error.pid } });
      return;
    }
    const [, serviceSegment, backendSegment] = STATE_PATH.exec(path) ?? [];
    if (serviceSegment !== undefined && backendSegment !== undefined) {
      allow(request.method, 'POST');
      await assertRunning();
      const service = decode(serviceSegment);
      const backend = decode(backendSegment);
      assertBodySize(request);
      const state = parseStateBody(await readBody(request));
      try {
        send(response, 200, balancer.setState(service, backend, state));
      } catch (error) {
        // The error names what exists: the running services, or that service's backends.
        if (error instanceof UnknownServiceError || error instanceof UnknownBackendError) throw new HttpError(404, 'not-found', error.message, [...error.known]);
        throw error;
      }
      return;
    }
    const change = async (run: () => ReturnType<AdminTarget['changeBackends']>): Promise<void> => {
      await assertRunning();
      try {
        send(response, 200, await run());
      } catch (error) {
        throw changeRefusal(error);
      }
    };
    const [, weightService, weightBackend] = WEIGHT_PATH.exec(path) ?? [];
    if (weightService !== undefined && weightBackend !== undefined) {
      allow(request.method, 'POST');
      const service = decode(weightService);
      const backend = decode(weightBackend);
      const weight = parseWeightBody(await readBody(request));
      await change(() => balancer.changeBackends(service, { kind: 'weight', backend, weight }));
      return;
    }
    const [, addService] = BACKENDS_PATH.exec(path) ?? [];
    if (addService !== undefined) {
      allow(request.method, 'POST');
      const service = decode(addService);
      const backend = parseAddBody(await readBody(request));
      await change(() => balancer.changeBackends(service, { kind: 'add', backend }));
      return;
    }
    const [, removeService, removeBackend] = BACKEND_PATH.exec(path) ?? [];
    if (removeService !== undefined && removeBackend !== undefined) {
      allow(request.method, 'DELETE');
      const service = decode(removeService);
      const backend = decode(removeBackend);
      await change(() => balancer.changeBackends(service, { kind: 'remove', backend }));
      return;
    }
    throw new HttpError(
      404,
      'not-found',
      `no such path "${path}" (paths: GET /, GET /stats, GET /metrics, POST /services/SERVICE/backends/BACKEND/state, POST /services/SERVICE/backends/BACKEND/weight, POST /services/SERVICE/backends, DELETE /services/SERVICE/backends/BACKEND${lifecycle === undefined ? '' : ', POST /reload, POST /upgrade'})`,
    );
  };

  const limits: AdminLimits = { ...ADMIN_LIMITS, ...options.limits };
  const server: Server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      maxHeaderSize: limits.maxHeaderBytes,
      // Node checks both timeouts on this period (default 30 s): a quarter of the shorter one
      // keeps a 5 s limit within 1.25 s of itself.
      connectionsCheckingInterval: Math.max(10, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)),
    },
    (request, response) => {
      route(request, response).catch((error: unknown) => {
        if (response.headersSent) {
          response.destroy();
          return;
        }
        if (error instanceof HttpError) {
          const body = { error: { code: error.code, message: error.message, ...(error.valid === undefined ? {} : { valid: error.valid }) } };
          send(response, error.status, body, { ...error.headers, ...(error.status === 413 ? { connection: 'close' } : {}) });
          return;
        }
        options.logger?.error({ error: error instanceof Error ? error.message : String(error) }, 'admin API internal error');
        send(response, 500, { error: { code: 'internal', message: error instanceof Error ? error.message : String(error) } });
      });
    },
  );
  server.maxConnections = limits.maxConnections;
  server.on('clientError', answerClientError);

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      metrics.close();
      const where = `${options.listen.host.includes(':') ? `[${options.listen.host}]` : options.listen.host}:${options.listen.port}`;
      reject(new LbError('LB_ERR_LISTEN', `admin.listen: cannot listen on ${where}: ${error.code === 'EADDRINUSE' ? 'address already in use' : (error.code ?? error.message)}`));
    };
    server.once('error', onError);
    server.listen(options.fd === undefined ? { host: options.listen.host, port: options.listen.port } : { fd: options.fd }, () => {
      server.removeListener('error', onError);
      server.on('error', listenerError(options.logger));
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  const stopListening = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => server.close(() => resolve()));
    return closed;
  };
  return {
    address: () => ({ host: bound.address, port: bound.port }),
    setToken: (token) => {
      expected = token === undefined ? undefined : digest(token);
    },
    setMetricsPublic: (open) => {
      metricsPublic = open;
    },
    listener: () => server,
    stopListening,
    close: async () => {
      metrics.close();
      server.closeAllConnections();
      await stopListening();
    },
  };
}
