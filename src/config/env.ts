/**
 * Environment variables in a configuration file's string values, as HAProxy expands "${VAR}" in
 * its configuration and the shell expands ${VAR:-default}: `${NAME}` is NAME's value, and
 * `${NAME:-DEFAULT}` is DEFAULT when NAME is unset or empty. A value that is one reference and
 * nothing else, and whose result reads as a number, becomes that number, so `weight: ${W:-1}` and
 * `tableSize: ${M}` work as if the number were written. Keys are never expanded; nor is any text
 * that is not a well-formed reference (`$HOME`, `${1X}` stay as written).
 */
import type { ConfigProblem } from '../errors.js';
import { formatPath } from './messages.js';

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE_REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/;
const NUMBER = /^-?\d+(?:\.\d+)?$/;

export interface Substituted {
  readonly data: unknown;
  /** One per unset variable without a default, at the value's path. */
  readonly problems: readonly ConfigProblem[];
  /** Paths whose value could not be expanded: other problems there would only repeat these. */
  readonly unsetPaths: readonly string[];
}

/** Post: `data` is `document` with every reference expanded (an unset one as an empty string). */
export function substituteEnv(document: unknown, env: Readonly<Record<string, string | undefined>>): Substituted {
  const problems: ConfigProblem[] = [];
  const unsetPaths: string[] = [];
  const walk = (value: unknown, path: PropertyKey[]): unknown => {
    if (typeof value === 'string') {
      if (!value.includes('${')) return value;
      const missing: string[] = [];
      const expanded = value.replace(REFERENCE, (_reference, name: string, fallback: string | undefined) => {
        const set = env[name];
        if (fallback !== undefined) return set === undefined || set === '' ? fallback : set;
        if (set === undefined) missing.push(name);
        return set ?? '';
      });
      if (missing.length > 0) {
        const where = formatPath(path);
        unsetPaths.push(where);
        for (const name of missing) {
          problems.push({ path: where, message: `\${${name}} is not set in the environment (set it, or give a default: \${${name}:-VALUE})` });
        }
      }
      return WHOLE_REFERENCE.test(value) && NUMBER.test(expanded) ? Number(expanded) : expanded;
    }
    if (Array.isArray(value)) return value.map((item, index) => walk(item, [...path, index]));
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      // defineProperty: a "__proto__" key of a JSON file stays a key (the schema refuses it by name).
      for (const [key, item] of Object.entries(value)) Object.defineProperty(out, key, { value: walk(item, [...path, key]), enumerable: true, writable: true, configurable: true });
      return out;
    }
    return value;
  };
  return { data: walk(document, []), problems, unsetPaths };
}
