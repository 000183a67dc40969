/**
 * From a file to a typed `Config`: read it, parse it as YAML 1.2 or JSON (RFC 8259), validate it
 * once against the schema, and collect every problem into one ConfigError. Nothing here prints.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { crossServiceProblems, factsFromDocument, serviceProblemsFromDocument } from './rules.js';
import { configSchema } from './schema.js';
import { substituteEnv } from './env.js';
import { tokenField } from './health-fields.js';
import { CONFIG_LIMITS, fileSizeProblem, structureProblems, textDepthProblem } from './limits.js';
import { errorMap, formatPath } from './messages.js';
import { ConfigError, type ConfigProblem } from '../errors.js';
import type { Config } from './types.js';

export type ConfigFormat = 'yaml' | 'json';

/** `.json` is JSON, `.yaml`/`.yml` YAML; any other name goes by the first non-blank character. */
export function detectFormat(text: string, file: string): ConfigFormat {
  const extension = extname(file).toLowerCase();
  if (extension === '.json') return 'json';
  if (extension === '.yaml' || extension === '.yml') return 'yaml';
  return /^\s*[{[]/.test(text) ? 'json' : 'yaml';
}

type Parsed = { ok: true; data: unknown } | { ok: false; problems: ConfigProblem[] };

/** 1-based line and column of a character offset. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

/** Names the repeated key, which yaml's own "Map keys must be unique" leaves out. */
function duplicateKeyMessage(text: string, [start]: [number, number]): string {
  const token = /"(?:[^"\\]|\\.)*"|'[^']*'|[^:\s]+/y;
  token.lastIndex = start;
  const key = token.exec(text)?.[0].replace(/^["']|["']$/g, '') ?? '';
  return `key "${key}" appears twice in one mapping`;
}

/**
 * JSON.parse decides; Node 20's messages do not always say where, so the position comes from the
 * message when it has one, else from the YAML parser (JSON is a subset of YAML 1.2), else none.
 */
function parseJson(text: string): Parsed {
  try {
    const data: unknown = JSON.parse(text);
    // JSON.parse keeps the last of two equal keys without a word; the YAML parser notices them.
    const duplicates = parseDocument(text, { prettyErrors: false, uniqueKeys: true }).errors.filter((error) => error.code === 'DUPLICATE_KEY');
    if (duplicates.length > 0) {
      return {
        ok: false,
        problems: duplicates.map((error) => ({ path: '', message: `JSON error: ${duplicateKeyMessage(text, error.pos)}`, ...lineColumn(text, error.pos[0]) })),
      };
    }
    return { ok: true, data };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const cleaned = message.replace(/ in JSON at position \d+.*$/s, '').replace(/, ".*" is not valid JSON$/s, '');
    const problem: ConfigProblem = { path: '', message: `JSON syntax error: ${cleaned}` };
    const position = /at position (\d+)/.exec(message);
    const yamlError = parseDocument(text, { prettyErrors: false }).errors[0];
    if (position !== null) Object.assign(problem, lineColumn(text, Number(position[1])));
    else if (/end of JSON input/.test(message)) Object.assign(problem, lineColumn(text, text.length));
    else if (yamlError !== undefined) Object.assign(problem, lineColumn(text, yamlError.pos[0]));
    return { ok: false, problems: [problem] };
  }
}

function parseYaml(text: string): Parsed {
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    return {
      ok: false,
      problems: document.errors.map((error) => {
        const detail = error.code === 'DUPLICATE_KEY' ? duplicateKeyMessage(text, error.pos) : error.message;
        const problem: ConfigProblem = { path: '', message: `YAML syntax error: ${detail}` };
        return { ...problem, ...lineColumn(text, error.pos[0]) };
      }),
    };
  }
  try {
    return { ok: true, data: document.toJS({ maxAliasCount: CONFIG_LIMITS.maxAliasCount }) };
  } catch (error) {
    // An alias expanding past maxAliasCount ("billion laughs"): yaml's ReferenceError says so.
    const detail = error instanceof Error ? error.message : String(error);
    return { ok: false, problems: [{ path: '', message: `YAML error: ${detail} (aliases may expand to at most ${CONFIG_LIMITS.maxAliasCount} nodes; see "Limits" in docs/configuration.md)` }] };
  }
}

/**
 * Cuts every quoted value in a message to 60 characters, as describeValue does: a 10,000-character
 * address in the file must not make a 10,000-character line (found by test/security-inputs.test.ts).
 */
function shortenQuoted(message: string): string {
  return message.replace(/"((?:[^"\\]|\\.){61,})"/g, (_quoted, inner: string) => `"${inner.slice(0, 57)}..."`);
}

export interface ParseOptions {
  /** Where `${VAR}` references are read from (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Read `admin.tokenFile` (default true). `l4lb check --no-resolve` checks a file away from its
   * host, where the token file is not either.
   */
  readonly readTokenFile?: boolean;
}

/**
 * The admin token of `admin.tokenFile` (relative to the configuration file's directory), its line
 * end trimmed, checked as `admin.token` is. Throws ConfigError at admin.tokenFile.
 */
function withTokenFile(config: Config, file: string): Config {
  const tokenFile = config.admin?.tokenFile;
  if (config.admin === undefined || tokenFile === undefined) return config;
  const path = resolve(dirname(file), tokenFile);
  let token: string;
  try {
    token = tokenOfFileText(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(file, [{ path: 'admin.tokenFile', message: `cannot read "${path}": ${readFailureReason(error)}` }]);
  }
  const checked = tokenField.safeParse(token, { error: errorMap });
  if (!checked.success) {
    throw new ConfigError(file, checked.error.issues.map((issue) => ({ path: 'admin.tokenFile', message: `the token in "${path}" ${issue.message}` })));
  }
  return { ...config, admin: { ...config.admin, token, tokenFile: path } };
}

/**
 * Parses and validates the text of a configuration file; `file` names it in messages and picks the
 * format. Post: returns a Config with every default filled in, or throws ConfigError listing every
 * problem found (syntax errors stop at the syntax; otherwise all schema problems are reported).
 * `${VAR}` references in string values are expanded from `env` (env.ts); `admin.tokenFile` is read
 * relative to the file's directory.
 */
export function parseConfig(source: string, file: string, options: ParseOptions = {}): Config {
  const { env = process.env, readTokenFile = true } = options;
  const text = source.startsWith('\uFEFF') ? source.slice(1) : source; // a byte-order mark is not content
  // The limits (limits.ts) come before the work they bound: size and bracket nesting before the
  // parser, counts before the schema.
  const tooLarge = fileSizeProblem(Buffer.byteLength(text, 'utf8')) ?? textDepthProblem(text);
  if (tooLarge !== undefined) throw new ConfigError(file, [tooLarge]);
  const parsed = detectFormat(text, file) === 'json' ? parseJson(text) : parseYaml(text);
  if (!parsed.ok) throw new ConfigError(file, parsed.problems);
  if (parsed.data === null || parsed.data === undefined) {
    throw new ConfigError(file, [{ path: '', message: 'the file is empty: expected a mapping with a "services" list' }]);
  }
  const overLimits = structureProblems(parsed.data);
  if (overLimits.length > 0) throw new ConfigError(file, overLimits);
  const substituted = substituteEnv(parsed.data, env);
  const document = substituted.data;
  const result = configSchema.safeParse(document, { error: errorMap, reportInput: true });
  if (result.success && substituted.problems.length === 0) return readTokenFile ? withTokenFile(result.data, file) : result.data;
  const problems: ConfigProblem[] = [...substituted.problems];
  // A value whose variable is unset is reported once, as that; its schema problem would repeat it.
  const unset = (path: string): boolean => substituted.unsetPaths.some((where) => path === where || path.startsWith(`${where}.`) || path.startsWith(`${where}[`));
  for (const issue of result.success ? [] : result.error.issues) {
    const path = formatPath(issue.path);
    if (unset(path)) continue;
    for (const message of issue.message.split('\n')) problems.push({ path, message: shortenQuoted(message) });
  }
  const known = (problem: ConfigProblem): boolean => problems.some((seen) => seen.path === problem.path && seen.message === problem.message);
  // Zod skips an object's rules across fields once any of its fields has a problem: run them on
  // what did parse, so one pass lists all, each after the other problems of its service.
  const serviceIndex = (path: string): number => Number(/^services\[(\d+)\]/.exec(path)?.[1] ?? -1);
  for (const rule of serviceProblemsFromDocument(document)) {
    const problem = { path: formatPath(rule.path), message: rule.message };
    if (known(problem)) continue;
    const index = serviceIndex(problem.path);
    let after = problems.length;
    while (after > 0 && serviceIndex(problems[after - 1]?.path ?? '') > index) after--;
    problems.splice(after, 0, problem);
  }
  // Likewise the rules across services, once any service has a problem.
  const facts = factsFromDocument(document);
  for (const cross of crossServiceProblems(facts.adminListen, facts.services, facts.listeners)) {
    const problem = { path: formatPath(cross.path), message: cross.message };
    if (!known(problem)) problems.push(problem);
  }
  throw new ConfigError(file, problems);
}

/** Why a file could not be read, in words (`it does not exist`, `permission denied`, …). */
function readFailureReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'it does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}

function readFailure(error: unknown): string {
  return `cannot read the file: ${readFailureReason(error)}`;
}

/**
 * The token a token file holds: its text without surrounding white space (a token has none: it
 * is printable ASCII without spaces), so `echo TOKEN > file` works. Shared by `admin.tokenFile`
 * and the admin commands' `--token-file`, so both read a file alike.
 */
export function tokenOfFileText(text: string): string {
  return text.trim();
}

/** Reads and parses `file`. Throws ConfigError (one line) if it cannot be read, else as parseConfig. */
export async function loadConfig(file: string, options: ParseOptions = {}): Promise<Config> {
  return (await readConfig(file, options)).config;
}

/** A configuration as loaded, with the sha256 (hex) of the bytes it was parsed from. */
export interface LoadedConfig {
  readonly config: Config;
  readonly hash: string;
}

/**
 * The bytes of `file`, refused (ConfigError, one line) before they are read when the file is over
 * maxFileBytes, and after when it grew past it while being read.
 */
export async function readConfigBytes(file: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const tooLarge = fileSizeProblem((await handle.stat()).size);
      if (tooLarge !== undefined) throw new ConfigError(file, [tooLarge]);
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(file, [{ path: '', message: readFailure(error) }]);
  }
  const grown = fileSizeProblem(bytes.length);
  if (grown !== undefined) throw new ConfigError(file, [grown]);
  return bytes;
}

/**
 * As loadConfig, with the sha256 (hex) of the very bytes it parsed: what /stats and the reload
 * metrics name the running file by. The file is read once. Runs on the calling thread: a reload
 * of `l4lb run` goes through src/runtime's readConfigOffThread instead.
 */
export async function readConfig(file: string, options: ParseOptions = {}): Promise<LoadedConfig> {
  const bytes = await readConfigBytes(file);
  return { config: parseConfig(bytes.toString('utf8'), file, options), hash: createHash('sha256').update(bytes).digest('hex') };
}
