/**
 * The admin API's listener after it is bound (src/admin/server.ts): an accept error such as EMFILE
 * is emitted as 'error' on the server; without a listener Node throws it and the balancer dies.
 * The server here is captured by wrapping node:http's createServer (no test hook in the code).
 */
import type * as http from 'node:http';
import type { Server } from 'node:http';
import { afterAll, expect, it, vi } from 'vitest';
import { listenerError, startAdmin } from '../src/admin/server.js';
import { startBalancer } from '../src/proxy/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { startNamedServer } from './helpers/net.js';

const created: Server[] = [];
vi.mock('node:http', async (importOriginal) => {
  const actual = await importOriginal<typeof http>();
  const createServer = ((...args: Parameters<typeof actual.createServer>) => {
    const server = actual.createServer(...args);
    created.push(server);
    return server;
  }) as typeof actual.createServer;
  return { ...actual, default: { ...actual, createServer }, createServer };
});

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function emfile(): NodeJS.ErrnoException {
  return Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', errno: -24, syscall: 'accept' });
}

it("an 'error' on the bound admin listener (EMFILE on accept) is logged, not thrown, and the API keeps answering", async () => {
  const echo = await startNamedServer('a');
  const log = captureLog();
  const balancer = await startBalancer(configOf(proxyService([backend('a', echo.port)], { name: 'web' })), { logger: log.logger });
  const admin = await startAdmin(balancer, { listen: { host: '127.0.0.1', port: 0 }, logger: log.logger });
  cleanups.push(() => echo.close(), () => balancer.close(0), () => admin.close());
  const server = created.find((candidate) => {
    const address = candidate.address();
    return typeof address === 'object' && address !== null && address.port === admin.address().port;
  });
  expect(server).toBeDefined();
  expect(() => server?.emit('error', emfile())).not.toThrow();
  const response = await fetch(`http://127.0.0.1:${admin.address().port}/metrics`);
  expect(response.status).toBe(200);
  const lines = log.records.filter((record) => record.msg === 'admin API listener error');
  expect(lines).toEqual([expect.objectContaining({ error: 'EMFILE', count: 1 })]);
});

it('an error repeated on every accept is logged the 1st, 10th, 100th… time per kind, with the count', () => {
  const log = captureLog();
  const onError = listenerError(log.logger);
  for (let i = 0; i < 1000; i++) onError(emfile());
  onError(Object.assign(new Error('accept ENFILE'), { code: 'ENFILE' }));
  const lines = log.records.filter((record) => record.msg === 'admin API listener error').map((record) => [record.error, record.count]);
  expect(lines).toEqual([['EMFILE', 1], ['EMFILE', 10], ['EMFILE', 100], ['EMFILE', 1000], ['ENFILE', 1]]);
});
