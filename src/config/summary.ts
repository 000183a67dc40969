/**
 * The one-line description of a valid configuration that `l4lb check` prints and `run` can log.
 */
import { formatEndpoint } from './endpoints.js';
import type { Config, ServiceConfig } from './types.js';

const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** `3 backends`, `2 dns:/srv: entries`, or `1 backend and 1 dns:/srv: entry`. */
function backendsOf(service: Pick<ServiceConfig, 'backends' | 'dnsBackends'>): string {
  const entries = service.dnsBackends?.length ?? 0;
  if (entries === 0) return count(service.backends.length, 'backend');
  const discovered = `${entries} dns:/srv: ${entries === 1 ? 'entry' : 'entries'}`;
  return service.backends.length === 0 ? discovered : `${count(service.backends.length, 'backend')} and ${discovered}`;
}

function describeService(service: ServiceConfig): string {
  switch (service.mode) {
    case 'proxy':
      return `${service.name}: ${service.balance} over ${backendsOf(service)} on ${service.listen.length === 0 ? 'listeners routes' : service.listen.map(formatEndpoint).join(', ')}`;
    case 'dsr':
      return `${service.name}: dsr maglev over ${backendsOf(service)} on VIP ${formatEndpoint(service.vip)} dscp ${service.dscp}`;
    case 'nat':
      return `${service.name}: nat maglev over ${backendsOf(service)} on VIP ${formatEndpoint(service.vip)}${service.snat === undefined ? '' : ` snat ${service.snat}`}`;
    default: {
      const never: never = service;
      return String(never);
    }
  }
}

/** E.g. `2 services (postgres: maglev over 3 backends on 127.0.0.1:6432; ...), admin on 127.0.0.1:9900`. */
export function summarizeConfig(config: Config): string {
  const services = `${count(config.services.length, 'service')} (${config.services.map(describeService).join('; ')})`;
  const workers = config.workers === undefined ? '' : `, workers: ${config.workers}`;
  return config.admin === undefined ? `${services}${workers}` : `${services}, admin on ${formatEndpoint(config.admin.listen)}${workers}`;
}
