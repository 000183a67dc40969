/**
 * Both ends of the idle-connection memory case, run as separate processes by the proxy benchmark
 * (never inside the proxy being measured, nor inside the orchestrating process):
 *
 *   node idle.js server PORT      accepts on 127.0.0.1:PORT, greets each connection with one byte,
 *                                 then holds it; prints `listening` when ready.
 *   node idle.js client PORT N    opens N connections to 127.0.0.1:PORT (256 in flight at most) and
 *                                 waits for each greeting, which proves the connection is spliced
 *                                 end to end; prints `{"held":N}`, then on a `close` line (or end of
 *                                 stdin) closes them all and prints `{"closed":N}`.
 *
 * Any connection error ends the client with `{"error":"…"}` and exit code 1.
 */
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const GREETING = Buffer.from('g');
const IN_FLIGHT = 256;

function runServer(port: number): void {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', () => undefined);
    socket.write(GREETING);
  });
  server.on('error', (error) => {
    process.stdout.write(`${JSON.stringify({ error: error.message })}\n`);
    process.exit(1);
  });
  server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => process.stdout.write('listening\n'));
  process.on('SIGTERM', () => {
    for (const socket of sockets) socket.destroy();
    server.close(() => process.exit(0));
  });
}

function runClient(port: number, count: number): void {
  const sockets: Socket[] = [];
  let started = 0;
  let greeted = 0;
  const fail = (message: string): never => {
    process.stdout.write(`${JSON.stringify({ error: message, greeted })}\n`);
    process.exit(1);
  };
  const openNext = (): void => {
    if (started >= count) return;
    started++;
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    socket.on('error', (error) => fail(`connection ${sockets.length}: ${error.message}`));
    socket.once('data', () => {
      greeted++;
      if (greeted === count) process.stdout.write(`${JSON.stringify({ held: count })}\n`);
      else openNext();
    });
    socket.on('end', () => fail('a held connection was closed by the far side'));
  };
  for (let i = 0; i < Math.min(IN_FLIGHT, count); i++) openNext();
  const closeAll = (): void => {
    for (const socket of sockets) {
      socket.removeAllListeners('end');
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      socket.destroy();
    }
    process.stdout.write(`${JSON.stringify({ closed: sockets.length })}\n`);
    process.exit(0);
  };
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() === 'close') closeAll();
  });
  lines.on('close', closeAll);
  process.on('SIGTERM', closeAll);
}

const [mode, portText, countText] = process.argv.slice(2);
const port = Number(portText);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write(`idle: bad port "${portText}"\n`);
  process.exit(2);
}
if (mode === 'server') runServer(port);
else if (mode === 'client') {
  const count = Number(countText);
  if (!Number.isInteger(count) || count <= 0) {
    process.stderr.write(`idle: bad connection count "${countText}"\n`);
    process.exit(2);
  }
  runClient(port, count);
} else {
  process.stderr.write('usage: idle.js server PORT | client PORT N\n');
  process.exit(2);
}
