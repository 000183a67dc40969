/**
 * Rules that span several fields: which keys a service's balance would ignore (refused, so a key never
 * silently does nothing), table size against backend count, unique names, binds that would collide,
 * and one VIP per DSCP value (L3DSR backends restore the VIP from the DSCP mark).
 * They run only on objects whose fields are each valid, so they may trust the types.
 */
import type * as z from 'zod';
import { DEFAULTS } from './defaults.js';
import { endpointsOverlap, formatEndpoint } from './endpoints.js';
import type { DsrServiceInput, ProxyServiceInput } from './schema.js';
import type { Balance, Config, Endpoint, ServiceConfig } from './types.js';

/** Balancers that hash a flow key; the others (roundrobin, leastconn) ignore hashKey and friends. */
const HASHING_BALANCES: readonly Balance[] = ['maglev', 'ring', 'rendezvous'];

type Issues = z.core.$RefinementCtx;

function checkUniqueBackendNames(backends: readonly { name: string }[], ctx: Issues): void {
  const first = new Map<string, number>();
  backends.forEach((backend, index) => {
    const earlier = first.get(backend.name);
    if (earlier === undefined) first.set(backend.name, index);
    else ctx.addIssue({ code: 'custom', path: ['backends', index, 'name'], message: `duplicate backend name "${backend.name}" (also backends[${earlier}])` });
  });
}

function checkTableFits(tableSize: number, backendCount: number, ctx: Issues): void {
  if (tableSize < backendCount) {
    ctx.addIssue({ code: 'custom', path: ['tableSize'], message: `must be at least the number of backends (${backendCount}), got ${tableSize}` });
  }
}

export function checkProxyService(service: ProxyServiceInput, ctx: Issues): void {
  const balance = service.balance ?? DEFAULTS.balance;
  const refuse = (key: keyof ProxyServiceInput, appliesTo: string): void => {
    if (service[key] !== undefined) {
      ctx.addIssue({ code: 'custom', path: [key], message: `applies only to ${appliesTo}; this service uses balance: ${balance}` });
    }
  };
  if (balance !== 'maglev') {
    refuse('tableSize', 'balance: maglev');
    refuse('flowHash', 'balance: maglev');
    refuse('hashSeed', 'balance: maglev');
  }
  if (!HASHING_BALANCES.includes(balance)) {
    refuse('hashKey', `hashing balancers (${HASHING_BALANCES.join(', ')})`);
    refuse('balanceFactor', `hashing balancers (${HASHING_BALANCES.join(', ')})`);
  }
  if (balance === 'maglev') checkTableFits(service.tableSize ?? DEFAULTS.tableSize, service.backends.length, ctx);
  checkUniqueBackendNames(service.backends, ctx);
}

export function checkDsrService(service: DsrServiceInput, ctx: Issues): void {
  checkTableFits(service.tableSize ?? DEFAULTS.tableSize, service.backends.length, ctx);
  checkUniqueBackendNames(service.backends, ctx);
  service.backends.forEach((backend, index) => {
    if (backend.address.port !== undefined && backend.address.port !== service.vip.port) {
      ctx.addIssue({
        code: 'custom',
        path: ['backends', index, 'address'],
        message: `port ${backend.address.port} differs from the VIP port ${service.vip.port}: DSR does not rewrite ports (leave the port out)`,
      });
    }
  });
}

export function checkServices(config: Config, ctx: Issues): void {
  const names = new Map<string, number>();
  const binds: { endpoint: Endpoint; path: (string | number)[]; owner: string }[] = [];
  if (config.admin !== undefined) binds.push({ endpoint: config.admin.listen, path: ['admin', 'listen'], owner: 'admin' });
  const dscpOwners = new Map<number, { vip: string; index: number }>();

  config.services.forEach((service, index) => {
    const earlier = names.get(service.name);
    if (earlier === undefined) names.set(service.name, index);
    else ctx.addIssue({ code: 'custom', path: ['services', index, 'name'], message: `duplicate service name "${service.name}" (also services[${earlier}])` });

    switch (service.mode) {
      case 'proxy':
        binds.push({ endpoint: service.listen, path: ['services', index, 'listen'], owner: `service "${service.name}" (services[${index}].listen)` });
        break;
      case 'dsr': {
        binds.push({ endpoint: service.vip, path: ['services', index, 'vip'], owner: `service "${service.name}" (services[${index}].vip)` });
        const owner = dscpOwners.get(service.dscp);
        if (owner === undefined) dscpOwners.set(service.dscp, { vip: service.vip.host, index });
        else if (owner.vip !== service.vip.host) {
          ctx.addIssue({
            code: 'custom',
            path: ['services', index, 'dscp'],
            message: `dscp ${service.dscp} already marks VIP ${owner.vip} (services[${owner.index}]); each DSCP value must identify one VIP`,
          });
        }
        break;
      }
      default: {
        const never: never = service;
        throw new Error(`unknown service mode ${String((never as ServiceConfig).mode)}`);
      }
    }
  });

  binds.forEach((bind, index) => {
    const clash = binds.slice(0, index).find((earlier) => endpointsOverlap(earlier.endpoint, bind.endpoint));
    if (clash !== undefined) {
      ctx.addIssue({ code: 'custom', path: bind.path, message: `${formatEndpoint(bind.endpoint)} overlaps ${formatEndpoint(clash.endpoint)} of ${clash.owner}` });
    }
  });
}

