/**
 * Resolution of a service's backend addresses: the only I/O a plan needs, kept apart from the pure
 * plan builder (src/services/plan.ts) so a runtime that needs only the addresses (the cluster
 * primary's health checks) resolves without building a table, and tests inject a resolver.
 * Names are resolved once per start or reload, never per connection; the first address is used.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Endpoint, ProxyServiceConfig } from '../config/index.js';
import { LbError, ResolveError } from '../errors.js';

/** Resolves a host name to one address; injectable so tests never ask a real resolver. */
export type Lookup = (host: string) => Promise<string>;

export const systemLookup: Lookup = async (host) => (await dnsLookup(host)).address;

/** A configured backend with its address resolved. */
export interface ResolvedAddress {
  readonly name: string;
  /** Where connections go: the configured host resolved to an address. */
  readonly address: Endpoint;
}

/** `host` as an address: an IP literal as it is, a name through `lookup`. Throws ResolveError naming `where`. */
export async function resolveHost(host: string, where: string, lookup: Lookup): Promise<string> {
  if (isIP(host) !== 0) return host;
  try {
    return await lookup(host);
  } catch (error) {
    const cause = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
    throw new ResolveError({ where, host, cause });
  }
}

/**
 * Every backend of `config` with its address resolved, in configuration order. Pre: `config`
 * validated; `where` names the service in messages (`services[0] (pg)`). Rejects with a
 * ResolveError for the first backend whose host resolves nowhere.
 */
/**
 * The error for a caller bug: a list of resolved addresses that is not resolveBackends(config)
 * (a backend of the one has no counterpart at the same index in the other).
 */
export function outOfStep(config: { readonly name: string }, backend: string): LbError {
  return new LbError('LB_ERR_INVALID_ARGUMENT', `service ${config.name}: backend ${backend} is not in step with the resolved addresses`);
}

export function resolveBackends(config: ProxyServiceConfig, where: string, lookup: Lookup = systemLookup): Promise<ResolvedAddress[]> {
  return Promise.all(
    config.backends.map(async (backend, i): Promise<ResolvedAddress> => ({
      name: backend.name,
      address: { host: await resolveHost(backend.address.host, `${where}.backends[${i}] (${backend.name})`, lookup), port: backend.address.port },
    })),
  );
}
