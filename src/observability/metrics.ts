/**
 * Prometheus metrics of a running balancer, served at the admin API's /metrics, through
 * prom-client, in the Prometheus text exposition format
 * (prometheus.io/docs/instrumenting/exposition_formats). Names follow the Prometheus naming guide:
 * `l4lb_` prefix, base units (bytes, seconds), `_total` on counters.
 *
 * Beside l4lb's own series, the registry carries prom-client's default process and Node.js metrics
 * under their standard names (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `nodejs_eventloop_lag_seconds`, …: what Grafana's Node.js dashboards query), and
 * `l4lb_build_info{version}` (1), the build-info idiom of Prometheus's own exporters.
 * With `workers: N` these describe the primary, the process that serves /metrics.
 *
 * Nothing here touches the data path: connection and byte counts are read from the balancer's own
 * counters (`stats()`) once per scrape and turned into counter increments; health-check results
 * arrive as events (one per probe, not per connection). Label children (a handle per service,
 * backend and label set) are created once and kept, never per connection or per scrape.
 */
import { VERSION } from '../version.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ADMIN_STATES } from '../config/index.js';
import type { KernelCounters, KernelServiceStats } from '../kernel/index.js';
import type { Balancer, ListenerStats, ServiceStatusStats } from '../proxy/index.js';
import type { CheckEvent } from '../services/index.js';
import { MonotonicFeed } from './feed.js';
import { lifecycleMetrics, type LifecycleView } from './lifecycle.js';

/**
 * What metrics read: a balancer, or a cluster primary (`workers: N`, src/cluster) whose stats are
 * the workers' counters summed, gathered over IPC (hence possibly a promise).
 */
export interface StatsSource {
  stats(): ServiceStatusStats[] | Promise<ServiceStatusStats[]>;
  readonly events: Balancer['events'];
  /** Kernel services (mode: nat and dsr): rows read from nft now; absent: none run here. */
  kernel?(): Promise<KernelServiceStats[]>;
  /** The kernel writer's transactions; undefined when it does not run. */
  kernelCounters?(): KernelCounters | undefined;
  /**
   * TLS passthrough listeners with their inspection counts; absent: none run here. A cluster
   * primary answers from the workers' reports its last stats() gathered (/stats and /metrics call
   * stats() first).
   */
  listenerStats?(): ListenerStats[];
}

type ServiceLabels = 'service';
type BackendLabels = 'service' | 'backend';



export interface Metrics {
  readonly registry: Registry;
  readonly contentType: string;
  /** The exposition text, with every value read now. */
  render(): Promise<string>;
  /** Stops listening to the balancer's events. */
  close(): void;
}

/** Registers l4lb's metrics for `balancer` in a registry of their own; with `lifecycle`, its reload and drain metrics too. */
export function createMetrics(balancer: StatsSource, lifecycle?: LifecycleView): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const serviceLabels: ServiceLabels[] = ['service'];
  const backendLabels: BackendLabels[] = ['service', 'backend'];

  const connectionsCurrent = new Gauge({ name: 'l4lb_connections_current', help: 'Connections connecting or spliced, per service', labelNames: serviceLabels, registers });
  const connectionsQueued = new Gauge({ name: 'l4lb_connections_queued', help: 'Connections waiting in the service queue for a slot (maxConnections reached), per service', labelNames: serviceLabels, registers });
  const connectionsTotal = new Counter({ name: 'l4lb_connections_total', help: 'Connections accepted, per service', labelNames: serviceLabels, registers });
  const refusedTotal = new Counter({ name: 'l4lb_connections_refused_total', help: 'Connections refused for want of a slot (queue full or queue timeout), per service', labelNames: serviceLabels, registers });
  const rejectedTotal = new Counter({ name: 'l4lb_connections_rejected_total', help: 'Connections ended by source rules, per-source limits or PROXY header checks before any backend, per service and reason', labelNames: ['service', 'reason'] as const, registers });
  const localErrorsTotal = new Counter({ name: 'l4lb_local_errors_total', help: "Backend connects (and accepts reported by the kernel) that failed on l4lb's own side (EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL), per service and code; never counted against a backend", labelNames: ['service', 'code'] as const, registers });
  const pausedRefusedTotal = new Counter({ name: 'l4lb_connections_paused_refused_total', help: 'Connections reset at accept because descriptors are short (the listener paused after an EMFILE, or the descriptor budget spent), per service', labelNames: serviceLabels, registers });
  const bytesTotal = new Counter({ name: 'l4lb_bytes_total', help: 'Bytes relayed, per service and direction (up: client to backend)', labelNames: ['service', 'direction'] as const, registers });
  const backendCurrent = new Gauge({ name: 'l4lb_backend_connections_current', help: 'Connections to a backend, connecting or spliced', labelNames: backendLabels, registers });
  const backendTotal = new Counter({ name: 'l4lb_backend_connections_total', help: 'Connection attempts to a backend', labelNames: backendLabels, registers });
  const backendErrors = new Counter({ name: 'l4lb_backend_connect_errors_total', help: 'Failed connection attempts to a backend (refused, reset, timed out)', labelNames: backendLabels, registers });
  const backendBytes = new Counter({ name: 'l4lb_backend_bytes_total', help: 'Bytes relayed through a backend, per direction (up: client to backend)', labelNames: ['service', 'backend', 'direction'] as const, registers });
  const backendUp = new Gauge({ name: 'l4lb_backend_up', help: '1 when the backend is healthy (health up), 0 when down', labelNames: backendLabels, registers });
  const backendState = new Gauge({ name: 'l4lb_backend_admin_state', help: 'Administrative state of a backend: 1 for the current state', labelNames: ['service', 'backend', 'state'] as const, registers });
  const checksTotal = new Counter({ name: 'l4lb_health_checks_total', help: 'Health check results: result is pass or the failure kind; source is active (probe) or passive (live traffic)', labelNames: ['service', 'backend', 'source', 'result'] as const, registers });
  const checkSeconds = new Histogram({
    name: 'l4lb_health_check_duration_seconds',
    help: 'Duration of active health probes',
    labelNames: backendLabels,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });

  const dnsLabels = ['service', 'entry'] as const;
  const dnsResolutions = new Counter({ name: 'l4lb_dns_resolutions_total', help: 'DNS queries of a dns:/srv: backend entry, by result: ok (records), empty (no records: the last good set is kept), failed (no answer: kept too)', labelNames: ['service', 'entry', 'result'] as const, registers });
  const dnsBackends = new Gauge({ name: 'l4lb_dns_backends', help: 'Backends a dns:/srv: entry stands for now (its last good answer)', labelNames: dnsLabels, registers });
  const dnsAge = new Gauge({ name: 'l4lb_dns_last_success_age_seconds', help: 'Seconds since a dns:/srv: entry last got a good answer (absent before the first)', labelNames: dnsLabels, registers });
  const dnsAnswering = new Gauge({ name: 'l4lb_dns_answer_ok', help: '1 when the last query of a dns:/srv: entry got records, 0 when it failed or was empty (the last good set is kept)', labelNames: dnsLabels, registers });

  // Kernel services (mode: nat and dsr): read from nft at scrape time, never on a timer.
  const kernelSlots = new Gauge({ name: 'l4lb_kernel_backend_slots', help: 'Slots of the kernel slot map that name a backend now (mode: nat and dsr)', labelNames: backendLabels, registers });
  const kernelPackets = new Counter({ name: 'l4lb_kernel_backend_packets_total', help: 'Packets the kernel sent from clients to a backend (its nft counter; restarts at 0 when the table is reloaded whole)', labelNames: backendLabels, registers });
  const kernelBytes = new Counter({ name: 'l4lb_kernel_backend_bytes_total', help: 'Bytes the kernel sent from clients to a backend (its nft counter)', labelNames: backendLabels, registers });
  const kernelTransactions = new Counter({ name: 'l4lb_kernel_transactions_total', help: 'nft transactions of the kernel writer, by result (applied, refused)', labelNames: ['result'] as const, registers });
  const kernelSeconds = new Gauge({ name: 'l4lb_kernel_transaction_seconds', help: 'Seconds the last applied nft transaction took', registers });
  const kernelPins = new Gauge({ name: 'l4lb_kernel_pins', help: 'Pinned flows in a dsr service\'s flows_ID map now (nft -j list map at scrape time; O(pins))', labelNames: serviceLabels, registers });
  const kernelBackendPins = new Gauge({ name: 'l4lb_kernel_backend_pins', help: 'Pinned flows in a dsr service\'s flows_ID map that name a backend now', labelNames: backendLabels, registers });
  const kernelFlows = new Gauge({ name: 'l4lb_kernel_flows', help: 'Conntrack entries of a kernel service\'s VIP (from /proc/net/nf_conntrack)', labelNames: serviceLabels, registers });

  // TLS passthrough listeners (src/proxy/router.ts): one row per listener, result and route.
  const inspectTotal = new Counter({
    name: 'l4lb_sni_inspect_total',
    help: 'Clients a TLS passthrough listener inspected, by listener, what the inspection found (result: sni, no-sni, not-tls, not-client-hello, too-large, malformed, timeout, client-closed, shutdown) and where the client went (route: name, default, none = reset or ended there)',
    labelNames: ['listener', 'result', 'route'] as const,
    registers,
  });
  const inspecting = new Gauge({ name: 'l4lb_sni_inspecting', help: 'Clients of a TLS passthrough listener whose ClientHello is being read now', labelNames: ['listener'] as const, registers });

  const buildInfo = new Gauge({ name: 'l4lb_build_info', help: 'Always 1; the version label says which l4lb runs', labelNames: ['version'] as const, registers });
  buildInfo.set({ version: VERSION }, 1);
  collectDefaultMetrics({ register: registry });
  const lifecycleFeed = lifecycle === undefined ? undefined : lifecycleMetrics(registry, lifecycle);

  const feeds = {
    connections: new MonotonicFeed(connectionsTotal),
    refused: new MonotonicFeed(refusedTotal),
    rejected: new MonotonicFeed(rejectedTotal),
    localErrors: new MonotonicFeed(localErrorsTotal),
    pausedRefused: new MonotonicFeed(pausedRefusedTotal),
    bytes: new MonotonicFeed(bytesTotal),
    dnsResolutions: new MonotonicFeed(dnsResolutions),
    backendTotal: new MonotonicFeed(backendTotal),
    kernelPackets: new MonotonicFeed(kernelPackets),
    kernelBytes: new MonotonicFeed(kernelBytes),
    kernelTransactions: new MonotonicFeed(kernelTransactions),
    backendErrors: new MonotonicFeed(backendErrors),
    inspections: new MonotonicFeed(inspectTotal),
    backendBytes: new MonotonicFeed(backendBytes),
  };
  const checkHandles = new Map<string, { inc(): void }>();
  const durationHandles = new Map<string, { observe(value: number): void }>();

  const onCheck = ({ service, backend, source, result }: CheckEvent): void => {
    const outcome = result.ok ? 'pass' : result.kind;
    const key = `${service}\0${backend}\0${source}\0${outcome}`;
    let handle = checkHandles.get(key);
    if (handle === undefined) {
      handle = checksTotal.labels({ service, backend, source, result: outcome });
      checkHandles.set(key, handle);
    }
    handle.inc();
    if (source !== 'active') return;
    const durationKey = `${service}\0${backend}`;
    let histogram = durationHandles.get(durationKey);
    if (histogram === undefined) {
      histogram = checkSeconds.labels({ service, backend });
      durationHandles.set(durationKey, histogram);
    }
    histogram.observe(result.durationMs / 1000);
  };
  balancer.events.on('check', onCheck);

  const refresh = (services: readonly ServiceStatusStats[]): void => {
    // Gauges describe the present: reset, so a backend removed by a reload disappears.
    connectionsCurrent.reset();
    connectionsQueued.reset();
    backendCurrent.reset();
    backendUp.reset();
    backendState.reset();
    dnsBackends.reset();
    dnsAge.reset();
    dnsAnswering.reset();
    for (const service of services) {
      const name = service.name;
      for (const entry of service.dns ?? []) {
        const labels = { service: name, entry: entry.entry };
        for (const [result, count] of Object.entries(entry.resolutions)) feeds.dnsResolutions.set({ ...labels, result }, count);
        dnsBackends.set(labels, entry.backends.length);
        if (entry.lastSuccessAgeSeconds !== null) dnsAge.set(labels, entry.lastSuccessAgeSeconds);
        dnsAnswering.set(labels, entry.state === 'ok' ? 1 : 0);
      }
      connectionsCurrent.set({ service: name }, service.current);
      connectionsQueued.set({ service: name }, service.queued);
      feeds.connections.set({ service: name }, service.total);
      feeds.refused.set({ service: name }, service.refused);
      for (const [reason, count] of Object.entries(service.rejected)) feeds.rejected.set({ service: name, reason }, count);
      for (const [code, count] of Object.entries(service.localErrors ?? {})) feeds.localErrors.set({ service: name, code }, count);
      feeds.pausedRefused.set({ service: name }, service.pausedRefused ?? 0);
      feeds.bytes.set({ service: name, direction: 'up' }, service.bytesUp);
      feeds.bytes.set({ service: name, direction: 'down' }, service.bytesDown);
      for (const backend of service.backends) {
        const labels = { service: name, backend: backend.name };
        backendCurrent.set(labels, backend.current);
        feeds.backendTotal.set(labels, backend.total);
        feeds.backendErrors.set(labels, backend.failures);
        feeds.backendBytes.set({ ...labels, direction: 'up' }, backend.bytesUp);
        feeds.backendBytes.set({ ...labels, direction: 'down' }, backend.bytesDown);
        backendUp.set(labels, backend.health === 'up' ? 1 : 0);
        for (const state of ADMIN_STATES) backendState.set({ ...labels, state }, backend.state === state ? 1 : 0);
      }
    }
  };

  const refreshKernel = (rows: readonly KernelServiceStats[], counters: KernelCounters | undefined): void => {
    kernelSlots.reset();
    kernelFlows.reset();
    kernelPins.reset();
    kernelBackendPins.reset();
    for (const row of rows) {
      switch (row.mode) {
        case 'nat':
          if (row.conntrack !== undefined) kernelFlows.set({ service: row.service }, row.conntrack);
          for (const backend of row.backends) {
            const labels = { service: row.service, backend: backend.name };
            kernelSlots.set(labels, backend.slots);
            feeds.kernelPackets.set(labels, backend.packets);
            feeds.kernelBytes.set(labels, backend.bytes);
          }
          break;
        case 'dsr':
          // No per-backend packet counters in the director's ruleset: slots and pins only.
          if (row.pins !== undefined) kernelPins.set({ service: row.service }, row.pins);
          for (const backend of row.backends) {
            const labels = { service: row.service, backend: backend.name };
            kernelSlots.set(labels, backend.slots);
            if (backend.pins !== undefined) kernelBackendPins.set(labels, backend.pins);
          }
          break;
        default: {
          const never: never = row;
          return never;
        }
      }
    }
    if (counters === undefined) return;
    feeds.kernelTransactions.set({ result: 'applied' }, counters.applied);
    feeds.kernelTransactions.set({ result: 'refused' }, counters.refused);
    kernelSeconds.set(counters.lastSeconds);
  };

  const refreshListeners = (listeners: readonly ListenerStats[]): void => {
    inspecting.reset();
    for (const { listener, inspecting: now, inspections } of listeners) {
      inspecting.set({ listener }, now);
      for (const { result, route, count } of inspections) feeds.inspections.set({ listener, result, route }, count);
    }
  };

  return {
    registry,
    contentType: registry.contentType,
    render: async () => {
      const services = await balancer.stats();
      refresh(services);
      if (balancer.listenerStats !== undefined) refreshListeners(balancer.listenerStats());
      if (balancer.kernel !== undefined) refreshKernel(await balancer.kernel(), balancer.kernelCounters?.());
      lifecycleFeed?.refresh(services);
      return registry.metrics();
    },
    close: () => {
      balancer.events.off('check', onCheck);
    },
  };
}
