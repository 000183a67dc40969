/**
 * The README as a newcomer follows it, so it cannot rot: every YAML block passes `l4lb check`, and
 * so does every edit its comments suggest (a comment `# a | b | c` after `key: a` offers b and c in
 * its place); the `node dist/cli.js` commands of "Use it" (all but `run`, which would keep
 * listening) succeed on the first block saved as l4lb.yaml; and the Node.js client it shows for the
 * demo connects from the source address it is given and echoes through.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = new URL('..', import.meta.url).pathname;
const CLI = `${REPO}dist/cli.js`;
const README = readFileSync(`${REPO}README.md`, 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'l4lb-readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The contents of the README's fenced blocks of one language, in order. */
function blocks(language: string): string[] {
  return [...README.matchAll(new RegExp('^```' + language + '\\n([\\s\\S]*?)^```$', 'gm'))].map((match) => match[1]);
}

interface Variant {
  /** What was changed, for the test's title: `balance: ring` on line 5. */
  edit: string;
  text: string;
}

/**
 * The edits a block's comments suggest: on a line `key: value   # a | b | c[: why]` where value is
 * one of a, b, c, each other alternative in value's place, one edit at a time.
 */
function suggestedEdits(text: string): Variant[] {
  const lines = text.split('\n');
  const variants: Variant[] = [];
  lines.forEach((line, index) => {
    const match = /^(\s*(?:-\s+)?[\w.]+:\s+)([\w.-]+)(\s+#\s*)([^:#]*)/.exec(line);
    if (!match) return;
    const [, head, value, gap, comment] = match;
    const alternatives = comment.split('|').map((word) => word.trim());
    if (alternatives.length < 2 || !alternatives.includes(value)) return;
    for (const alternative of alternatives.filter((word) => word !== value)) {
      const edited = [...lines];
      edited[index] = `${head}${alternative}${gap}${line.slice(match[0].length - comment.length)}`;
      variants.push({ edit: `${head.trim()} ${alternative} on line ${index + 1}`, text: edited.join('\n') });
    }
  });
  return variants;
}

function cli(args: string[]) {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` (npm test does it first)');
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: REPO });
}

function save(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const yamlBlocks = blocks('yaml');
const checks: [name: string, text: string][] = yamlBlocks.flatMap((text, i) => [
  [`YAML block ${i + 1} as written`, text] as [string, string],
  ...suggestedEdits(text).map((variant): [string, string] => [`YAML block ${i + 1} with ${variant.edit}`, variant.text]),
]);

describe('README', () => {
  it('has YAML blocks, and comments that suggest edits', () => {
    expect(yamlBlocks.length).toBeGreaterThan(0);
    expect(checks.length).toBeGreaterThan(yamlBlocks.length);
  });

  it.each(checks)('l4lb check accepts %s', (_, text) => {
    const result = cli(['check', '-c', save('check.yaml', text)]);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    expect(result.stdout).toMatch(/: OK, /);
  });

  const commands = blocks('sh')
    .flatMap((block) => block.split('\n'))
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line.startsWith('node dist/cli.js ') && !line.startsWith('node dist/cli.js run '));

  it('shows the check, route and dsr render commands', () => {
    expect(commands.map((line) => line.split(/\s+/)[2])).toEqual(expect.arrayContaining(['check', 'route', 'dsr']));
  });

  it.each(commands)('%s exits 0 with output (l4lb.yaml: the first YAML block)', (line) => {
    const config = save('l4lb.yaml', yamlBlocks[0]);
    const args = line.split(/\s+/).slice(2).map((word) => (word === 'l4lb.yaml' ? config : word));
    const result = cli(args);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    expect(result.stdout).not.toBe('');
  });

  it('the Node.js client for the demo connects from the source address it is given, and echoes', async () => {
    const oneLiner = blocks('sh')
      .flatMap((block) => block.split('\n'))
      .find((line) => line.startsWith('node -e '));
    expect(oneLiner, 'a `node -e` client in a sh block').toBeDefined();
    const match = /^node -e '([^']*)' (\S+)$/.exec(oneLiner!);
    expect(match, oneLiner).not.toBeNull();
    const [, script, source] = match!;
    expect(script).toContain('port: 7000');

    // A stand-in for the demo on a free port: greets with the client's address, then echoes.
    const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.write(`${socket.remoteAddress}\n`);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const child = spawn(process.execPath, ['-e', script.replace('port: 7000', `port: ${port}`), source], { stdio: ['pipe', 'pipe', 'pipe'] });
      let output = '';
      let errors = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
      child.stdin.end('hello\n');
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      expect({ code, errors, output }).toEqual({ code: 0, errors: '', output: `${source}\nhello\n` });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
