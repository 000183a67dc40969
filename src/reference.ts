/**
 * `npm run reference`: writes the generated reference pages under docs/reference/ (src/reference/).
 * With `--check`, writes nothing and exits 1 naming each page that differs from what it would write.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { referencePages } from './reference/index.js';

const DOCS = new URL('../docs/', import.meta.url).pathname;
const check = process.argv.includes('--check');
let stale = 0;
for (const [page, text] of referencePages()) {
  const file = `${DOCS}${page}`;
  let current: string | undefined;
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    current = undefined;
  }
  if (current === text) continue;
  if (check) {
    process.stderr.write(`docs/${page} is out of date: run npm run reference\n`);
    stale++;
  } else {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    process.stdout.write(`wrote docs/${page}\n`);
  }
}
process.exitCode = stale === 0 ? 0 : 1;
