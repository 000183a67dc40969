/**
 * l4lb's version, as package.json states it: read once from the package root, which is one level
 * above both src/ and dist/ (so it holds in a checkout, a tarball and a global install alike).
 * A leaf module, like errors.ts and clock.ts.
 */
import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
