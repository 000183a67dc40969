#!/usr/bin/env node
// The lab's backend service: on every connection it sends its backend name as the first line, then
// answers each line it receives with its name again (so a long-lived flow can ask "who serves me
// now?"). Usage: node backend-service.mjs NAME PORT [PORT...]. Prints "listening PORT" per port.
import { createServer } from 'node:net';

const [name, ...ports] = process.argv.slice(2);
if (!name || ports.length === 0) {
  process.stderr.write('usage: backend-service.mjs NAME PORT [PORT...]\n');
  process.exit(2);
}
const reply = Buffer.from(`${name}\n`);
for (const port of ports) {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.write(reply);
    socket.on('data', (chunk) => {
      for (const byte of chunk) if (byte === 10) socket.write(reply);
    });
    socket.on('end', () => socket.end());
  });
  server.on('error', (error) => {
    process.stderr.write(`${name}: port ${port}: ${error.message}\n`);
    process.exit(1);
  });
  server.listen(Number(port), '0.0.0.0', () => process.stdout.write(`listening ${port}\n`));
}
