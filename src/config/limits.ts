/**
 * How large a configuration file may be, checked before the work it would cost: the byte count
 * before anything is parsed, the nesting of flow collections (`[`, `{`) before the YAML parser
 * builds a tree, alias expansion while the tree becomes data (yaml's `maxAliasCount`, the
 * "billion laughs" guard), and the counts of services and backends before the schema runs.
 *
 * The figures serve a large real deployment with room to spare (docs/configuration.md, "Limits"):
 * 10,000 backends in one service is more than any HAProxy backend or nginx upstream we know of
 * runs, and 4 MiB holds 50,000 backends written one `{ name, address }` a line (about 70 bytes
 * each). Parsing and validating a file costs about 100 bytes of heap per byte of YAML, so 4 MiB
 * is also what keeps a check under half a gigabyte. What they refuse is a file that would hold
 * the reload for minutes or grow the process by gigabytes. Each refusal is one line naming the
 * limit.
 */
import type { ConfigProblem } from '../errors.js';

export const CONFIG_LIMITS = {
  /** Bytes of the file, checked before it is read (fstat) and again on what was read. */
  maxFileBytes: 4 * 1024 * 1024,
  /** Entries of `services`. */
  maxServices: 1_000,
  /** Entries of one service's `backends`. */
  maxBackendsPerService: 10_000,
  /** Backends of all services together. */
  maxBackendsTotal: 50_000,
  /** Nesting of mappings and lists; a valid file nests 6 deep at most. */
  maxDepth: 64,
  /**
   * yaml's maxAliasCount: an alias may expand to at most this many nodes (weighted by how often
   * it is used), so `&a [x,x] / [*a,*a] / …` cannot grow exponentially.
   */
  maxAliasCount: 100,
} as const;

const bytes = (n: number): string => (n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(1)} MiB` : `${n} bytes`);

/** The problem with a file of `size` bytes, if it is over the limit. */
export function fileSizeProblem(size: number): ConfigProblem | undefined {
  if (size <= CONFIG_LIMITS.maxFileBytes) return undefined;
  return { path: '', message: `the file is ${bytes(size)} (${size} bytes); the limit is ${bytes(CONFIG_LIMITS.maxFileBytes)} (see "Limits" in docs/configuration.md)` };
}

/**
 * The deepest nesting of flow collections (`[`/`{`) in YAML or JSON text, outside quoted strings
 * and comments, or the first depth past `limit` (the scan stops there). A plain scalar holding a
 * bracket (`/a[1]`) counts too; it closes what it opens, so only a file already past the limit
 * in brackets is refused. A quote opens a quoted scalar only where a value starts (not after a
 * letter, digit or dot). Cost: one pass over the text, no allocation.
 */
export function flowDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let quote = '';
  let previous = '\n';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === '"') {
      if (c === '\\') i++;
      else if (c === '"') quote = '';
    } else if (quote === "'") {
      if (c === "'") quote = ''; // '' inside a single-quoted scalar reopens at the next quote
    } else if ((c === '"' || c === "'") && !/[\w.]/.test(previous)) {
      quote = c; // a quoted scalar starts a value; the ' of `don't` does not
    } else if (c === '#' && (previous === ' ' || previous === '\t' || previous === '\n')) {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end;
    } else if (c === '[' || c === '{') {
      depth++;
      if (depth > deepest) deepest = depth;
      if (deepest > limit) return deepest;
    } else if ((c === ']' || c === '}') && depth > 0) {
      depth--;
    }
    previous = text[i] ?? '';
  }
  return deepest;
}

/** The problem with text nested past maxDepth in brackets, before it is parsed. */
export function textDepthProblem(text: string): ConfigProblem | undefined {
  const depth = flowDepth(text, CONFIG_LIMITS.maxDepth);
  return depth > CONFIG_LIMITS.maxDepth ? depthProblem() : undefined;
}

function depthProblem(): ConfigProblem {
  return { path: '', message: `lists and mappings nest more than ${CONFIG_LIMITS.maxDepth} deep (see "Limits" in docs/configuration.md)` };
}

/** The deepest nesting of arrays and objects in parsed data; stops past `limit`. Iterative: no stack to overflow. */
function dataDepth(data: unknown, limit: number): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[data, 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number];
    if (typeof value !== 'object' || value === null) continue;
    if (depth + 1 > deepest) deepest = depth + 1;
    if (deepest > limit) return deepest;
    for (const child of Object.values(value)) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return deepest;
}

/**
 * What is over a limit in parsed data, before the schema looks at it: nesting, the number of
 * services, backends per service and in all. Only lists are counted (a `services` that is not a
 * list is the schema's to report). Cost: one pass over the data.
 */
export function structureProblems(data: unknown): ConfigProblem[] {
  if (dataDepth(data, CONFIG_LIMITS.maxDepth) > CONFIG_LIMITS.maxDepth) return [depthProblem()];
  const services = typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as Record<string, unknown>).services : undefined;
  if (!Array.isArray(services)) return [];
  if (services.length > CONFIG_LIMITS.maxServices) {
    return [{ path: 'services', message: `${services.length} services; the limit is ${CONFIG_LIMITS.maxServices} (see "Limits" in docs/configuration.md)` }];
  }
  const problems: ConfigProblem[] = [];
  let total = 0;
  for (const [i, service] of services.entries()) {
    const backends = typeof service === 'object' && service !== null ? (service as Record<string, unknown>).backends : undefined;
    if (!Array.isArray(backends)) continue;
    total += backends.length;
    if (backends.length > CONFIG_LIMITS.maxBackendsPerService) {
      problems.push({ path: `services[${i}].backends`, message: `${backends.length} backends; the limit is ${CONFIG_LIMITS.maxBackendsPerService} per service (see "Limits" in docs/configuration.md)` });
    }
  }
  if (problems.length === 0 && total > CONFIG_LIMITS.maxBackendsTotal) {
    problems.push({ path: 'services', message: `${total} backends in all; the limit is ${CONFIG_LIMITS.maxBackendsTotal} (see "Limits" in docs/configuration.md)` });
  }
  return problems;
}
