/**
 * /stats and /metrics of a cluster: counters summed over the workers, health and admin
 * state from the primary, which decides them. Pure functions over plain rows.
 *
 * A worker that dies takes its counters with it; its last report is kept (`retire`, gauges set to
 * 0) and added to every later sum, so the totals /metrics turns into Prometheus counters do not
 * fall back when a worker is restarted (they miss only what it counted after its last report).
 */
import { REJECTIONS, type BackendStatusStats, type ListenerStats, type Rejection, type ServiceStatusStats } from '../proxy/index.js';

type Counted = Pick<ServiceStatusStats, 'current' | 'queued' | 'total' | 'refused' | 'bytesUp' | 'bytesDown' | 'buffered'>;
type BackendCounted = Pick<BackendStatusStats, 'current' | 'total' | 'failures' | 'bytesUp' | 'bytesDown'>;

const SERVICE_FIELDS: readonly (keyof Counted)[] = ['current', 'queued', 'total', 'refused', 'bytesUp', 'bytesDown', 'buffered'];
const BACKEND_FIELDS: readonly (keyof BackendCounted)[] = ['current', 'total', 'failures', 'bytesUp', 'bytesDown'];

/**
 * `skeleton` (the primary's services and backends with their health, counters 0) with every
 * counter summed over `reports` (one per worker), matched by service and backend name; rows of a
 * report that the skeleton no longer has are left out. A service's `listen` is the first report's
 * (a port 0 resolved), else the skeleton's. Cost O(workers x rows).
 */
export function mergeStats(skeleton: readonly ServiceStatusStats[], reports: readonly (readonly ServiceStatusStats[])[]): ServiceStatusStats[] {
  return skeleton.map((base) => {
    const service: ServiceStatusStats = { ...base, rejected: { ...base.rejected }, localErrors: { ...base.localErrors }, backends: base.backends.map((backend) => ({ ...backend })) };
    let listen: ServiceStatusStats['listen'] | undefined;
    for (const report of reports) {
      const row = report.find((candidate) => candidate.name === base.name);
      if (row === undefined) continue;
      listen ??= row.listen;
      for (const field of SERVICE_FIELDS) service[field] += row[field];
      for (const reason of REJECTIONS) service.rejected[reason] = (service.rejected[reason] ?? 0) + (row.rejected[reason] ?? 0);
      for (const [code, count] of Object.entries(row.localErrors ?? {})) service.localErrors[code] = (service.localErrors[code] ?? 0) + count;
      service.pausedRefused += row.pausedRefused ?? 0;
      for (const backend of service.backends) {
        const counted = row.backends.find((candidate) => candidate.name === backend.name);
        if (counted !== undefined) for (const field of BACKEND_FIELDS) backend[field] += counted[field];
      }
    }
    if (listen !== undefined) service.listen = listen;
    return service;
  });
}

/** A dead worker's last report as it counts from now on: its totals kept, its gauges 0. */
export function retire(report: readonly ServiceStatusStats[]): ServiceStatusStats[] {
  return report.map((service) => ({
    ...service,
    current: 0,
    queued: 0,
    buffered: 0,
    rejected: { ...service.rejected },
    localErrors: { ...service.localErrors },
    backends: service.backends.map((backend) => ({ ...backend, current: 0 })),
  }));
}

/** Zero counters for every rejection reason (the skeleton's `rejected`). */
export function noRejections(): Record<Rejection, number> {
  return Object.fromEntries(REJECTIONS.map((reason) => [reason, 0])) as Record<Rejection, number>;
}

/**
 * TLS passthrough listeners summed over workers, by listener name: the listeners are those of the
 * `live` reports (one per worker), in first-seen order, with their `inspecting` summed; their
 * inspection counts are summed over `retired` (dead workers' last reports, see retireListeners)
 * and `live`. A listener only a dead worker had (removed by a reload since) is left out.
 * Cost O(workers x listeners x results).
 */
export function mergeListeners(retired: readonly ListenerStats[], live: readonly (readonly ListenerStats[])[]): ListenerStats[] {
  const merged = new Map<string, { base: ListenerStats; inspecting: number; counts: Map<string, ListenerStats['inspections'][number]> }>();
  for (const report of live) {
    for (const row of report) {
      const entry = merged.get(row.listener) ?? { base: row, inspecting: 0, counts: new Map() };
      entry.inspecting += row.inspecting;
      merged.set(row.listener, entry);
    }
  }
  for (const row of [...retired, ...live.flat()]) {
    const entry = merged.get(row.listener);
    if (entry === undefined) continue;
    for (const count of row.inspections) {
      const key = `${count.result} ${count.route}`;
      const sum = entry.counts.get(key);
      entry.counts.set(key, { result: count.result, route: count.route, count: (sum?.count ?? 0) + count.count });
    }
  }
  return [...merged.values()].map(({ base, inspecting, counts }) => ({ ...base, inspecting, inspections: [...counts.values()] }));
}

/** A dead worker's listeners as they count from now on: `retired` (the earlier dead ones) plus `report`, clients being inspected 0. */
export function retireListeners(retired: readonly ListenerStats[], report: readonly ListenerStats[]): ListenerStats[] {
  return mergeListeners([], [retired, report.map((row) => ({ ...row, inspecting: 0 }))]);
}
