/**
 * Configuration of what a proxy service lets in: the PROXY protocol (HAProxy
 * doc/proxy-protocol.txt; `send` as HAProxy's `send-proxy`/`send-proxy-v2`, `accept` as its
 * `accept-proxy` limited to trusted peers), source `allow`/`deny` CIDR lists, and per-source
 * `limits`. Leaves parse with the rules layer's own parsers (parseCidr, rateProblem), so the config
 * and the running balancer agree on what a valid block or rate is; messages name the entry, e.g.
 * `services[0].allow[1]: "10.0.0.0/33": prefix length must be 0–32`.
 */
import * as z from 'zod';
import { parseCidr, rateProblem } from '../rules/index.js';
import { expecting, integer, positiveInteger } from './fields.js';
import { describeObject } from './messages.js';
import { PROXY_VERSIONS, type ProxyVersion } from './types.js';

/** Sources the limiter tracks at most (the SourceLimiter's own bound). */
export const MAX_SOURCES_LIMIT = 2 ** 24;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** One CIDR block or bare address, kept as written (the rules layer parses it again at start). */
export const cidrField = z.string({ error: expecting('an address or CIDR block such as "10.0.0.0/8"') }).superRefine((text, ctx) => {
  try {
    parseCidr(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: messageOf(error) });
  }
});

/** A non-empty list of blocks (an empty list would mean nothing, or everything: leave the key out). */
export const cidrListField = z.array(cidrField, { error: expecting('a list of addresses or CIDR blocks') }).min(1);

export const rateField = z.string({ error: expecting('a rate "N/s" or "N/m", e.g. "20/s"') }).superRefine((text, ctx) => {
  const problem = rateProblem(text);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

const PROXY_PROTOCOL_SHAPE = {
  send: z.enum(PROXY_VERSIONS as [ProxyVersion, ...ProxyVersion[]]).optional(),
  accept: cidrListField.optional(),
};

export const proxyProtocolObject = describeObject(z.strictObject(PROXY_PROTOCOL_SHAPE), { label: 'proxyProtocol' }).superRefine((value, ctx) => {
  if (value.send === undefined && value.accept === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected "send" (v1 or v2) and/or "accept" (the CIDR blocks of trusted proxies); leave proxyProtocol out otherwise' });
  }
});

const LIMITS_SHAPE = {
  perSourceConnections: positiveInteger.optional(),
  perSourceRate: rateField.optional(),
  maxSources: integer(`an integer 1–${MAX_SOURCES_LIMIT}`).min(1).max(MAX_SOURCES_LIMIT).optional(),
};

export const limitsObject = describeObject(z.strictObject(LIMITS_SHAPE), { label: 'limits' }).superRefine((value, ctx) => {
  if (value.perSourceConnections === undefined && value.perSourceRate === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: 'expected "perSourceConnections" and/or "perSourceRate"' + (value.maxSources === undefined ? '' : ' (maxSources alone limits nothing)'),
    });
  }
});

/** What checkSourceRules reads of a proxy service as written (optional keys undefined when left out). */
export interface SourceRuleFields {
  timeouts?: { proxyHeader?: number };
  proxyProtocol?: { accept?: readonly string[] };
}

/** Rules across a service's fields: keys that would do nothing are refused. */
export function checkSourceRules(service: SourceRuleFields, ctx: z.core.$RefinementCtx): void {
  if (service.timeouts?.proxyHeader !== undefined && service.proxyProtocol?.accept === undefined) {
    ctx.addIssue({ code: 'custom', path: ['timeouts', 'proxyHeader'], message: 'applies only with proxyProtocol.accept (no header is read otherwise)' });
  }
}
