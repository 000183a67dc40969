/**
 * docs/reference/configuration.md, generated: every key of the configuration's JSON Schema (which
 * zod emits from the one schema, src/config/schema.ts) with the modes it applies to, its type and
 * bounds as the schema states them, and what CONFIG_KEYS adds (meaning, default, limits, example,
 * the peer keyword). Pure: schema in, Markdown out.
 */
import { configJsonSchema } from '../config/index.js';
import { CONFIG_KEYS, type KeyDoc } from './config-keys.js';

type Json = { readonly [key: string]: unknown };
const isJson = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** One key as the schema describes it: where it may appear and what it may hold. */
export interface SchemaKey {
  readonly path: string;
  /** Service modes where the key may appear; empty outside `services[]`. */
  readonly modes: string[];
  /** The schema nodes of the key, one per mode (types may differ between modes). */
  readonly nodes: Json[];
  readonly required: boolean;
}

function resolveRef(root: Json, node: Json): Json {
  if (typeof node.$ref !== 'string') return node;
  const name = node.$ref.replace('#/$defs/', '');
  const defs = isJson(root.$defs) ? root.$defs : {};
  const target = defs[name];
  return isJson(target) ? resolveRef(root, target) : node;
}

/** Every key path of the schema (`services[].timeouts.connect`), in schema order. */
export function schemaKeys(root: Json = configJsonSchema()): SchemaKey[] {
  const keys = new Map<string, { modes: Set<string>; nodes: Json[]; required: boolean }>();
  const walk = (raw: Json, path: string, mode: string | undefined): void => {
    const node = resolveRef(root, raw);
    for (const branch of ['anyOf', 'oneOf', 'allOf'] as const) {
      const variants = node[branch];
      if (!Array.isArray(variants)) continue;
      for (const variant of variants) {
        if (!isJson(variant)) continue;
        const resolved = resolveRef(root, variant);
        const properties = isJson(resolved.properties) ? resolved.properties : {};
        const modeNode = properties.mode;
        const variantMode = isJson(modeNode) && typeof modeNode.const === 'string' ? modeNode.const : mode;
        walk(variant, path, variantMode);
      }
    }
    if (isJson(node.properties)) {
      const required = Array.isArray(node.required) ? node.required : [];
      for (const [name, child] of Object.entries(node.properties)) {
        if (!isJson(child)) continue;
        const key = path === '' ? name : `${path}.${name}`;
        let entry = keys.get(key);
        if (entry === undefined) {
          entry = { modes: new Set(), nodes: [], required: false };
          keys.set(key, entry);
        }
        if (mode !== undefined) entry.modes.add(mode);
        entry.nodes.push(resolveRef(root, child));
        entry.required ||= required.includes(name);
        walk(child, key, mode);
      }
    }
    if (isJson(node.items)) walk(node.items, `${path}[]`, mode);
  };
  walk(root, '', undefined);
  return [...keys].map(([path, entry]) => ({ path, modes: [...entry.modes], nodes: entry.nodes, required: entry.required }));
}

const code = (value: unknown): string => `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;

/** The type of one schema node in words: `integer 1–100`, `` `tcp` | `redis` ``, `list of …`. */
export function typeOf(node: Json): string {
  if (Array.isArray(node.enum)) return node.enum.map(code).join(' \\| ');
  if ('const' in node) return code(node.const);
  const variants = Array.isArray(node.anyOf) ? node.anyOf : Array.isArray(node.oneOf) ? node.oneOf : undefined;
  if (variants !== undefined) return [...new Set(variants.filter(isJson).map(typeOf))].join(' \\| ');
  const type = Array.isArray(node.type) ? node.type.join(' or ') : node.type;
  const bounds = (low: unknown, high: unknown, unit = ''): string => {
    if (typeof low === 'number' && typeof high === 'number') return ` ${low}–${high}${unit}`;
    if (typeof low === 'number') return ` ≥ ${low}${unit}`;
    if (typeof high === 'number') return ` ≤ ${high}${unit}`;
    return '';
  };
  switch (type) {
    case 'integer':
    case 'number':
      return `${type}${bounds(node.minimum ?? node.exclusiveMinimum, node.maximum)}`;
    case 'string':
      return `string${typeof node.minLength === 'number' && node.minLength > 1 ? `, at least ${node.minLength} characters` : ''}`;
    case 'array': {
      const items = isJson(node.items) ? typeOf(node.items) : 'values';
      const count = typeof node.minItems === 'number' && node.minItems > 0 ? `, at least ${node.minItems}` : '';
      return `list of ${items}${count}`;
    }
    case 'object':
      return 'mapping';
    case 'boolean':
      return '`true` \\| `false`';
    default:
      return typeof type === 'string' ? type : 'any';
  }
}

function renderKey(key: SchemaKey, doc: KeyDoc): string[] {
  const types = [...new Set(key.nodes.map(typeOf))];
  const facts = [`**type** ${doc.type ?? types.join('; ')}`];
  if (doc.type !== undefined && types.some((type) => /\d/.test(type))) facts.push(`**schema** ${types.join('; ')}`);
  facts.push(key.required ? '**required**' : `**default** ${doc.default === undefined ? 'none' : code(doc.default)}`);
  if (key.modes.length > 0) facts.push(`**modes** ${key.modes.join(', ')}`);
  const out = [`### \`${key.path}\``, '', facts.join(' · '), '', doc.text];
  if (doc.limits !== undefined) out.push('', `Limits: ${doc.limits}.`);
  if (doc.peer !== undefined) out.push('', `HAProxy / nginx: ${doc.peer}.`);
  if (doc.example !== undefined) out.push('', '```yaml', doc.example, '```');
  out.push('');
  return out;
}

/** Top-level sections, in reading order; keys go to the first whose prefix they start with. */
const SECTIONS: readonly [string, string][] = [
  ['services[].backends', 'Backends (`services[].backends[]`)'],
  ['services[].healthCheck', 'Health checks (`services[].healthCheck`)'],
  ['services[].timeouts', 'Timeouts (`services[].timeouts`)'],
  ['services[].proxyProtocol', 'PROXY protocol and source rules'],
  ['services[].allow', 'PROXY protocol and source rules'],
  ['services[].deny', 'PROXY protocol and source rules'],
  ['services[].limits', 'PROXY protocol and source rules'],
  ['services', 'Services (`services[]`)'],
  ['', 'Top level'],
];

/** Keys of the schema without a CONFIG_KEYS entry, and entries naming no key of the schema. */
export function referenceGaps(keys: readonly SchemaKey[] = schemaKeys()): { undocumented: string[]; unknown: string[] } {
  const paths = new Set(keys.map((key) => key.path));
  return {
    undocumented: keys.filter((key) => CONFIG_KEYS[key.path] === undefined).map((key) => key.path),
    unknown: Object.keys(CONFIG_KEYS).filter((path) => !paths.has(path)),
  };
}

/** The whole page. Throws if a key has no entry (the test names them first). */
export function renderConfigReference(keys: readonly SchemaKey[] = schemaKeys()): string {
  const sections = new Map<string, string[]>();
  for (const [, title] of SECTIONS) sections.set(title, []);
  for (const key of keys) {
    const doc = CONFIG_KEYS[key.path];
    if (doc === undefined) throw new Error(`no reference entry for configuration key ${key.path} (src/reference/config-keys.ts)`);
    const section = SECTIONS.find(([prefix]) => key.path === prefix || key.path.startsWith(prefix === '' ? '' : `${prefix}.`) || key.path.startsWith(`${prefix}[]`));
    sections.get(section?.[1] ?? 'Top level')?.push(...renderKey(key, doc));
  }
  const order = ['Top level', 'Services (`services[]`)', 'Backends (`services[].backends[]`)', 'Health checks (`services[].healthCheck`)', 'Timeouts (`services[].timeouts`)', 'PROXY protocol and source rules'];
  const out = [
    '# Configuration reference',
    '',
    '<!-- Generated by `npm run reference` from the schema (src/config/schema.ts) and src/reference/config-keys.ts; do not edit. -->',
    '',
    'Every key of the configuration file, with its type, default, limits, the service modes it applies to, and an example.',
    'How the file is read, `${VAR}` substitution, cross-service rules and complete examples: [configuration.md](../configuration.md).',
    'Durations are a number and a unit (`ms`, `s`, `m`, `h`); a key given in a mode it does not apply to is refused by `l4lb check`, naming where it belongs.',
    '',
  ];
  for (const title of order) {
    const body = sections.get(title) ?? [];
    if (body.length === 0) continue;
    out.push(`## ${title}`, '', ...body);
  }
  return `${out.join('\n').replace(/\n+$/, '')}\n`;
}
