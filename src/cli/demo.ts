/**
 * `l4lb demo` (and `npm start`): the embedded default. Three small backends on loopback, each
 * answering a new connection with its name and then echoing, behind a Maglev balancer on
 * 127.0.0.1:7000 keyed on the client's source address, so a newcomer can see both balancing
 * (different sources, different backends) and affinity (same source, same backend) with `nc`.
 */
import { Command } from 'commander';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import type { Logger } from 'pino';
import type { Config, Endpoint, ProxyServiceConfig } from '../config/index.js';
import { LbError, ListenError } from '../errors.js';
import { createPicker, DEFAULT_MAGLEV_TABLE_SIZE, flowKey } from '../hashing/index.js';
import { createLogger, startBalancer, type Balancer } from '../proxy/index.js';
import { flushLogger } from '../runtime/index.js';
import { slotHashOf } from '../services/index.js';
import { EXIT_FAILURE, fail, invalid } from './common.js';

export const DEMO_BACKENDS = ['alpha', 'bravo', 'charlie'] as const;

/** A backend that greets each connection with `NAME\n`, then echoes; keeps half-close. */
export async function startDemoBackend(name: string): Promise<{ server: Server; address: Endpoint }> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new LbError('LB_ERR_LISTEN', `demo backend ${name}: no address`);
  return { server, address: { host: address.address, port: address.port } };
}

export function demoConfig(port: number, backends: readonly { name: string; address: Endpoint }[]): Config {
  return {
    services: [
      {
        mode: 'proxy',
        name: 'demo',
        listen: [{ host: '127.0.0.1', port }],
        balance: 'maglev',
        hashKey: 'source-ip',
        flowHash: 'murmur3',
        hashSeed: 0,
        tableSize: DEFAULT_MAGLEV_TABLE_SIZE,
        maxConnections: 1000,
        retries: 2,
        timeouts: { connect: 3000, idle: 30 * 60 * 1000, queue: 5000, drain: 2000 },
        backends: backends.map(({ name, address }) => ({ name, address, weight: 1 })),
      },
    ],
  };
}

/** The lines that tell a newcomer what to do and what they will see. */
export function demoInstructions(listen: Endpoint, backends: readonly { name: string; address: Endpoint }[]): string[] {
  const service = demoConfig(listen.port, backends).services[0] as ProxyServiceConfig;
  // The same picker the balancer builds from this configuration, so the predictions below hold.
  const picker = createPicker('maglev', service.backends, { tableSize: service.tableSize, slotHash: slotHashOf(service) });
  const target = `${listen.host} ${listen.port}`;
  const sources = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6'];
  return [
    `l4lb demo: a Maglev balancer on ${listen.host}:${listen.port} in front of ${backends.length} backends on loopback:`,
    ...backends.map(({ name, address }) => `  ${name.padEnd(8)} ${address.host}:${address.port}  (answers with its name, then echoes what you type)`),
    '',
    'Try it in another terminal, with netcat (Debian: apt-get install netcat-openbsd):',
    `  nc ${target}`,
    '  The first line is the name of the backend that took your connection; type a line and it comes back.',
    '  Connections are placed by their source address, so the same client always reaches the same backend.',
    '  Choose another source on loopback to land elsewhere:',
    ...sources.map((source) => `    nc -s ${source} ${target}   → ${picker.pick(flowKey(source))?.name}`),
    '  Without netcat, Node.js does the same (the last argument is the source address):',
    `    node -e 'const s = require("net").connect({ host: "${listen.host}", port: ${listen.port}, localAddress: process.argv[1] }); process.stdin.pipe(s).pipe(process.stdout)' 127.0.0.2`,
    '  Each connection that closes prints one JSON access-log line below (like HAProxy tcplog).',
    '',
    'Ctrl-C to stop.',
    '',
  ];
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) invalid('expected a port number from 1 to 65535');
  return port;
}

export async function demo(port: number, logger: Logger = createLogger()): Promise<void> {
  const backends = await Promise.all(DEMO_BACKENDS.map(async (name) => ({ name, ...(await startDemoBackend(name)) })));
  const closeBackends = (): Promise<void[]> =>
    Promise.all(backends.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
  let balancer: Balancer;
  try {
    balancer = await startBalancer(demoConfig(port, backends), { logger });
  } catch (error) {
    await closeBackends();
    if (error instanceof ListenError && error.failure === 'address-in-use') {
      fail(new LbError('LB_ERR_LISTEN', `cannot listen on 127.0.0.1:${port}: the port is taken (is another demo running?); try --port ${port + 1}`));
    }
    fail(error, EXIT_FAILURE);
  }
  const stop = (): void => {
    process.stdout.write('\nstopping the demo\n');
    void balancer
      .close(1000)
      .then(closeBackends)
      .then(() => flushLogger(logger))
      .then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // Printed once Ctrl-C is handled: whoever reads "Ctrl-C to stop." may send it at once.
  process.stdout.write(demoInstructions(balancer.address('demo'), backends).join('\n') + '\n');
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('start three echo backends on loopback behind a balancer on 127.0.0.1:7000, and show how to try it')
    .option('-p, --port <port>', 'the balancer port', parsePort, 7000)
    .action(async (options: { port: number }) => {
      try {
        await demo(options.port);
      } catch (error) {
        fail(error, EXIT_FAILURE);
      }
    });
}
