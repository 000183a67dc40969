/**
 * close() against a reload in flight (src/proxy/balancer.ts): a reload whose name resolution is
 * still pending when close() runs must not install services or start health checks afterwards.
 * close() waits for the apply, which sees `closing` after its await and rejects with LB_ERR_CLOSED.
 */
import { afterEach, expect, it } from 'vitest';
import { connect } from 'node:net';
import { isLbError } from '../src/errors.js';
import { startBalancer } from '../src/proxy/index.js';
import type { Lookup } from '../src/services/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { startNamedServer, type TestServer } from './helpers/net.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

it('close() during a reload still resolving names: the reload rejects LB_ERR_CLOSED, nothing is listening or checked afterwards', async () => {
  const live: TestServer = await startNamedServer('live');
  cleanups.push(() => live.close());
  let release = (): void => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let asked = (): void => {};
  const lookupStarted = new Promise<void>((resolve) => (asked = resolve));
  const lookup: Lookup = async () => {
    asked();
    await released;
    return '127.0.0.1';
  };
  const one = proxyService([backend('a', live.port)], { name: 'one' });
  const two = proxyService([{ ...backend('b', live.port), address: { host: 'slow.test', port: live.port } }], {
    name: 'two',
    healthCheck: { type: 'tcp', interval: 100, timeout: 1000, rise: 1, fall: 1, initial: 'down' },
  });
  const balancer = await startBalancer(configOf(one), { logger: captureLog().logger, lookup });
  cleanups.push(() => balancer.close(0));
  const oneAddress = balancer.address('one');

  const reloading = balancer.reload(configOf(one, two)).then(
    () => undefined,
    (error: unknown) => error,
  );
  await lookupStarted;
  const closing = balancer.close(0);
  release();
  await closing;
  const outcome = await reloading;
  expect(isLbError(outcome) && outcome.code).toBe('LB_ERR_CLOSED');
  expect(balancer.stats()).toEqual([]);
  expect(() => balancer.address('two')).toThrow();
  const reached = await new Promise<string>((resolve) => {
    const socket = connect(oneAddress.port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
  expect(reached).toBe('ECONNREFUSED');
  await expect(balancer.reload(configOf(one))).rejects.toMatchObject({ code: 'LB_ERR_CLOSED' });
});
