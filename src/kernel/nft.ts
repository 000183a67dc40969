/**
 * The only I/O of the kernel data planes: `nft -f -` (a script on stdin, one transaction: nft
 * commits all of it or nothing) and `nft -j list table …` (JSON, read when asked, never on a timer).
 * The binary is found on PATH. Failures become KernelError with a cause the caller branches on.
 */
import { spawn } from 'node:child_process';
import { KernelError } from '../errors.js';

/** One object of `nft -j list table`: `{ map: {...} }`, `{ set: {...} }`, `{ counter: {...} }`, … */
export type NftObject = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** What the writer needs of nft; tests inject a fake. */
export interface NftRunner {
  /** Loads `script` as one transaction. Rejects with KernelError (refused, not-root, nft-missing). */
  apply(script: string, table: string): Promise<void>;
  /** The objects of table `family name`, or undefined when there is no such table. */
  list(family: string, name: string): Promise<NftObject[] | undefined>;
  /**
   * The body of map `name` of table `family table` (`nft -j list map …`: only that map, not the
   * table), or undefined when the map or its table is absent.
   */
  listMap(family: string, table: string, name: string): Promise<Readonly<Record<string, unknown>> | undefined>;
}

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function runNft(args: readonly string[], input: string | undefined, table: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn('nft', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') reject(new KernelError({ cause: 'nft-missing', table, detail: 'nft: not found on PATH' }));
      else reject(new KernelError({ cause: 'refused', table, detail: error.message }));
    });
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    // A child that died before reading its stdin gives EPIPE here; 'close' reports the real failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/** nft's message, shortened to what one log line holds. */
function summary(stderr: string): string {
  const lines = stderr.split('\n').map((line) => line.trim()).filter((line) => line !== '' && !/^\^+$/.test(line));
  return lines.slice(0, 3).join(' | ').slice(0, 400);
}

/**
 * The KernelError of a failed nft run. nft reports a kernel errno only as text, so this is the one
 * place that reads it: EPERM is not-root; ENOENT (an element, map or table named by the script is
 * not there: on nft 1.0.6 one missing element aborts the whole transaction) is not-found.
 */
function failure(ran: Ran, table: string): KernelError {
  const detail = summary(ran.stderr);
  if (/Operation not permitted/i.test(ran.stderr)) return new KernelError({ cause: 'not-root', table, detail });
  if (/No such file or directory/.test(ran.stderr)) return new KernelError({ cause: 'not-found', table, detail });
  return new KernelError({ cause: 'refused', table, detail });
}

/** The system's nft, found on PATH. */
export const systemNft: NftRunner = {
  async apply(script, table) {
    const ran = await runNft(['-f', '-'], script, table);
    if (ran.code !== 0) throw failure(ran, table);
  },
  async list(family, name) {
    const table = `${family} ${name}`;
    const ran = await runNft(['-j', 'list', 'table', family, name], undefined, table);
    if (ran.code !== 0) {
      if (/No such file or directory/.test(ran.stderr)) return undefined;
      throw failure(ran, table);
    }
    const parsed = JSON.parse(ran.stdout) as { nftables?: NftObject[] };
    return parsed.nftables ?? [];
  },
  async listMap(family, table, name) {
    const where = `${family} ${table}`;
    const ran = await runNft(['-j', 'list', 'map', family, table, name], undefined, where);
    if (ran.code !== 0) {
      if (/No such file or directory/.test(ran.stderr)) return undefined;
      throw failure(ran, where);
    }
    const parsed = JSON.parse(ran.stdout) as { nftables?: NftObject[] };
    return objectsOf(parsed.nftables ?? [], 'map').get(name);
  },
};

/** The `kind` objects (`map`, `set`, `counter`) of a listing, by name. */
export function objectsOf(listing: readonly NftObject[], kind: string): Map<string, Readonly<Record<string, unknown>>> {
  const found = new Map<string, Readonly<Record<string, unknown>>>();
  for (const object of listing) {
    const body = object[kind];
    if (body !== undefined && typeof body.name === 'string') found.set(body.name, body);
  }
  return found;
}

/**
 * An element of a listed map or set as the renderer writes it: `192.0.2.11 . 80`, `11`, `goto
 * CHAIN`. An element of a set with timeouts comes wrapped as `{ elem: { val, expires } }`: its `val`
 * is the element. A verdict comes as `{ goto: { target } }` (or `jump`).
 */
function elementText(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) {
    if ('concat' in value && Array.isArray(value.concat)) return value.concat.map(elementText).join(' . ');
    if ('elem' in value && typeof value.elem === 'object' && value.elem !== null && 'val' in value.elem) return elementText(value.elem.val);
    for (const verdict of ['goto', 'jump'] as const) {
      const body = verdict in value ? (value as Record<string, unknown>)[verdict] : undefined;
      if (typeof body === 'object' && body !== null && 'target' in body && typeof body.target === 'string') return `${verdict} ${body.target}`;
    }
  }
  return JSON.stringify(value);
}

/** Slot → value of a listed `type mark : …` map (keys are numbers in JSON). */
export function mapElements(body: Readonly<Record<string, unknown>> | undefined): Map<number, string> {
  const elements = new Map<number, string>();
  const list = body?.elem;
  if (!Array.isArray(list)) return elements;
  for (const entry of list) {
    if (Array.isArray(entry) && entry.length === 2) elements.set(Number(entry[0]), elementText(entry[1]));
  }
  return elements;
}

/** Key → value of any listed map, both as text (`198.51.100.10 . 40000` → `203.0.113.12`). */
export function mapEntries(body: Readonly<Record<string, unknown>> | undefined): Map<string, string> {
  const entries = new Map<string, string>();
  const list = body?.elem;
  if (!Array.isArray(list)) return entries;
  for (const entry of list) {
    if (Array.isArray(entry) && entry.length === 2) entries.set(elementText(entry[0]), elementText(entry[1]));
  }
  return entries;
}

/** Members of a listed set, as text. */
export function setElements(body: Readonly<Record<string, unknown>> | undefined): string[] {
  const list = body?.elem;
  return Array.isArray(list) ? list.map(elementText) : [];
}
