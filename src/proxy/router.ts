/**
 * TLS passthrough routing by server name (nginx `ssl_preread` with a `map $ssl_preread_server_name`,
 * HAProxy `tcp-request inspect-delay` + `req.ssl_sni`): a `listeners` entry reads each client's
 * ClientHello (src/tls) without terminating TLS, picks the service its routes name, and hands the
 * socket over with every byte read put back first in line (`unshift`), so the backend receives the
 * client's bytes unchanged (after a PROXY header, if the service sends one) and the TLS session is
 * the client's and the backend's own.
 *
 * Routes: an exact name wins; else the longest wildcard whose suffix matches with exactly one label
 * in front (`*.example.org`: `a.example.org`, not `a.b.example.org` nor `example.org`, as nginx's
 * map and most certificates' wildcards); else the default route. A ClientHello without a name, a
 * first flight that is not a ClientHello (refused by the reader with a reason), and one not
 * complete within `timeouts.inspect` also go to the default route. Without a default route such a
 * client is reset. Every inspection is counted by result and route; a client this file ends
 * (refused, gone during inspection, shutdown) gets its access line here, one a service takes gets
 * the service's, carrying the listener, the result and the name.
 *
 * Lifecycle: a socket under inspection belongs to this listener until routed; close() ends every
 * one at once (each still counted and logged), so a balancer closing never waits on a client that
 * sends nothing.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.js';
import type { ListenerConfig, RouteConfig } from '../config/index.js';
import { ClientHelloParser, MAX_FIRST_FLIGHT_BYTES, type HelloFailure } from '../tls/index.js';
import { formatAddress, logAccess, roundMs, type EndReason } from './access-log.js';
import type { Routing } from './connection.js';

/** What an inspection found: a name, a ClientHello without one, a reader's refusal, no ClientHello in time, or the client left. */
export type InspectResult = 'sni' | 'no-sni' | HelloFailure | 'timeout' | 'client-closed' | 'shutdown';
export const INSPECT_RESULTS: readonly InspectResult[] = ['sni', 'no-sni', 'not-tls', 'not-client-hello', 'too-large', 'malformed', 'timeout', 'client-closed', 'shutdown'];

/** Where it went: a name route, the default route, or nowhere (refused, or ended before a route). */
export type RouteTaken = 'name' | 'default' | 'none';
export const ROUTES_TAKEN: readonly RouteTaken[] = ['name', 'default', 'none'];

/**
 * The service for `name` (normalised: lower case, no trailing dot; undefined: none known) under
 * `routes`, and which kind of route chose it. Pure; cost O(routes).
 */
export function routeFor(routes: readonly RouteConfig[], name: string | undefined): { service: string; route: 'name' | 'default' } | undefined {
  let fallback: string | undefined;
  let wildcard: { service: string; length: number } | undefined;
  for (const route of routes) {
    if ('default' in route) {
      fallback = route.default;
      continue;
    }
    if (name === undefined) continue;
    if (route.sni === name) return { service: route.service, route: 'name' };
    if (!route.sni.startsWith('*.')) continue;
    const suffix = route.sni.slice(1); // ".example.org"
    if (!name.endsWith(suffix)) continue;
    const label = name.slice(0, name.length - suffix.length);
    if (label.length === 0 || label.includes('.')) continue;
    if (wildcard === undefined || suffix.length > wildcard.length) wildcard = { service: route.service, length: suffix.length };
  }
  if (wildcard !== undefined) return { service: wildcard.service, route: 'name' };
  return fallback === undefined ? undefined : { service: fallback, route: 'default' };
}

/** Inspections by result and route, for l4lb_sni_inspect_total; kept by the balancer across reloads. */
export class InspectCounters {
  private readonly counts = new Map<string, number>();

  add(result: InspectResult, route: RouteTaken): void {
    const key = `${result} ${route}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** Every count, in INSPECT_RESULTS order, then name, default, none. */
  rows(): { result: InspectResult; route: RouteTaken; count: number }[] {
    return [...this.counts]
      .map(([key, count]) => {
        const [result, route] = key.split(' ') as [InspectResult, RouteTaken];
        return { result, route, count };
      })
      .sort((a, b) => INSPECT_RESULTS.indexOf(a.result) - INSPECT_RESULTS.indexOf(b.result) || ROUTES_TAKEN.indexOf(a.route) - ROUTES_TAKEN.indexOf(b.route));
  }
}

/** Takes a routed client: the service's `accept`. */
export type RouteTarget = (socket: Socket, routing: Routing) => void;

/** One client's first flight being read. Owned by its listener's `inspecting` set until it is decided. */
class Inspection {
  private readonly parser = new ClientHelloParser();
  private readonly timer: TimerHandle;
  private readonly acceptedAt: number;
  /** The client's address as accepted: read now, since a reset or closed socket no longer has one. */
  readonly client: string;

  constructor(
    private readonly listener: PassthroughListener,
    readonly socket: Socket,
    private readonly clock: Clock,
    timeoutMs: number,
  ) {
    this.acceptedAt = clock.now();
    this.client = formatAddress(socket.remoteAddress, socket.remotePort);
    socket.on('data', this.onData);
    socket.on('end', this.onGone);
    socket.on('close', this.onGone);
    socket.on('error', this.onGone);
    this.timer = clock.setTimeout(this.onTimeout, timeoutMs);
    socket.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    const answer = this.parser.feed(chunk);
    switch (answer.status) {
      case 'need-more':
        // The reader refuses any ClientHello past MAX_FIRST_FLIGHT_BYTES from its headers; this bounds a reader bug.
        if (this.parser.length > MAX_FIRST_FLIGHT_BYTES + chunk.length) this.decide('too-large', undefined);
        return;
      case 'done':
        this.decide(answer.sni === undefined ? 'no-sni' : 'sni', answer.sni);
        return;
      case 'error':
        this.decide(answer.reason, undefined);
        return;
      default: {
        const never: never = answer;
        throw new Error(`unexpected reader status ${String(never)}`);
      }
    }
  };

  private readonly onTimeout = (): void => {
    this.decide('timeout', undefined);
  };

  /** The client half-closed, closed or failed before a route was chosen: nothing to route (a FIN cannot be put back). */
  private readonly onGone = (): void => {
    this.end('client-closed', 'client-aborted');
  };

  /** Removes this inspection's listeners and timer; the socket is paused with nothing of ours on it. */
  private stop(): void {
    this.clock.clearTimer(this.timer);
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onGone);
    this.socket.removeListener('close', this.onGone);
    this.socket.removeListener('error', this.onGone);
    this.socket.pause();
    this.listener.inspectionEnded(this);
  }

  private decide(result: InspectResult, sni: string | undefined): void {
    this.stop();
    const target = this.listener.target(sni);
    if (target === undefined) {
      this.socket.on('error', ignore);
      this.socket.resetAndDestroy();
      this.listener.record(this, result, 'none', 'sni-refused', sni);
      return;
    }
    this.listener.counted(result, target.route);
    const read = this.parser.bytes();
    if (read.length > 0) this.socket.unshift(Buffer.from(read.buffer, read.byteOffset, read.length));
    target.accept(this.socket, { listener: this.listener.name, inspect: result, ...(sni === undefined ? {} : { sni }) });
  }

  /** Ends the client here (it left, or l4lb is closing). */
  end(result: 'client-closed' | 'shutdown', reason: EndReason): void {
    this.stop();
    this.socket.on('error', ignore);
    this.socket.destroy();
    this.listener.record(this, result, 'none', reason, undefined);
  }

  get durationMs(): number {
    return roundMs(this.clock.now() - this.acceptedAt);
  }

  get received(): number {
    return this.parser.length;
  }
}

function ignore(): void {}

/** A `listeners` entry at run time: its routes, its inspections, its counters. */
export class PassthroughListener {
  private readonly inspecting = new Set<Inspection>();
  private accepting = true;

  constructor(
    /** Its socket's name (src/proxy/listening-socket.ts socketName): the log's and the metric's `listener`. */
    readonly name: string,
    private config: ListenerConfig,
    /** The running service of a name (undefined: not running, the client is refused). */
    private readonly services: (name: string) => RouteTarget | undefined,
    private logger: Logger,
    private readonly clock: Clock,
    readonly counters: InspectCounters,
  ) {}

  /** New clients follow `config`'s routes and timeout; clients under inspection keep their timer and take the new routes. */
  update(config: ListenerConfig, logger: Logger): void {
    this.config = config;
    this.logger = logger;
  }

  /** Pre: `socket` is paused, straight from accept. */
  readonly accept = (socket: Socket): void => {
    if (!this.accepting) {
      socket.destroy();
      return;
    }
    this.inspecting.add(new Inspection(this, socket, this.clock, this.config.timeouts.inspect));
  };

  /** The service and route kind for `sni`, if a route and its running service exist. */
  target(sni: string | undefined): { accept: RouteTarget; route: 'name' | 'default' } | undefined {
    if (!this.accepting) return undefined;
    const chosen = routeFor(this.config.routes, sni);
    const accept = chosen === undefined ? undefined : this.services(chosen.service);
    return chosen === undefined || accept === undefined ? undefined : { accept, route: chosen.route };
  }

  inspectionEnded(inspection: Inspection): void {
    this.inspecting.delete(inspection);
  }

  counted(result: InspectResult, route: RouteTaken): void {
    this.counters.add(result, route);
  }

  /** Counts and logs a client this listener ended itself. */
  record(inspection: Inspection, result: InspectResult, route: RouteTaken, end: EndReason, sni: string | undefined): void {
    this.counters.add(result, route);
    logAccess(this.logger, {
      client: inspection.client,
      backend: null,
      backendAddress: null,
      queueMs: 0,
      connectMs: -1,
      durationMs: inspection.durationMs,
      bytesUp: 0,
      bytesDown: 0,
      retries: 0,
      listener: this.name,
      inspect: result,
      ...(sni === undefined ? {} : { sni }),
      end,
    });
  }

  /** Clients under inspection now. */
  get inspections(): number {
    return this.inspecting.size;
  }

  /**
   * Stops taking clients and ends every inspection now (each counted `shutdown` and logged).
   * Post: nothing of this listener is open; its socket is the balancer's to close.
   */
  close(): void {
    this.accepting = false;
    for (const inspection of [...this.inspecting]) inspection.end('shutdown', 'shutdown');
  }
}
