/**
 * Settings of a configuration that the runtimes read the same way.
 */
import { availableParallelism } from 'node:os';
import { DEFAULTS, type Config, type WorkersSetting } from '../config/index.js';

/** The largest `timeouts.drain` of the proxy services: how long a stop lets connections finish. */
export function largestDrain(config: Config): number {
  let drain = 0;
  for (const service of config.services) if (service.mode === 'proxy') drain = Math.max(drain, service.timeouts.drain);
  return drain;
}

/** Processes to run for a `workers` setting: absent → 1, `auto` → the cores this process may use. */
export function workerCount(setting: WorkersSetting | undefined, cores: number = availableParallelism()): number {
  if (setting === undefined) return DEFAULTS.workers;
  return setting === 'auto' ? Math.max(1, cores) : setting;
}
