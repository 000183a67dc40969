/**
 * docs/examples/*.yaml, the commented files an operator starts from, pass `l4lb check --no-resolve`
 * (their host names and token file belong to the hosts they would run on), and say so.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLI } from './helpers/child.js';

const EXAMPLES = new URL('../docs/examples/', import.meta.url).pathname;
const { L4LB_ADMIN_TOKEN: _ignored, ...inherited } = process.env;

function check(file: string, env: Record<string, string>) {
  return spawnSync(process.execPath, [CLI, 'check', '--no-resolve', '-c', `${EXAMPLES}${file}`], { encoding: 'utf8', env: { ...inherited, ...env } });
}

describe('docs/examples', () => {
  it('holds the PostgreSQL, Redis and DSR examples', () => {
    expect(readdirSync(EXAMPLES).sort()).toEqual(['dsr.yaml', 'postgres.yaml', 'redis.yaml']);
  });

  it.each([
    ['postgres.yaml', /OK, 1 service \(postgres: maglev over 4 backends on 0\.0\.0\.0:6432\), admin on 127\.0\.0\.1:9900; admin\.tokenFile not read/],
    ['redis.yaml', /OK, 1 service \(redis: leastconn over 3 backends on \[::\]:6379\), admin on 0\.0\.0\.0:9900\n$/],
    ['dsr.yaml', /OK, 1 service \(web: dsr maglev over 3 backends on VIP 192\.0\.2\.10:80 dscp 10\)\n$/],
  ])('l4lb check --no-resolve accepts %s', (file, summary) => {
    const result = check(file, { L4LB_ADMIN_TOKEN: 'example-token-0123456789' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(summary);
  });

  it('redis.yaml without its token in the environment: one line naming the variable', () => {
    const result = check('redis.yaml', {});
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/redis\.yaml: admin\.token: \$\{L4LB_ADMIN_TOKEN\} is not set in the environment \(set it, or give a default: \$\{L4LB_ADMIN_TOKEN:-VALUE\}\)\n$/);
  });
});
