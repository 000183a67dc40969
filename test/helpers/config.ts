/**
 * Builders of validated-shape configurations for proxy tests (what loadConfig would return).
 */
import type { BackendConfig, Config, ProxyServiceConfig } from '../../src/config/index.js';

export function backend(name: string, port: number, extra: Partial<BackendConfig> = {}): BackendConfig {
  return { name, address: { host: '127.0.0.1', port }, weight: 1, ...extra };
}

/** A proxy service on 127.0.0.1:0 with generous limits; override what the test is about. */
export function proxyService(backends: BackendConfig[], overrides: Partial<ProxyServiceConfig> = {}): ProxyServiceConfig {
  return {
    mode: 'proxy',
    name: 'svc',
    listen: [{ host: '127.0.0.1', port: 0 }],
    balance: 'maglev',
    hashKey: 'source-ip',
    flowHash: 'murmur3',
    hashSeed: 0,
    tableSize: 65537,
    maxConnections: 10000,
    retries: 2,
    timeouts: { connect: 3000, idle: 60000, queue: 5000, drain: 5000 },
    backends,
    ...overrides,
  };
}

export function configOf(...services: ProxyServiceConfig[]): Config {
  return { services };
}
