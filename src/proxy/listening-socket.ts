/**
 * A listening socket of the proxy, apart from what its connections go to: a service's own
 * `listen` address, or a TLS passthrough listener's (src/proxy/router.ts). The balancer keeps it
 * across reloads by its name (socketName) and only re-points where accepted sockets go, so a
 * socket whose address stays configured is never closed, whichever service or listener now owns
 * it; the same name finds it again in a new l4lb after an upgrade (src/runtime/handover.ts).
 *
 * Accepted sockets arrive paused (`pauseOnConnect`): nothing is read from a client until its
 * owner decides (the source gate, the ClientHello inspector, the splice).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { formatEndpoint, type Endpoint } from '../config/index.js';
import { LbError, ListenError, listenFailureOf } from '../errors.js';
import { formatAddress } from './access-log.js';
import { BurstGate, isLocalError, type LocalErrorCode } from './local-errors.js';

/** Where an accepted socket goes; it owns the socket from then on. */
export type AcceptSocket = (socket: Socket) => void;

/**
 * What an accept that failed for l4lb's own shortage (EMFILE, ENFILE, reported by libuv when its
 * reserve descriptor could not help) tells the socket's owner: a service counts it and pauses.
 */
export type AcceptShortage = (code: LocalErrorCode) => void;

/**
 * A listening socket's identity across reloads and upgrades: its configured endpoint
 * (`127.0.0.1:8080`, `[::1]:5433`), the name l4lb has always handed sockets over by. Port 0 (any
 * free port) never collides, so such sockets are told apart, and kept, by their owner as well
 * (`127.0.0.1:0 svc`, `127.0.0.1:0 listeners[0]`).
 */
export function socketName(endpoint: Endpoint, owner: string): string {
  const text = formatEndpoint(endpoint);
  return endpoint.port === 0 ? `${text} ${owner}` : text;
}

export class ListeningSocket {
  private readonly server: Server;
  private bound: Endpoint | undefined;

  constructor(
    readonly name: string,
    readonly endpoint: Endpoint,
    private accept: AcceptSocket,
    private logger: Logger,
    private shortage?: AcceptShortage,
  ) {
    // highWaterMark 1: the splice's backpressure rule ('drain' whenever the write queue empties).
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true, highWaterMark: 1 }, (socket) => this.accept(socket));
  }

  /** The net.Server (for a handover to a new l4lb, src/runtime/handover.ts). */
  get listener(): Server {
    return this.server;
  }

  /** Accepted sockets go to `accept` from now on, and accept shortages to `shortage`. */
  retarget(accept: AcceptSocket, logger: Logger, shortage?: AcceptShortage): void {
    this.accept = accept;
    this.logger = logger;
    this.shortage = shortage;
  }

  /**
   * The bound socket's 'error': a shortage of l4lb's own goes to the owner (or, for an owner that
   * keeps no counters, is logged once per burst); anything else is logged.
   */
  private readonly onError = (error: NodeJS.ErrnoException): void => {
    const code = error.code;
    if (!isLocalError(code)) {
      this.logger.error({ error: error.message }, 'listener error');
    } else if (this.shortage !== undefined) {
      this.shortage(code);
    } else if (this.shortages.note(Date.now()).startsBurst) {
      this.logger.warn({ code, during: 'accept' }, "accept failed on l4lb's side");
    }
  };

  private readonly shortages = new BurstGate();

  /**
   * Resolves with the bound address; rejects with ListenError naming `where` and the endpoint.
   * With `fd` (a listening socket inherited from a previous l4lb or from systemd) it listens on
   * that socket instead of binding the endpoint.
   */
  listen(where: string, fd?: number): Promise<Endpoint> {
    const { host, port } = this.endpoint;
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(new ListenError({ where, address: formatAddress(host, port), failure: listenFailureOf(error.code), cause: error.code ?? error.message }));
      };
      this.server.once('error', onError);
      this.server.listen(fd === undefined ? { host, port } : { fd }, () => {
        this.server.removeListener('error', onError);
        this.server.on('error', this.onError);
        const address = this.server.address();
        this.bound = typeof address === 'object' && address !== null ? { host: address.address, port: address.port } : { host, port };
        resolve(this.bound);
      });
    });
  }

  /** The bound address (port 0 resolved). Throws LbError LB_ERR_LISTEN before listen() resolved. */
  address(): Endpoint {
    if (this.bound === undefined) throw new LbError('LB_ERR_LISTEN', `${this.name} is not listening`);
    return this.bound;
  }

  /** The bound address, or the configured one before listen() resolved. */
  get shownAddress(): Endpoint {
    return this.bound ?? this.endpoint;
  }

  /** Stops accepting; resolves once the socket is closed (open connections are their owners'). */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
