/**
 * The admin HTTP API (docs/operations.md) against a real balancer: bearer token (401 without or
 * with a wrong one), /stats, state changes, and every error as JSON with its status and the valid
 * names.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorized, startAdmin, type AdminServer } from '../src/admin/server.js';
import { createHash } from 'node:crypto';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { startNamedServer, type TestServer } from './helpers/net.js';

const TOKEN = 'test-token-0123456789';
let servers: TestServer[] = [];
let balancer: Balancer;
let admin: AdminServer;
let base = '';

beforeAll(async () => {
  servers = await Promise.all(['a', 'b'].map((name) => startNamedServer(name)));
  balancer = await startBalancer(configOf(proxyService([backend('a', servers[0].port), backend('b', servers[1].port)], { name: 'web' })), { logger: captureLog().logger });
  admin = await startAdmin(balancer, { listen: { host: '127.0.0.1', port: 0 }, token: TOKEN });
  base = `http://127.0.0.1:${admin.address().port}`;
});

afterAll(async () => {
  await admin?.close();
  await balancer?.close(0);
  await Promise.all(servers.map((server) => server.close()));
});

const auth = { authorization: `Bearer ${TOKEN}` };

/** A JSON body as the admin API sends it, read by the assertions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the assertions check its shape
type ApiBody = any;

async function call(path: string, init: RequestInit = {}): Promise<{ status: number; body: ApiBody; headers: Headers }> {
  const response = await fetch(base + path, { ...init, headers: { ...auth, ...(init.headers as Record<string, string> | undefined) } });
  const text = await response.text();
  return { status: response.status, body: response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text, headers: response.headers };
}

const post = (path: string, body: string) => call(path, { method: 'POST', body, headers: { 'content-type': 'application/json' } });

describe('token', () => {
  it('401 without a token, with a wrong one, and with a wrong scheme; 200 with it', async () => {
    const none = await fetch(`${base}/stats`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="l4lb"');
    expect(await none.json()).toEqual({ error: { code: 'unauthorized', message: 'this admin API needs "Authorization: Bearer <token>"' } });
    for (const header of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, 'Bearer ']) {
      const wrong = await fetch(`${base}/stats`, { headers: { authorization: header } });
      expect(wrong.status, header).toBe(401);
      expect(((await wrong.json()) as { error: { message: string } }).error.message).toBe('wrong token');
    }
    expect((await call('/stats')).status).toBe(200);
  });

  it('compares digests of equal length (constant time), whatever the length given', () => {
    const expected = createHash('sha256').update('s3cret-s3cret-s3cret').digest();
    expect(authorized('Bearer s3cret-s3cret-s3cret', expected)).toBe(true);
    expect(authorized('Bearer s', expected)).toBe(false);
    expect(authorized(`Bearer ${'x'.repeat(10_000)}`, expected)).toBe(false);
    expect(authorized(undefined, expected)).toBe(false);
  });
});

describe('GET /stats', () => {
  it('lists services and backends with health, state, counts and bytes', async () => {
    const { status, body } = await call('/stats');
    expect(status).toBe(200);
    expect(body.services).toHaveLength(1);
    const [web] = body.services;
    expect(web).toMatchObject({ name: 'web', current: 0, total: 0, bytesUp: 0, bytesDown: 0, healthCheck: null });
    expect(web.backends.map((row: { name: string }) => row.name)).toEqual(['a', 'b']);
    expect(web.backends[0]).toMatchObject({ name: 'a', health: 'up', state: 'active', backup: false, slowStart: 1, current: 0, total: 0, failures: 0, lastCheck: null });
  });
});

describe('POST /services/:s/backends/:b/state', () => {
  it('changes the state and says what it was', async () => {
    expect((await post('/services/web/backends/b/state', '{"state":"draining"}')).body).toEqual({ service: 'web', backend: 'b', previous: 'active', state: 'draining' });
    expect((await call('/stats')).body.services[0].backends[1].state).toBe('draining');
    expect((await post('/services/web/backends/b/state', '{"state":"maintenance"}')).body.previous).toBe('draining');
    expect((await post('/services/web/backends/b/state', '{"state":"active"}')).body).toEqual({ service: 'web', backend: 'b', previous: 'maintenance', state: 'active' });
  });

  it("accepts HAProxy's words: drain, maint, ready", async () => {
    expect((await post('/services/web/backends/b/state', '{"state":"drain"}')).body).toEqual({ service: 'web', backend: 'b', previous: 'active', state: 'draining' });
    expect((await post('/services/web/backends/b/state', '{"state":"maint"}')).body).toEqual({ service: 'web', backend: 'b', previous: 'draining', state: 'maintenance' });
    expect((await post('/services/web/backends/b/state', '{"state":"ready"}')).body).toEqual({ service: 'web', backend: 'b', previous: 'maintenance', state: 'active' });
    expect((await post('/services/web/backends/b/state', '{"state":"constructor"}')).status).toBe(400);
  });

  it.each([
    ['/services/db/backends/a/state', '{"state":"draining"}', 404, { code: 'not-found', message: 'no service "db" (services: web)', valid: ['web'] }],
    ['/services/web/backends/c/state', '{"state":"draining"}', 404, { code: 'not-found', message: 'service "web" has no backend "c" (backends: a, b)', valid: ['a', 'b'] }],
    ['/services/web/backends/a/state', 'drain', 400, { code: 'bad-request', message: 'the body must be JSON such as {"state": "draining"}, got "drain"' }],
    ['/services/web/backends/a/state', '', 400, { code: 'bad-request', message: 'the body must be JSON such as {"state": "draining"}, got an empty body' }],
    ['/services/web/backends/a/state', '["draining"]', 400, { code: 'bad-request', message: 'the body must be a JSON object such as {"state": "draining"}' }],
    ['/services/web/backends/a/state', '{"state":"drained"}', 400, { code: 'bad-request', message: '"state" must be one of active, draining, maintenance (or HAProxy\'s ready, drain, maint), got "drained"', valid: ['active', 'draining', 'maintenance'] }],
    ['/services/web/backends/a/state', '{"state":"draining","force":true}', 400, { code: 'bad-request', message: 'unknown key "force" (expected only "state")' }],
    ['/services/web/backends/a/state', '{}', 400, { code: 'bad-request', message: '"state" must be one of active, draining, maintenance (or HAProxy\'s ready, drain, maint), got nothing', valid: ['active', 'draining', 'maintenance'] }],
    ['/nope', '{}', 404, { code: 'not-found', message: 'no such path "/nope" (paths: GET /, GET /stats, GET /metrics, POST /services/SERVICE/backends/BACKEND/state, POST /services/SERVICE/backends/BACKEND/weight, POST /services/SERVICE/backends, DELETE /services/SERVICE/backends/BACKEND)' }],
  ])('POST %s %s → %i', async (path, body, status, error) => {
    const response = await post(path, body);
    expect(response.status).toBe(status);
    expect(response.body).toEqual({ error });
  });

  it('405 with Allow for the wrong method, 413 for a body over 4 KiB', async () => {
    const get = await call('/services/web/backends/a/state');
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const put = await call('/stats', { method: 'DELETE' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, HEAD');
    const big = await post('/services/web/backends/a/state', JSON.stringify({ state: 'x'.repeat(5000) }));
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('too-large');
    expect((await call('/stats')).body.services[0].backends[0].state).toBe('active');
  });
});
