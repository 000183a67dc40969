/**
 * A loopback listening socket feeding one ProxyService, as the balancer wires its own (tests that
 * build a service by hand, on a manual clock).
 */
import type { Logger } from 'pino';
import { ListeningSocket } from '../../src/proxy/listening-socket.js';
import type { ProxyService } from '../../src/proxy/service.js';

/** Listens on 127.0.0.1 (any port) for `service`; `close()` closes the socket (the service is the caller's). */
export async function listenFor(service: ProxyService, logger: Logger): Promise<{ port: number; close: () => Promise<void> }> {
  const socket = new ListeningSocket(`127.0.0.1:0 ${service.name}`, { host: '127.0.0.1', port: 0 }, (client) => service.accept(client), logger);
  const { port } = await socket.listen(service.name);
  return { port, close: () => socket.close() };
}
