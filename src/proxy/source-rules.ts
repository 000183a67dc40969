/**
 * What a service does with a connection between accept and placement: read a trusted
 * peer's PROXY header (HAProxy's `accept-proxy`, limited to `proxyProtocol.accept` blocks, as
 * `tcp-request connection expect-proxy layer4 if { src … }`), then judge the effective client —
 * the header's source, else the peer — by `allow`/`deny` and the per-source `limits`
 * (src/rules/). A refused connection is closed before any backend is contacted; refusals are
 * counted per reason and logged at a bounded rate (the first at once, then one summary line per
 * second with counts while they go on), so a flood cannot flood the log. The header timeout, the
 * per-source rates and the summary interval run on the service's clock.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.js';
import type { ProxyServiceConfig } from '../config/index.js';
import { AccessPolicy, CidrSet, SourceLimiter, type AccessVerdict, type LimitRefusal } from '../rules/index.js';
import type { SourceRefusal } from './access-log.js';
import type { ClientConnection } from './connection.js';
import { headerScreen, readProxyHeader } from './proxy-header.js';

function accessRefusal(verdict: Exclude<AccessVerdict, 'allowed'>): SourceRefusal {
  switch (verdict) {
    case 'denied':
      return 'refused-denied';
    case 'not-allowed':
      return 'refused-not-allowed';
    case 'bad-address':
      return 'refused-bad-address';
  }
}

function limitRefusal(verdict: LimitRefusal): SourceRefusal {
  switch (verdict) {
    case 'over-connections':
      return 'refused-over-connections';
    case 'over-rate':
      return 'refused-over-rate';
    case 'table-full':
      return 'refused-table-full';
    case 'bad-address':
      return 'refused-bad-address';
  }
}

/** Summary interval of the refusal log. */
export const REFUSAL_LOG_INTERVAL_MS = 1000;

/**
 * The first refusal after a quiet interval is logged at once with its client; later ones within
 * the interval are counted and logged as one summary line when it ends. At most one line per
 * interval during a flood, plus the first.
 */
export class RefusalLog {
  private readonly pending = new Map<SourceRefusal, number>();
  private timer: TimerHandle | undefined;

  /** `clock` runs the summary interval. */
  constructor(
    public logger: Logger,
    private readonly clock: Clock,
  ) {}

  note(reason: SourceRefusal, client: string): void {
    if (this.timer === undefined) {
      this.logger.warn({ client, end: reason }, 'connection refused by source rules');
      this.timer = this.scheduleFlush();
      return;
    }
    this.pending.set(reason, (this.pending.get(reason) ?? 0) + 1);
  }

  /** Logs the interval's counts, if any; returns whether it did. */
  private summarize(): boolean {
    if (this.pending.size === 0) return false;
    const refused = Object.fromEntries(this.pending);
    let total = 0;
    for (const count of this.pending.values()) total += count;
    this.pending.clear();
    this.logger.warn({ refused, total, intervalMs: REFUSAL_LOG_INTERVAL_MS }, 'connections refused by source rules (summary)');
    return true;
  }

  /** End of an interval: a busy one starts the next (still summarising), a quiet one ends the flood. */
  private readonly flush = (): void => {
    this.timer = this.summarize() ? this.scheduleFlush() : undefined;
  };

  private scheduleFlush(): TimerHandle {
    return this.clock.unref(this.clock.setTimeout(this.flush, REFUSAL_LOG_INTERVAL_MS));
  }

  close(): void {
    this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.summarize();
  }
}

export class SourceGate {
  private readonly log: RefusalLog;
  private acceptFrom: CidrSet | undefined;
  private headerTimeoutMs = 0;
  private policy: AccessPolicy | undefined;
  private limiter: SourceLimiter | undefined;
  private limitsKey = '';

  /** Pre: `config` validated (its lists and rate parse). `clock`: the service's (see the file header). */
  constructor(
    config: ProxyServiceConfig,
    logger: Logger,
    private readonly clock: Clock,
  ) {
    this.log = new RefusalLog(logger, clock);
    this.update(config, logger);
  }

  /**
   * New connections follow `config` from now on. The limiter is kept when `limits` is unchanged,
   * so a reload neither forgets who holds connections nor hands out a fresh burst.
   */
  update(config: ProxyServiceConfig, logger: Logger): void {
    this.log.logger = logger;
    const accept = config.proxyProtocol?.accept;
    this.acceptFrom = accept === undefined ? undefined : CidrSet.parse(accept, 'proxyProtocol.accept');
    this.headerTimeoutMs = config.timeouts.proxyHeader ?? 0;
    const policy = config.allow === undefined && config.deny === undefined ? undefined : AccessPolicy.from({ allow: config.allow, deny: config.deny });
    this.policy = policy?.restricts === true ? policy : undefined;
    const limitsKey = JSON.stringify(config.limits ?? null);
    if (limitsKey !== this.limitsKey) {
      this.limitsKey = limitsKey;
      this.limiter = config.limits === undefined ? undefined : new SourceLimiter(config.limits);
    }
  }

  /**
   * Pre: `connection` just accepted, its socket paused. Post: either `place(connection)` is called
   * (now, or once a header has been read) with the effective client set and a limiter lease held,
   * or the connection is ended with its reason. Cost without accept, rules or limits: one check.
   */
  receive(connection: ClientConnection, place: (connection: ClientConnection) => void): void {
    const acceptFrom = this.acceptFrom;
    if (acceptFrom !== undefined) {
      const peer = connection.client.remoteAddress;
      if (peer !== undefined && acceptFrom.has(peer)) {
        readProxyHeader(
          connection.client,
          this.headerTimeoutMs,
          (outcome) => {
            if (connection.state === 'ended') return;
            if (outcome.status === 'failed') {
              connection.finish(outcome.failure, outcome.detail);
              return;
            }
            connection.headerRead(outcome.endpoints);
            this.judge(connection, place);
          },
          this.clock,
        );
        return;
      }
      connection.screenWith(headerScreen());
    }
    this.judge(connection, place);
  }

  /** Rules, then limits, on the effective client. */
  private judge(connection: ClientConnection, place: (connection: ClientConnection) => void): void {
    if (this.policy === undefined && this.limiter === undefined) {
      place(connection);
      return;
    }
    const address = connection.clientHost;
    if (address === undefined) {
      connection.finish('client-aborted'); // already gone: no address to judge
      return;
    }
    if (this.policy !== undefined) {
      const verdict = this.policy.evaluate(address);
      if (verdict !== 'allowed') {
        this.refuse(connection, accessRefusal(verdict));
        return;
      }
    }
    if (this.limiter !== undefined) {
      const admission = this.limiter.admit(address, this.clock.now());
      if (admission.verdict !== 'admitted') {
        this.refuse(connection, limitRefusal(admission.verdict));
        return;
      }
      connection.admitted(admission.lease);
    }
    place(connection);
  }

  private refuse(connection: ClientConnection, reason: SourceRefusal): void {
    this.log.note(reason, connection.clientAddress);
    connection.refuse(reason);
  }

  /** Sources the limiter tracks (for the admin API); undefined without limits. */
  trackedSources(): number | undefined {
    return this.limiter?.stats().tracked;
  }

  /** Writes the pending summary and stops the timer. */
  close(): void {
    this.log.close();
  }
}
