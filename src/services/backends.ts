/**
 * A service's effective backends: what its plan is built from. Three sources, one pure function:
 * the backends named in the file, the ones its `dns:`/`srv:` entries stand for now (src/services
 * dns.ts), and the runtime overlay (HAProxy's runtime API: `set server weight`, `add server`,
 * `del server`). Every runtime's plans go through `effectiveService` and then the one plan builder
 * (src/services/plan.ts), so a runtime change and a file change with the same result build the
 * same table: the hashing core keys tables on names and weights, never on list order.
 *
 * The overlay is kept in memory and replaced by the next reload of the file, as HAProxy's runtime
 * changes are (without `server-state-file`): the file stays the one place that says what runs, a
 * reload means exactly the file, and no second file can disagree with it after a restart. An
 * operator who wants a change to last writes it in the file and reloads.
 */
import { isIP } from 'node:net';
import { isPlainName, LIMITS, type BackendConfig, type ProxyServiceConfig } from '../config/index.js';
import { BackendExistsError, RuntimeChangeError, UnknownBackendError } from '../errors.js';

/** The runtime changes of one service since its file was last applied. Immutable. */
export interface RuntimeOverlay {
  /** Weights set at run time, by backend name (file, discovered or added backends). */
  readonly weights: ReadonlyMap<string, number>;
  /** Backends added at run time, in the order they were added. */
  readonly added: readonly BackendConfig[];
  /** Names of file or discovered backends removed at run time. */
  readonly removed: ReadonlySet<string>;
}

export const NO_OVERLAY: RuntimeOverlay = { weights: new Map(), added: [], removed: new Set() };

/** A runtime change of one service's backends. `add` takes an address already resolved (an IP literal). */
export type BackendChange =
  | { readonly kind: 'weight'; readonly backend: string; readonly weight: number }
  | { readonly kind: 'add'; readonly backend: BackendConfig }
  | { readonly kind: 'remove'; readonly backend: string };

export function isEmptyOverlay(overlay: RuntimeOverlay): boolean {
  return overlay.weights.size === 0 && overlay.added.length === 0 && overlay.removed.size === 0;
}

/** The overlay as /stats shows it: null when there is none. */
export function overlaySummary(overlay: RuntimeOverlay): { added: string[]; removed: string[]; weights: Record<string, number> } | null {
  if (isEmptyOverlay(overlay)) return null;
  return { added: overlay.added.map((backend) => backend.name), removed: [...overlay.removed], weights: Object.fromEntries(overlay.weights) };
}

/**
 * `config` with `backends` made concrete: the file's backends, then `discovered` (each name once:
 * a file backend wins), less the overlay's removed names, plus its added backends, with its
 * weights applied. Pure. When the Maglev table could not hold them all (more backends than
 * `tableSize`, possible only through DNS), the first `tableSize` by name are kept and
 * `truncated` says how many were left out.
 */
export function effectiveService(config: ProxyServiceConfig, discovered: readonly BackendConfig[], overlay: RuntimeOverlay = NO_OVERLAY): { service: ProxyServiceConfig; truncated: number } {
  const seen = new Set<string>();
  const backends: BackendConfig[] = [];
  for (const backend of [...config.backends, ...discovered, ...overlay.added]) {
    if (seen.has(backend.name) || overlay.removed.has(backend.name)) continue;
    seen.add(backend.name);
    const weight = overlay.weights.get(backend.name);
    backends.push(weight === undefined ? backend : { ...backend, weight });
  }
  let truncated = 0;
  if (config.balance === 'maglev' && backends.length > config.tableSize) {
    truncated = backends.length - config.tableSize;
    backends.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).length = config.tableSize;
  }
  return { service: { ...config, backends }, truncated };
}

/**
 * The overlay after `change`, checked against `current` (the service's effective configuration
 * now). Throws UnknownBackendError (weight or remove of a name the service lacks),
 * BackendExistsError (add of a name it has), RuntimeChangeError (bad-weight, bad-name,
 * bad-address, or a result the file could not hold either: table-too-small, no-primary). Pure.
 */
export function withChange(current: ProxyServiceConfig, overlay: RuntimeOverlay, change: BackendChange): RuntimeOverlay {
  const service = current.name;
  const names = current.backends.map((backend) => backend.name);
  const name = change.kind === 'add' ? change.backend.name : change.backend;
  const refuse = (reason: RuntimeChangeError['reason'], message: string): never => {
    throw new RuntimeChangeError({ service, backend: name, reason }, `service "${service}", backend "${name}": ${message}`);
  };
  let next: RuntimeOverlay;
  switch (change.kind) {
    case 'weight': {
      if (!names.includes(name)) throw new UnknownBackendError({ service, backend: name, known: names });
      checkWeight(change.weight, refuse);
      const added = overlay.added.map((backend) => (backend.name === name ? { ...backend, weight: change.weight } : backend));
      const weights = new Map(overlay.weights);
      if (overlay.added.some((backend) => backend.name === name)) weights.delete(name);
      else weights.set(name, change.weight);
      next = { ...overlay, weights, added };
      break;
    }
    case 'add': {
      const backend = change.backend;
      if (!isPlainName(name)) refuse('bad-name', 'a name is at most 63 letters, digits, ".", "_" or "-", starting with a letter or digit');
      if (names.includes(name)) throw new BackendExistsError({ service, backend: name });
      if (isIP(backend.address.host) === 0 || !(backend.address.port >= 1 && backend.address.port <= 65535)) refuse('bad-address', `expected an IP address and a port 1–65535`);
      checkWeight(backend.weight, refuse);
      const weights = new Map(overlay.weights);
      weights.delete(name);
      next = { ...overlay, weights, added: [...overlay.added, backend] };
      break;
    }
    case 'remove': {
      if (!names.includes(name)) throw new UnknownBackendError({ service, backend: name, known: names });
      const wasAdded = overlay.added.some((backend) => backend.name === name);
      const removed = new Set(overlay.removed);
      if (!wasAdded) removed.add(name);
      const weights = new Map(overlay.weights);
      weights.delete(name);
      next = { weights, added: overlay.added.filter((backend) => backend.name !== name), removed };
      break;
    }
    default: {
      const never: never = change;
      throw new Error(`unknown change ${String(never)}`);
    }
  }
  return next;
}

/** Refuses `weight` unless it is a number in (0, LIMITS.maxWeight], as the file's `weight`. */
function checkWeight(weight: number, refuse: (reason: 'bad-weight', message: string) => never): void {
  if (!(typeof weight === 'number' && Number.isFinite(weight) && weight > 0 && weight <= LIMITS.maxWeight)) {
    refuse('bad-weight', `a weight is a number > 0 and at most ${LIMITS.maxWeight}, got ${String(weight)}`);
  }
}

/**
 * Refuses an effective configuration the file could not hold: more backends than Maglev slots,
 * or backends left that are all backups. (No backend at all is a state DNS can reach and the
 * proxy serves by refusing; a runtime change may not remove the last primary.)
 */
export function checkResult(change: BackendChange, result: { service: ProxyServiceConfig; truncated: number }): void {
  const { service } = result;
  const backend = change.kind === 'add' ? change.backend.name : change.backend;
  const refuse = (reason: RuntimeChangeError['reason'], message: string): never => {
    throw new RuntimeChangeError({ service: service.name, backend, reason }, `service "${service.name}", backend "${backend}": ${message}`);
  };
  if (change.kind === 'add' && result.truncated > 0) {
    refuse('table-too-small', `${service.backends.length + result.truncated} backends do not fit a Maglev table of ${service.tableSize} slots`);
  }
  if (change.kind === 'remove' && !service.backends.some((each) => each.backup !== true)) refuse('no-primary', 'removing it would leave the service no primary backend');
}
