/**
 * What every runtime shares about a service: resolving its backends (the only I/O), the pure plan
 * builder and the strategies, the health gate, and the one owner of health and admin state with a
 * port for where verdicts come from. The proxy's data path, the cluster primary and workers, and
 * the CLI's route prediction consume these; nothing here imports from src/proxy or src/cluster.
 */
export { BackendCounters, ServiceLoads } from './counters.js';
export { resolveBackends, resolveHost, systemLookup, type Lookup, type ResolvedAddress } from './resolve.js';
export { buildPlan, slotHashOf, type ResolvedBackend, type ServicePlan } from './plan.js';
export { createChooser, type Chooser, type ChooserOptions, type Flow } from './strategy.js';
export { gateChooser, gatePlan, type GateSubject } from './gate.js';
export {
  admissionDraw,
  isUsable,
  slowStartFraction,
  ServiceState,
  type BackendStatus,
  type CheckEvent,
  type ConfiguredState,
  type HealthChange,
  type LastCheck,
  type ServiceStateEvents,
  type SharedStatus,
  type StateChange,
  type StatefulServiceConfig,
  type VerdictSink,
  type VerdictSource,
  type VerdictSources,
} from './state.js';
export { localChecks } from './verdicts.js';
export { ServiceStates, type BackendStatusFields, type ServiceStatesOptions, type StateResult } from './registry.js';
export {
  backendsOfAnswer,
  entryLabel,
  nextQueryDelayMs,
  sameBackends,
  type AddressRecord,
  type DnsAnswer,
  type ResolutionResult,
  type ServiceRecord,
} from './discovery.js';
export {
  cAresClient,
  DnsWatcher,
  type DiscoveredBackends,
  type DnsClient,
  type DnsClientFactory,
  type DnsEntryState,
  type DnsEntryStatus,
  type DnsWatcherEvents,
  type DnsWatcherOptions,
  type ResolutionEvent,
  type WatchedService,
} from './dns.js';
export { checkResult, effectiveService, isEmptyOverlay, NO_OVERLAY, overlaySummary, withChange, type BackendChange, type RuntimeOverlay } from './backends.js';
export { movesBetween, SAMPLE_KEYS, type BackendMove, type Moves } from './moves.js';
