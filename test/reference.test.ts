/**
 * The reference pages cannot fall behind the code: docs/reference/{configuration,cli,metrics}.md are
 * what `npm run reference` generates from the schema, the commander definitions and the metrics
 * registry now; every configuration key has a reference entry; and every message a log call in src/
 * writes is in the log catalogue (docs/reference/logs.md).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { referenceGaps, referencePages, staleExitNotes } from '../src/reference/index.js';

const REPO = new URL('..', import.meta.url).pathname;
const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = `${dir}/${name}`;
    if (statSync(path).isDirectory()) return name === 'bench' ? [] : sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

/** A log message as a pattern: a template's substitutions match anything. */
interface LoggedMessage {
  readonly where: string;
  readonly pattern: RegExp;
  readonly text: string;
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Calls `X.level(…, 'message')` (and `logger[level](…, MESSAGE)` with a constant) in src/. */
function loggedMessages(): LoggedMessage[] {
  const found: LoggedMessage[] = [];
  for (const file of sourceFiles(`${REPO}src`)) {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && LEVELS.has(node.expression.name.text) && node.arguments.length > 0) {
        const argument = node.arguments[node.arguments.length - 1];
        // `cond ? 'a' : 'b'`: both messages can be written.
        const candidates = ts.isConditionalExpression(argument) ? [argument.whenTrue, argument.whenFalse] : [argument];
        for (const last of candidates) {
        const where = `${file.slice(REPO.length)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
        if (ts.isStringLiteral(last) || ts.isNoSubstitutionTemplateLiteral(last)) {
          found.push({ where, text: last.text, pattern: new RegExp(`^${escape(last.text)}$`) });
        } else if (ts.isTemplateExpression(last)) {
          const parts = [escape(last.head.text), ...last.templateSpans.map((span) => `.*${escape(span.literal.text)}`)];
          found.push({ where, text: last.getText(), pattern: new RegExp(`^${parts.join('')}$`) });
        }
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

/** The first column of every table row in the catalogue, `…` read as "anything". */
function catalogued(): string[] {
  const text = readFileSync(`${REPO}docs/reference/logs.md`, 'utf8');
  const messages: string[] = [];
  for (const line of text.split('\n')) {
    const match = /^\| `(.+?)` \|/.exec(line.replace(/\\`/g, '\uE000'));
    if (match?.[1] !== undefined) messages.push(match[1].replace(/\uE000/g, '`'));
  }
  return messages;
}

describe('generated reference pages', () => {
  it('every configuration key of the schema has a reference entry, and every entry names a key', () => {
    expect(referenceGaps()).toEqual({ undocumented: [], unknown: [] });
  });

  it('every exit-status note names a command that exists', () => {
    expect(staleExitNotes()).toEqual([]);
  });

  it.each([...referencePages()])('docs/%s is what `npm run reference` writes', (page, text) => {
    expect(readFileSync(`${REPO}docs/${page}`, 'utf8'), `run npm run reference`).toBe(text);
  });
});

describe('log catalogue', () => {
  const messages = loggedMessages();
  const entries = catalogued();

  it('finds the log calls of src/ (the scan itself works)', () => {
    expect(messages.map((message) => message.text)).toEqual(expect.arrayContaining(['listening', 'reloaded', 'backend health changed', 'stopped']));
  });

  it('lists every message a log call writes', () => {
    const matches = (message: LoggedMessage, entry: string): boolean => {
      if (message.pattern.test(entry)) return true;
      // An entry with `…` stands for a message with a varying part.
      const entryPattern = new RegExp(`^${entry.split('…').map((part) => escape(part.trim())).join('.*')}$`);
      return entryPattern.test(message.text.replace(/^`|`$/g, '').replace(/\$\{[^}]*\}/g, 'X'));
    };
    const missing = messages.filter((message) => !entries.some((entry) => matches(message, entry))).map((message) => `${message.where}: ${message.text}`);
    expect(missing).toEqual([]);
  });

  it('lists no message that nothing writes', () => {
    const stale = entries.filter((entry) => entry !== 'connection' && !messages.some((message) => message.pattern.test(entry) || new RegExp(`^${entry.split('…').map((part) => escape(part.trim())).join('.*')}$`).test(message.text.replace(/^`|`$/g, '').replace(/\$\{[^}]*\}/g, 'X'))));
    expect(stale).toEqual([]);
  });
});
