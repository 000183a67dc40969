/**
 * Turning validation issues into lines a person can act on: each says what was expected and what was
 * found, in the document's own vocabulary (a "mapping", a "list"), with a "did you mean" for typos.
 * Zod's default texts ("Invalid input") are replaced here, through the per-parse error map.
 */
import type * as z from 'zod';

/** How a YAML/JSON value reads in a message: `"abc"`, `the number 3`, `a list`, `nothing`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value (null)';
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return value === '' ? 'an empty string' : JSON.stringify(shown);
  }
  if (typeof value === 'number') return `the number ${value}`;
  if (typeof value === 'boolean') return `the boolean ${value}`;
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Uint8Array) return 'binary data';
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  // previous always has b.length + 1 entries and current has j entries when current[j] is
  // written, so previous[j], previous[j − 1], current[j − 1] and previous[b.length] are defined.
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = current;
  }
  return previous[b.length]!;
}

const fold = (text: string): string => text.toLowerCase().replace(/[-_\s]/g, '');

/** The candidate closest to `input` if it is plausibly a typo of it (case, `_`/`-`, or ≤ 2 edits). */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  const folded = fold(input);
  const exact = candidates.find((candidate) => fold(candidate) === folded);
  if (exact !== undefined) return exact;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(folded, fold(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const limit = Math.min(2, Math.floor(Math.max(folded.length, 1) / 3));
  return bestDistance <= limit ? best : undefined;
}

const didYouMean = (input: unknown, candidates: readonly string[]): string => {
  if (typeof input !== 'string') return '';
  const match = closest(input, candidates);
  return match === undefined ? '' : ` (did you mean "${match}"?)`;
};

/** Keys that belong to a sibling shape (the other `mode`), so a misplaced key is explained rather than just refused. */
export interface ObjectKeyInfo {
  /** How the object reads in a message, e.g. "a proxy service". */
  label: string;
  /** Keys of related shapes that are valid elsewhere, with where they apply. */
  elsewhere?: { keys: readonly string[]; where: string }[];
}

// Keyed by the object's list of keys: zod copies schemas (and their shapes) on every refinement, so
// the key list is the identity that survives.
const objectInfo = new Map<string, ObjectKeyInfo>();
const keySignature = (shape: object): string => Object.keys(shape).join(',');

/** Registers how unknown keys of `schema` are explained; returns the schema. */
export function describeObject<T extends z.ZodObject>(schema: T, info: ObjectKeyInfo): T {
  objectInfo.set(keySignature(schema.shape), info);
  return schema;
}

function unknownKeyMessage(key: string, known: readonly string[], info: ObjectKeyInfo | undefined): string {
  for (const other of info?.elsewhere ?? []) {
    if (other.keys.includes(key) && !known.includes(key)) {
      return `unknown key "${key}" in ${info?.label ?? 'this object'} (it applies only to ${other.where})`;
    }
  }
  const match = closest(key, known);
  if (match !== undefined) return `unknown key "${key}" (did you mean "${match}"?)`;
  return `unknown key "${key}" (expected one of: ${known.join(', ')})`;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

const listValues = (values: readonly unknown[]): string => values.map((value) => String(value)).join(', ');

/**
 * The per-parse error map: a message for every zod issue code. Field schemas that know better pass
 * their own `error` and win over this one (zod's precedence). Unknown keys yield one line per key,
 * joined with "\n"; parseConfig (load.ts) splits them.
 */
export const errorMap: z.core.$ZodErrorMap = (issue) => {
  const found = describeValue(issue.input);
  switch (issue.code) {
    case 'invalid_type': {
      const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
      if (issue.input === undefined) return `missing: expected ${expected}`;
      return `expected ${expected}, got ${found}`;
    }
    case 'unrecognized_keys': {
      const inst = issue.inst as z.ZodObject | undefined;
      const known = inst?.shape === undefined ? [] : Object.keys(inst.shape);
      const info = objectInfo.get(known.join(','));
      return issue.keys.map((key) => unknownKeyMessage(key, known, info)).join('\n');
    }
    case 'invalid_value':
      return `expected ${issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${listValues(issue.values)}`}, got ${found}${didYouMean(issue.input, issue.values.map(String))}`;
    case 'invalid_union': {
      const options = (issue as { options?: readonly unknown[] }).options;
      if (options !== undefined) {
        const discriminator = (issue as { discriminator?: string }).discriminator ?? 'value';
        const given = typeof issue.input === 'object' && issue.input !== null ? (issue.input as Record<string, unknown>)[discriminator] : undefined;
        return `expected one of ${listValues(options)}, got ${describeValue(given)}${didYouMean(given, options.map(String))}`;
      }
      return `got ${found}, which matches none of the accepted forms`;
    }
    case 'too_small':
      if (issue.origin === 'array') return `expected at least ${issue.minimum} ${Number(issue.minimum) === 1 ? 'entry' : 'entries'}, got ${Array.isArray(issue.input) ? issue.input.length : 0}`;
      if (issue.origin === 'string') return `must not be empty`;
      return issue.inclusive ? `must be at least ${issue.minimum}, got ${String(issue.input)}` : `must be greater than ${issue.minimum}, got ${String(issue.input)}`;
    case 'too_big':
      if (issue.origin === 'array') return `expected at most ${issue.maximum} entries, got ${Array.isArray(issue.input) ? issue.input.length : '?'}`;
      if (issue.origin === 'string') return `must be at most ${issue.maximum} characters long`;
      return issue.inclusive ? `must be at most ${issue.maximum}, got ${String(issue.input)}` : `must be less than ${issue.maximum}, got ${String(issue.input)}`;
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor}, got ${String(issue.input)}`;
    case 'invalid_format':
      return `expected ${issue.format}, got ${found}`;
    case 'invalid_key':
    case 'invalid_element':
      return `invalid entry ${found}`;
    case 'custom':
      return issue.message ?? `invalid value ${found}`;
    default:
      return undefined;
  }
};

/** `['services', 0, 'backends', 1, 'address']` → `services[0].backends[1].address`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text === '' ? String(segment) : `.${String(segment)}`;
  }
  return text;
}
